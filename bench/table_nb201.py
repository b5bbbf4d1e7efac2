"""The ``table`` space and evaluator on NAS-Bench-201 given as a plain CSV (no NB201 code),
beside ``bench/nb201_random.py``'s random search on CIFAR-10, in the same run.

Each run is the job spec of ``examples/table-nb201-cifar10.yaml`` (space ``table`` over the
columns edge0..edge5 with the NB201 op order as explicit choices; fitness ``c10_val12``,
held-out ``c10_test200``, cost 0.06 * ``c10_train_time200_s`` + one validation epoch; budget
12,000 simulated seconds) with the run's seed, parsed by ``workers.search.parse_spec`` and
run by ``workers.search.SearchLoop`` from scratch. The figure is the held-out column of the
best architecture (``outcome.final_metrics['c10_test200']``). The acceptance (issue 14): the
100-seed mean is within 0.05 of ``nb201_random.py``'s CIFAR-10 figure.

    .venv/bin/python bench/table_nb201.py              # 100 seeds each
    .venv/bin/python bench/table_nb201.py --runs 10
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml
from _args import description, positive_int

from bench.nb201_random import DEFAULT_TABLE, run_dataset
from nas.evaluators.tabular import TABLE_ENV
from workers.search import SearchLoop, parse_spec

EXAMPLE = REPO / "examples" / "table-nb201-cifar10.yaml"
TOLERANCE = 0.05


def table_spec(table: str, seed: int) -> dict:
    """The example spec with the table's path and the run's seed."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["space"]["path"] = table
    spec["seed"] = seed
    return spec


def run_table(table: str, runs: int) -> dict:
    started = time.perf_counter()
    accuracies: list[float] = []
    queries: list[int] = []
    for seed in range(runs):
        outcome = SearchLoop(parse_spec(table_spec(table, seed))).run()
        assert outcome is not None
        accuracies.append(outcome.final_metrics["c10_test200"])
        queries.append(len(outcome.trials))
    return {
        "accuracies": accuracies,
        "mean": statistics.fmean(accuracies),
        "std": statistics.pstdev(accuracies) if runs > 1 else 0.0,
        "median_queries": statistics.median(queries),
        "wall_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--runs", type=positive_int, default=100, help="seeds 0..runs-1 (default 100)"
    )
    parser.add_argument(
        "--table",
        default=os.environ.get(TABLE_ENV) or str(DEFAULT_TABLE),
        help=f"nb201_tabular.csv.gz (default: ${TABLE_ENV}, else {DEFAULT_TABLE})",
    )
    args = parser.parse_args(argv)
    table = Path(args.table).expanduser()
    if not table.is_file():
        parser.error(f"no NAS-Bench-201 table at {str(table)!r} (set --table or ${TABLE_ENV})")
    print(
        f"# bench/table_nb201.py  python {platform.python_version()}  {os.cpu_count()} CPUs  "
        f"table {table}  {args.runs} seeds (0..{args.runs - 1})"
    )
    ours = run_table(str(table), args.runs)
    reference = run_dataset("cifar10", str(table), args.runs, None)
    print(
        f"  table space + evaluator (plain CSV) : {ours['mean']:.4f} +- {ours['std']:.4f}  "
        f"median queries {ours['median_queries']:g}  wall {ours['wall_s']:.1f} s"
    )
    print(
        f"  bench/nb201_random.py (cifar10)     : {reference['mean']:.4f} +- "
        f"{reference['std']:.4f}  median queries {reference['median_queries']:g}  wall "
        f"{reference['wall_s']:.1f} s"
    )
    difference = ours["mean"] - reference["mean"]
    within = abs(difference) <= TOLERANCE
    print(
        f"  difference of the means             : {difference:+.4f} "
        f"({'within' if within else 'NOT within'} {TOLERANCE})"
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())

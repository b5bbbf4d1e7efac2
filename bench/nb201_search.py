"""Controllers on NAS-Bench-201 with the benchmark's protocol, beside the paper's rows.

Same code path as ``bench/nb201_random.py`` (spec -> SearchLoop -> tabular evaluator), for
each controller that applies. ``enas`` runs as REINFORCE on the table (no weight sharing),
once with ENAS's own defaults and once with per-decision heads and no tanh squashing.
``evolution`` is the paper's REA (population 10, tournament 3); the Optuna controllers run
with their defaults. ``gp`` costs about a second of CPU per query, so it runs at most
``--gp-runs`` seeds (default 5). Rows: mean +- population std of the 200-epoch test accuracy
of the architecture with the best 12-epoch validation accuracy, over seeds 0..runs-1.

    .venv/bin/python bench/nb201_search.py [--runs 100] [--dataset cifar10|cifar100|imagenet16-120|all]
    .venv/bin/python bench/nb201_search.py --only evolution tpe   # some rows (prefix of a label)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import description, positive_int, prefix_of, row_names
from nb201_random import DATASETS, DEFAULT_TABLE, TABLE_ENV, run_dataset

#: NAS-Bench-201 paper, CIFAR-10 at 12,000 s (from the table's README).
PAPER_C10 = {"random": (93.70, 0.36), "reinforce": (93.85, 0.37), "rea": (93.92, 0.30)}

#: label -> (controller spec, paper row or None, most runs or None for --runs)
CONTROLLERS: dict[str, tuple[dict, str | None, int | None]] = {
    "random": ({"name": "random"}, "random", None),
    "enas (ENAS defaults)": ({"name": "enas"}, "reinforce", None),
    "enas (per-decision heads, no tanh, aggregate 5)": (
        {"name": "enas", "shared_heads": False, "tanh_constant": 0, "num_aggregate": 5},
        "reinforce",
        None,
    ),
    "evolution (REA: population 10, sample 3)": ({"name": "evolution"}, "rea", None),
    "tpe (Optuna TPESampler)": ({"name": "tpe"}, None, None),
    "cmaes (Optuna CmaEsSampler, with margin)": ({"name": "cmaes"}, None, None),
    "gp (Optuna GPSampler)": ({"name": "gp"}, None, -1),  # -1: --gp-runs
    "nsga2 (Optuna NSGAIISampler, population 50)": ({"name": "nsga2"}, None, None),
    "qmc (Optuna QMCSampler, scrambled Sobol)": ({"name": "qmc"}, None, None),
    "grid (Optuna GridSampler, shuffled)": ({"name": "grid"}, None, None),
    # MetaQNN's Q-learning with one step per cell decision (the controller's generic mode);
    # its epsilon schedule is sized for about 100 models, the queries of the C10 budget.
    "metaqnn (Q-learning over the cell decisions)": (
        {"name": "metaqnn", "total_models": 100},
        None,
        None,
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--dataset", choices=[*DATASETS, "all"], default="cifar10", help="(default: cifar10)"
    )
    parser.add_argument(
        "--runs", type=positive_int, default=100, help="seeds 0..runs-1 (default 100)"
    )
    parser.add_argument("--gp-runs", type=positive_int, default=5, help="runs of gp (default 5)")
    parser.add_argument(
        "--only",
        nargs="+",
        type=prefix_of(CONTROLLERS),
        default=None,
        metavar="NAME",
        help=f"rows whose label starts so: {', '.join(row_names(CONTROLLERS))} (default: all)",
    )
    parser.add_argument(
        "--table",
        default=os.environ.get(TABLE_ENV) or str(DEFAULT_TABLE),
        help=f"nb201_tabular.csv.gz (default: ${TABLE_ENV}, else {DEFAULT_TABLE})",
    )
    args = parser.parse_args()
    datasets = list(DATASETS) if args.dataset == "all" else [args.dataset]
    rows = {
        label: row
        for label, row in CONTROLLERS.items()
        if args.only is None or any(label.startswith(prefix) for prefix in args.only)
    }
    started = time.perf_counter()
    for dataset in datasets:
        print(f"== nb201-{dataset}, budget {DATASETS[dataset][1]:g} simulated s, {args.runs} runs")
        for label, (controller, row, cap) in rows.items():
            runs = min(args.runs, args.gp_runs if cap == -1 else (cap or args.runs))
            r = run_dataset(dataset, args.table, runs, None, controller)
            paper = PAPER_C10.get(row) if dataset == "cifar10" and row else None
            paper_text = f"paper {row} {paper[0]:.2f} +- {paper[1]:.2f}" if paper else "paper n/a"
            runs_text = "" if runs == args.runs else f", {runs} runs"
            print(
                f"  {label:50s} {r['mean']:.2f} +- {r['std']:.2f}  (median queries "
                f"{r['median_queries']:g}, {r['wall_s']:.1f} s{runs_text})  {paper_text}",
                flush=True,
            )
    print(f"total wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

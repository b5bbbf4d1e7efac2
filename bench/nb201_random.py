"""Random search on NAS-Bench-201 with the benchmark's protocol, through the product's code path.

Each run is a job spec (dataset nb201-<name>, space nb201, controller random, evaluator tabular,
budget.simulated_seconds) parsed by ``nas.spec.parse_spec`` and run by
``workers.search.SearchLoop``; the reported figure is ``outcome.final_metrics['test_accuracy']``
(the 200-epoch test accuracy of the architecture with the best 12-epoch validation accuracy).
The evaluator (and its table) is built once per dataset and shared by all runs; each run gets a
fresh controller seeded with the run's seed (0..runs-1).

    .venv/bin/python bench/nb201_random.py                    # CIFAR-10, 100 runs
    .venv/bin/python bench/nb201_random.py --dataset all      # CIFAR-10, CIFAR-100, ImageNet16-120
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
if str(REPO / "bench") not in sys.path:  # (when imported as bench.nb201_random)
    sys.path.insert(0, str(REPO / "bench"))

from _args import description, positive_float, positive_int

from controllers import CONTROLLERS
from nas.evaluators.tabular import TABLE_ENV
from workers.search import SearchComponents, SearchLoop, build_components, parse_spec

DEFAULT_TABLE = REPO.parent / "shared" / "data" / "nb201" / "nb201_tabular.csv.gz"

#: dataset -> (job spec dataset name, simulated-seconds budget of the NATS-Bench protocol)
DATASETS: dict[str, tuple[str, float]] = {
    "cifar10": ("nb201-cifar10", 12_000.0),
    "cifar100": ("nb201-cifar100", 40_000.0),
    "imagenet16-120": ("nb201-imagenet16-120", 120_000.0),
}

#: Published random-search test accuracy (mean, std) that we can confirm from
#: /work/shared/data/nb201/README.md. Only CIFAR-10 is given there; others are not invented.
PAPER: dict[str, tuple[float, float] | None] = {
    "cifar10": (93.70, 0.36),
    "cifar100": None,
    "imagenet16-120": None,
}


def make_spec(
    dataset: str, table: str, seed: int, budget_s: float, controller: dict | None = None
) -> dict:
    controller = controller or {"name": "random"}
    return {
        "name": f"bench-nb201-{controller['name']}-{dataset}",
        "dataset": {"name": DATASETS[dataset][0]},
        "space": {"name": "nb201"},
        "controller": controller,
        "evaluator": {"name": "tabular", "table": table},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "budget": {"simulated_seconds": budget_s},
        "seed": seed,
    }


def run_dataset(
    dataset: str, table: str, runs: int, budget_s: float | None, controller_spec: dict | None = None
) -> dict:
    budget = budget_s if budget_s is not None else DATASETS[dataset][1]
    started = time.perf_counter()
    first = parse_spec(make_spec(dataset, table, 0, budget, controller_spec))
    shared = build_components(first)  # the evaluator (table lookup) is built once, reused below
    accuracies: list[float] = []
    queries: list[int] = []
    simulated: list[float] = []
    for seed in range(runs):
        resolved = (
            first
            if seed == 0
            else parse_spec(make_spec(dataset, table, seed, budget, controller_spec))
        )
        spec = resolved.spec
        controller = CONTROLLERS.get(spec.controller.name)(
            space=shared.space,
            direction=spec.objective.direction,
            seed=spec.seed,
            **resolved.controller_params,
        )
        components = SearchComponents(shared.space, shared.evaluator, controller)
        outcome = SearchLoop(resolved, components=components).run()
        accuracies.append(outcome.final_metrics["test_accuracy"])
        queries.append(len(outcome.trials))
        simulated.append(outcome.simulated_s)
    wall = time.perf_counter() - started
    return {
        "dataset": dataset,
        "budget_s": budget,
        "runs": runs,
        "mean": statistics.fmean(accuracies),
        "std": statistics.pstdev(accuracies) if runs > 1 else 0.0,
        "sample_std": statistics.stdev(accuracies) if runs > 1 else 0.0,
        "min": min(accuracies),
        "max": max(accuracies),
        "median_queries": statistics.median(queries),
        "min_queries": min(queries),
        "max_queries": max(queries),
        "median_simulated_s": statistics.median(simulated),
        "wall_s": wall,
    }


def report(r: dict) -> None:
    paper = PAPER[r["dataset"]]
    print(
        f"== nb201-{r['dataset']}: random search, budget {r['budget_s']:g} simulated s, "
        f"{r['runs']} runs (seeds 0..{r['runs'] - 1})"
    )
    print(
        f"  test accuracy (200 ep) : {r['mean']:.2f} +- {r['std']:.2f}  "
        f"(population std; sample std {r['sample_std']:.2f}; min {r['min']:.2f}, "
        f"max {r['max']:.2f})"
    )
    print(
        f"  queries per run        : median {r['median_queries']:g} "
        f"(min {r['min_queries']}, max {r['max_queries']}); "
        f"median simulated time used {r['median_simulated_s']:.0f} s"
    )
    if paper is None:
        print("  paper (NAS-Bench-201)  : n/a (no confirmed figure in the table's README)")
    else:
        mean, std = paper
        within = abs(r["mean"] - mean) <= std
        print(
            f"  paper (NAS-Bench-201)  : {mean:.2f} +- {std:.2f}; our mean is "
            f"{r['mean'] - mean:+.2f} from it: {'within' if within else 'NOT within'} one "
            f"paper std"
        )
    print(f"  wall time              : {r['wall_s']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--dataset", choices=[*DATASETS, "all"], default="cifar10", help="(default: cifar10)"
    )
    parser.add_argument(
        "--runs", type=positive_int, default=100, help="runs, seeds 0..runs-1 (default 100)"
    )
    parser.add_argument(
        "--table",
        default=os.environ.get(TABLE_ENV) or str(DEFAULT_TABLE),
        help=f"nb201_tabular.csv.gz (default: ${TABLE_ENV}, else {DEFAULT_TABLE})",
    )
    parser.add_argument(
        "--budget",
        type=positive_float,
        default=None,
        help="simulated seconds per run (default: the protocol's budget of each dataset)",
    )
    args = parser.parse_args(argv)
    table = Path(args.table).expanduser()
    if not table.is_file():
        parser.error(f"no NAS-Bench-201 table at {str(table)!r} (set --table or ${TABLE_ENV})")
    print(
        f"# bench/nb201_random.py  python {platform.python_version()}  "
        f"{os.cpu_count()} CPUs  table {table}"
    )
    datasets = list(DATASETS) if args.dataset == "all" else [args.dataset]
    total = time.perf_counter()
    for dataset in datasets:
        report(run_dataset(dataset, str(table), args.runs, args.budget))
    print(f"total wall time: {time.perf_counter() - total:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

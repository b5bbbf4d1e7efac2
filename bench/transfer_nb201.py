"""Warm starts across NAS-Bench-201 datasets (issue 14), through the product's own path.

For each seed s and controller: a source search on ``--source`` (default CIFAR-10) at that
dataset's protocol budget with seed 1000 + s, its trials turned into priors by
``nas.warmstart.priors_from_trials`` (as the service does for ``warm_start.jobs``), then the
target search with ``warm_start.priors`` in its spec (``parse_spec`` -> ``build_components``,
which hands the priors to the controller -> ``SearchLoop``), cold and warm, on the first
``--queries`` queries and at the target's full protocol budget. Figure: the 200-epoch test
accuracy of the architecture with the best 12-epoch validation accuracy, mean +- std over
seeds 0..runs-1; the warm columns print the acceptance targets beside them.

    .venv/bin/python bench/transfer_nb201.py [--runs 100] [--only tpe evolution]
        [--targets cifar100 imagenet16-120] [--source cifar10] [--top-k 10] [--queries 20]
        [--observations 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nas.warmstart import Source, observations_from_trials, priors_from_trials, source_trials
from workers.search import SearchLoop, parse_spec

#: dataset -> (spec dataset name, protocol budget in simulated seconds)
DATASETS = {
    "cifar10": ("nb201-cifar10", 12_000.0),
    "cifar100": ("nb201-cifar100", 40_000.0),
    "imagenet16-120": ("nb201-imagenet16-120", 120_000.0),
}
#: Acceptance (issue 14): warm at the first queries >= cold REA's full-budget figure; warm at
#: the full budget above these.
TARGETS = {
    "cifar100": {"first": 72.4, "full": 72.9},
    "imagenet16-120": {"first": 45.9, "full": 46.4},
}


def spec(dataset: str, controller: str, seed: int, budget: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"transfer-{controller}-{dataset}",
        "dataset": {"name": DATASETS[dataset][0]},
        "space": {"name": "nb201"},
        "controller": {"name": controller},
        "evaluator": {"name": "tabular"},
        "budget": budget,
        "seed": seed,
    }


def run(document: dict[str, Any]) -> Any:
    return SearchLoop(parse_spec(document)).run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--only", nargs="+", default=["tpe", "evolution"])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(DATASETS))
    parser.add_argument("--source", default="cifar10", choices=list(DATASETS))
    parser.add_argument("--top-k", type=int, default=10, help="priors taken from the source")
    parser.add_argument("--queries", type=int, default=20, help="the short budget, in queries")
    parser.add_argument(
        "--observations",
        type=int,
        default=200,
        help="source trials given as observations (warm_start.observations_per_source; 0: none)",
    )
    args = parser.parse_args()
    print(
        f"source {args.source} at {DATASETS[args.source][1]:,.0f} s, top_k {args.top_k}, "
        f"observations {args.observations}, short budget {args.queries} queries, "
        f"seeds 0..{args.runs - 1}"
    )
    for controller in args.only:
        started = time.perf_counter()
        priors_by_seed = []
        observations_by_seed = []
        for seed in range(args.runs):
            source = run(
                spec(
                    args.source,
                    controller,
                    1000 + seed,
                    {"simulated_seconds": DATASETS[args.source][1]},
                )
            )
            sources = [Source(seed, source_trials(source.trials), True)]
            priors_by_seed.append(priors_from_trials(sources, top_k=args.top_k))
            observations_by_seed.append(
                observations_from_trials(sources, per_source=args.observations)
            )
        for target in args.targets:
            full = {"simulated_seconds": DATASETS[target][1]}
            short = {"trials": args.queries}
            rows: dict[str, list[float]] = {}
            queries: list[int] = []
            for seed in range(args.runs):
                warm = {
                    "jobs": [1],
                    "priors": priors_by_seed[seed],
                    "observations": observations_by_seed[seed],
                }
                for label, budget, warm_start in (
                    (f"cold, {args.queries} queries", short, None),
                    (f"warm, {args.queries} queries", short, warm),
                    ("cold, full budget", full, None),
                    ("warm, full budget", full, warm),
                ):
                    document = spec(target, controller, seed, budget)
                    if warm_start is not None:
                        document["warm_start"] = warm_start
                    outcome = run(document)
                    rows.setdefault(label, []).append(outcome.final_metrics["test_accuracy"])
                    if label == "warm, full budget":
                        queries.append(len(outcome.trials))
            for label, values in rows.items():
                goal = TARGETS.get(target, {}).get("first" if "queries" in label else "full")
                mark = ""
                if label.startswith("warm") and goal is not None:
                    mark = f"  target >= {goal}: {'met' if statistics.fmean(values) >= goal else 'NOT met'}"
                print(
                    f"{controller:10s} {target:15s} {label:22s} "
                    f"{statistics.fmean(values):6.2f} +- {statistics.pstdev(values):.2f}{mark}"
                )
            print(
                f"{controller:10s} {target:15s} warm full-budget queries: median {statistics.median(queries)}"
            )
        print(f"{controller}: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Warm starts across NAS-Bench-201 datasets (issue 14), through the product's own path.

For each seed s and controller: a source search on ``--source`` (default CIFAR-10; ``related``:
each target's nearest other dataset, CIFAR-100 for ImageNet16-120 and ImageNet16-120 for
CIFAR-100, CIFAR-100 for CIFAR-10) at that dataset's protocol budget with seed 1000 + s, its
trials turned into priors by ``nas.warmstart.priors_for`` (as the service does for
``warm_start.jobs``: the ``top_k - predicted`` best it evaluated, and ``predicted``
architectures a model of its trials predicts best), then the
target search with ``warm_start.priors`` in its spec (``parse_spec`` -> ``build_components``,
which hands the priors to the controller -> ``SearchLoop``), cold and warm, on the first
``--queries`` queries and at the target's full protocol budget. Figure: the 200-epoch test
accuracy of the architecture with the best 12-epoch validation accuracy, mean +- std over
seeds 0..runs-1; the warm columns print the acceptance targets beside them.

    .venv/bin/python bench/transfer_nb201.py [--runs 100] [--only tpe evolution]
        [--targets cifar100 imagenet16-120] [--source cifar10|cifar100|imagenet16-120|related]
        [--top-k 10] [--predicted 5] [--queries 20] [--observations 200]
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

from _args import description, non_negative_int, positive_int

from controllers import CONTROLLERS
from nas.spaces.nb201 import Nb201Space
from nas.warmstart import Source, observations_from_trials, priors_for, source_trials
from workers.search import SearchLoop, parse_spec

#: dataset -> (spec dataset name, protocol budget in simulated seconds)
DATASETS = {
    "cifar10": ("nb201-cifar10", 12_000.0),
    "cifar100": ("nb201-cifar100", 40_000.0),
    "imagenet16-120": ("nb201-imagenet16-120", 120_000.0),
}
#: ``--source related``: the source dataset of each target (the nearest other one).
RELATED = {"cifar10": "cifar100", "cifar100": "imagenet16-120", "imagenet16-120": "cifar100"}
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


def warm_starts(
    controller: str, dataset: str, runs: int, top_k: int, predicted: int, observations: int
) -> list[dict[str, Any]]:
    """Per seed, the ``warm_start`` section a source search on ``dataset`` gives, as the
    service resolves ``warm_start.jobs``."""
    space = Nb201Space()
    out = []
    for seed in range(runs):
        budget = {"simulated_seconds": DATASETS[dataset][1]}
        source = run(spec(dataset, controller, 1000 + seed, budget))
        sources = [Source(seed, source_trials(source.trials), True)]
        out.append(
            {
                "jobs": [1],
                "priors": priors_for(sources, space, top_k=top_k, predicted=predicted),
                "observations": observations_from_trials(sources, per_source=observations),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--runs", type=positive_int, default=100, help="seeds 0..runs-1 (default 100)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=["tpe", "evolution"],
        choices=CONTROLLERS.names(),
        metavar="CONTROLLER",
        help=f"controllers, each one of {', '.join(CONTROLLERS.names())} (default: tpe evolution)",
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=list(TARGETS),
        choices=list(DATASETS),
        help=f"(default: {' '.join(TARGETS)})",
    )
    parser.add_argument(
        "--source",
        default="cifar10",
        choices=[*DATASETS, "related"],
        help="(default: cifar10; related: each target's nearest other dataset)",
    )
    parser.add_argument(
        "--top-k", type=positive_int, default=10, help="priors taken from the source (default 10)"
    )
    parser.add_argument(
        "--predicted",
        type=non_negative_int,
        default=None,
        help="of the top-k, architectures predicted by a model of the source's trials "
        "(warm_start.predicted; default: the spec's, half of top-k)",
    )
    parser.add_argument(
        "--queries", type=positive_int, default=20, help="the short budget, in queries (default 20)"
    )
    parser.add_argument(
        "--observations",
        type=non_negative_int,
        default=200,
        help="source trials given as observations (warm_start.observations_per_source; 0: none; "
        "default 200)",
    )
    args = parser.parse_args()
    if args.predicted is not None and args.predicted > args.top_k:
        parser.error(
            f"--predicted ({args.predicted}) counts among the --top-k ({args.top_k}) priors: "
            "it must not exceed --top-k"
        )
    predicted = args.top_k // 2 if args.predicted is None else args.predicted
    print(
        f"source {args.source}, top_k {args.top_k} (predicted {predicted}), "
        f"observations {args.observations}, short budget {args.queries} queries, "
        f"seeds 0..{args.runs - 1}"
    )
    for controller in args.only:
        started = time.perf_counter()
        by_source: dict[str, list[dict[str, Any]]] = {}
        for target in args.targets:
            full = {"simulated_seconds": DATASETS[target][1]}
            short = {"trials": args.queries}
            rows: dict[str, list[float]] = {}
            queries: list[int] = []
            source = RELATED[target] if args.source == "related" else args.source
            if source not in by_source:
                by_source[source] = warm_starts(
                    controller, source, args.runs, args.top_k, predicted, args.observations
                )
            for seed, warm in enumerate(by_source[source]):
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
                    f"{controller:10s} {target:15s} {label:22s} from {source:15s} "
                    f"{statistics.fmean(values):6.2f} +- {statistics.pstdev(values):.2f}{mark}"
                )
            print(
                f"{controller:10s} {target:15s} warm full-budget queries: median {statistics.median(queries)}"
            )
        print(f"{controller}: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""RL² on NAS-Bench-201 (issue 14): meta-train on two datasets' tables, run on the third.

For each leave-one-out split (``--targets``): a meta-training job (evaluator ``rl2-meta``,
run by its loop as ``nas search`` and the service run it) on the other two datasets' 12-epoch
validation columns for ``--iterations`` meta-iterations (3000), capped at ``--seconds`` (600:
the issue's 10 minutes; where the cap stops it first, the policy depends on the machine's load,
and the stop reason says so; the iterations reached, the time and the time per iteration are
printed), the policy saved to ``--out``/rl2-<target>.pt, then 100 seeded searches through
the product's path (spec with ``controller: {name: rl2, policy: FILE}`` -> ``parse_spec`` ->
``SearchLoop``) at 50 queries and at the target's protocol budget, beside REA (``evolution``)
and TPE at 50 queries and REA at the full budget, in the same run. Figure: the 200-epoch test
accuracy of the architecture with the best 12-epoch validation accuracy, mean +- std.

    .venv/bin/python bench/rl2_nb201.py [--runs 100] [--iterations 3000] [--seconds 600]
        [--targets imagenet16-120 cifar100 cifar10] [--steps 100] [--lr 3e-3] [--entropy-weight 0.01]
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

from _args import (
    at_least,
    description,
    non_negative_float,
    positive_float,
    positive_int,
)

from workers.backend import InlineBackend, SearchEvents
from workers.search import SearchLoop, parse_spec

DATASETS = {
    "cifar10": ("nb201-cifar10", "c10", 12_000.0),
    "cifar100": ("nb201-cifar100", "c100", 40_000.0),
    "imagenet16-120": ("nb201-imagenet16-120", "in16", 120_000.0),
}


def search(target: str, controller: dict[str, Any], seed: int, budget: dict[str, Any]) -> float:
    spec = {
        "name": f"rl2-bench-{controller['name']}",
        "dataset": {"name": DATASETS[target][0]},
        "space": {"name": "nb201"},
        "controller": controller,
        "evaluator": {"name": "tabular"},
        "budget": budget,
        "seed": seed,
    }
    return float(SearchLoop(parse_spec(spec)).run().final_metrics["test_accuracy"])


def row(label: str, values: list[float]) -> str:
    return f"  {label:32s} {statistics.fmean(values):6.2f} +- {statistics.pstdev(values):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--runs",
        type=positive_int,
        default=100,
        help="searches per row, seeds 0..runs-1 (default 100)",
    )
    parser.add_argument(
        "--seconds",
        type=positive_float,
        default=600.0,
        help="meta-training time cap (default 600)",
    )
    parser.add_argument(
        "--iterations",
        type=positive_int,
        default=3000,
        help="meta-training iterations (the same policy whatever the load, unless --seconds "
        "stops it first; default 3000)",
    )
    parser.add_argument(
        "--steps",
        type=at_least(2),
        default=None,
        help="rl2-meta steps (default: its own)",
    )
    parser.add_argument(
        "--batch", type=at_least(2), default=None, help="rl2-meta batch (default: its own)"
    )
    parser.add_argument(
        "--lr", type=positive_float, default=None, help="rl2-meta lr (default: its own)"
    )
    parser.add_argument(
        "--entropy-weight",
        type=non_negative_float,
        default=None,
        help="rl2-meta entropy_weight (default: its own)",
    )
    parser.add_argument(
        "--rl2-only",
        action="store_true",
        help="skip REA and TPE (they do not depend on the policy)",
    )
    parser.add_argument(
        "--targets",
        nargs="+",
        default=["imagenet16-120"],
        choices=list(DATASETS),
        help="held-out datasets, one split each (default: imagenet16-120)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/rl2"),
        help="directory of the meta-trained policies, rl2-<target>.pt (default: runs/rl2)",
    )
    parser.add_argument(
        "--queries", type=positive_int, default=50, help="the short budget, in queries (default 50)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for target in args.targets:
        train = [d for d in DATASETS if d != target]
        started = time.perf_counter()
        meta_job = {
            "name": f"rl2-meta-{target}",
            "dataset": {"name": DATASETS[target][0]},
            "space": {"name": "nb201"},
            "controller": {"name": "rl2"},
            "evaluator": {
                "name": "rl2-meta",
                "tasks": [DATASETS[d][0] for d in train],
                "iterations": args.iterations,
                "record_every": 100,
                **{
                    key: value
                    for key, value in (
                        ("steps", args.steps),
                        ("batch", args.batch),
                        ("lr", args.lr),
                        ("entropy_weight", args.entropy_weight),
                    )
                    if value is not None
                },
            },
            "budget": {"minutes": args.seconds / 60},
            "seed": 0,
        }
        run = InlineBackend().open(parse_spec(meta_job), SearchEvents())
        outcome = run.run()
        run.close()
        summary = outcome.report["meta_training"]
        path = args.out / f"rl2-{target}.pt"
        path.write_bytes(outcome.files[0].data)
        done = summary["iterations"]
        print(
            f"{target}: meta-trained on {', '.join(train)}: {done} iterations of "
            f"{args.iterations} "
            f"({summary['batch']} episodes of {summary['steps']} queries) in "
            f"{summary['seconds']:.1f} s of steps, {time.perf_counter() - started:.1f} s in all "
            f"({1000 * summary['seconds'] / max(done, 1):.1f} ms per iteration; "
            f"stop: {outcome.stop_reason}); policy {path}",
            flush=True,
        )
        short = {"trials": args.queries}
        full = {"simulated_seconds": DATASETS[target][2]}
        rl2 = {"name": "rl2", "policy": str(path)}
        results: dict[str, list[float]] = {}
        for label, controller, budget in (
            (f"rl2, {args.queries} queries", rl2, short),
            (f"evolution (REA), {args.queries} queries", {"name": "evolution"}, short),
            (f"tpe, {args.queries} queries", {"name": "tpe"}, short),
            ("rl2, full budget", rl2, full),
            ("evolution (REA), full budget", {"name": "evolution"}, full),
        ):
            if args.rl2_only and controller is not rl2:
                continue
            results[label] = [search(target, controller, s, budget) for s in range(args.runs)]
            print(row(label, results[label]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

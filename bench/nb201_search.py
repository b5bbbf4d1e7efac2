"""Controllers on NAS-Bench-201 with the benchmark's protocol, beside the paper's rows.

Same code path as ``bench/nb201_random.py`` (spec -> SearchLoop -> tabular evaluator), for
each controller that applies. ``enas`` runs as REINFORCE on the table (no weight sharing),
once with ENAS's own defaults and once with per-decision heads and no tanh squashing.

    .venv/bin/python bench/nb201_search.py [--runs 100] [--dataset cifar10|cifar100|imagenet16-120|all]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nb201_random import DATASETS, DEFAULT_TABLE, TABLE_ENV, run_dataset  # noqa: E402

#: NAS-Bench-201 paper, CIFAR-10 at 12,000 s (from the table's README).
PAPER_C10 = {"random": (93.70, 0.36), "reinforce": (93.85, 0.37), "rea": (93.92, 0.30)}

CONTROLLERS: dict[str, tuple[dict, str]] = {
    "random": ({"name": "random"}, "random"),
    "enas (ENAS defaults)": ({"name": "enas"}, "reinforce"),
    "enas (per-decision heads, no tanh, aggregate 5)": (
        {"name": "enas", "shared_heads": False, "tanh_constant": 0, "num_aggregate": 5},
        "reinforce",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=[*DATASETS, "all"], default="cifar10")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--table", default=os.environ.get(TABLE_ENV) or str(DEFAULT_TABLE))
    args = parser.parse_args()
    datasets = list(DATASETS) if args.dataset == "all" else [args.dataset]
    started = time.perf_counter()
    for dataset in datasets:
        print(f"== nb201-{dataset}, budget {DATASETS[dataset][1]:g} simulated s, {args.runs} runs")
        for label, (controller, row) in CONTROLLERS.items():
            r = run_dataset(dataset, args.table, args.runs, None, controller)
            paper = PAPER_C10.get(row) if dataset == "cifar10" else None
            paper_text = f"paper {row} {paper[0]:.2f} +- {paper[1]:.2f}" if paper else "paper n/a"
            print(
                f"  {label:50s} {r['mean']:.2f} +- {r['std']:.2f}  (median queries "
                f"{r['median_queries']:g}, {r['wall_s']:.1f} s)  {paper_text}",
                flush=True,
            )
    print(f"total wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

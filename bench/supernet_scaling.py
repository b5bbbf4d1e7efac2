"""One supernet trained by N Ray workers: supernet epoch time and rewards per second against N.

For each N, a shared-weight ENAS search with ``resources.workers: N`` runs through the
product's path (``workers.ray_backend.ActorRun``: N Ray actors, one torch.distributed group,
gloo on CPU, NCCL on GPU) on a local Ray instance this script starts. Per epoch the search
reports the supernet's training time (the lead's ``train_epoch``: one pass over the training
split, the global minibatch split over the N workers) and its reward phase's time
(``rewards_per_epoch`` children scored on validation minibatches, spread over the workers).
The first epoch is a warm-up (process group, allocator, kernels) and is left out: the figures
are medians over the later epochs. Speedup is N=1's epoch time over N's; scaling efficiency
is speedup / N (1.0: perfect), for rewards/s likewise.

    .venv/bin/python bench/supernet_scaling.py                     # CPU, N = 1 and 2
    .venv/bin/python bench/supernet_scaling.py --device cuda --json scaling.json
                                                                   # N = 1..GPUs, one GPU each

Defaults: MNIST-1D, ``enas-macro`` 6 layers x 32 channels (the ENAS example's space), global
batch 128, 100 rewards per epoch, 4 epochs. On CPU each worker has ``--cpus`` cores (1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _args import at_least, description, positive_float, positive_int


def spec_for(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    return {
        "name": f"supernet-scaling-{workers}",
        "dataset": {"name": args.dataset},
        "space": {
            "name": "enas-macro",
            "layers": args.layers,
            "channels": args.channels,
            "channel_growth": 1,
        },
        "controller": {"name": "enas"},
        "evaluator": {
            "name": "shared-weights",
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "rewards_per_epoch": args.rewards,
            "derive_samples": 1,
            "device": args.device,
        },
        "resources": {
            "workers": workers,
            "cpus_per_trial": args.cpus,
            "gpus_per_trial": 1 if args.device == "cuda" else 0,
            "max_retries": 0,
        },
        "budget": {"minutes": 60},
        "seed": args.seed,
    }


def run_one(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """One search with ``workers`` workers: its per-epoch figures and their medians."""
    from workers.backend import SafePoint, SearchEvents
    from workers.ray_backend import ActorRun
    from workers.search import parse_spec

    points: list[dict[str, Any]] = []

    def on_safe_point(point: SafePoint) -> None:
        if point.curve is not None:
            points.append(dict(point.curve))

    resolved = parse_spec(spec_for(args, workers))
    run = ActorRun(
        resolved,
        SearchEvents(on_safe_point=on_safe_point),
        workers=workers,
        cpus=args.cpus,
        gpus=1 if args.device == "cuda" else 0,
        max_restarts=0,
        poll_s=0.02,
    )
    started = time.perf_counter()
    try:
        outcome = run.run()
    finally:
        run.close()
    wall = time.perf_counter() - started
    timed = points[1:] or points  # the first epoch warms up
    train_s = statistics.median(p["seconds"] for p in timed)
    reward_s = statistics.median(p["reward_seconds"] for p in timed)
    return {
        "workers": workers,
        "epochs": len(points),
        "train_s": train_s,
        "reward_s": reward_s,
        "epoch_s": train_s + reward_s,
        "rewards_per_s": args.rewards / reward_s,
        "train_accuracy_last": points[-1]["train_accuracy"] if points else None,
        "trials": len(outcome.trials),
        "wall_s": wall,
        "per_epoch": [
            {k: p.get(k) for k in ("epoch", "seconds", "reward_seconds", "train_loss")}
            for p in points
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--workers",
        type=positive_int,
        nargs="+",
        default=None,
        help="worker counts (default: 1 2 on CPU, 1..GPUs with --device cuda)",
    )
    parser.add_argument("--dataset", default="mnist1d", help="(default: mnist1d)")
    parser.add_argument("--layers", type=positive_int, default=6, help="(default 6)")
    parser.add_argument("--channels", type=positive_int, default=32, help="(default 32)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=128, help="global minibatch (default 128)"
    )
    parser.add_argument(
        "--rewards", type=positive_int, default=100, help="rewards per epoch (default 100)"
    )
    parser.add_argument(
        "--epochs",
        type=at_least(2, "the first is a warm-up, left out of the figures"),
        default=4,
        help="the first is a warm-up (default 4)",
    )
    parser.add_argument(
        "--cpus", type=positive_float, default=1.0, help="CPUs per worker (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    import ray
    import torch

    from workers.ray_backend import ensure_ray

    gpus = torch.cuda.device_count()
    if args.device == "cuda" and gpus == 0:
        parser.error("--device cuda: torch sees no CUDA device")
    counts = args.workers or (list(range(1, gpus + 1)) if args.device == "cuda" else [1, 2])
    # A local Ray of its own (never a cluster named by RAY_ADDRESS): the CPUs the largest
    # group needs, at least; the GPUs Ray finds.
    os.environ.pop("RAY_ADDRESS", None)
    started = ensure_ray(num_cpus=max(os.cpu_count() or 1, int(max(counts) * args.cpus + 0.999)))
    try:
        rows = [run_one(args, n) for n in counts]
    finally:
        if started:
            ray.shutdown()
    base = rows[0]
    for row in rows:
        scale = row["workers"] / base["workers"]
        row["speedup"] = base["epoch_s"] / row["epoch_s"]
        row["efficiency"] = row["speedup"] / scale
        row["train_efficiency"] = base["train_s"] / row["train_s"] / scale
        row["rewards_efficiency"] = row["rewards_per_s"] / base["rewards_per_s"] / scale

    load = os.getloadavg()
    print(
        f"supernet scaling on {args.device} ({torch.cuda.get_device_name(0) if args.device == 'cuda' else platform.processor() or platform.machine()}), "
        f"{args.dataset}, enas-macro {args.layers}x{args.channels}, global batch "
        f"{args.batch_size}, {args.rewards} rewards/epoch, medians of epochs 2..{args.epochs}; "
        f"load average {load[0]:.1f}"
    )
    print(
        f"{'N':>3} {'train s':>8} {'reward s':>9} {'epoch s':>8} {'rewards/s':>10} "
        f"{'speedup':>8} {'efficiency':>10} {'train eff':>9} {'reward eff':>10}"
    )
    for r in rows:
        print(
            f"{r['workers']:>3} {r['train_s']:>8.3f} {r['reward_s']:>9.3f} {r['epoch_s']:>8.3f} "
            f"{r['rewards_per_s']:>10.1f} {r['speedup']:>8.2f} {r['efficiency']:>10.2f} "
            f"{r['train_efficiency']:>9.2f} {r['rewards_efficiency']:>10.2f}"
        )
    if args.json is not None:
        report = {
            "device": args.device,
            "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
            "cpu_count": os.cpu_count(),
            "load_average": load,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "rows": rows,
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

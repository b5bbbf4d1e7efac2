"""What the Ray executor costs a batch of short training trials: the median wall time of a
batch of ``--workers`` trials (digits, ``mlp`` space, ``--epochs`` epochs each) evaluated by
``workers.ray_backend.RayTaskExecutor`` on a local Ray instance of ``--workers`` CPUs that
this script starts, the first two batches (worker start, dataset load) left out.

Each training task streams its start and every epoch's values back to the loop (a Ray
generator), so the service follows Ray trials live; this measures what that costs against
the trials' own training, which is the same in every version:

    .venv/bin/python bench/ray_trials.py --epochs 8 --batches 32

The script calls the executor as every version of it since the Ray backend takes it
(``evaluate(evaluator, archs, hparams)``), so the same file measures an older checkout:
``PYTHONPATH=OLD .venv/bin/python bench/ray_trials.py ...`` run from ``OLD``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from nas.evaluators import build_evaluator
from workers.ray_backend import RayTaskExecutor, ensure_ray
from workers.search import parse_spec


def main() -> None:
    # (no bench/_args.py here: this file is also copied into older checkouts to measure them)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=8, help="training epochs of each trial (default 8)"
    )
    parser.add_argument(
        "--batches",
        type=int,
        default=32,
        help="batches of --workers trials; the first two are left out (default 32)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="trials per batch and CPUs of the local Ray instance (default 2)",
    )
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"argument --epochs: must be at least 1, got {args.epochs}")
    if args.batches < 3:
        parser.error(
            f"argument --batches: must be at least 3 (the first two batches are warm-up and "
            f"left out of the figure), got {args.batches}"
        )
    if args.workers < 1:
        parser.error(f"argument --workers: must be at least 1, got {args.workers}")
    started = ensure_ray(num_cpus=args.workers)
    resolved = parse_spec(
        {
            "name": "ray-trials",
            "dataset": {"name": "digits"},
            "space": {"name": "mlp", "max_layers": 1},
            "controller": {"name": "random"},
            "evaluator": {"name": "standalone", "epochs": args.epochs, "batch_size": 128},
            "budget": {"trials": args.batches * args.workers},
            "seed": 0,
        }
    )
    space, evaluator = build_evaluator(resolved)
    executor = RayTaskExecutor(resolved, workers=args.workers, poll_s=0.05)
    seconds = []
    for b in range(args.batches):
        archs = [space.sample(np.random.default_rng(1000 * b + i)) for i in range(args.workers)]
        clock = time.perf_counter()
        results = executor.evaluate(evaluator, archs, [{}] * args.workers)
        seconds.append(time.perf_counter() - clock)
        failed = [r.error for r in results if r.state.value != "COMPLETE"]
        if failed:
            raise SystemExit(f"a trial did not complete: {failed[0]}")
    warm = seconds[2:]
    print(
        f"{args.workers} trials x {args.epochs} epochs per batch, {len(warm)} batches: median "
        f"{statistics.median(warm) * 1000:.1f} ms (min {min(warm) * 1000:.1f}, "
        f"max {max(warm) * 1000:.1f})"
    )
    if started:
        import ray

        ray.shutdown()


if __name__ == "__main__":
    main()

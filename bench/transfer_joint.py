"""Joint hyperparameters carried across tasks by a warm start (issue 14): a joint search on
MNIST-1D (architecture + optimizer, lr, loss) warm-starts a joint search on digits.

Per seed: a source search on MNIST-1D (``examples/mnist1d-joint.yaml``'s space and hparams,
``--source-trials`` trials), a cold search on digits (``--trials``), and the same digits search
with ``warm_start.priors`` from the source (its ``--top-k`` best, by rank) and, as the service
gives them, ``warm_start.observations`` (up to ``--observations`` of the source's trials, scored
by rank, which tpe learns from). Both digits searches run through ``parse_spec`` ->
``SearchLoop`` as the service runs them. Reported per seed: the
cold search's best validation accuracy, and the number of trials the warm search needed to
reach it (``-`` when it never did); then the median over seeds of warm trials / cold trials
(the target: at most a third).

    .venv/bin/python bench/transfer_joint.py [--seeds 5] [--trials 30] [--source-trials 20]
        [--top-k 5] [--observations 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _args import at_least, description, non_negative_int, positive_int

from nas.warmstart import Source, observations_from_trials, priors_from_trials, source_trials
from workers.search import SearchLoop, parse_spec


def spec(dataset: str, seed: int, trials: int) -> dict[str, Any]:
    base = yaml.safe_load((REPO / "examples/mnist1d-joint.yaml").read_text())
    base.update(
        name=f"transfer-joint-{dataset}",
        dataset={"name": dataset},
        budget={"trials": trials},
        seed=seed,
    )
    return base


def curve(outcome: Any) -> list[float]:
    """Best validation accuracy after each trial."""
    best, out = float("-inf"), []
    for trial in outcome.trials:
        value = trial.result.objective
        if value is not None:
            best = max(best, value)
        out.append(best)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--seeds", type=positive_int, default=5, help="seeds 0..seeds-1 (default 5)"
    )
    parser.add_argument(
        "--trials",
        type=at_least(3, "the report shows the best after a third of them"),
        default=30,
        help="trials of each digits search (default 30)",
    )
    parser.add_argument(
        "--source-trials",
        type=positive_int,
        default=20,
        help="trials of the MNIST-1D source search (default 20)",
    )
    parser.add_argument(
        "--top-k", type=positive_int, default=5, help="priors taken from the source (default 5)"
    )
    parser.add_argument(
        "--observations",
        type=non_negative_int,
        default=200,
        help="the source's trials given as observations (the spec's observations_per_source "
        "default); 0: priors only (default 200)",
    )
    args = parser.parse_args()
    ratios = []
    started = time.perf_counter()
    for seed in range(args.seeds):
        source = SearchLoop(parse_spec(spec("mnist1d", 100 + seed, args.source_trials))).run()
        sources = [Source("mnist1d", source_trials(source.trials), True)]
        priors = priors_from_trials(sources, top_k=args.top_k)
        observations = observations_from_trials(sources, per_source=args.observations)
        cold = curve(SearchLoop(parse_spec(spec("digits", seed, args.trials))).run())
        warm_spec = spec("digits", seed, args.trials)
        warm_spec["warm_start"] = {  # as the service stores it
            "jobs": [1],
            "priors": priors,
            "observations": observations,
        }
        warm = curve(SearchLoop(parse_spec(warm_spec)).run())
        target = cold[-1]
        reached = next((i + 1 for i, v in enumerate(warm) if v >= target), None)
        ratio = (reached if reached is not None else float("inf")) / args.trials
        ratios.append(ratio)
        print(
            f"seed {seed}: cold best {target:.4f} after {cold.index(target) + 1} of "
            f"{args.trials} trials; warm reaches it at trial {reached or '-'} "
            f"(warm best {warm[-1]:.4f}, after a third {warm[args.trials // 3 - 1]:.4f}; "
            f"first prior {priors[0]['hparams']})",
            flush=True,
        )
    median = statistics.median(ratios)
    print(
        f"median warm trials / cold trials: {median:.3f} (target <= 0.333: "
        f"{'met' if median <= 1 / 3 else 'NOT met'}); {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""MetaQNN on MNIST-1D within a fixed wall budget: best validation and test accuracy, models
trained and the reward curve per epsilon stage.

Runs ``examples/mnist1d-metaqnn.yaml`` (or --spec) through the same code as ``nas search``
(spec -> ``build_components`` -> ``SearchLoop``) with ``budget.minutes`` set to --minutes and
``budget.trials`` and the controller's ``total_models`` (the length of the epsilon schedule)
set to --models, by default the number of models that --minutes fits at --sec-per-model.
The best architecture by validation accuracy is then retrained from scratch with the spec's
``final:`` recipe (``workers.final.retrain``, train+valid) and tested once. ``--random``
also runs random search over the same space for the same budget, as a baseline.

Torch runs one intra-op thread unless NAS_TORCH_THREADS says otherwise: these networks are
tiny and a second thread on a shared 2-core machine made trainings up to 20x slower.

    .venv/bin/python bench/metaqnn_mnist1d.py                    # 2 minutes
    .venv/bin/python bench/metaqnn_mnist1d.py --minutes 10 --random
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from _args import (
    description,
    existing_file,
    non_negative_int,
    one_line,
    positive_float,
    positive_int,
)

REPO = Path(__file__).resolve().parents[1]


def run(spec: dict[str, Any], controller_name: str) -> dict[str, Any]:
    from controllers import MetaQNN
    from nas.spaces import MetaQNNSpace
    from nas.trial import TrialState
    from workers.final import retrain
    from workers.search import SearchLoop, build_components, parse_spec

    spec = json.loads(json.dumps(spec))
    if controller_name != "metaqnn":
        spec["controller"] = {"name": controller_name}
    resolved = parse_spec(spec)
    components = build_components(resolved)
    started = time.perf_counter()
    outcome = SearchLoop(resolved, components=components).run()
    search_s = time.perf_counter() - started
    space, controller = components.space, components.controller
    assert isinstance(space, MetaQNNSpace)
    complete = [t for t in outcome.trials if t.result.state is TrialState.COMPLETE]
    vals = [float(t.result.objective) for t in complete]  # type: ignore[arg-type]
    row: dict[str, Any] = {
        "controller": controller_name,
        "models": len(outcome.trials),
        "failed": len(outcome.trials) - len(complete),
        "unique": len({t.architecture for t in outcome.trials}),
        "stop": outcome.stop_reason,
        "search_s": search_s,
        "mean_val": statistics.fmean(vals) if vals else None,
        "best_val": None,
        "best": None,
    }
    if outcome.best is not None:
        row["best_val"] = outcome.best.result.objective
        row["best"] = space.labels(outcome.best.architecture)
        row["best_params"] = outcome.best.result.metrics.get("params")
        started = time.perf_counter()
        final = retrain(resolved, space, [outcome.best.architecture])[0]
        row["test_accuracy"] = final["test_accuracy"]
        row["retrain_s"] = time.perf_counter() - started
    if isinstance(controller, MetaQNN):
        row["curve"] = controller.reward_curve
        row["duplicates"] = controller.duplicates
        row["fallbacks"] = controller.fallbacks
        row["epsilon_end"] = controller.epsilon
        row["greedy"] = space.labels(controller.greedy())
    return row


def report(row: dict[str, Any]) -> None:
    print(f"\n== {row['controller']} ==")
    print(
        f"models trained {row['models']} ({row['unique']} distinct, {row['failed']} failed) in "
        f"{row['search_s']:.1f} s; stop: {row['stop']}"
    )
    if "duplicates" in row:
        print(
            f"walks that repeated a trained model (reward reused, not retrained): "
            f"{row['duplicates']}; uniform fallbacks: {row['fallbacks']}; "
            f"epsilon at the end: {row['epsilon_end']}"
        )
    if row["mean_val"] is not None:
        print(f"mean validation accuracy {row['mean_val']:.2f} %")
    if row["best"] is not None:
        print(
            f"best validation accuracy {row['best_val']:.2f} %  {' '.join(row['best'])}  "
            f"({row['best_params']:.0f} params)"
        )
        print(
            f"best retrained (final recipe, train+valid) test accuracy "
            f"{row['test_accuracy']:.2f} %  ({row['retrain_s']:.1f} s)"
        )
    if "curve" in row:
        print("reward curve (reward = validation accuracy / 100):")
        print("  epsilon  planned  trained  mean_reward  best_reward")
        for stage in row["curve"]:
            mean = "-" if stage["mean_reward"] is None else f"{stage['mean_reward']:.4f}"
            best = "-" if stage["best_reward"] is None else f"{stage['best_reward']:.4f}"
            print(
                f"  {stage['epsilon']:7.1f}  {stage['planned']:7d}  {stage['models']:7d}  "
                f"{mean:>11}  {best:>11}"
            )
        print(f"greedy architecture after the search: {' '.join(row['greedy'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--spec",
        type=existing_file,
        default=str(REPO / "examples/mnist1d-metaqnn.yaml"),
        help="job spec (default: examples/mnist1d-metaqnn.yaml)",
    )
    parser.add_argument(
        "--minutes", type=positive_float, default=2.0, help="search wall budget (default 2)"
    )
    parser.add_argument(
        "--models",
        type=positive_int,
        default=None,
        help="schedule length and trials (default: what --minutes fits at --sec-per-model, "
        "at least 10)",
    )
    parser.add_argument(
        "--sec-per-model",
        type=positive_float,
        default=1.5,
        help="for the default --models (default 1.5)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="(default 0)")
    parser.add_argument("--random", action="store_true", help="also run random search")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args()
    os.environ.setdefault("NAS_TORCH_THREADS", "1")

    from nas.errors import SpecError
    from nas.spec import load_spec_file
    from workers.search import parse_spec

    models = args.models or max(10, int(args.minutes * 60 / args.sec_per_model))
    try:  # checked before any work
        spec = load_spec_file(args.spec)
        spec["seed"] = args.seed
        spec["budget"] = {"minutes": args.minutes, "trials": models}
        spec["controller"] = {**spec["controller"], "total_models": models}
        parse_spec(spec)
    except SpecError as error:
        parser.error(f"--spec {args.spec}: {one_line(error)}")
    print(
        f"spec {args.spec}: {args.minutes} min, {models} models, seed {args.seed}; "
        f"space {spec['space']}; evaluator {spec['evaluator']}"
    )
    rows = [run(spec, "metaqnn")]
    report(rows[0])
    if args.random:
        rows.append(run(spec, "random"))
        report(rows[1])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""``objective.constraints`` in a shared-weight (ENAS) search (issue 17 item 4): infeasible
children never train the supernet nor spend a reward minibatch, the controller learns them as
failures, and derived and retrained architectures keep to the limits."""

from __future__ import annotations

from typing import Any

import torch

from nas.architecture import Architecture
from nas.constraints import measure_architectures
from nas.trial import TrialState
from workers.final import retrain
from workers.search import parse_spec
from workers.shared import SharedWeightSearch

LIMIT = 1106  # about half of this space's children are larger (measured: 418 .. 8466)
SPEC: dict[str, Any] = {
    "name": "enas-constrained",
    "dataset": {"name": "digits"},
    "space": {"name": "enas-macro", "layers": 2, "channels": 8},
    "controller": {"name": "enas", "num_aggregate": 5},
    "evaluator": {
        "name": "shared-weights",
        "epochs": 3,
        "batch_size": 128,
        "rewards_per_epoch": 20,
        "derive_samples": 8,
        "top_k": 2,
    },
    "objective": {"metric": "val_accuracy", "constraints": {"max_params": LIMIT}},
    "budget": {"minutes": 5},
    "final": {"retrain_top_k": 2, "epochs": 1},
    "seed": 0,
}


def test_constrained_enas_search_never_scores_or_trains_an_infeasible_child() -> None:
    resolved = parse_spec(SPEC)  # accepted: the shared-weights evaluator checks constraints
    loop = SharedWeightSearch(resolved)
    space, data = loop.evaluator.space, loop.evaluator.data

    def params(archs: list[Architecture]) -> list[float]:
        figures = measure_architectures(
            space, archs, data.input_shape, data.num_classes, torch.device("cpu"), ["params"]
        )
        return [f["params"] for f in figures]

    trained: list[Architecture] = []
    train_epoch = loop.evaluator.train_epoch
    loop.evaluator.train_epoch = lambda sample: train_epoch(  # type: ignore[method-assign]
        lambda: trained.append(sample()) or trained[-1]
    )
    outcome = loop.run()
    assert outcome is not None and len(outcome.trials) == 60
    assert max(params(list(dict.fromkeys(trained)))) <= LIMIT  # the supernet saw none
    pruned = [t for t in outcome.trials if t.result.state is TrialState.PRUNED]
    complete = [t for t in outcome.trials if t.result.state is TrialState.COMPLETE]
    assert pruned and complete  # the policy proposed both kinds
    for t in pruned:  # never scored: no objective, the reason and the figure instead
        assert t.result.objective is None and "val_accuracy" not in t.result.metrics
        assert t.result.error.startswith("infeasible: params")  # type: ignore[union-attr]
        assert t.result.metrics["params"] > LIMIT
    assert max(params([t.architecture for t in complete])) <= LIMIT
    # The controller heard every trial, the infeasible ones as failures (reward 0 + entropy).
    history = loop.components.controller.history  # type: ignore[attr-defined]
    assert len(history) == 60
    assert all(history[t.number]["reward"] < 0.01 for t in pruned)
    assert all(history[t.number]["reward"] > 0.05 for t in complete)
    derived = [arch for arch, _ in outcome.ranked]
    assert derived and max(params(derived)) <= LIMIT
    final = retrain(resolved, space, derived)
    assert all(f["params"] <= LIMIT for f in final)

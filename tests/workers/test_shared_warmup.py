"""The shared-weight search's warm-up: uniform children (or strict-fair sets) first, then
the policy's."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from nas.errors import SpecError
from workers.search import parse_spec
from workers.shared import SharedWeightSearch

SPEC = {
    "name": "tiny-enas-warmup",
    "dataset": {"name": "mnist1d", "num_samples": 400},
    "space": {"name": "enas-macro", "layers": 3, "channels": 4},
    "controller": {"name": "enas"},
    "evaluator": {"name": "shared-weights", "epochs": 2, "warmup_epochs": 1},
    "budget": {"minutes": 1},
    "seed": 3,
}


def test_warmup_epochs_train_uniform_children_then_the_policys() -> None:
    search = SharedWeightSearch(parse_spec(SPEC))
    space = search.components.space
    uniform = np.random.default_rng(3)
    assert [search._training_sample() for _ in range(4)] == [
        space.sample(uniform) for _ in range(4)
    ]
    search.evaluator.epoch = 1  # warm-up over
    policy = copy.deepcopy(search.components.controller)
    assert [search._training_sample() for _ in range(4)] == [
        policy.sample_for_training() for _ in range(4)
    ]


def _fair(**evaluator: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["evaluator"].update({"warmup_sampling": "fair", **evaluator})
    return spec


def test_fair_warmup_trains_each_steps_fair_set_then_the_policys_children() -> None:
    search = SharedWeightSearch(parse_spec(_fair()))
    space = search.components.space
    rng = np.random.default_rng(3)
    assert [search._training_sample() for _ in range(2)] == [
        space.fair_children(rng) for _ in range(2)
    ]
    search.evaluator.epoch = 1  # warm-up over
    policy = copy.deepcopy(search.components.controller)
    assert search._training_sample() == policy.sample_for_training()


def test_fair_warmup_under_constraints_leaves_out_the_infeasible_children() -> None:
    limit = 934  # the median size of this space's children (measured: 398 .. 2262)
    spec = _fair(rewards_per_epoch=4, derive_samples=2)
    spec["objective"] = {"metric": "val_accuracy", "constraints": {"max_params": limit}}
    search = SharedWeightSearch(parse_spec(spec))
    space = search.components.space
    rng = np.random.default_rng(3)
    left_out = 0
    for _ in range(4):
        full = space.fair_children(rng)
        feasible = [a for a, (why, _) in zip(full, search._check(full), strict=True) if not why]
        assert feasible  # (the seed's sets each hold a feasible child)
        assert search._training_sample() == feasible
        left_out += len(full) - len(feasible)
    assert left_out > 0  # the limit did bite
    steps: list[Any] = []
    train_epoch = search.evaluator.train_epoch
    search.evaluator.train_epoch = lambda sample: train_epoch(  # type: ignore[method-assign]
        lambda: steps.append(sample()) or steps[-1]
    )
    outcome = search.run()  # an epoch of fair steps and one of the policy's, end to end
    assert outcome is not None and search.evaluator.epoch == 2
    per_epoch = search.evaluator.steps_per_epoch
    assert all(isinstance(s, list) for s in steps[:per_epoch])
    assert not any(isinstance(s, list) for s in steps[per_epoch:])
    trained = [a for s in steps for a in (s if isinstance(s, list) else [s])]
    assert all(why is None for why, _ in search._check(trained))  # none infeasible trained


def test_warmup_sampling_is_validated_and_fair_is_refused_with_several_workers() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_fair(warmup_sampling="fiar"))
    assert [e["loc"] for e in info.value.errors] == [("evaluator", "warmup_sampling")]
    spec = _fair()
    spec["resources"] = {"workers": 2}
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert [e["loc"] for e in info.value.errors] == [("evaluator", "warmup_sampling")]
    assert "one process" in str(info.value)
    spec["evaluator"]["warmup_sampling"] = "uniform"
    parse_spec(spec)  # the uniform warm-up trains in groups

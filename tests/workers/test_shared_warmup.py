"""The shared-weight search's warm-up: uniform children first, then the policy's."""

from __future__ import annotations

import copy

import numpy as np

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

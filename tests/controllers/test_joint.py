"""Joint search with every registered controller: valid hyperparameters, exact resume."""

from __future__ import annotations

import importlib.util
import json

import pytest

from controllers import CONTROLLERS
from nas.spaces import MacroSpace
from tests.controllers.contract import fake_result, joint_hparams

#: Small settings so that each controller learns within a few asks.
OPTIONS = {
    "enas": {"num_aggregate": 2},
    "metaqnn": {"total_models": 8, "replay_size": 5},
    "tpe": {"n_startup_trials": 3},
    "cmaes": {"popsize": 4},
    "gp": {"n_startup_trials": 3},
    "nsga2": {"population_size": 4},
    "evolution": {"population_size": 3, "sample_size": 2},
}


def make(name: str, seed: int):
    if name == "cmaes" and importlib.util.find_spec("cmaes") is None:
        pytest.skip("needs the cmaes package")
    space = MacroSpace(layers=2, channels=4)
    options = dict(OPTIONS.get(name, {}))
    if name == "rl2":  # runs a meta-trained policy: an untrained one for this space
        from tests.controllers.test_rl2 import policy_for

        options["policy"] = policy_for(space)
    return CONTROLLERS.get(name)(space=space, seed=seed, hparams=joint_hparams(), **options)


def run(controller, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        candidate = controller.ask()
        assert candidate is not None
        controller.tell(candidate.id, fake_result(candidate))
        out.append(candidate.to_dict())
    return out


@pytest.mark.parametrize("name", CONTROLLERS.names())
def test_every_controller_proposes_valid_hparams_and_resumes_exactly(name: str) -> None:
    space = joint_hparams()
    controller = make(name, 0)
    asked = run(controller, 6)
    for candidate in asked:
        assert space.validate(candidate["hparams"]) == candidate["hparams"]
    assert len({c["hparams"]["lr"] for c in asked}) > 1
    state = json.loads(json.dumps(controller.state_dict()))
    restored = make(name, 99)
    restored.load_state_dict(state)
    assert run(controller, 4) == run(restored, 4)

"""The contract every controller passes (as optuna/testing/pytest_samplers.py does for samplers).

Subclass ``ControllerContract`` in a controller's test module and set ``make_controller``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from controllers import Candidate, Controller, UnknownCandidateError
from nas.hparams import HparamSpace
from nas.spaces import MacroSpace, Nb201Space, SearchSpace
from nas.trial import TrialResult, TrialState

SPACES: dict[str, Callable[[], SearchSpace]] = {
    "nb201": Nb201Space,
    "enas-macro": lambda: MacroSpace(layers=4, channels=8),
}


def fake_result(candidate: Candidate) -> TrialResult:
    """A deterministic reward that depends on the architecture (so learners have signal)."""
    score = float(sum((i + 1) * c for i, c in enumerate(candidate.architecture.choices)) % 97)
    return TrialResult(TrialState.COMPLETE, objective=score, metrics={"val_accuracy": score})


class ControllerContract:
    """Shared behaviour of all controllers. ``make_controller(space, seed)`` builds one."""

    make_controller: Callable[..., Controller]
    #: spaces this controller supports, by key of ``SPACES``
    space_names: tuple[str, ...] = ("nb201", "enas-macro")

    def _run(self, controller: Controller, n: int) -> list[Candidate]:
        asked = []
        for _ in range(n):
            candidate = controller.ask()
            if candidate is None:
                break
            asked.append(candidate)
            controller.tell(candidate.id, fake_result(candidate))
        return asked

    @pytest.fixture(params=["nb201", "enas-macro"])
    def space(self, request: pytest.FixtureRequest) -> SearchSpace:
        if request.param not in self.space_names:
            pytest.skip(f"{request.param} not supported by this controller")
        return SPACES[request.param]()

    def test_asks_valid_candidates_with_fresh_ids(self, space: SearchSpace) -> None:
        controller = type(self).make_controller(space, 0)
        asked = self._run(controller, 20)
        assert len(asked) == 20
        assert [c.id for c in asked] == list(range(20))
        for candidate in asked:
            space.validate(candidate.architecture)

    def test_pending_limit_is_what_ask_keeps_to(self, space: SearchSpace) -> None:
        """``pending_limit`` (what decides how many trials may run side by side) is where
        ``ask`` answers "not now": that many candidates come out untold, no more (an
        unbounded controller gives 30)."""
        controller = type(self).make_controller(space, 0)
        limit, setting = controller.pending_limit()
        asked = []
        while len(asked) < 30 and (candidate := controller.ask()) is not None:
            asked.append(candidate)
        assert len(asked) == (30 if limit is None else limit)
        assert setting is None or setting in type(controller).Config.model_fields

    def test_tell_is_idempotent_and_rejects_unknown_ids(self, space: SearchSpace) -> None:
        controller = type(self).make_controller(space, 0)
        candidate = controller.ask()
        assert candidate is not None
        result = fake_result(candidate)
        controller.tell(candidate.id, result)
        before = json.dumps(controller.state_dict(), sort_keys=True)
        controller.tell(candidate.id, result)  # again: no effect
        assert json.dumps(controller.state_dict(), sort_keys=True) == before
        with pytest.raises(UnknownCandidateError):
            controller.tell(10_000, result)

    def test_failed_trials_are_accepted(self, space: SearchSpace) -> None:
        controller = type(self).make_controller(space, 0)
        for _ in range(5):
            candidate = controller.ask()
            assert candidate is not None
            controller.tell(candidate.id, TrialResult.failed("diverged: loss became nan"))
        assert controller.ask() is not None

    def test_same_seed_same_sequence(self, space: SearchSpace) -> None:
        a = self._run(type(self).make_controller(space, 7), 15)
        b = self._run(type(self).make_controller(space, 7), 15)
        c = self._run(type(self).make_controller(space, 8), 15)
        assert [x.architecture for x in a] == [x.architecture for x in b]
        assert [x.architecture for x in a] != [x.architecture for x in c]

    def test_state_dict_resume_gives_identical_next_asks(self, space: SearchSpace) -> None:
        original = type(self).make_controller(space, 3)
        self._run(original, 12)
        pending = original.ask()  # asked, not told: part of the checkpoint
        assert pending is not None
        state = json.loads(json.dumps(original.state_dict()))  # must be plain JSON data
        restored = type(self).make_controller(space, 999)  # another seed: state must win
        restored.load_state_dict(state)
        assert [c.id for c in restored.pending] == [pending.id]
        for controller in (original, restored):
            controller.tell(pending.id, fake_result(pending))
        assert [c.architecture for c in self._run(original, 10)] == [
            c.architecture for c in self._run(restored, 10)
        ]

    def _priors(self, space: SearchSpace, n: int, joint: bool = False) -> list[dict]:
        import numpy as np

        rng = np.random.default_rng(42)
        hparams = joint_hparams() if joint else None
        priors, seen = [], set()
        while len(priors) < n:
            arch = space.sample(rng)
            if arch.key in seen:
                continue
            seen.add(arch.key)
            values = hparams.sample(rng) if hparams is not None else {}
            priors.append(
                {"architecture": arch.to_dict(), "hparams": values, "score": 1 - len(priors) / n}
            )
        return priors

    def test_warm_start_proposes_the_priors_first_best_first(self, space: SearchSpace) -> None:
        joint = isinstance(self, JointControllerContract)
        priors = self._priors(space, 5, joint)
        controller = type(self).make_controller(space, 0)
        controller.warm_start(list(reversed(priors)))  # any order: proposed by score
        asked = self._run(controller, 8)
        assert len(asked) == 8
        assert [c.architecture.to_dict() for c in asked[:5]] == [p["architecture"] for p in priors]
        if joint:
            assert [dict(c.hparams) for c in asked[:5]] == [p["hparams"] for p in priors]
        for candidate in asked[5:]:
            space.validate(candidate.architecture)

    def test_warm_start_priors_keep_to_the_pending_limit(self, space: SearchSpace) -> None:
        """Priors are candidates like any: an rl2 job handed out all its priors at once
        ("always 1"), an enas one more than num_aggregate (the probe of the controllers)."""
        controller = type(self).make_controller(space, 0)
        controller.warm_start(self._priors(space, 30, isinstance(self, JointControllerContract)))
        limit, _ = controller.pending_limit()
        asked = []
        while len(asked) < 30 and (candidate := controller.ask()) is not None:
            asked.append(candidate)
        assert len(asked) == (30 if limit is None else limit)

    def test_warm_start_resumes_exactly_mid_priors(self, space: SearchSpace) -> None:
        joint = isinstance(self, JointControllerContract)
        priors = self._priors(space, 6, joint)
        original = type(self).make_controller(space, 3)
        original.warm_start(priors)
        self._run(original, 3)
        state = json.loads(json.dumps(original.state_dict()))
        restored = type(self).make_controller(space, 999)
        restored.warm_start(priors)  # as a resumed job builds it, then loads its state
        restored.load_state_dict(state)
        a = [c.to_dict() for c in self._run(original, 8)]
        b = [c.to_dict() for c in self._run(restored, 8)]
        assert a == b
        assert [c["architecture"] for c in a[:3]] == [p["architecture"] for p in priors[3:]]

    def test_state_dict_of_another_controller_is_rejected(self, space: SearchSpace) -> None:
        controller = type(self).make_controller(space, 0)
        state = controller.state_dict()
        state["name"] = "something-else"
        with pytest.raises(ValueError, match="something-else"):
            type(self).make_controller(space, 0).load_state_dict(state)


# --- joint search: the same contract with a hyperparameter space ------------------------------
def joint_hparams() -> HparamSpace:
    """A space with each kind of parameter: log float, stepped int, categorical, a
    conditional float (``momentum`` only with ``sgd``) and a user-defined name."""
    return HparamSpace.from_spec(
        {
            "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
            "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
            "momentum": {
                "type": "float",
                "low": 0.5,
                "high": 0.99,
                "condition": {"param": "optimizer", "equals": "sgd"},
            },
            "batch_size": {"type": "int", "low": 16, "high": 128, "step": 16},
            "note": {"type": "categorical", "choices": ["a", "b", "c"]},
        }
    )


class JointControllerContract(ControllerContract):
    """The contract again, for a controller built with ``hparams=joint_hparams()`` by
    ``make_controller``, plus checks of the hyperparameters it proposes."""

    space_names: tuple[str, ...] = ("enas-macro",)

    @pytest.fixture(params=["enas-macro"])
    def space(self, request: pytest.FixtureRequest) -> SearchSpace:
        return SPACES[request.param]()

    def test_asks_carry_valid_hparams(self, space: SearchSpace) -> None:
        controller = type(self).make_controller(space, 0)
        hparams = joint_hparams()
        asked = self._run(controller, 20)
        assert len(asked) == 20
        for candidate in asked:
            assert hparams.validate(candidate.hparams) == dict(candidate.hparams)
            assert ("momentum" in candidate.hparams) == (candidate.hparams["optimizer"] == "sgd")
        assert len({c.hparams["lr"] for c in asked}) > 2
        assert {c.hparams["optimizer"] for c in asked} == {"adam", "sgd"}

    def test_state_dict_resume_gives_identical_hparams(self, space: SearchSpace) -> None:
        original = type(self).make_controller(space, 3)
        self._run(original, 12)
        pending = original.ask()
        assert pending is not None
        state = json.loads(json.dumps(original.state_dict()))
        restored = type(self).make_controller(space, 999)
        restored.load_state_dict(state)
        assert [c.to_dict() for c in restored.pending] == [pending.to_dict()]
        for controller in (original, restored):
            controller.tell(pending.id, fake_result(pending))
        a = [c.to_dict() for c in self._run(original, 10)]
        b = [c.to_dict() for c in self._run(restored, 10)]
        assert a == b
        assert json.dumps(original.state_dict(), sort_keys=True) == json.dumps(
            restored.state_dict(), sort_keys=True
        )

"""``nsga2`` with several objectives: one study direction per objective, every value told,
exact resume; other single-objective controllers refuse several objectives."""

from __future__ import annotations

import json

import optuna
import pytest

from controllers import CONTROLLERS, Candidate, Nsga2Controller, RandomSearch
from nas.spaces import MacroSpace, Nb201Space
from nas.trial import TrialResult, TrialState

OBJECTIVES = [("val_accuracy", "maximize"), ("params", "minimize")]


def two_metrics(candidate: Candidate) -> TrialResult:
    """Accuracy and size that pull apart: larger choices score higher and weigh more."""
    choices = candidate.architecture.choices
    acc = float(sum((i + 1) * c for i, c in enumerate(choices)) % 97)
    size = float(sum(choices) * 10 + len(set(choices)))
    return TrialResult(
        TrialState.COMPLETE, objective=acc, metrics={"val_accuracy": acc, "params": size}
    )


def make(seed: int = 0, **kwargs) -> Nsga2Controller:
    return Nsga2Controller(
        space=Nb201Space(), seed=seed, population_size=4, objectives=OBJECTIVES, **kwargs
    )


def drive(controller: Nsga2Controller, n: int) -> list[Candidate]:
    asked = []
    for _ in range(n):
        candidate = controller.ask()
        assert candidate is not None
        asked.append(candidate)
        controller.tell(candidate.id, two_metrics(candidate))
    return asked


def test_which_controllers_handle_several_objectives() -> None:
    assert {n for n in CONTROLLERS.names() if CONTROLLERS.get(n).multi_objective} == {
        "nsga2",
        "random",
    }
    for name in ("tpe", "evolution", "qmc"):
        with pytest.raises(ValueError, match="optimises one objective"):
            CONTROLLERS.get(name)(space=Nb201Space(), seed=0, objectives=OBJECTIVES)
    RandomSearch(space=Nb201Space(), seed=0, objectives=OBJECTIVES).ask()  # ignores them


def test_the_study_has_one_direction_per_objective_and_gets_every_value() -> None:
    controller = make(max_pending=None)
    a, b, c, d = (controller.ask() for _ in range(4))
    controller.tell(a.id, two_metrics(a))
    controller.tell(b.id, TrialResult(TrialState.PRUNED, error="infeasible: params 9 > 5"))
    controller.tell(c.id, TrialResult.failed("diverged"))
    # COMPLETE without one of the objective metrics: told as a failure, not guessed.
    controller.tell(
        d.id, TrialResult(TrialState.COMPLETE, objective=1.0, metrics={"val_accuracy": 1})
    )
    study = controller.study
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE] * 2
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    expected = two_metrics(a).metrics
    assert trials[0].values == [expected["val_accuracy"], -expected["params"]]  # larger is better
    # the infeasible and the failed trial: worse than the completed one in each objective
    # (by 1 where there is no spread yet), so that the sampler moves away from them
    penalty = [expected["val_accuracy"] - 1, -expected["params"] - 1]
    assert trials[1].values == trials[2].values == penalty


def test_single_objective_study_is_unchanged() -> None:
    controller = Nsga2Controller(space=Nb201Space(), seed=0, population_size=4)
    drive(controller, 3)
    assert controller.study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert "value" in controller.state_dict()["optuna"]["trials"][0]


@pytest.mark.parametrize("space", [Nb201Space(), MacroSpace(layers=3, channels=4)], ids=str)
def test_same_seed_same_sequence(space) -> None:
    runs = []
    for _ in range(2):
        controller = Nsga2Controller(space=space, seed=3, population_size=4, objectives=OBJECTIVES)
        runs.append([c.architecture for c in drive(controller, 14)])
    assert runs[0] == runs[1]


def test_state_dict_resume_is_exact() -> None:
    controller = make(seed=5, max_pending=2)
    drive(controller, 11)  # generations of 4: parents chosen by rank and crowding
    pending = [controller.ask(), controller.ask()]
    state = json.loads(json.dumps(controller.state_dict()))
    assert all("values" in t for t in state["optuna"]["trials"])
    restored = make(seed=0, max_pending=2)
    restored.load_state_dict(state)

    def summary(c: Nsga2Controller) -> list[tuple]:
        return [(t.number, t.state, t.params, t.values, t.system_attrs) for t in c.study.trials]

    assert summary(restored) == summary(controller)
    for c in (controller, restored):
        for p in pending:
            c.tell(p.id, two_metrics(p))
    assert [x.architecture for x in drive(controller, 10)] == [
        x.architecture for x in drive(restored, 10)
    ]
    assert json.dumps(controller.state_dict(), sort_keys=True) == json.dumps(
        restored.state_dict(), sort_keys=True
    )

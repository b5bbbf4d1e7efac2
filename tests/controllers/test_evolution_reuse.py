"""Evolution reuses the told result of a configuration it already trained, but only when the
evaluator declares itself deterministic (issue 17 item 5c)."""

from __future__ import annotations

from typing import Any

from controllers import RegularizedEvolution
from controllers.base import Candidate
from nas.hparams import HparamSpace
from nas.spaces import Nb201Space
from nas.trial import TrialResult
from tests.controllers.contract import fake_result
from workers.search import SearchLoop, build_components, parse_spec


def _key(c: Candidate) -> tuple[Any, ...]:
    return (c.architecture.choices, tuple(sorted(c.hparams.items())))


def _run(controller: RegularizedEvolution, n: int) -> list[Candidate]:
    asked = []
    for _ in range(n):
        candidate = controller.ask()
        assert candidate is not None
        asked.append(candidate)
        controller.tell(candidate.id, fake_result(candidate))
    return asked


def test_deterministic_evaluator_never_trains_a_configuration_twice() -> None:
    # A small population on NAS-Bench-201's cell: one-edge mutations often undo each other.
    make = lambda det: RegularizedEvolution(
        space=Nb201Space(), seed=3, population_size=4, sample_size=4, deterministic_evaluator=det
    )
    plain = _run(make(False), 150)
    assert len({_key(c) for c in plain}) < len(plain)  # repeats happen without reuse
    controller = make(True)
    asked = _run(controller, 150)
    assert len({_key(c) for c in asked}) == len(asked)
    assert controller.reused > 0
    # A reused member carries the told score of its configuration.
    told = {c.architecture: fake_result(c).objective for c in asked}
    assert all(m.score == told[m.architecture] for m in controller.population)


def test_failed_results_are_not_reused() -> None:
    controller = RegularizedEvolution(
        space=Nb201Space(), seed=3, population_size=4, sample_size=4, deterministic_evaluator=True
    )
    for _ in range(60):
        candidate = controller.ask()
        assert candidate is not None
        controller.tell(candidate.id, TrialResult.failed("diverged"))
    assert controller.reused == 0 and controller.state_dict()["told"] == {}


def test_joint_search_reuses_by_architecture_and_hyperparameters() -> None:
    hparams = HparamSpace.from_spec(
        {
            "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
            "batch_size": {"type": "int", "low": 32, "high": 64, "step": 32},
        }
    )
    controller = RegularizedEvolution(
        space=Nb201Space(),
        seed=5,
        population_size=4,
        sample_size=4,
        hparams=hparams,
        deterministic_evaluator=True,
    )
    asked = _run(controller, 150)
    assert len({_key(c) for c in asked}) == len(asked)  # no (architecture, hparams) twice
    # ... while an architecture does come back with other hyperparameters: trained again.
    assert len({c.architecture for c in asked}) < len(asked)
    assert controller.reused > 0


def test_resumed_controller_goes_on_exactly() -> None:
    make = lambda: RegularizedEvolution(
        space=Nb201Space(), seed=7, population_size=4, sample_size=4, deterministic_evaluator=True
    )
    first = make()
    _run(first, 60)
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    assert [c.architecture for c in _run(first, 40)] == [c.architecture for c in _run(resumed, 40)]
    assert resumed.reused == first.reused


def _spec(evaluator: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "reuse",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4},
        "controller": {"name": "evolution"},
        "evaluator": evaluator,
        "budget": {"trials": 2},
    }


def test_only_a_standalone_evaluator_without_pruner_is_deterministic() -> None:
    plain = build_components(parse_spec(_spec({"name": "standalone", "epochs": 1})))
    assert plain.evaluator.deterministic and plain.controller.deterministic_evaluator
    pruned = build_components(
        parse_spec(_spec({"name": "standalone", "epochs": 2, "pruner": {"name": "median"}}))
    )
    assert not pruned.evaluator.deterministic
    assert not pruned.controller.deterministic_evaluator
    shared = build_components(parse_spec(_spec({"name": "shared-weights", "epochs": 1})))
    assert not shared.controller.deterministic_evaluator


def test_a_search_trains_each_configuration_once() -> None:
    spec = _spec({"name": "standalone", "epochs": 1, "batch_size": 256})
    spec["controller"] = {"name": "evolution", "population_size": 3, "sample_size": 3}
    spec["budget"] = {"trials": 12}
    loop = SearchLoop(parse_spec(spec))
    outcome = loop.run()
    assert outcome is not None and len(outcome.trials) == 12
    archs = [t.architecture for t in outcome.trials]
    assert len(set(archs)) == len(archs)
    assert loop.components.controller.reused > 0  # type: ignore[attr-defined]

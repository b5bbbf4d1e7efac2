"""Every registered evaluator runs through ``EvaluatorContract``."""

from __future__ import annotations

from typing import Any, ClassVar

from nas.evaluators import EVALUATORS
from tests.nas.evaluator_contract import EvaluatorContract


class TestTabular(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = {
        "name": "contract-tabular",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "random"},
        "evaluator": {"name": "tabular", "table": "{table}"},
        "budget": {"trials": 10},
    }


class TestStandalone(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = {
        "name": "contract-standalone",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 2, "batch_size": 128},
        "budget": {"trials": 2},
    }
    batch = 2


class TestSharedWeights(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = {
        "name": "contract-shared",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "enas"},
        "evaluator": {"name": "shared-weights", "epochs": 1, "batch_size": 128},
        "budget": {"trials": 2},
    }


def test_every_registered_evaluator_runs_through_the_contract() -> None:
    covered = {
        cls.spec["evaluator"]["name"]
        for cls in EvaluatorContract.__subclasses__()
        if cls.__module__ == __name__
    }
    assert covered == set(EVALUATORS.names()), "add a contract subclass for the new evaluator"

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


_NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


class TestTable(EvaluatorContract):
    """The user's own table: NAS-Bench-201 as a plain CSV, with the columns the
    constraints read."""

    spec: ClassVar[dict[str, Any]] = {
        "name": "contract-table",
        "dataset": {"name": "table"},
        "space": {
            "name": "table",
            "path": "{table}",
            "decisions": [{"column": f"edge{i}", "choices": _NB201_OPS} for i in range(6)],
        },
        "controller": {"name": "random"},
        "evaluator": {
            "name": "table",
            "fitness": "c10_val12",
            "heldout": "c10_test200",
            "metrics": ["c10_flops_M"],
            "cost": [{"column": "c10_train_time200_s", "scale": 0.06}],
            "figures": {
                "params": {"column": "c10_params_analytic_M", "scale": 1e6},
                "flops": {"column": "c10_flops_M", "scale": 1e6},
                "latency_ms": {"column": "c10_latency_s", "scale": 1e3},
            },
        },
        "objective": {"metric": "c10_val12"},
        "budget": {"trials": 10},
    }


class TestRl2Meta(EvaluatorContract):
    """The tasks an RL² policy is meta-trained on (its loop never calls evaluate)."""

    spec: ClassVar[dict[str, Any]] = {
        "name": "contract-rl2-meta",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "rl2"},
        "evaluator": {"name": "rl2-meta", "tasks": ["nb201-cifar10"], "table": "{table}"},
        "budget": {"minutes": 1},
    }


def _meta_spec(evaluator: str) -> dict[str, Any]:
    """A few meta-iterations of a meta-learning evaluator on sinusoid tasks (``mlp`` space)."""
    return {
        "name": f"contract-{evaluator}",
        "dataset": {"name": "sinusoid"},
        "space": {"name": "mlp", "max_layers": 2, "widths": [8, 16]},
        "controller": {"name": "random"},
        "evaluator": {
            "name": evaluator,
            "meta_iterations": 4,
            "meta_batch": 3,
            "inner_steps": 2,
            "eval_steps": 2,
            "eval_points": 20,
            "val_tasks": 8,
            "test_tasks": 16,
        },
        "objective": {"metric": "meta_val_mse", "direction": "minimize"},
        "budget": {"trials": 2},
    }


class TestMaml(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = _meta_spec("maml")
    batch = 2


class TestFomaml(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = _meta_spec("fomaml")
    batch = 2


class TestReptile(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = _meta_spec("reptile")
    batch = 2


class TestMetaSgd(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = _meta_spec("metasgd")
    batch = 2


def _fewshot_spec(evaluator: str, **params: Any) -> dict[str, Any]:
    """A few meta-iterations on tiny generated glyph episodes (3-way 1-shot, 10x10 images),
    a conv space (``metaqnn``) whose networks take them (pretrain: no meta-training
    episodes)."""
    episodes = {} if evaluator == "pretrain" else {"meta_batch": 2, "shots": 1, "queries": 2}
    return {
        "name": f"contract-{evaluator}-episodes",
        "dataset": {"name": "glyphs", "classes": 15, "samples": 6, "size": 10, "ways": 3},
        "space": {
            "name": "metaqnn",
            "max_layers": 3,
            "input_size": 10,
            "channels": 8,
            "kernels": [3],
            "pools": [2],
            "fc_units": [],
        },
        "controller": {"name": "random"},
        "evaluator": {
            "name": evaluator,
            "meta_iterations": 3,
            **episodes,
            "eval_shots": 1,
            "eval_points": 2,
            "val_tasks": 4,
            "test_tasks": 6,
            **params,
        },
        "objective": {"metric": "meta_val_accuracy", "direction": "maximize"},
        "budget": {"trials": 2},
    }


class TestProtoNet(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = _fewshot_spec("protonet")
    batch = 2


class TestMatching(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = _fewshot_spec("matching", fce=True, fce_steps=2)
    batch = 2


class TestPretrain(EvaluatorContract):
    spec: ClassVar[dict[str, Any]] = _fewshot_spec("pretrain", batch_size=8, finetune_steps=3)
    batch = 2


class TestMamlEpisodes(EvaluatorContract):
    """The gradient-based evaluators classify too (one of them through the contract)."""

    spec: ClassVar[dict[str, Any]] = _fewshot_spec("maml", inner_steps=1, eval_steps=2)
    batch = 2


def test_every_registered_evaluator_runs_through_the_contract() -> None:
    covered = {
        cls.spec["evaluator"]["name"]
        for cls in EvaluatorContract.__subclasses__()
        if cls.__module__ == __name__
    }
    assert covered == set(EVALUATORS.names()), "add a contract subclass for the new evaluator"

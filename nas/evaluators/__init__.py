"""Evaluators, registered by the name a job spec uses (``evaluator: {name: ...}``)."""

from __future__ import annotations

from nas.evaluators.base import Evaluator, EvaluatorConfig
from nas.evaluators.shared import SharedWeightEvaluator
from nas.evaluators.standalone import StandaloneEvaluator
from nas.evaluators.tabular import Nb201Table, TabularEvaluator, load_table, resolve_table_path
from nas.registry import Registry

EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator")
EVALUATORS.register(TabularEvaluator.name)(TabularEvaluator)
EVALUATORS.register(StandaloneEvaluator.name)(StandaloneEvaluator)
EVALUATORS.register(SharedWeightEvaluator.name)(SharedWeightEvaluator)

__all__ = [
    "EVALUATORS",
    "Evaluator",
    "EvaluatorConfig",
    "Nb201Table",
    "SharedWeightEvaluator",
    "StandaloneEvaluator",
    "TabularEvaluator",
    "load_table",
    "resolve_table_path",
]

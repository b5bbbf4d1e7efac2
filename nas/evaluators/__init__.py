"""Evaluators, registered by the name a job spec uses (``evaluator: {name: ...}``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from nas.evaluators.base import Evaluator, EvaluatorConfig
from nas.evaluators.matching import MatchingEvaluator
from nas.evaluators.meta import (
    FomamlEvaluator,
    MamlEvaluator,
    MetaEvaluator,
    MetaSgdEvaluator,
    ReptileEvaluator,
)
from nas.evaluators.pretrain import PretrainEvaluator
from nas.evaluators.protonet import ProtoNetEvaluator
from nas.evaluators.rl2_meta import Rl2MetaEvaluator
from nas.evaluators.shared import SharedWeightEvaluator
from nas.evaluators.standalone import StandaloneEvaluator
from nas.evaluators.table import TableEvaluator
from nas.evaluators.tabular import Nb201Table, TabularEvaluator, load_table, resolve_table_path
from nas.registry import Registry

if TYPE_CHECKING:
    from nas.spaces.base import SearchSpace
    from nas.spec import ResolvedSpec

EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator")
EVALUATORS.register(TabularEvaluator.name)(TabularEvaluator)
EVALUATORS.register(StandaloneEvaluator.name)(StandaloneEvaluator)
EVALUATORS.register(SharedWeightEvaluator.name)(SharedWeightEvaluator)
EVALUATORS.register(TableEvaluator.name)(TableEvaluator)
EVALUATORS.register(Rl2MetaEvaluator.name)(Rl2MetaEvaluator)
for _meta in (
    MamlEvaluator,
    FomamlEvaluator,
    ReptileEvaluator,
    MetaSgdEvaluator,
    ProtoNetEvaluator,
    MatchingEvaluator,
    PretrainEvaluator,
):
    EVALUATORS.register(_meta.name)(_meta)


def metric_note(name: str) -> str | None:
    """What the metric ``name`` is (unit, where measured), as the evaluators that report it
    describe it with their default settings (``Evaluator.metric_description``); ``None``
    when none does."""
    for evaluator in EVALUATORS:
        note = EVALUATORS.get(evaluator).metric_description(name, {})
        if note is not None:
            return note
    return None


#: Words of a metric's name that make it a loss or an error (``val_loss``, ``meta_val_mse``,
#: ``top1_err``): smaller is better.
ERROR_WORDS = frozenset({"loss", "mse", "rmse", "mae", "error", "err", "nll", "regret"})


def known_direction(metric: str) -> Literal["maximize", "minimize"] | None:
    """Which end of the metric ``metric`` is better: as an evaluator that reports it knows it
    (``Evaluator.metric_directions``), else ``minimize`` for a loss or an error by its name
    (``ERROR_WORDS``); ``None`` when neither tells (a column of the user's own table)."""
    for evaluator in EVALUATORS:
        direction = EVALUATORS.get(evaluator).metric_directions.get(metric)
        if direction is not None:
            return direction
    words = re.split(r"[^a-z0-9]+", metric.lower())
    return "minimize" if ERROR_WORDS.intersection(words) else None


def build_evaluator(resolved: ResolvedSpec) -> tuple[SearchSpace, Evaluator]:
    """The spec's search space and its evaluator (the dataset loaded)."""
    spec = resolved.spec
    space = resolved.build_space()
    evaluator = EVALUATORS.get(spec.evaluator.name).from_spec(
        dataset=spec.dataset.name,
        dataset_params=resolved.dataset_params,
        space=space,
        params=resolved.evaluator_params,
        seed=spec.seed,
    )
    return space, evaluator


__all__ = [
    "EVALUATORS",
    "Evaluator",
    "EvaluatorConfig",
    "FomamlEvaluator",
    "MamlEvaluator",
    "MatchingEvaluator",
    "MetaEvaluator",
    "MetaSgdEvaluator",
    "Nb201Table",
    "PretrainEvaluator",
    "ProtoNetEvaluator",
    "ReptileEvaluator",
    "Rl2MetaEvaluator",
    "SharedWeightEvaluator",
    "StandaloneEvaluator",
    "TableEvaluator",
    "TabularEvaluator",
    "build_evaluator",
    "known_direction",
    "load_table",
    "metric_note",
    "resolve_table_path",
]

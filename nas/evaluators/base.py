"""The ``Evaluator`` contract: architectures in, ``TrialResult``s out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from nas.architecture import Architecture
from nas.spaces.base import SearchSpace
from nas.trial import TrialResult


class EvaluatorConfig(BaseModel):
    """Base of each evaluator's parameters (the spec's ``evaluator:`` section less ``name``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Evaluator(ABC):
    """Scores architectures. Knows nothing of controllers, databases or Ray.

    ``metrics`` lists what ``TrialResult.metrics`` will hold, so a spec's objective can be
    checked before anything runs. ``evaluate`` takes a batch: cheap evaluators (tables,
    shared weights) answer a whole batch in one call, never one call per lookup.
    """

    name: ClassVar[str]
    Config: ClassVar[type[EvaluatorConfig]] = EvaluatorConfig
    metrics: ClassVar[tuple[str, ...]] = ()
    #: How many candidates a search loop should gather per ``evaluate`` call.
    batch_size: ClassVar[int] = 1
    #: True when ``evaluate`` answers without training (a table lookup, a shared-weight
    #: minibatch): the service then does not show its trials as RUNNING first.
    instant: ClassVar[bool] = False
    #: The ``hparams:`` names that set this evaluator's training procedure per trial (see
    #: ``nas.hparams.TRAINING_HPARAMS``); a spec that searches another of them is rejected.
    hparam_keys: ClassVar[tuple[str, ...]] = ()
    #: The ``objective.constraints`` keys this evaluator can check before evaluating (see
    #: ``nas.constraints``); a spec that sets another is rejected.
    constraint_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def from_spec(
        cls,
        *,
        dataset: str,
        dataset_params: Mapping[str, Any],
        space: SearchSpace,
        params: Mapping[str, Any],
        seed: int,
    ) -> Evaluator:
        """Build from a resolved job spec (``params`` is the validated ``evaluator:`` section)."""

    @abstractmethod
    def evaluate(
        self,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TrialResult]:
        """One result per architecture, in order."""

    def constraint_figures(
        self, archs: Sequence[Architecture], figures: Sequence[str]
    ) -> list[dict[str, float]]:
        """``figures`` (``params``, ``flops``, ``latency_ms``: see ``nas.constraints``) of each
        architecture, found without training it. Evaluators that list ``constraint_keys``
        implement this."""
        raise NotImplementedError(f"evaluator {self.name!r} cannot check constraints")

    def check_constraints(
        self, archs: Sequence[Architecture], constraints: Mapping[str, float | None]
    ) -> list[tuple[str | None, dict[str, float]]]:
        """For each architecture: ``None`` when it satisfies ``constraints`` (the spec's
        ``objective.constraints``, unset ones ``None``), else why not; with the figures
        measured. Runs before ``evaluate``, so an infeasible candidate costs no training."""
        active = {k: v for k, v in constraints.items() if v is not None}
        if not active or not archs:
            return [(None, {}) for _ in archs]
        from nas.constraints import CONSTRAINTS, verdict

        needed = sorted({CONSTRAINTS[k] for k in active})
        measured = self.constraint_figures(archs, needed)
        return [(verdict(figures, active), figures) for figures in measured]

    def final_metrics(self, arch: Architecture) -> dict[str, float]:
        """Held-out figures (test accuracy) for the architecture a search returns. Never
        shown to a controller."""
        return {}

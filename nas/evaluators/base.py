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

    def final_metrics(self, arch: Architecture) -> dict[str, float]:
        """Held-out figures (test accuracy) for the architecture a search returns. Never
        shown to a controller."""
        return {}

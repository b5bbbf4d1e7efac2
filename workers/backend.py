"""Backends: where a batch of candidates is evaluated.

The search loop gathers candidates and hands each batch to a backend. ``InlineBackend``
evaluates in the calling process, one batch at a time. A Ray backend plugs in behind the same
interface (tasks with CPU/GPU resources, retries, cancellation).
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nas.architecture import Architecture
from nas.evaluators import Evaluator
from nas.trial import TrialResult

#: ``should_stop()`` answers why work must stop now, or ``None`` (see ``workers.search``).
StopFn = Callable[[], "str | None"]


class Interrupted(Exception):
    """Raised out of ``evaluate`` when ``should_stop`` asked to stop while trials ran; the
    unfinished trials of the batch have no result."""


class Backend(ABC):
    """Evaluates batches of candidates for one job."""

    #: How many trials this backend runs at once (the spec's ``resources.workers``).
    parallelism: int = 1
    #: Where each trial of the last batch ran, in order (recorded with each trial).
    last_workers: list[str]

    @abstractmethod
    def evaluate(
        self,
        evaluator: Evaluator,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]],
        *,
        should_stop: StopFn | None = None,
    ) -> list[TrialResult]:
        """One result per architecture, in order. May raise ``Interrupted``."""

    @property
    def worker_name(self) -> str:
        """Where trials run (recorded with each trial)."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def close(self) -> None:
        """Release threads or remote workers."""


class InlineBackend(Backend):
    """Evaluates in this process, one batch at a time: ``nas search`` and the service's
    default until a distributed backend is configured. A training trial sees ``should_stop``
    only through the evaluator's per-epoch report hook (the service raises there)."""

    def __init__(self) -> None:
        self.last_workers = []

    def evaluate(
        self,
        evaluator: Evaluator,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]],
        *,
        should_stop: StopFn | None = None,
    ) -> list[TrialResult]:
        self.last_workers = [self.worker_name] * len(archs)
        return evaluator.evaluate(list(archs), list(hparams))

    @property
    def worker_name(self) -> str:
        return f"inline@{socket.gethostname()}:{os.getpid()}"

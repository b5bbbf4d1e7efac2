"""Trial states, the immutable result of evaluating one candidate, and the record of a trial."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from nas.architecture import Architecture


class TrialState(str, Enum):
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"

    def is_finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class TrialResult:
    """What an evaluator reports for one candidate and what a controller is told.

    ``objective`` is the job's objective metric (``None`` unless COMPLETE); ``metrics`` holds
    every figure the evaluator measured that a controller may see (never test accuracy);
    ``cost_s`` is the evaluation's cost in seconds: wall time, or the benchmark's simulated
    training time for tabular trials (then ``simulated`` is true).
    """

    state: TrialState
    objective: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    cost_s: float = 0.0
    simulated: bool = False
    error: str | None = None

    def __post_init__(self) -> None:
        if self.state is TrialState.COMPLETE and self.objective is None:
            raise ValueError("a COMPLETE result needs an objective value")
        if self.state is TrialState.FAIL and not self.error:
            raise ValueError("a FAIL result needs the cause in 'error'")

    @classmethod
    def failed(cls, error: str, *, cost_s: float = 0.0) -> TrialResult:
        return cls(TrialState.FAIL, error=error, cost_s=cost_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "objective": self.objective,
            "metrics": dict(self.metrics),
            "cost_s": self.cost_s,
            "simulated": self.simulated,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        return cls(
            state=TrialState(data["state"]),
            objective=data.get("objective"),
            metrics=dict(data.get("metrics") or {}),
            cost_s=float(data.get("cost_s", 0.0)),
            simulated=bool(data.get("simulated", False)),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial of a search, as the search loop records it and the service stores
    it. ``epoch`` and ``step`` place a shared-weight reward in its supernet epoch; ``worker``
    names where the trial ran (a process of this machine, a Ray node)."""

    number: int
    candidate_id: int
    architecture: Architecture
    hparams: Mapping[str, Any]
    result: TrialResult
    started_at: float
    finished_at: float
    epoch: int | None = None
    step: int | None = None
    worker: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        return cls(
            number=int(data["number"]),
            candidate_id=int(data["candidate_id"]),
            architecture=Architecture.from_dict(data["architecture"]),
            hparams=dict(data.get("hparams") or {}),
            result=TrialResult.from_dict(data),
            started_at=float(data["started_at"]),
            finished_at=float(data["finished_at"]),
            epoch=data.get("epoch"),
            step=data.get("step"),
            worker=data.get("worker"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (a line of ``trials.jsonl``)."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "worker": self.worker,
            "number": self.number,
            "candidate_id": self.candidate_id,
            "architecture": self.architecture.to_dict(),
            "hparams": dict(self.hparams),
            **self.result.to_dict(),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(frozen=True)
class RunningTrial:
    """A trial that trains and has no result yet: RUNNING since ``started_at`` on
    ``worker``, or WAITING for a worker (both ``None``), until its ``TrialRecord``
    arrives."""

    number: int
    candidate_id: int
    architecture: Architecture
    hparams: Mapping[str, Any]
    started_at: float | None
    worker: str | None

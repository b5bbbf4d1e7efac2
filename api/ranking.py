"""A job's ranking of its distinct architectures, which exports and retraining address.

Rank K (1-based, like "top-K") is the job's K-th best distinct architecture. A finished
search's own ranking comes first (the summary's ``ranked``: the best trials, or for ENAS the
architectures derived from the supernet; final retraining trained these), then the other
architectures of completed trials by their best objective (several objectives: ties broken by
the others, in order; then the earlier trial first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from api.models import JobModel, stored_arch_key
from api.policies import stored_policy
from api.repositories import TrialRepository
from api.services import ConflictError, NotFoundError
from controllers.rl2 import META_EVALUATOR
from nas.architecture import Architecture

__all__ = ["InvalidRequestError", "RankedArchitecture", "configuration_ranks", "rank_architecture"]


class InvalidRequestError(ValueError):
    """A request parameter is invalid (422); ``loc`` is its path, e.g. ``["query", "rank"]``."""

    def __init__(self, loc: list[str], msg: str) -> None:
        self.loc = loc
        super().__init__(msg)

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": self.loc, "msg": str(self), "type": "value_error"}]


@dataclass(frozen=True)
class RankedArchitecture:
    """The architecture at ``rank`` (1-based) of ``count``, with its best trial (if any) and
    the latest final retraining of it that saved weights (if any)."""

    rank: int
    count: int
    architecture: Architecture
    score: float | None
    trial_number: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] | None = None


def _search_ranking(job: JobModel) -> list[tuple[Architecture, float | None]]:
    """The finished search's own ranking (the summary's ``ranked``), which ranks 1.. are
    first: each architecture with its score."""
    return [
        (Architecture.from_dict(item["architecture"]), item.get("score"))
        for item in (job.summary or {}).get("ranked") or []
    ]


def rank_architecture(session: Session, job: JobModel, rank: int) -> RankedArchitecture:
    """The job's ``rank``-th best distinct architecture. ``ConflictError`` when the job has
    none yet, ``InvalidRequestError`` when ``rank`` is out of range."""
    summary = job.summary or {}
    listed = _search_ranking(job)
    keys = [stored_arch_key(arch.key) for arch, _ in listed]
    trials = TrialRepository(session)
    maximize, then = job.maximize, job.tie_breaks
    count = len(listed) + trials.count_ranked(job.id, exclude_keys=keys)
    if count == 0 and (job.spec.get("evaluator") or {}).get("name") == META_EVALUATOR:
        told = (
            f"job {job.id} is a meta-training job ({META_EVALUATOR}): it trains an RL² "
            "policy, not architectures"
        )
        get = f"GET /api/v1/jobs/{job.id}/policy (nas policy {job.id})"
        if stored_policy(session, job.id) is not None:
            told += f"; download the policy: {get}"
        elif job.state in ("QUEUED", "RUNNING"):
            told += f"; once it ends, {get} downloads it"
        else:  # (failed, or cancelled before its first recorded iteration)
            told += f", and it ended {job.state} without one"
        raise ConflictError(told)
    if count == 0:
        running = job.state in ("QUEUED", "RUNNING")
        raise ConflictError(
            f"job {job.id} has no completed trial yet ({job.state}); there is nothing to "
            "export or retrain"
            if running
            else f"job {job.id} ended {job.state} without a completed trial; there is nothing "
            "to export or retrain"
        )
    if not 1 <= rank <= count:
        raise InvalidRequestError(
            ["query", "rank"],
            f"rank {rank} is out of range: job {job.id} has {count} distinct ranked "
            f"architecture{'s' if count != 1 else ''}; valid: 1..{count} (1 is the best)",
        )
    if rank <= len(listed):
        arch, score = listed[rank - 1]
        trial = trials.best_of_architecture(
            job.id, stored_arch_key(arch.key), maximize=maximize, then=then
        )
    else:
        key, score = trials.ranked_architecture(
            job.id, rank - 1 - len(listed), exclude_keys=keys, maximize=maximize, then=then
        )
        trial = trials.best_of_architecture(job.id, key, maximize=maximize, then=then)
        if trial is None:  # the job was deleted between the two reads (each its own snapshot)
            raise NotFoundError(f"job {job.id} not found")
        arch = Architecture.from_dict(trial.architecture)
    final = None
    for entry in summary.get("final") or []:
        if entry.get("weights") and Architecture.from_dict(entry["architecture"]) == arch:
            final = entry  # the latest retraining wins
    return RankedArchitecture(
        rank=rank,
        count=count,
        architecture=arch,
        score=score,
        trial_number=None if trial is None else trial.number,
        metrics=dict(trial.metrics or {}) if trial is not None else {},
        hparams=dict(trial.hparams or {}) if trial is not None else {},
        final=final,
    )


def configuration_ranks(session: Session, job: JobModel) -> dict[str, tuple[int, dict[str, Any]]]:
    """Every ranked architecture's rank (``rank_architecture``'s, from 1) by its key (as
    ``TrialModel.arch_key``), with the hyperparameters of the trial an export or retraining
    of that rank takes: a configuration of a joint search that is not its architecture's
    best has no rank of its own."""
    keys = [stored_arch_key(arch.key) for arch, _ in _search_ranking(job)]
    trials = TrialRepository(session)
    maximize, then = job.maximize, job.tie_breaks
    ranks: dict[str, tuple[int, dict[str, Any]]] = {}
    for key in keys:
        trial = trials.best_of_architecture(job.id, key, maximize=maximize, then=then)
        ranks[key] = (len(ranks) + 1, dict(trial.hparams or {}) if trial is not None else {})
    for key, hparams in trials.ranking(job.id, exclude_keys=keys, maximize=maximize, then=then):
        ranks[key] = (len(ranks) + 1, hparams)
    return ranks

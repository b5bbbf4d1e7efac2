"""Business rules of jobs: what may be submitted, seen and cancelled, by whom."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from api.auth import Principal
from api.models import JobModel, JobState, utcnow
from api.repositories import JobRepository
from api.schemas import BestSoFar, JobRead
from nas.errors import SpecError
from nas.spec import ResolvedSpec, parse_spec


class NotFoundError(LookupError):
    """The resource does not exist or the caller may not see it (both answer 404)."""


class ConflictError(RuntimeError):
    """The request does not fit the resource's state (409)."""


def check_runnable_here(resolved: ResolvedSpec) -> None:
    """Reject settings this server cannot honour, at submit time (never silently ignored)."""
    resources = resolved.spec.resources
    if resources.workers != 1:
        raise SpecError.at(
            ["resources", "workers"],
            "this server runs each job's trials inline, one at a time; set workers: 1 "
            "(parallel trials need the Ray backend)",
        )
    if resources.gpus_per_trial > 0:
        import torch

        if not torch.cuda.is_available():
            raise SpecError.at(
                ["resources", "gpus_per_trial"],
                "this server has no GPU; set gpus_per_trial: 0",
            )


class JobService:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.jobs = JobRepository(session)

    def submit(self, principal: Principal, document: Mapping[str, Any]) -> JobModel:
        """Validate the whole spec, then create the job QUEUED; nothing is created when the
        spec is invalid."""
        resolved = parse_spec(document)
        check_runnable_here(resolved)
        return self.jobs.add(
            JobModel(
                name=resolved.spec.name,
                owner_id=principal.key_id,
                spec=resolved.to_dict(),
                state=JobState.QUEUED.value,
                state_counts={},
            )
        )

    def get(self, principal: Principal, job_id: int) -> JobModel:
        job = self.jobs.get(job_id, owner_id=principal.key_id, any_owner=principal.sees_all)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        return job

    def cancel(self, principal: Principal, job_id: int) -> JobModel:
        """A QUEUED job is cancelled at once; a RUNNING one is asked to stop (its runner
        stops within a poll interval and keeps every recorded trial). Cancelling a finished
        job is a 409."""
        job = self.get(principal, job_id)
        state = JobState(job.state)
        if state.is_finished():
            raise ConflictError(f"job {job_id} is already {state.value}")
        job.cancel_requested = True
        if state is JobState.QUEUED:
            job.state = JobState.CANCELLED.value
            job.reason = "cancelled by user before it started"
            job.finished_at = utcnow()
        self.session.flush()
        return job


def job_read(job: JobModel, owner: str | None = None, *, with_spec: bool = True) -> JobRead:
    best = None
    if job.best_trial_number is not None and job.best_value is not None:
        best = BestSoFar(trial_number=job.best_trial_number, value=job.best_value)
    return JobRead(
        id=job.id,
        name=job.name,
        state=job.state,
        reason=job.reason,
        cancel_requested=job.cancel_requested,
        progress=job.progress,
        n_trials=job.n_trials,
        trial_states=dict(job.state_counts or {}),
        best=best,
        resumes=job.resumes,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        spec=job.spec if with_spec else {},
        summary=job.summary,
        owner=owner,
    )

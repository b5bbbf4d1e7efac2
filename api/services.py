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
from nas.spec import ResolvedSpec
from workers.search import parse_spec


class NotFoundError(LookupError):
    """The resource does not exist or the caller may not see it (both answer 404)."""


class ConflictError(RuntimeError):
    """The request does not fit the resource's state (409)."""


def check_runnable_here(
    resolved: ResolvedSpec, backend: str, ray_address: str | None = None
) -> None:
    """Reject settings this server cannot honour, at submit time (never silently ignored)."""
    resources = resolved.spec.resources
    if backend == "inline" and resources.workers != 1:
        raise SpecError.at(
            ["resources", "workers"],
            "this server runs each job's trials inline, one at a time (NAS_BACKEND=inline); "
            "set workers: 1, or run the server with the Ray backend",
        )
    if resources.gpus_per_trial > 0:
        if backend == "ray":
            from workers.ray_backend import cluster_gpus

            available = cluster_gpus(ray_address)
            where = "the Ray cluster"
        else:
            import torch

            available = float(torch.cuda.device_count())
            where = "this server"
        if available < resources.gpus_per_trial:
            raise SpecError.at(
                ["resources", "gpus_per_trial"],
                f"{where} has {available:g} GPUs, fewer than gpus_per_trial="
                f"{resources.gpus_per_trial:g}; set gpus_per_trial: 0 or add a GPU node",
            )


class JobService:
    def __init__(
        self, session: Session, *, backend: str = "inline", ray_address: str | None = None
    ) -> None:
        self.session = session
        self.backend = backend
        self.ray_address = ray_address
        self.jobs = JobRepository(session)

    def submit(self, principal: Principal, document: Mapping[str, Any]) -> JobModel:
        """Validate the whole spec, then create the job QUEUED; nothing is created when the
        spec is invalid."""
        resolved = parse_spec(document)
        check_runnable_here(resolved, self.backend, self.ray_address)
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

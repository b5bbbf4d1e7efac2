"""Deleting a job: its rows, then every file under ``<artifacts>/jobs/{id}``."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from api.auth import Principal
from api.db import session_scope
from api.models import JobState
from api.repositories import ArtifactRepository, JobRepository
from api.retraining import Retrainings, job_dir
from api.services import ConflictError, JobService

log = logging.getLogger("nas.deletion")

__all__ = ["delete_job"]


def delete_job(
    write: sessionmaker[Session],
    artifacts: Path,
    retrainings: Retrainings,
    principal: Principal,
    job_id: int,
) -> None:
    """Delete the job's rows (trials, intermediate values, checkpoint and artifact rows go
    with it by ON DELETE CASCADE) and then its files. A RUNNING job must be cancelled first,
    and a job whose retraining runs must wait for it (``ConflictError``)."""
    with session_scope(write) as session:
        job = JobService(session).get(principal, job_id)
        if job.state == JobState.RUNNING.value:
            hint = (
                "its cancellation was requested; delete it once it is CANCELLED"
                if job.cancel_requested
                else f"cancel it first ('nas cancel {job_id}', POST /api/v1/jobs/{job_id}/cancel)"
            )
            raise ConflictError(f"job {job_id} is RUNNING: {hint}")
        if retrainings.running(job_id):
            raise ConflictError(
                f"a retraining of job {job_id} is running; delete the job when it has finished"
            )
        files = [artifacts / a.path for a in ArtifactRepository(session).for_job(job_id)]
        if not JobRepository(session).delete(job_id):
            raise ConflictError(f"job {job_id} started meanwhile: cancel it first")
    folder = job_dir(artifacts, job_id)
    shutil.rmtree(folder, ignore_errors=True)
    for path in files:  # anything recorded outside the job's folder
        path.unlink(missing_ok=True)
    if folder.exists():
        log.warning("job %d: could not remove all of %s", job_id, folder)

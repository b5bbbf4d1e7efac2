"""Deleting a job: its rows and every file under ``<artifacts>/jobs/{id}``, wholly or not at
all.

Order, and why: a job's files cannot be deleted atomically, its rows can. So the files are
first *moved* out of the way in one atomic step, a rename of the job's folder to
``<artifacts>/jobs/.deleting-{id}-{token}`` (same folder, same file system), inside the
transaction that then deletes the rows:

- the rename fails (read-only or failing disk): the transaction rolls back, the job and
  its files are unchanged, the caller gets ``StorageError`` (503);
- the rows cannot be deleted (the job started meanwhile, the database fails): the folder is
  renamed back, the job is unchanged;
- the rows are deleted: the renamed folder is removed; a removal that fails part way (or a
  server that dies meanwhile) leaves only a ``.deleting-`` folder of a job that no longer
  exists, removed by the next delete (``sweep``). No job is left without some of its files.

A full disk does not stop a delete: renaming and removing need no space.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from api.auth import Principal
from api.db import session_scope
from api.models import JobState
from api.repositories import ArtifactRepository, JobRepository, TrialRepository
from api.retraining import RETRAIN_WORKER, Retrainings, job_dir, reap_stale_retrainings
from api.services import ConflictError, JobService, NotFoundError
from api.storage import storage_error

log = logging.getLogger("nas.deletion")

__all__ = ["TRASH_PREFIX", "delete_job", "sweep"]

#: Folders of jobs being deleted (or deleted, with files left to remove):
#: ``<artifacts>/jobs/.deleting-{id}-{token}``.
TRASH_PREFIX = ".deleting-"


class _Trash:
    """The job's files, moved aside: the folder and any recorded file outside it."""

    def __init__(self, artifacts: Path, job_id: int) -> None:
        self.folder = job_dir(artifacts, job_id)
        self.path = self.folder.parent / f"{TRASH_PREFIX}{job_id}-{uuid.uuid4().hex[:8]}"
        self.moves: list[tuple[Path, Path]] = []  # (from, to), in order

    def take(self, outside: list[Path]) -> None:
        """Move the folder, then each file outside it, into the trash; on any failure move
        back what was moved and raise."""
        try:
            if self.folder.exists():
                self._move(self.folder, self.path)
            for i, path in enumerate(outside):
                if path.exists():
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._move(path, self.path / f"outside-{i}-{path.name}")
        except BaseException:
            self.restore()
            raise

    def _move(self, source: Path, target: Path) -> None:
        source.rename(target)
        self.moves.append((source, target))

    def restore(self) -> None:
        """Put every moved file back (the rows were not deleted)."""
        for source, target in reversed(self.moves):
            try:
                target.rename(source)
            except OSError:
                log.exception("could not move %s back to %s", target, source)
        self.moves.clear()

    def purge(self) -> None:
        """Remove the files for good (the rows are deleted)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self.path.exists():
            log.warning("could not remove all of %s; the next delete retries", self.path)


def delete_job(
    write: sessionmaker[Session],
    artifacts: Path,
    retrainings: Retrainings,
    principal: Principal,
    job_id: int,
) -> None:
    """Delete the job's rows (trials, intermediate values, checkpoint and artifact rows go
    with it by ON DELETE CASCADE) and its files, wholly or not at all (see the module). A
    RUNNING job must be cancelled first, and a job whose retraining runs must wait for it
    (``ConflictError``); ``StorageError`` (503) when its files cannot be moved: nothing
    changed then."""
    sweep(write, artifacts)
    trash = _Trash(artifacts, job_id)
    try:
        with session_scope(write) as session:
            job = JobService(session).get(principal, job_id)
            if job.state == JobState.RUNNING.value:
                hint = (
                    "its cancellation was requested; delete it once it is CANCELLED"
                    if job.cancel_requested
                    else f"cancel it first ('nas cancel {job_id}', "
                    f"POST /api/v1/jobs/{job_id}/cancel)"
                )
                raise ConflictError(f"job {job_id} is RUNNING: {hint}")
            # This server's retrainings, and any other server's whose heartbeat is fresh: a
            # RUNNING retraining trial (its result is the last thing a retraining writes;
            # this server's registry of them, cleared a moment later, answered 409 to a
            # delete right after 'nas retrain' had seen it COMPLETE)
            reap_stale_retrainings(session, job_id, retrainings)
            recorded = TrialRepository(session).running(job_id, worker_suffix=RETRAIN_WORKER)
            if recorded:
                raise ConflictError(
                    f"a retraining of job {job_id} is running; delete the job when it has finished"
                )
            folder = trash.folder
            outside = [
                artifacts / a.path
                for a in ArtifactRepository(session).for_job(job_id)
                if not (artifacts / a.path).is_relative_to(folder)
            ]
            try:
                trash.take(outside)
            except OSError as exc:
                fault = storage_error(
                    exc,
                    folder,
                    f"moving job {job_id}'s files aside to delete them",
                    "the job and its files are unchanged",
                )
                if fault is None:
                    raise
                log.warning("job %d: %s (%s)", job_id, fault, exc)
                raise fault from None
            if not JobRepository(session).delete(job_id):
                # (a delete through another server at the same moment took it first: it
                # was told "started meanwhile: cancel it first", of a job that was gone)
                if JobRepository(session).state_now(job_id) is None:
                    raise NotFoundError(f"job {job_id} not found")
                raise ConflictError(f"job {job_id} started meanwhile: cancel it first")
    except BaseException:
        # Not deleted (or the commit's answer was lost: then the job is gone after all).
        if trash.moves and _job_exists(write, job_id) is not False:
            trash.restore()
        raise
    trash.purge()


def _job_exists(write: sessionmaker[Session], job_id: int) -> bool | None:
    """Whether the job's row exists; ``None`` when the database cannot say."""
    try:
        with write() as session:
            return JobRepository(session).get(job_id) is not None
    except Exception:  # the database is failing: assume the row is there
        log.exception("job %d: could not check whether it was deleted", job_id)
        return None


def sweep(write: sessionmaker[Session], artifacts: Path) -> int:
    """Remove the ``.deleting-`` folders of deleted jobs (a removal that failed, a server
    that died after the commit); a job that still exists is being deleted right now, or
    its delete failed and its files could not be moved back (logged then): left alone. Returns
    how many folders were removed."""
    root = artifacts / "jobs"
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.glob(f"{TRASH_PREFIX}*"):
        job_id = path.name.removeprefix(TRASH_PREFIX).split("-", 1)[0]
        if not job_id.isdigit() or _job_exists(write, int(job_id)) is not False:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += not path.exists()
    return removed

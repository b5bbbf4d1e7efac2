"""Retraining a job's best architectures from scratch with its ``final:`` recipe.

One path trains and records: ``retrain_final`` (used by the job runner's ``final:`` step and
by ``POST /jobs/{id}/retrain``) trains with ``workers.final.retrain``, puts the weights under
``<artifacts>/jobs/{id}/final/`` and records them as ``final_weights`` artifacts. A retraining
asked for over HTTP is also a trial of its job: RUNNING while it trains in a background thread
of this process (``Retrainings``), COMPLETE (metrics: test accuracy, ...) or FAIL when done,
and the job's ``summary.final`` lists it, so exports of that rank use its weights.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.auth import Principal
from api.db import session_scope
from api.models import ArtifactModel, JobModel, JobState, TrialModel, utcnow
from api.ranking import InvalidRequestError, rank_architecture
from api.repositories import ArtifactRepository, JobRepository, TrialRepository
from api.services import ConflictError, JobService, NotFoundError, check_job_files
from api.settings import Settings
from api.trainable import trainable_problem
from nas.architecture import Architecture
from nas.evaluators.base import RETRAINING_METRICS
from nas.spaces import SearchSpace
from nas.spec import ResolvedSpec
from nas.trial import RunningTrial, TrialState

if TYPE_CHECKING:
    from workers.backend import StopFn

log = logging.getLogger("nas.retraining")

__all__ = [
    "RETRAIN_WORKER",
    "RetrainStarted",
    "Retrainings",
    "job_dir",
    "reap_stale_retrainings",
    "retrain_final",
    "start_retrain",
    "trainable_problem",
]

#: How a retraining's trial row names its worker: ``host:pid:retrain``.
RETRAIN_WORKER = ":retrain"


def job_dir(artifacts: Path, job_id: int) -> Path:
    """The folder of every file of the job (deleted with it)."""
    return artifacts / "jobs" / str(job_id)


# --- the one retraining path ----------------------------------------------------------------
def retrain_final(
    write: sessionmaker[Session],
    artifacts: Path,
    job_id: int,
    resolved: ResolvedSpec,
    space: SearchSpace,
    archs: Sequence[Architecture],
    hparams: Sequence[Mapping[str, Any]] | None = None,
    *,
    ranks: Sequence[int] | None = None,
    trial: int | None = None,
    record: Callable[[Session, JobModel, list[dict[str, Any]]], None] | None = None,
    should_stop: StopFn | None = None,
) -> list[dict[str, Any]]:
    """Train ``archs`` from scratch with the job's ``final:`` recipe, keep their weights and
    record them; return the ``final`` entries (``workers.final.retrain``'s, with ``weights``
    relative to ``artifacts``).

    Args:
        write: the sessionmaker of writing sessions.
        artifacts: the artifacts folder; the weights go to ``jobs/<job_id>/final/``.
        resolved: the job's spec; ``space`` its search space (the ``final:`` width override
            is applied by ``retrain``).
        archs: the architectures, best first; ``hparams`` the hyperparameters of the trial
            that ranked each (``workers.final.ranked_hparams``), overriding the recipe's.
        ranks: each architecture's 0-based rank in the job's ranking (default: 0, 1, ...),
            recorded in its entry and artifact; the weights file is ``rank<k>.pt``.
        trial: the trial number when the retraining is a trial of the job (one architecture):
            the file is ``retrain-trial<n>.pt`` and the entry and artifact record ``trial``.
        record: called in the transaction that records the weights, with the locked job and
            the entries, for what the caller records with them (a retraining's trial row).
        should_stop: asked after every epoch; a reason raises ``workers.backend.Interrupted``
            (nothing is kept).

    Raises ``NotFoundError`` when the job was deleted meanwhile (the weights are removed
    then); a failed training raises its own error and leaves nothing behind.
    """
    from workers.final import retrain

    ranks = list(range(len(archs))) if ranks is None else list(ranks)
    if len(ranks) != len(archs) or (trial is not None and len(archs) != 1):
        raise ValueError(
            f"{len(archs)} architectures with ranks {ranks} and trial {trial}: give one rank "
            "per architecture, and one architecture for a retraining trial"
        )
    folder = job_dir(artifacts, job_id) / "final"
    _sweep_scratch(folder)
    # Train into a scratch folder and move each file into place: a file under its final
    # name is always complete. Its owner file says which process trains there.
    scratch = folder / f".scratch-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    (scratch / _OWNER).write_text(f"{socket.gethostname()}:{os.getpid()}")
    placed: list[Path] = []
    try:
        entries = retrain(
            resolved,
            space,
            list(archs),
            out_dir=scratch,
            hparams=hparams,
            should_stop=should_stop,
            ranks=ranks,
        )
        for entry, rank in zip(entries, ranks, strict=True):
            name = f"retrain-trial{trial}" if trial is not None else f"rank{rank}"
            path = folder / f"{name}.pt"
            os.replace(entry["weights"], path)
            placed.append(path)
            entry.update(weights=str(path.relative_to(artifacts)), rank=rank)
            if trial is not None:
                entry["trial"] = trial
        with session_scope(write) as session:
            job = JobRepository(session).lock(job_id)
            if job is None:  # deleted meanwhile (DELETE refuses while a retraining runs)
                raise NotFoundError(f"job {job_id} not found")
            for entry, path in zip(entries, placed, strict=True):
                meta = {"rank": entry["rank"], "test_accuracy": entry["test_accuracy"]}
                if trial is not None:
                    meta["trial"] = trial
                ArtifactRepository(session).add(
                    ArtifactModel(
                        job_id=job_id,
                        kind="final_weights",
                        path=entry["weights"],
                        size_bytes=path.stat().st_size,
                        meta=meta,
                    )
                )
            if record is not None:
                record(session, job, entries)
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return entries


#: The error of a retraining trial whose server stopped while it trained.
STOPPED_BY_SHUTDOWN = "the server stopped while this retraining ran"

#: In a retraining's scratch folder: ``host:pid`` of the process that trains there.
_OWNER = "owner"


def _sweep_scratch(folder: Path) -> None:
    """Remove the scratch folders of retrainings whose process died on this machine (a
    ``kill -9`` during a retraining left them for good)."""
    from api.runner import runner_is_dead

    for scratch in folder.glob(".scratch-*"):
        try:
            owner = (scratch / _OWNER).read_text().strip()
        except OSError:
            continue  # being created, or not ours to judge
        if runner_is_dead(owner):
            shutil.rmtree(scratch, ignore_errors=True)


# --- retraining on request ------------------------------------------------------------------
class Retrainings:
    """The retrainings running in this process (background threads, at most ``limit`` at
    once; the rest wait for a slot). A retraining is a trial of its job: RUNNING while it
    trains, COMPLETE (metrics: test accuracy, ...) or FAIL when done. While it runs (or
    waits for a slot) its trial's heartbeat is renewed every ``lease_s / 3`` seconds; a
    RUNNING retraining whose heartbeat is older than ``lease_s`` is taken for dead by any
    server (``reap_stale_retrainings``)."""

    def __init__(self, limit: int, *, lease_s: float = 30.0) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._live: dict[int, set[int]] = {}  # job id -> trial numbers
        self._threads: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self.worker = f"{socket.gethostname()}:{os.getpid()}{RETRAIN_WORKER}"
        self.lease_s = lease_s

    def stop_reason(self) -> str | None:
        """Asked by each retraining after every epoch: why it must stop, if it must."""
        return STOPPED_BY_SHUTDOWN if self._stopping.is_set() else None

    def stop(self, timeout: float) -> bool:
        """At the server's shutdown: every retraining stops after its current epoch (its
        trial FAIL, ``STOPPED_BY_SHUTDOWN``); waits up to ``timeout`` seconds for them, so
        none is cut off inside torch when the process exits (which aborted the server).
        True when all stopped in time."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def running(self, job_id: int) -> set[int]:
        with self._lock:
            return set(self._live.get(job_id, ()))

    def _add(self, job_id: int, number: int) -> None:
        with self._lock:
            self._live.setdefault(job_id, set()).add(number)

    def _done(self, job_id: int, number: int) -> None:
        with self._lock:
            self._live.get(job_id, set()).discard(number)
            if not self._live.get(job_id):
                self._live.pop(job_id, None)

    def run(
        self,
        job_id: int,
        number: int,
        work: Callable[[], None],
        write: sessionmaker[Session] | None = None,
    ) -> None:
        """``work`` in a thread of its own; with ``write``, the trial's heartbeat is renewed
        meanwhile."""
        self._add(job_id, number)
        done = threading.Event()

        def target() -> None:
            try:
                with self._slots:
                    work()
            finally:
                done.set()
                self._done(job_id, number)
                with self._lock:
                    self._threads.discard(threading.current_thread())

        def beat() -> None:
            assert write is not None
            while not done.wait(self.lease_s / 3):
                try:
                    with session_scope(write) as session:
                        TrialRepository(session).beat(job_id, [number])
                except SQLAlchemyError:  # a database hiccup: the next beat tries again
                    log.warning("job %d: retraining trial %d: heartbeat failed", job_id, number)

        thread = threading.Thread(target=target, name=f"nas-retrain-{job_id}-{number}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
        if write is not None:
            threading.Thread(target=beat, name=f"nas-beat-{job_id}-{number}", daemon=True).start()


def reap_stale_retrainings(session: Session, job_id: int, retrainings: Retrainings) -> None:
    """Fail RUNNING retraining trials of a finished job that no live retraining owns: this
    process's that it no longer runs, those of a dead process on this machine, and any whose
    heartbeat (or start) is older than the lease (its server, maybe on another machine,
    stopped while it trained)."""
    from api.runner import runner_is_dead

    trials = TrialRepository(session)
    live = retrainings.running(job_id)
    expired = utcnow() - timedelta(seconds=retrainings.lease_s)

    def is_stale(t: TrialModel) -> bool:
        if t.worker == retrainings.worker:
            return t.number not in live
        last = t.heartbeat_at or t.started_at
        return runner_is_dead(t.worker) or last is None or last < expired

    stale = [t for t in trials.running(job_id, worker_suffix=RETRAIN_WORKER) if is_stale(t)]
    for trial in stale:
        trials.finish(
            job_id,
            trial.number,
            state=TrialState.FAIL.value,
            error=STOPPED_BY_SHUTDOWN,
            finished_at=utcnow(),
        )
    if stale:
        JobRepository(session).set_fields(job_id, state_counts=trials.state_counts(job_id))


@dataclass(frozen=True)
class RetrainStarted:
    job_id: int
    rank: int
    trial_id: int
    trial_number: int
    architecture: dict[str, Any]


def start_retrain(
    write: sessionmaker[Session],
    artifacts: Path,
    retrainings: Retrainings,
    principal: Principal,
    job_id: int,
    rank: int,
    *,
    settings: Settings,
) -> RetrainStarted:
    """Record the retraining of rank ``rank`` as a new RUNNING trial of the job (the next
    number, in one transaction with the job's counts) and start it in the background. The
    job's dataset must still lie under ``settings``' data roots (a 409 otherwise: retraining
    reads it)."""
    with session_scope(write) as session:
        JobService(session).get(principal, job_id)  # 404 before anything else
        job = JobRepository(session).lock(job_id)
        if job is None:  # deleted since (a 500 on PostgreSQL, where the lock waited for it)
            raise NotFoundError(f"job {job_id} not found")
        resolved = ResolvedSpec.from_stored(job.spec)
        problem = trainable_problem(resolved)
        if problem is not None:
            raise InvalidRequestError(
                ["path", "job_id"], f"job {job_id} cannot be retrained: {problem}"
            )
        check_job_files(job, settings, ("space", "dataset"), resolved=resolved)
        if not JobState(job.state).is_finished():
            raise ConflictError(
                f"job {job_id} is {job.state}; retrain its architectures once it has finished"
            )
        reap_stale_retrainings(session, job_id, retrainings)
        running = TrialRepository(session).running(job_id, worker_suffix=RETRAIN_WORKER)
        if running:
            raise ConflictError(
                f"a retraining of job {job_id} is still running (trial {running[0].number}); "
                "wait until it has finished"
            )
        ranked = rank_architecture(session, job, rank)
        trials = TrialRepository(session)
        number = max(job.n_trials, trials.next_number(job_id))
        trials.add_running(
            job_id,
            [
                RunningTrial(
                    number=number,
                    candidate_id=-1,  # not a controller candidate
                    architecture=ranked.architecture,
                    hparams=dict(ranked.hparams),
                    started_at=time.time(),
                    worker=retrainings.worker,
                )
            ],
        )
        JobRepository(session).set_fields(
            job_id, n_trials=number + 1, state_counts=trials.state_counts(job_id)
        )
        trial_id = trials.id_of(job_id, number)
        spec = dict(job.spec)
    started = RetrainStarted(job_id, rank, trial_id, number, ranked.architecture.to_dict())
    retrainings.run(
        job_id,
        number,
        lambda: _retrain(
            write,
            artifacts,
            spec,
            started,
            ranked.architecture,
            dict(ranked.hparams),
            should_stop=retrainings.stop_reason,
        ),
        write,
    )
    return started


def _retrain(
    write: sessionmaker[Session],
    artifacts: Path,
    spec: dict[str, Any],
    started: RetrainStarted,
    arch: Architecture,
    hparams: dict[str, Any] | None = None,
    *,
    should_stop: StopFn | None = None,
) -> None:
    from workers.backend import Interrupted

    job_id, number = started.job_id, started.trial_number
    began = time.perf_counter()

    def complete(session: Session, job: JobModel, entries: list[dict[str, Any]]) -> None:
        """The trial COMPLETE with the retraining's figures, listed in ``summary.final``."""
        (entry,) = entries
        trials = TrialRepository(session)
        metrics = {k: entry[k] for k in RETRAINING_METRICS}
        trials.finish(
            job_id,
            number,
            state=TrialState.COMPLETE.value,
            metrics=metrics,
            finished_at=utcnow(),
            cost_s=round(time.perf_counter() - began, 3),
        )
        summary = dict(job.summary or {})
        summary["final"] = [*(summary.get("final") or []), entry]
        JobRepository(session).set_fields(
            job_id, summary=summary, state_counts=trials.state_counts(job_id)
        )

    if should_stop is not None and should_stop():  # waited for a slot while the server stopped
        _fail_retrain(write, started, error=STOPPED_BY_SHUTDOWN, began=began)
        return
    try:  # its slot is taken now: it starts now (it showed its request's time, however long
        # it had waited for the slot, and a trial's page counted its seconds from there)
        with session_scope(write) as session:
            TrialRepository(session).start_now(job_id, number)
    except SQLAlchemyError:  # (a database hiccup: the request's time stays)
        log.warning("job %d: retraining trial %d: its start was not recorded", job_id, number)
    try:
        resolved = ResolvedSpec.from_stored(spec)
        retrain_final(
            write,
            artifacts,
            job_id,
            resolved,
            resolved.build_space(),
            [arch],
            [hparams or {}],
            ranks=[started.rank - 1],
            trial=number,
            record=complete,
            should_stop=should_stop,
        )
    except NotFoundError:
        return  # the job was deleted meanwhile: nothing to record
    except Interrupted:
        _fail_retrain(write, started, error=STOPPED_BY_SHUTDOWN, began=began)
    except Exception as exc:
        log.exception("job %d: retraining (trial %d) failed", job_id, number)
        _fail_retrain(write, started, error=f"{type(exc).__name__}: {exc}", began=began)


def _fail_retrain(
    write: sessionmaker[Session], started: RetrainStarted, *, began: float, error: str
) -> None:
    job_id, number = started.job_id, started.trial_number
    with session_scope(write) as session:
        if JobRepository(session).lock(job_id) is None:  # deleted meanwhile
            return
        trials = TrialRepository(session)
        trials.finish(
            job_id,
            number,
            state=TrialState.FAIL.value,
            error=error,
            finished_at=utcnow(),
            cost_s=round(time.perf_counter() - began, 3),
        )
        JobRepository(session).set_fields(job_id, state_counts=trials.state_counts(job_id))

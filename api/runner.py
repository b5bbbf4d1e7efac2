"""The job runner: takes QUEUED jobs, runs each search in a thread of this process, and
records every trial, intermediate value and checkpoint in the database.

The runner knows jobs, leases, batches and checkpoints, not kinds of search: every search is
opened by a ``workers`` backend (inline, or Ray from ``settings.backend``) as a
``SearchRun``, which reports trials and safe points and hands over its ``SearchState``.

Durability: trial records are written in batches, each batch in one transaction with the
search's checkpoint at a safe point (the controller's and the loop's state, and, when the
search keeps evaluator state such as a supernet, a reference to the file of that state saved
just before) and the search curve's new points; a trial that ends while others of its batch
still run (Ray tasks) is written at once, ahead of the checkpoint that will cover it. The
checkpoint therefore always covers exactly the trials numbered below its ``trial_count``. A
job whose runner dies (``kill -9``, a lost machine) is taken over by the next runner: trials
after the checkpoint (unfinished work, and such trials of an unfinished batch) and curve
points after it are removed and redone, the search is restored from the checkpoint, and it
goes on with the next trial number. Nothing recorded before the checkpoint is redone; no
number is used twice or skipped. A trial that can resume part-way (a meta-learning trial, at
the end of each meta-epoch: ``SafePoint.running``) is checkpointed inside, with its own
state as the evaluator file: the next runner continues that trial (same number) from its
last meta-epoch instead of from scratch.

Leases: a runner renews ``heartbeat_at`` of its jobs every poll; a RUNNING job whose lease
expired (``job_lease_s``), whose runner released it at shutdown, or whose runner is a dead
process on this machine is claimed by compare-and-set, so two runners never run one job.
Every write of a job's progress checks in its transaction that this runner still holds the
job; one that lost it (another runner took over) stops without writing.

Database faults: each write is one idempotent unit of work, retried on a new connection
after a transient error (a lost connection, a serialization failure, a restart) for up to
``db_retry_s`` (``api.db.retry_transient``); trials and curve points a lost commit did write
are not added twice. Only then does the job fail, with a short reason (``short_error``: no
SQL, no parameters; the full error goes to the log).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.db import (
    is_transient,
    make_session_factory,
    retry_transient,
    session_scope,
    short_error,
)
from api.models import JobModel, JobState, utcnow
from api.repositories import (
    ArtifactRepository,
    CheckpointRepository,
    CurveRepository,
    JobRepository,
    TrialRepository,
)
from api.retraining import retrain_final
from api.services import changed_data_files, check_data_paths, data_fingerprints, job_files_dir
from api.settings import Settings
from nas.spaces import SearchSpace
from nas.spec import ResolvedSpec
from nas.trial import RunningTrial, TrialRecord, TrialState
from workers.backend import (
    Backend,
    InlineBackend,
    Interrupted,
    OutputFile,
    SafePoint,
    SearchEvents,
    SearchOutcome,
    SearchRun,
    SearchState,
)
from workers.final import ranked_hparams
from workers.loops import files_at, loop_class
from workers.summary import summarize

log = logging.getLogger("nas.runner")

T = TypeVar("T")

CANCELLED = "cancelled"
#: Cancelled jobs no server runs that one tick takes to end (the next ticks take the rest).
ENDING_PER_TICK = 8
#: A runner tick that keeps failing is logged once, then at most this often.
TICK_LOG_EVERY_S = 60.0
SHUTDOWN = "server shutdown"


#: The checkpoint's ``loop_state`` key of the dataset's fingerprints (``data_fingerprints``)
#: as the job's start took them: the runner's, never the search loop's.
_DATA_FILES = "data_files"


class DataChanged(Exception):
    """The job's dataset file differs from the one its trials read."""


class LeaseLost(Exception):
    """Another runner holds the job now (this one's lease expired meanwhile)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runner_is_dead(runner: str | None) -> bool:
    """True when ``runner`` (``host:pid:token``) was a process on this machine that is gone."""
    if not runner:
        return False
    host, _, rest = runner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    return not _pid_alive(int(pid))


class JobRunner:
    """Runs up to ``settings.max_running_jobs`` jobs at once in threads of this process."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.read = make_session_factory(engine)
        self.write = make_session_factory(engine, write=True)
        self.artifacts = settings.resolved_artifacts_dir()
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._executions: dict[int, JobExecution] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        #: Since when every tick has failed (monotonic), and with what; ``None``: working.
        self._failing: tuple[float, str] | None = None

    def failing(self) -> tuple[float, str] | None:
        """``(seconds, error)`` while every tick has failed that long (the database out or
        full: no job can start or renew), else ``None``."""
        failing = self._failing
        return None if failing is None else (time.monotonic() - failing[0], failing[1])

    def start(self) -> None:
        """Start taking jobs (once; a second call does nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._supervise, name="nas-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking jobs, interrupt the running ones at their next checkpoint-safe point
        and release them (the next server resumes them at once)."""
        self._stop.set()
        self._wake.set()
        # The supervisor first: a tick under way may be claiming a job right now, and one
        # claimed after the list below was taken would run on, or stay RUNNING under this
        # runner's lease, after the server is gone.
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            executions = list(self._executions.values())
        for execution in executions:
            execution.request_stop(SHUTDOWN)
        for execution in executions:
            execution.join(timeout)

    def wake(self) -> None:
        """Look for work now instead of at the next poll (a job was just submitted)."""
        self._wake.set()

    @property
    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._executions)

    # --- supervision -----------------------------------------------------------------------
    def _supervise(self) -> None:
        logged_at: float | None = None  # (a failing tick was logged every poll: 2 a second)
        unlogged = 0
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # the database may be briefly unreachable: log, retry
                now, error = time.monotonic(), short_error(exc)
                if self._failing is None:
                    self._failing = (now, error)
                    logged_at = None
                else:
                    self._failing = (self._failing[0], error)
                if logged_at is not None and now - logged_at < TICK_LOG_EVERY_S:
                    unlogged += 1
                else:
                    again = f" ({unlogged} more times since)" if unlogged else ""
                    if not is_transient(exc):
                        log.exception("runner tick failed%s", again)
                    else:  # the next poll tries again, on a new connection
                        log.warning("runner tick failed%s: %s", again, error)
                    logged_at, unlogged = now, 0
            else:
                if self._failing is not None:
                    took = time.monotonic() - self._failing[0]
                    log.warning("runner ticks work again after %.0f s of failures", took)
                    self._failing, unlogged = None, 0
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def _tick(self) -> None:
        with self._lock:
            for job_id in [j for j, e in self._executions.items() if not e.is_alive()]:
                del self._executions[job_id]
            running = list(self._executions)
        if running:
            progress = {}
            for job_id in running:
                execution = self._executions.get(job_id)
                search = execution.search if execution is not None else None
                if search is not None:  # (a time budget's share grows during a long trial)
                    progress[job_id] = round(search.fraction_done(), 4)
            with session_scope(self.write) as session:
                cancel = JobRepository(session).renew(self.runner_id, running, progress)
            for job_id, requested in cancel.items():
                if requested:
                    self._executions[job_id].request_stop(CANCELLED)
        if self._stop.is_set():
            return
        free = self.settings.max_running_jobs - len(running)
        stale_before = utcnow() - timedelta(seconds=self.settings.job_lease_s)
        # A cancelled job that no server runs (released at a shutdown, its lease out) is
        # taken whatever the free slots, to end at once: it waited RUNNING for a free slot,
        # a delete refused meanwhile, then ran a trial before its cancel was seen. Looked
        # for in a read: with every slot taken, a tick takes no write lock (SQLite's BEGIN
        # IMMEDIATE twice a second, beside the jobs' own writes: the review).
        with self.read() as session:
            cancelled = JobRepository(session).claimable(
                stale_before=stale_before, limit=ENDING_PER_TICK, cancelled=True
            )
        if free <= 0 and not cancelled:
            return
        claimed: list[tuple[int, bool, bool]] = []  # (job, resumed, to cancel)
        with session_scope(self.write) as session:
            jobs = JobRepository(session)
            ending = []
            if cancelled:
                ending = list(
                    jobs.claimable(stale_before=stale_before, limit=ENDING_PER_TICK, cancelled=True)
                )
            candidates, dead = [], []
            if free > 0:
                candidates = list(jobs.claimable(stale_before=stale_before, limit=free))
                dead = [
                    j for j in jobs.running_elsewhere(self.runner_id) if runner_is_dead(j.runner)
                ]
            for job in [*ending, *dead, *candidates]:
                cancel = job.state == JobState.RUNNING.value and bool(job.cancel_requested)
                taken = sum(1 for _, _, to_cancel in claimed if not to_cancel)
                if (taken >= free and not cancel) or any(job.id == c for c, _, _ in claimed):
                    continue
                was_running = job.state == JobState.RUNNING.value
                if jobs.claim(job, self.runner_id, stale_before=stale_before, force=job in dead):
                    claimed.append((job.id, was_running, cancel))
        for job_id, resumed, cancel in claimed:
            doing = "taking over" if resumed else "starting"
            log.info("job %d: %s", job_id, f"{doing} to cancel it" if cancel else doing)
            execution = JobExecution(self, job_id)
            if cancel:  # (seen at the next renewal, it ran a trial first)
                execution.request_stop(CANCELLED)
            with self._lock:
                self._executions[job_id] = execution
            execution.start()


class _NotHeld(Exception):
    """Another runner holds the job now: what this one was about to record is not its own."""


class JobExecution(threading.Thread):
    """One job's search in one thread, writing to the database as it goes."""

    def __init__(self, runner: JobRunner, job_id: int) -> None:
        super().__init__(name=f"nas-job-{job_id}", daemon=True)
        self.runner = runner
        self.job_id = job_id
        self.settings = runner.settings
        self._stop_reason: str | None = None
        #: ``_stop_reason`` as the search ended (a cancel seen after it stopped nothing),
        #: once it has
        self._stopped_by: tuple[str | None] | None = None
        self._records: list[TrialRecord] = []  # finished trials to insert
        self._finished: list[TrialRecord] = []  # RUNNING rows to finish
        self._curve: dict[str, list[Mapping[str, Any]]] = {}  # curve points to insert, by series
        self._iterations: int | None = None  # the last recorded meta-training iteration
        self._waiting: set[int] = set()  # numbers of WAITING rows (handed to Ray, not started)
        self._running: set[int] = set()  # numbers of RUNNING rows
        # Trials shown ended ahead of their record (on_trial_ended): number -> their state
        self._ended: dict[int, TrialState] = {}
        self._counts: dict[str, int] = {}
        self._last_flush = 0.0
        self._evaluator_files: list[Path] = []  # the newest is the checkpoint's
        self._saved_at: tuple[int, int, int] | None = None  # _progress_key of the newest file
        self.search: SearchRun | None = None
        # The dataset's files as the search read them (``data_fingerprints``), for the summary
        self._data_files: dict[str, dict[str, Any]] = {}

    # --- control ---------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason

    def _should_stop(self) -> str | None:
        return self._stop_reason

    # --- the job ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except LeaseLost:
            log.warning("job %d: another runner took it over; this one stops", self.job_id)
        except Exception as exc:  # noqa: BLE001 - any error fails the job, with its cause
            log.error("job %d failed:\n%s", self.job_id, traceback.format_exc())
            try:
                if self._stop_reason == CANCELLED:
                    # The user's cancel stands: a released job taken to be cancelled whose
                    # resume failed (its file gone, Ray down) ended FAILED (the review).
                    self._finish(
                        JobState.CANCELLED,
                        f"cancelled by user (as it stopped: {short_error(exc, 200)})",
                        running_error="the job was cancelled while this trial ran",
                        waiting_error="the job was cancelled before this trial started",
                    )
                    return
                self._finish(
                    JobState.FAILED,
                    short_error(exc),
                    running_error=f"the job failed while this trial ran: {short_error(exc)}",
                    waiting_error=f"the job failed before this trial started: {short_error(exc)}",
                )
            except Exception:  # the database is gone: the lease will expire
                log.exception("job %d: could not record the failure", self.job_id)
        finally:
            if self.search is not None:
                self.search.close()  # threads, a Ray actor

    def _write(self, what: str, work: Callable[[Session], T]) -> T:
        """``work`` in one unit of work, retried after transient database errors."""
        return retry_transient(
            self.runner.write,
            work,
            retry_s=self.settings.db_retry_s,
            what=f"job {self.job_id}: {what}",
        )

    def _run(self) -> None:
        def spec(session: Session) -> dict[str, Any]:
            job = JobRepository(session).get(self.job_id)
            assert job is not None
            return job.spec

        resolved = ResolvedSpec.from_stored(
            retry_transient(
                self.runner.read, spec, retry_s=self.settings.db_retry_s, what="reading a job"
            )
        )
        # Confined at submit, and again now that the job reads them: a file replaced by a
        # symlink since, or roots narrowed by a restart, must not let it read outside them.
        roots = self.settings.resolved_data_roots()
        own_files = job_files_dir(self.settings, self.job_id)
        private = self.settings.private_paths()
        check_data_paths(resolved, roots, private=private, own_files=own_files, stored=True)
        # What the dataset's file held when the search read it (the summary keeps it): a
        # retraining or export after it was replaced is refused (``check_job_files``).
        self._data_files = data_fingerprints(resolved)
        events = SearchEvents(
            on_trial=self._on_trial,
            on_trials_queued=self._on_trials_queued,
            on_trials_started=self._on_trials_started,
            on_trial_ended=self._on_trial_ended,
            on_intermediate=self._on_intermediate,
            on_safe_point=self._on_safe_point,
            should_stop=self._should_stop,
            on_waiting=self._on_waiting,
        )
        search = self._backend().open(resolved, events)
        self.search = search
        self._resume(search, resolved)
        try:
            outcome = search.run()
        except Interrupted:
            outcome = None
        finally:
            self._stopped_by = (self._stop_reason,)
        self._flush(checkpoint=search.consistent)
        if (
            self._stop_reason == CANCELLED
            and outcome is not None
            and outcome.stop_reason != CANCELLED
            and outcome.error is None
        ):
            # The search had ended by its budget (the cancel came during a few-shot job's
            # meta-test, or as the search ended): its answer is kept, as a cancel during
            # final: keeps it; it was thrown away once the meta-test had run to its end.
            n = len(search.trials)
            self._cancelled_keeping(
                resolved,
                outcome,
                search.space,
                f"cancelled by user after the search's {n} trial{'' if n == 1 else 's'} "
                "had ended (the search's result is kept"
                + ("; see its warnings)" if outcome.warnings else ")"),
            )
            return
        if self._stop_reason == CANCELLED:
            running, waiting = len(self._running), len(self._waiting)  # (FAIL with the job)
            unit = loop_class(resolved).progress_unit  # (meta-training runs no trials)
            # (trials shown ended whose record waited for one before them count too)
            finished = len(search.trials) + len(self._ended)
            count = finished if unit == "finished trials" else self._iterations or 0
            done = f"{count} {unit}"
            kept = self._keep_files_so_far(resolved, search)
            self._finish(
                JobState.CANCELLED,
                f"cancelled by user after {done}" + _unfinished(running, waiting) + kept,
                running_error="the job was cancelled while this trial ran",
                waiting_error="the job was cancelled before this trial started",
            )
            return
        if self._stop_reason is not None or outcome is None:
            self._release()
            return
        if self._running or self._waiting or self._ended:
            # Trials the time budget stopped (the search's reason says so): not results
            self._drop_running()
        final: list[dict[str, Any]] = []
        spec_final = resolved.spec.final
        if spec_final is not None and outcome.ranked:
            # The retraining reads the dataset again, maybe hours after the start.
            check_data_paths(resolved, roots, private=private, sections=("dataset",), stored=True)
        # A dataset file replaced while the search ran: its later trials may have read the
        # new one, and final: would train (and its test figures, exports) on it without a word.
        changed = changed_data_files(resolved, self._data_files)
        if spec_final is not None and outcome.ranked and not changed:
            top = outcome.ranked[: spec_final.retrain_top_k]
            # (the search's progress is at 100 % meanwhile, which said nothing of it: the
            # job looked done, or stuck, for as long as the retraining took)
            which = "best architecture" if len(top) == 1 else f"{len(top)} best architectures"
            n = len(search.trials)
            self._on_waiting(
                f"the search ended after {n} trial{'' if n == 1 else 's'}; retraining its "
                f"{which} with final: ({spec_final.epochs} epochs each)"
            )
            try:
                final = retrain_final(
                    self.runner.write,
                    self.runner.artifacts,
                    self.job_id,
                    resolved,
                    search.space,
                    [arch for arch, _ in top],
                    ranked_hparams(outcome.trials, top, resolved.spec.objective.objectives[1:]),
                    should_stop=self._should_stop,
                )
            except Interrupted:
                if self._stop_reason == CANCELLED:
                    # The search itself had ended: its answer (its ranking, ENAS's derived
                    # architectures, its files) is kept; only the retraining is not.
                    self._cancelled_keeping(
                        resolved,
                        outcome,
                        search.space,
                        f"cancelled by user during the final retraining, after "
                        f"{len(search.trials)} trials (the search's result is kept; the "
                        "retraining is not)",
                    )
                else:  # a server shutdown: the next runner searches on from the checkpoint
                    self._release()
                return
        summary = summarize(resolved, outcome, search.space, final)
        summary.pop("trials", None)
        if changed:
            summary["warnings"].append(
                f"{', '.join(changed)}: the file changed while the search ran (other contents "
                "than at its start): trials after the change may have read the new file"
                + (", and final: retrained nothing" if spec_final is not None else "")
                + "; retraining and exports are refused until the search's file is back"
            )
        self._store_files(outcome.files)
        # A search whose every trial failed found nothing: FAILED, with the first error.
        failure = outcome.failure()
        state = JobState.SUCCEEDED if failure is None else JobState.FAILED
        # The last checkpoint is older than the end where the budget refused a candidate
        # (or mid-epoch): a later job's warm start takes the controller as it ended.
        final_state = None if search.consistent else search.final_controller_state()
        final_controller = None if final_state is None else (final_state, len(search.trials))
        self._finish(
            state,
            failure or outcome.stop_reason,
            summary=summary,
            progress=1.0,
            final_controller=final_controller,
        )

    def _keep_files_so_far(self, resolved: ResolvedSpec, search: SearchRun) -> str:
        """Store what a cancelled search keeps beyond its trials (a meta-training's policy
        as of its last checkpoint: ``files_at``); what the cancel's reason says of it."""
        if not loop_class(resolved).keeps_files_when_stopped or not search.consistent:
            return ""
        try:
            files = files_at(resolved, search.state(), search.trials)
            self._store_files(files)
        except Exception:  # the cancel goes on without them, said in the log
            log.exception("job %d: could not keep its files so far", self.job_id)
            return ""
        return f"; kept as trained so far: {', '.join(f.name for f in files)}" if files else ""

    def _store_files(self, files: Sequence[OutputFile]) -> None:
        """The files the search produced (a meta-trained policy), as the job's artifacts under
        ``jobs/ID/files/``: each written whole (a temporary file renamed into place), then
        recorded (a rerun after a crash replaces both)."""
        if not files:
            return
        folder = self.runner.artifacts / "jobs" / str(self.job_id) / "files"
        folder.mkdir(parents=True, exist_ok=True)
        placed = []
        for file in files:
            path = folder / Path(file.name).name
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(file.data)
            os.replace(tmp, path)
            placed.append((file, path))

        def work(session: Session) -> None:
            for file, path in placed:
                ArtifactRepository(session).put(
                    job_id=self.job_id,
                    kind=file.kind,
                    path=str(path.relative_to(self.runner.artifacts)),
                    size_bytes=len(file.data),
                    meta={"name": path.name},
                )

        self._write("recording its files", work)

    def _backend(self) -> Backend:
        if self.settings.backend == "inline":
            return InlineBackend()
        from workers.ray_backend import RayBackend

        return RayBackend()

    # --- resume ----------------------------------------------------------------------------
    def _check_data_kept(self, resolved: ResolvedSpec, recorded: Any, trials: int) -> None:
        """A resumed search goes on only on the dataset its checkpoint's trials read: the
        fingerprints its start took (kept in the checkpoint) become the job's again, and a
        file replaced while no server ran the job fails it (its trials so far are kept): the
        search would mix two datasets, and the summary would vouch for the new one."""
        if not isinstance(recorded, Mapping) or not recorded:
            return  # (a checkpoint from before fingerprints were kept: taken anew)
        # (the job's, also when it fails: its summary keeps them, so that a retraining or
        # an export on the new file is refused as for any finished job)
        self._data_files = dict(recorded)
        changed = changed_data_files(resolved, recorded)
        if changed:
            raise DataChanged(
                f"{', '.join(changed)}: the file changed while the job was stopped (other "
                f"contents than its {trials} trials so far read): the search cannot go on "
                "with other data; its trials are kept: put the file back and submit the job "
                "again, or warm-start a new job from this one"
            )

    def _drop_past_checkpoint(self, session: Session) -> tuple[Any, int, dict[str, int]]:
        """Remove the trials and curve points past the last checkpoint (work a resume does
        again), the job's counts with them: ``(checkpoint or None, trials removed, counts)``."""
        trials = TrialRepository(session)
        checkpoint = CheckpointRepository(session).get(self.job_id)
        keep = checkpoint.trial_count if checkpoint is not None else 0
        removed = trials.delete_from(self.job_id, keep)
        epochs = len(checkpoint.loop_state.get("curve", [])) if checkpoint is not None else 0
        CurveRepository(session).delete_from(self.job_id, None, epochs)
        counts = trials.state_counts(self.job_id)
        JobRepository(session).set_fields(
            self.job_id, n_trials=sum(counts.values()), state_counts=dict(counts)
        )
        return checkpoint, removed, counts

    def _resume(self, search: SearchRun, resolved: ResolvedSpec) -> None:
        def work(session: Session) -> tuple[Any, int, dict[str, int], list[TrialRecord]]:
            checkpoint, removed, counts = self._drop_past_checkpoint(session)
            if checkpoint is None:
                return checkpoint, removed, counts, []
            records = TrialRepository(session).records_before(self.job_id, checkpoint.trial_count)
            JobRepository(session).set_fields(self.job_id, resumes=JobModel.resumes + 1)
            return checkpoint, removed, counts, records

        checkpoint, removed, self._counts, records = self._write("resuming", work)
        if checkpoint is not None:
            loop_state = dict(checkpoint.loop_state)
            self._check_data_kept(resolved, loop_state.pop(_DATA_FILES, None), len(records))
            state = SearchState(checkpoint.controller_state, loop_state)
            evaluator_path = checkpoint.evaluator_path
        if checkpoint is None:
            if removed:
                log.info("job %d: restarting; %d unfinished trials removed", self.job_id, removed)
            return
        if evaluator_path is not None:
            path = self.runner.artifacts / evaluator_path
            try:
                state.evaluator = path.read_bytes()
            except FileNotFoundError:  # (the reason named this server's absolute path)
                raise RuntimeError(
                    f"the checkpoint's file {evaluator_path} is not in this server's artifacts "
                    "folder: servers that share a database must share NAS_ARTIFACTS_DIR"
                ) from None
            self._saved_at = _progress_key(state)
            self._evaluator_files.append(path)
        search.restore(state, records)
        curve = state.loop.get("curve") or []
        if curve and "iteration" in curve[-1]:  # meta-training: its progress so far
            self._iterations = int(curve[-1]["iteration"])
        running = state.loop.get("running")
        log.info(
            "job %d: resumed from the checkpoint at %s (%d later trials redone)%s",
            self.job_id,
            _resume_position(len(records), state.loop.get("curve") or []),
            removed,
            ""
            if running is None
            else f"; trial {running['number']} goes on after its epoch {running['epoch']}",
        )

    # --- events from the search ------------------------------------------------------------
    def _count(self, state: TrialState, delta: int) -> None:
        self._counts[state.value] = self._counts.get(state.value, 0) + delta

    def _on_trials_queued(self, trials: list[RunningTrial]) -> None:
        self._waiting.update(t.number for t in trials)
        self._count(TrialState.WAITING, len(trials))

        def work(session: Session) -> None:
            TrialRepository(session).add_waiting(self.job_id, trials)
            self._job_counters(session)

        self._write("recording waiting trials", work)

    def _on_trials_started(self, trials: list[RunningTrial]) -> None:
        fresh = [t for t in trials if t.number not in self._running]
        for trial in trials:
            if trial.number in self._running:  # its worker was lost: Ray runs it again
                log.warning(
                    "job %d: trial %d started again, on %s: its worker was lost, and Ray "
                    "runs such a trial again from its start (resources.max_retries)",
                    self.job_id,
                    trial.number,
                    trial.worker,
                )
        waited = sum(t.number in self._waiting for t in fresh)
        self._waiting.difference_update(t.number for t in fresh)
        self._running.update(t.number for t in fresh)
        self._count(TrialState.WAITING, -waited)
        self._count(TrialState.RUNNING, len(fresh))

        def work(session: Session) -> None:
            TrialRepository(session).add_running(self.job_id, trials)
            self._job_counters(session)

        self._write("recording started trials", work)

    def _on_intermediate(self, number: int, epoch: int, values: Mapping[str, float]) -> None:
        self._write(
            "recording intermediate values",
            lambda session: TrialRepository(session).add_intermediate(
                self.job_id, number, epoch, dict(values)
            ),
        )

    def _on_trial_ended(self, record: TrialRecord) -> None:
        """Show a trial ended before its turn to be recorded: its row is finished now (the
        record ``_on_trial`` gets later is the same)."""
        if record.number in self._running:
            self._running.discard(record.number)
            self._count(TrialState.RUNNING, -1)
        elif record.number in self._waiting:  # ended without starting (its worker was lost)
            self._waiting.discard(record.number)
            self._count(TrialState.WAITING, -1)
        else:
            return
        self._ended[record.number] = record.result.state
        self._count(record.result.state, 1)

        def work(session: Session) -> None:
            TrialRepository(session).finish_records(self.job_id, [record])
            self._job_counters(session)

        self._write("recording an ended trial", work)

    def _on_trial(self, record: TrialRecord) -> None:
        if self._ended.pop(record.number, None) is not None:
            return  # shown already (_on_trial_ended), with this very record
        state = record.result.state.value
        self._counts[state] = self._counts.get(state, 0) + 1
        if record.number in self._running:
            self._running.discard(record.number)
            self._count(TrialState.RUNNING, -1)
            self._finished.append(record)
        elif record.number in self._waiting:  # ended without starting (its worker was lost)
            self._waiting.discard(record.number)
            self._count(TrialState.WAITING, -1)
            self._finished.append(record)
        else:
            self._records.append(record)
        if self._running or self._waiting:
            # Others of its batch still run (Ray tasks): shown as ended now, not when the
            # batch ends; the checkpoint that covers it comes at the batch's end.
            self._flush(checkpoint=False)

    def _on_safe_point(self, point: SafePoint) -> None:
        # Trials still out at a safe point between batches: the budget refused them
        if (self._running or self._waiting or self._ended) and not point.running:
            self._drop_running()
        if point.curve is not None:
            self._curve.setdefault(point.series, []).append(point.curve)
            if "iteration" in point.curve:  # meta-training: its progress, for a cancel's reason
                self._iterations = int(point.curve["iteration"])
        due = time.monotonic() - self._last_flush >= self.settings.flush_interval_s
        if point.required or self._finished or due:
            self._flush(checkpoint=True)

    # --- writing ---------------------------------------------------------------------------
    def _flush(self, *, checkpoint: bool) -> None:
        search = self.search
        assert search is not None
        state = search.state() if checkpoint else None
        evaluator_path = None
        if state is not None and state.evaluator is not None:
            evaluator_path = self._save_evaluator(state)
        records, finished, curve = self._records, self._finished, self._curve

        def work(session: Session) -> None:  # idempotent: retried after a lost connection
            trials = TrialRepository(session)
            trials.add_records(self.job_id, records)
            trials.finish_records(self.job_id, finished)
            if state is not None:
                CheckpointRepository(session).save(
                    self.job_id,
                    trial_count=state.trial_count,
                    controller_state=state.controller,
                    # (what the dataset held at the start: a resume goes on only on it)
                    loop_state={**state.loop, _DATA_FILES: self._data_files}
                    if self._data_files
                    else state.loop,
                    evaluator_path=evaluator_path,
                )
                for series, points in curve.items():
                    CurveRepository(session).add_many(self.job_id, series, points)
            self._job_counters(session)

        self._write("recording trials" + (" and a checkpoint" if state else ""), work)
        if state is not None:
            self._curve = {}
        self._records, self._finished = [], []
        self._last_flush = time.monotonic()
        # Older evaluator files are no longer referenced once the new checkpoint committed.
        while len(self._evaluator_files) > 1:
            self._evaluator_files.pop(0).unlink(missing_ok=True)

    def _save_evaluator(self, state: SearchState) -> str:
        """The file holding the evaluator's state (the supernet), written unless the newest
        file already holds it (same trials and epochs); its path relative to the artifacts."""
        assert state.evaluator is not None
        if _progress_key(state) != self._saved_at or not self._evaluator_files:
            folder = self.runner.artifacts / "jobs" / str(self.job_id) / "checkpoints"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"supernet-{uuid.uuid4().hex[:12]}.pt"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(state.evaluator)
            os.replace(tmp, path)
            self._evaluator_files.append(path)
            self._saved_at = _progress_key(state)
        return str(self._evaluator_files[-1].relative_to(self.runner.artifacts))

    def _on_waiting(self, text: str | None) -> None:
        """What the search waits for (Ray to place it), or what the job does after it (the
        final retraining), is the running job's reason, which nas show and the job page
        show; ``None`` clears it."""
        if text is not None:
            log.info("job %d: %s", self.job_id, text)

        def work(session: Session) -> None:
            held = JobRepository(session).set_fields_held(
                self.job_id, self.runner.runner_id, reason=text
            )
            if not held:
                raise LeaseLost(f"job {self.job_id} is held by another runner")

        self._write("noting what the search waits for", work)

    def _job_counters(self, session: Session) -> None:
        search = self.search
        assert search is not None
        best = search.best
        held = JobRepository(session).set_fields_held(
            self.job_id,
            self.runner.runner_id,
            n_trials=sum(self._counts.values()),
            state_counts={k: v for k, v in self._counts.items() if v},
            progress=round(search.fraction_done(), 4),
            best_trial_number=None if best is None else best.number,
            best_value=None if best is None else best.result.objective,
            heartbeat_at=utcnow(),
        )
        if not held:  # rolls the unit of work back: nothing of it is written
            raise LeaseLost(f"job {self.job_id} is held by another runner")

    def _cancelled_keeping(
        self, resolved: ResolvedSpec, outcome: SearchOutcome, space: SearchSpace, reason: str
    ) -> None:
        """Finish the job CANCELLED by a cancel that came after its search had ended: the
        search's answer (summary, ranking, files) is kept, without a retraining."""
        summary = summarize(resolved, outcome, space, [])
        summary.pop("trials", None)
        self._store_files(outcome.files)
        self._finish(JobState.CANCELLED, reason, summary=summary)

    def _drop_running(self) -> None:
        numbers = sorted(self._running | self._waiting | self._ended.keys())
        self._count(TrialState.RUNNING, -len(self._running))
        self._count(TrialState.WAITING, -len(self._waiting))
        for state in self._ended.values():
            self._count(state, -1)
        self._running.clear()
        self._waiting.clear()
        self._ended.clear()

        def work(session: Session) -> None:
            for number in numbers:
                TrialRepository(session).delete_from(self.job_id, number)
            self._job_counters(session)

        self._write("dropping trials the budget refused", work)

    def _finish(
        self,
        state: JobState,
        reason: str,
        *,
        summary: dict[str, Any] | None = None,
        progress: float | None = None,
        running_error: str | None = None,
        waiting_error: str | None = None,
        final_controller: tuple[dict[str, Any], int] | None = None,
    ) -> None:
        """Record the job finished, if this runner still holds it; ``running_error``: its
        RUNNING trials become FAIL with that error in the same transaction (so that a runner
        that lost the job cannot fail the trials of the one that took it over), its WAITING
        ones with ``waiting_error`` (or the same);
        ``final_controller``: the controller's state at the end and the trials it was told,
        kept in its checkpoint row in the same transaction (a finished job is never resumed
        from it)."""
        values: dict[str, Any] = {
            "state": state.value,
            "reason": reason,
            "finished_at": utcnow(),
            "runner": None,
            "heartbeat_at": None,
        }
        if summary is not None:
            values["summary"] = (
                {**summary, "data_files": self._data_files} if self._data_files else summary
            )
        elif self._data_files and state in (JobState.FAILED, JobState.CANCELLED):
            # A job ended without a result keeps what its trials read all the same: its
            # trials can be retrained and exported, which must not take another file.
            values["summary"] = {"data_files": self._data_files}
        if progress is not None:
            values["progress"] = progress

        def work(session: Session) -> None:
            trials = TrialRepository(session)
            if running_error is not None:
                trials.mark_running_failed(self.job_id, running_error, waiting_error)
            if final_controller is not None:
                controller_state, told = final_controller
                CheckpointRepository(session).set_final_controller(
                    self.job_id, controller_state, trial_count=told
                )
            if state is not JobState.SUCCEEDED:
                counts = trials.state_counts(self.job_id)
                values["state_counts"] = counts
                values["n_trials"] = sum(counts.values())
            # A cancel that came as the search ended (answered 200, then the job SUCCEEDED
            # with nothing said: the probe of lifecycle operations) is said in the reason.
            # The row is locked first, as a cancel locks it: one of the two sees the other.
            job = JobRepository(session).lock(self.job_id)
            if (
                job is not None
                and job.cancel_requested
                # (the search saw the cancel: not too late; the heartbeat's read of it
                # after the search ended stopped nothing)
                and (self._stopped_by or (self._stop_reason,))[0] != CANCELLED
                and state in (JobState.SUCCEEDED, JobState.FAILED)
            ):
                values["reason"] = (
                    f"{reason} (the cancel requested as the search ended came too late to stop it)"
                )
            if not JobRepository(session).set_fields_held(
                self.job_id, self.runner.runner_id, **values
            ):
                raise _NotHeld  # rolls the transaction back, trials included

        try:
            self._write(f"recording it {state.value}", work)
        except _NotHeld:
            log.warning("job %d: not %s: another runner holds it", self.job_id, state.value)
            return
        log.info("job %d: %s (%s)", self.job_id, state.value, reason)

    def _release(self) -> None:
        """Leave the job RUNNING with no lease: the next runner resumes it at once. Its
        trials past the last checkpoint go now, as the resume would drop them: a trial the
        stop interrupted stayed RUNNING on show while no server ran it."""

        def work(session: Session) -> None:
            if JobRepository(session).set_fields_held(
                self.job_id, self.runner.runner_id, runner=None, heartbeat_at=None
            ):
                self._drop_past_checkpoint(session)

        self._write("releasing it", work)
        log.info("job %d: released at %s", self.job_id, self._stop_reason)


def _unfinished(running: int, waiting: int) -> str:
    """What a cancel's reason says of the trials it ended: `` (2 running, 1 waiting, now
    FAIL)``, or nothing."""
    parts = [f"{n} {what}" for n, what in ((running, "running"), (waiting, "waiting")) if n]
    return f" ({', '.join(parts)}, now FAIL)" if parts else ""


def _resume_position(trials: int, curve: list[dict[str, Any]]) -> str:
    """Where a resumed search goes on, in the log: a meta-training job runs no trials, a
    shared-weight search's progress is its supernet epochs."""
    last = curve[-1] if curve else {}
    if "iteration" in last:
        return f"meta-training iteration {last['iteration']}"
    if "epoch" in last:
        return f"trial {trials}, after supernet epoch {int(last['epoch']) + 1}"
    return f"trial {trials}"


def _progress_key(state: SearchState) -> tuple[int, int, int]:
    """How far a checkpoint is: its trials, its curve's epochs, and inside a running trial
    that trial's epoch (-1 between trials)."""
    running = state.loop.get("running") or {}
    return state.trial_count, len(state.loop.get("curve", ())), int(running.get("epoch", -1))

"""The job runner: takes QUEUED jobs, runs each search in a thread of this process, and
records every trial, intermediate value and checkpoint in the database.

Durability: trial records are written in batches, each batch in one transaction with a
checkpoint of the controller (``state_dict``) and the search loop's progress (and, for
shared-weight search, a reference to the supernet file saved just before). The checkpoint
therefore always covers exactly the trials numbered below its ``trial_count``. A job whose
runner dies (``kill -9``, a lost machine) is taken over by the next runner: trials after the
checkpoint (unfinished work) are removed and redone, the controller and supernet are restored,
and the search goes on with the next trial number. Nothing recorded before the checkpoint is
redone; no number is used twice or skipped.

Leases: a runner renews ``heartbeat_at`` of its jobs every poll; a RUNNING job whose lease
expired (``job_lease_s``), whose runner released it at shutdown, or whose runner is a dead
process on this machine is claimed by compare-and-set, so two runners never run one job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import Engine

from api.db import make_session_factory, session_scope
from api.models import ArtifactModel, JobModel, JobState, utcnow
from api.repositories import (
    ArtifactRepository,
    CheckpointRepository,
    JobRepository,
    TrialRepository,
)
from api.settings import Settings
from nas.architecture import Architecture
from nas.evaluators.shared import SharedWeightEvaluator
from nas.spec import parse_spec
from nas.trial import TrialResult, TrialState
from workers.backend import Backend, InlineBackend, Interrupted
from workers.final import ranked_hparams, retrain
from workers.local import make_search, summarize
from workers.search import TrialRecord, build_components

log = logging.getLogger("nas.runner")

CANCELLED = "cancelled"
SHUTDOWN = "server shutdown"


JobInterrupted = Interrupted  # raised inside a running trial when its job must stop


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


def _ts(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


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

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="nas-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking jobs, interrupt the running ones at their next checkpoint-safe point
        and release them (the next server resumes them at once)."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            executions = list(self._executions.values())
        for execution in executions:
            execution.request_stop(SHUTDOWN)
        for execution in executions:
            execution.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look for work now instead of at the next poll (a job was just submitted)."""
        self._wake.set()

    @property
    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._executions)

    # --- supervision -----------------------------------------------------------------------
    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # the database may be briefly unreachable: log, retry
                log.exception("runner tick failed")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def _tick(self) -> None:
        with self._lock:
            for job_id in [j for j, e in self._executions.items() if not e.is_alive()]:
                del self._executions[job_id]
            running = list(self._executions)
        if running:
            with session_scope(self.write) as session:
                cancel = JobRepository(session).renew(self.runner_id, running)
            for job_id, requested in cancel.items():
                if requested:
                    self._executions[job_id].request_stop(CANCELLED)
        free = self.settings.max_running_jobs - len(running)
        if free <= 0 or self._stop.is_set():
            return
        stale_before = utcnow() - timedelta(seconds=self.settings.job_lease_s)
        claimed: list[tuple[int, bool]] = []
        with session_scope(self.write) as session:
            jobs = JobRepository(session)
            candidates = list(jobs.claimable(stale_before=stale_before, limit=free))
            dead = [j for j in jobs.running_elsewhere(self.runner_id) if runner_is_dead(j.runner)]
            for job in [*dead, *candidates]:
                if len(claimed) >= free or any(job.id == c for c, _ in claimed):
                    continue
                was_running = job.state == JobState.RUNNING.value
                if jobs.claim(job, self.runner_id, stale_before=stale_before, force=job in dead):
                    claimed.append((job.id, was_running))
        for job_id, resumed in claimed:
            log.info("job %d: %s", job_id, "taking over" if resumed else "starting")
            execution = JobExecution(self, job_id)
            with self._lock:
                self._executions[job_id] = execution
            execution.start()


class JobExecution(threading.Thread):
    """One job's search in one thread, writing to the database as it goes."""

    def __init__(self, runner: JobRunner, job_id: int) -> None:
        super().__init__(name=f"nas-job-{job_id}", daemon=True)
        self.runner = runner
        self.job_id = job_id
        self.settings = runner.settings
        self._stop_reason: str | None = None
        self._rows: list[dict[str, Any]] = []  # new trial rows to insert
        self._updates: list[dict[str, Any]] = []  # RUNNING rows to finish
        self._running: set[int] = set()
        self._batch_first = 0
        self._counts: dict[str, int] = {}
        self._last_flush = 0.0
        self._supernet_files: list[Path] = []
        self.loop: Any = None
        self.remote = False

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
        except Exception as exc:  # noqa: BLE001 - any error fails the job, with its cause
            log.error("job %d failed:\n%s", self.job_id, traceback.format_exc())
            try:
                self._finish(JobState.FAILED, f"{type(exc).__name__}: {exc}")
            except Exception:  # the database is gone: the lease will expire
                log.exception("job %d: could not record the failure", self.job_id)
        finally:
            if self.remote and self.loop is not None:
                self.loop.shutdown()  # the ENAS actor, if still alive

    def _run(self) -> None:
        with self.runner.read() as session:
            job = JobRepository(session).get(self.job_id)
            assert job is not None
            spec = dict(job.spec)
        resolved = parse_spec(spec)
        components = build_components(resolved)
        self.components = components
        evaluator = components.evaluator
        if hasattr(evaluator, "report"):
            evaluator.report = self._report
        self.backend = self._make_backend(spec, resolved)
        self.remote = self.settings.backend == "ray" and isinstance(
            evaluator, SharedWeightEvaluator
        )
        if self.remote:  # the whole ENAS search in one Ray actor that holds the supernet
            from workers.ray_backend import RemoteSharedWeightSearch

            resources = resolved.spec.resources
            loop: Any = RemoteSharedWeightSearch(
                resolved,
                spec,
                on_trial=self._on_trial,
                on_epoch=self._on_epoch,
                should_stop=self._should_stop,
                cpus=resources.cpus_per_trial,
                gpus=resources.gpus_per_trial,
                max_restarts=resources.max_retries,
            )
        else:
            loop = make_search(
                resolved,
                components,
                on_trial=self._on_trial,
                on_epoch=self._on_epoch,
                on_batch_start=self._on_batch_start,
                on_batch_end=self._on_batch_end,
                should_stop=self._should_stop,
                backend=self.backend,
            )
        self.loop = loop
        self._resume()
        try:
            outcome = loop.run()
        except JobInterrupted:
            outcome = None
        # Shared-weight search checkpoints at epoch ends only (``_on_epoch``); other searches
        # at any point where no candidate is pending.
        shared = isinstance(evaluator, SharedWeightEvaluator)
        self._flush(checkpoint=not shared and not components.controller.pending)
        if self._stop_reason == CANCELLED:
            with session_scope(self.runner.write) as session:
                TrialRepository(session).mark_running_failed(
                    self.job_id, "the job was cancelled while this trial ran"
                )
            self._finish(JobState.CANCELLED, f"cancelled by user after {len(loop.trials)} trials")
            return
        if self._stop_reason is not None or outcome is None:
            self._release()
            return
        final: list[dict[str, Any]] = []
        spec_final = resolved.spec.final
        if spec_final is not None and outcome.ranked:
            top = outcome.ranked[: spec_final.retrain_top_k]
            archs = [arch for arch, _ in top]
            job_dir = self.runner.artifacts / "jobs" / str(self.job_id)
            hparams = ranked_hparams(outcome.trials, top)
            final = retrain(resolved, components.space, archs, out_dir=job_dir, hparams=hparams)
            with session_scope(self.runner.write) as session:
                for item in final:
                    if "weights" in item:
                        path = Path(item["weights"])
                        item["weights"] = str(path.relative_to(self.runner.artifacts))
                        ArtifactRepository(session).add(
                            ArtifactModel(
                                job_id=self.job_id,
                                kind="final_weights",
                                path=item["weights"],
                                size_bytes=path.stat().st_size,
                                meta={"rank": item["rank"], "test_accuracy": item["test_accuracy"]},
                            )
                        )
        summary = summarize(resolved, outcome, components.space, final)
        summary.pop("trials", None)
        self._finish(JobState.SUCCEEDED, outcome.stop_reason, summary=summary, progress=1.0)

    def _make_backend(self, spec: dict[str, Any], resolved: Any) -> Backend:
        # The ENAS search (supernet + controller) runs in this process whatever the backend:
        # running it as one Ray actor is not implemented yet.
        if self.settings.backend == "inline" or isinstance(
            self.components.evaluator, SharedWeightEvaluator
        ):
            return InlineBackend()
        from workers.ray_backend import RayBackend

        resources = resolved.spec.resources
        return RayBackend(
            spec=spec,
            workers=resources.workers,
            cpus_per_trial=resources.cpus_per_trial,
            gpus_per_trial=resources.gpus_per_trial,
            max_retries=resources.max_retries,
        )

    # --- resume ----------------------------------------------------------------------------
    def _resume(self) -> None:
        loop = self.loop
        assert loop is not None
        with session_scope(self.runner.write) as session:
            trials = TrialRepository(session)
            checkpoint = CheckpointRepository(session).get(self.job_id)
            keep = checkpoint.trial_count if checkpoint is not None else 0
            removed = trials.delete_from(self.job_id, keep)
            self._counts = trials.state_counts(self.job_id)
            records = [_record(row) for row in trials.all_before(self.job_id, keep)]
            resumed = checkpoint is not None
            JobRepository(session).set_fields(
                self.job_id,
                n_trials=sum(self._counts.values()),
                state_counts=dict(self._counts),
                **({"resumes": JobModel.resumes + 1} if resumed else {}),
            )
            if checkpoint is not None:
                controller_state = checkpoint.controller_state
                loop_state = checkpoint.loop_state
                evaluator_path = checkpoint.evaluator_path
        if not resumed:
            if removed:
                log.info("job %d: restarting; %d unfinished trials removed", self.job_id, removed)
            return
        if self.remote:
            loop.controller_state = controller_state
            loop.load_state_dict(loop_state, records)
            if evaluator_path is not None:
                path = self.runner.artifacts / evaluator_path
                loop.evaluator_state = path.read_bytes()
                self._supernet_files.append(path)
            log.info("job %d: resumed from the checkpoint at trial %d", self.job_id, len(records))
            return
        self.components.controller.load_state_dict(controller_state)
        loop.load_state_dict(loop_state, records)
        if evaluator_path is not None:
            evaluator = self.components.evaluator
            assert isinstance(evaluator, SharedWeightEvaluator)
            state = torch.load(self.runner.artifacts / evaluator_path, map_location="cpu")
            evaluator.load_state_dict(state)
            self._supernet_files.append(self.runner.artifacts / evaluator_path)
        log.info(
            "job %d: resumed from the checkpoint at trial %d (%d later trials redone)",
            self.job_id,
            len(records),
            removed,
        )

    # --- callbacks from the search loop ----------------------------------------------------
    def _on_batch_start(self, batch: list[Any], first: int) -> None:
        self._batch_first = first
        if self.components.evaluator.instant:
            return
        now = utcnow()
        rows = [
            {
                "job_id": self.job_id,
                "number": first + i,
                "candidate_id": c.id,
                "state": "RUNNING",
                "architecture": c.architecture.to_dict(),
                "arch_key": c.architecture.key[:500],
                "hparams": dict(c.hparams),
                "metrics": {},
                "worker": self.backend.worker_name,
                "started_at": now,
            }
            for i, c in enumerate(batch)
        ]
        self._running.update(r["number"] for r in rows)
        self._counts["RUNNING"] = self._counts.get("RUNNING", 0) + len(rows)
        with session_scope(self.runner.write) as session:
            TrialRepository(session).insert_many(rows)
            self._job_counters(session)

    def _report(self, index: int, epoch: int, values: Any) -> None:
        if self._stop_reason is not None:
            raise JobInterrupted(self._stop_reason)
        with session_scope(self.runner.write) as session:
            TrialRepository(session).add_intermediate(
                self.job_id, self._batch_first + index, epoch, dict(values)
            )

    def _on_trial(self, record: TrialRecord) -> None:
        row = _row(self.job_id, record, record.worker or self.backend.worker_name)
        state = row["state"]
        self._counts[state] = self._counts.get(state, 0) + 1
        if record.number in self._running:
            self._running.discard(record.number)
            self._counts["RUNNING"] -= 1
            self._updates.append(row)
        else:
            self._rows.append(row)

    def _on_batch_end(self) -> None:
        if self._running:  # refused by the budget after they started: not trials
            self._drop_running()
        if self._updates or time.monotonic() - self._last_flush >= self.settings.flush_interval_s:
            self._flush(checkpoint=True)

    def _on_epoch(self, _point: dict[str, Any]) -> None:
        self._flush(checkpoint=True, supernet=True)

    # --- writing ---------------------------------------------------------------------------
    def _flush(self, *, checkpoint: bool, supernet: bool = False) -> None:
        loop = self.loop
        assert loop is not None
        evaluator_path = None
        if checkpoint and isinstance(self.components.evaluator, SharedWeightEvaluator):
            if supernet or not self._supernet_files:
                evaluator_path = self._save_supernet()
            else:
                evaluator_path = str(self._supernet_files[-1].relative_to(self.runner.artifacts))
        with session_scope(self.runner.write) as session:
            trials = TrialRepository(session)
            trials.insert_many(self._rows)
            trials.update_many(self.job_id, self._updates)
            if checkpoint:
                CheckpointRepository(session).save(
                    self.job_id,
                    trial_count=len(loop.trials),
                    controller_state=(
                        loop.controller_state
                        if self.remote
                        else self.components.controller.state_dict()
                    ),
                    loop_state=loop.state_dict(),
                    evaluator_path=evaluator_path,
                )
            self._job_counters(session)
        self._rows, self._updates = [], []
        self._last_flush = time.monotonic()
        # Older supernet files are no longer referenced once the new checkpoint committed.
        while len(self._supernet_files) > 1:
            self._supernet_files.pop(0).unlink(missing_ok=True)

    def _save_supernet(self) -> str:
        evaluator = self.components.evaluator
        assert isinstance(evaluator, SharedWeightEvaluator)
        folder = self.runner.artifacts / "jobs" / str(self.job_id) / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"supernet-{uuid.uuid4().hex[:12]}.pt"
        tmp = path.with_suffix(".tmp")
        if self.remote:
            tmp.write_bytes(self.loop.evaluator_state)
        else:
            torch.save(evaluator.state_dict(), tmp)
        os.replace(tmp, path)
        self._supernet_files.append(path)
        return str(path.relative_to(self.runner.artifacts))

    def _job_counters(self, session: Any) -> None:
        loop = self.loop
        assert loop is not None
        best = loop.best
        JobRepository(session).set_fields(
            self.job_id,
            n_trials=sum(self._counts.values()),
            state_counts={k: v for k, v in self._counts.items() if v},
            progress=round(loop.fraction_done(), 4),
            best_trial_number=None if best is None else best.number,
            best_value=None if best is None else best.result.objective,
            heartbeat_at=utcnow(),
        )

    def _drop_running(self) -> None:
        with session_scope(self.runner.write) as session:
            for number in self._running:
                TrialRepository(session).delete_from(self.job_id, number)
            self._counts["RUNNING"] -= len(self._running)
            self._running.clear()
            self._job_counters(session)

    def _finish(
        self,
        state: JobState,
        reason: str,
        *,
        summary: dict[str, Any] | None = None,
        progress: float | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "state": state.value,
            "reason": reason,
            "finished_at": utcnow(),
            "runner": None,
            "heartbeat_at": None,
        }
        if summary is not None:
            values["summary"] = summary
        if progress is not None:
            values["progress"] = progress
        with session_scope(self.runner.write) as session:
            if state is not JobState.SUCCEEDED:
                counts = TrialRepository(session).state_counts(self.job_id)
                values["state_counts"] = counts
                values["n_trials"] = sum(counts.values())
            JobRepository(session).set_fields(self.job_id, **values)
        log.info("job %d: %s (%s)", self.job_id, state.value, reason)

    def _release(self) -> None:
        """Leave the job RUNNING with no lease: the next runner resumes it at once."""
        with session_scope(self.runner.write) as session:
            JobRepository(session).set_fields(self.job_id, runner=None, heartbeat_at=None)
        log.info("job %d: released at %s", self.job_id, self._stop_reason)


def _row(job_id: int, record: TrialRecord, worker: str) -> dict[str, Any]:
    result = record.result
    return {
        "job_id": job_id,
        "number": record.number,
        "candidate_id": record.candidate_id,
        "state": result.state.value,
        "architecture": record.architecture.to_dict(),
        "arch_key": record.architecture.key[:500],
        "hparams": dict(record.hparams),
        "objective": result.objective,
        "metrics": dict(result.metrics),
        "cost_s": result.cost_s,
        "simulated": result.simulated,
        "error": result.error,
        "worker": worker,
        "epoch": record.epoch,
        "step": record.step,
        "started_at": _ts(record.started_at),
        "finished_at": _ts(record.finished_at),
    }


def _record(row: Any) -> TrialRecord:
    return TrialRecord(
        number=row.number,
        candidate_id=row.candidate_id,
        architecture=Architecture.from_dict(row.architecture),
        hparams=dict(row.hparams or {}),
        result=TrialResult(
            state=TrialState(row.state),
            objective=row.objective,
            metrics=dict(row.metrics or {}),
            cost_s=row.cost_s,
            simulated=row.simulated,
            error=row.error,
        ),
        started_at=row.started_at.timestamp() if row.started_at else 0.0,
        finished_at=row.finished_at.timestamp() if row.finished_at else 0.0,
        epoch=row.epoch,
        step=row.step,
    )

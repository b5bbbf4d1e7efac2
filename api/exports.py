"""A job's best architectures as files: ranking, exports, retraining, and the job's deletion.

Rank K (1-based, like "top-K") is the job's K-th best distinct architecture. A finished
search's own ranking comes first (the summary's ``ranked``: the best trials, or for ENAS the
architectures derived from the supernet; final retraining trained these), then the other
architectures of completed trials by their best objective (ties: the earlier trial first).

Exports use the architecture's retrained weights when there are some (the ``final:`` section
of the spec, or ``POST /jobs/{id}/retrain``), else freshly initialised weights, and say which.
Files are written under ``<artifacts>/jobs/{id}/exports/`` and recorded as artifacts (kind
``export``); they are deleted with their job, like every file under ``<artifacts>/jobs/{id}``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.auth import Principal
from api.db import session_scope
from api.models import ArtifactModel, JobModel, JobState, utcnow
from api.repositories import ArtifactRepository, JobRepository, TrialRepository
from api.services import ConflictError, JobService, NotFoundError
from nas.architecture import Architecture
from nas.datasets import DATASETS, NB201_DATASETS, load_dataset
from nas.errors import ExportError
from nas.export import (
    FORMATS,
    ExportFormat,
    export_json,
    export_onnx,
    export_pytorch_source,
    export_torchscript,
    get_format,
    load_network,
    model_card,
)
from nas.models import NETWORKS
from nas.spaces import SPACES, SearchSpace
from nas.spec import FinalSpec, ResolvedSpec, parse_spec

log = logging.getLogger("nas.exports")

#: Input shape and classes of the NAS-Bench-201 datasets (the table has no arrays to read them
#: from): CIFAR-10/100 images are 32x32, ImageNet16-120 images 16x16.
NB201_INPUTS: dict[str, tuple[tuple[int, ...], int]] = {
    "nb201-cifar10": ((3, 32, 32), 10),
    "nb201-cifar100": ((3, 32, 32), 100),
    "nb201-imagenet16-120": ((3, 16, 16), 120),
}
#: Formats that are only useful with trained weights (refused without, unless asked).
NEEDS_WEIGHTS = ("torchscript", "onnx")
#: The download's file suffix where it differs from the format's own (pytorch: a zip).
SUFFIXES = {"pytorch": ".zip"}
#: How a retraining's trial row names its worker: ``host:pid:retrain``.
RETRAIN_WORKER = ":retrain"


class InvalidRequestError(ValueError):
    """A request parameter is invalid (422); ``loc`` is its path, e.g. ``["query", "rank"]``."""

    def __init__(self, loc: list[str], msg: str) -> None:
        self.loc = loc
        super().__init__(msg)

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": self.loc, "msg": str(self), "type": "value_error"}]


def job_dir(artifacts: Path, job_id: int) -> Path:
    return artifacts / "jobs" / str(job_id)


# --- ranking ------------------------------------------------------------------------------
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


def _maximize(job: JobModel) -> bool:
    return (job.spec.get("objective") or {}).get("direction", "maximize") == "maximize"


def rank_architecture(session: Session, job: JobModel, rank: int) -> RankedArchitecture:
    """The job's ``rank``-th best distinct architecture. ``ConflictError`` when the job has
    none yet, ``InvalidRequestError`` when ``rank`` is out of range."""
    summary = job.summary or {}
    listed = [
        (Architecture.from_dict(item["architecture"]), item.get("score"))
        for item in summary.get("ranked") or []
    ]
    keys = [arch.key[:500] for arch, _ in listed]
    trials = TrialRepository(session)
    maximize = _maximize(job)
    count = len(listed) + trials.count_ranked(job.id, exclude_keys=keys)
    if count == 0:
        raise ConflictError(
            f"job {job.id} has no completed trial yet ({job.state}); there is nothing to "
            "export or retrain"
        )
    if not 1 <= rank <= count:
        raise InvalidRequestError(
            ["query", "rank"],
            f"rank {rank} is out of range: job {job.id} has {count} distinct ranked "
            f"architecture{'s' if count != 1 else ''}; valid: 1..{count} (1 is the best)",
        )
    if rank <= len(listed):
        arch, score = listed[rank - 1]
        trial = trials.best_of_architecture(job.id, arch.key[:500], maximize=maximize)
    else:
        key, score = trials.ranked_architecture(
            job.id, rank - 1 - len(listed), exclude_keys=keys, maximize=maximize
        )
        trial = trials.best_of_architecture(job.id, key, maximize=maximize)
        assert trial is not None  # the ranking came from it
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


# --- what a job's networks look like ------------------------------------------------------
@lru_cache(maxsize=32)
def _dataset_io(name: str, seed: int, params_json: str) -> tuple[tuple[int, ...], int]:
    data = load_dataset(name, seed=seed, **json.loads(params_json))
    return tuple(int(v) for v in data.input_shape), int(data.num_classes)


def dataset_io(resolved: ResolvedSpec) -> tuple[tuple[int, ...], int]:
    """Input shape (one example) and number of classes of the job's dataset."""
    name = resolved.spec.dataset.name
    if name in NB201_INPUTS:
        return NB201_INPUTS[name]
    params = json.dumps(resolved.dataset_params, sort_keys=True, default=str)
    return _dataset_io(name, resolved.spec.seed, params)


def search_space(resolved: ResolvedSpec) -> SearchSpace:
    return SPACES.get(resolved.spec.space.name).from_config(resolved.space_params)


def network_space(resolved: ResolvedSpec, final: Mapping[str, Any] | None) -> SearchSpace:
    """The space the exported network is built in: that of the retraining that made the
    weights, else the search space with the ``final:`` width override (what a retraining
    would build, so that its weights fit the same ``model.py``)."""
    from workers.final import final_space

    space = search_space(resolved)
    if final is not None and final.get("space_config") is not None:
        return SPACES.get(space.name).from_config(final["space_config"])
    return final_space(resolved, space)


def trainable_problem(resolved: ResolvedSpec) -> str | None:
    """Why the job's architectures cannot be trained from scratch here, or ``None``."""
    dataset, space = resolved.spec.dataset.name, resolved.spec.space.name
    if DATASETS.get(dataset).load is None or dataset in NB201_DATASETS:
        return (
            f"its dataset {dataset!r} is a tabular benchmark (accuracies read from the "
            "NAS-Bench-201 table): there is no data here to train on"
        )
    if space not in NETWORKS:
        return f"space {space!r} has no trainable network (trainable: {', '.join(NETWORKS)})"
    return None


# --- exports ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportPlan:
    """What one export request will write: decided from the database, written without it."""

    job_id: int
    job_name: str
    spec: dict[str, Any]
    fmt: ExportFormat
    ranked: RankedArchitecture
    weights: Path | None  # absolute path of the retrained weights
    summary_final_metrics: dict[str, Any]

    @property
    def suffix(self) -> str:
        return SUFFIXES.get(self.fmt.name, self.fmt.suffix)

    @property
    def relative_path(self) -> str:
        """Where the file goes, relative to the artifacts folder."""
        tag = "" if self.weights is not None else "-untrained"
        name = f"rank{self.ranked.rank}-{self.fmt.name}{tag}{self.suffix}"
        return f"jobs/{self.job_id}/exports/{name}"

    @property
    def filename(self) -> str:
        return f"{self.job_name}-job{self.job_id}-rank{self.ranked.rank}{self.suffix}"

    @property
    def media_type(self) -> str:
        return "application/zip" if self.fmt.name == "pytorch" else self.fmt.media_type

    def meta(self, artifacts: Path) -> dict[str, Any]:
        weights = None if self.weights is None else str(self.weights.relative_to(artifacts))
        return {
            "format": self.fmt.name,
            "rank": self.ranked.rank,
            "architecture": self.ranked.architecture.key,
            "score": self.ranked.score,
            "trial": self.ranked.trial_number,
            "ranked": self.ranked.count,
            "weights": weights,
        }


def plan_export(
    session: Session,
    artifacts: Path,
    principal: Principal,
    job_id: int,
    fmt: str,
    rank: int,
    *,
    untrained: bool = False,
) -> ExportPlan:
    """Check an export request: 404 (``NotFoundError``), 409 (``ConflictError``) or 422
    (``InvalidRequestError``) before anything is built."""
    job = JobService(session).get(principal, job_id)
    resolved = parse_spec(job.spec)
    try:
        get_format(fmt)
        export_format = get_format(fmt, resolved.spec.space.name)
    except ExportError as exc:
        raise InvalidRequestError(["query", "format"], str(exc)) from None
    ranked = rank_architecture(session, job, rank)
    weights = None
    if ranked.final is not None:
        path = artifacts / ranked.final["weights"]
        if path.is_file():
            weights = path
        else:
            log.warning("job %d: retrained weights %s are missing", job.id, path)
    if weights is None and export_format.name in NEEDS_WEIGHTS and not untrained:
        raise ConflictError(_no_weights_message(job.id, rank, export_format.name, resolved))
    summary = job.summary or {}
    best = summary.get("best") or {}
    final_metrics = dict(best.get("final_metrics") or {}) if rank == 1 else {}
    return ExportPlan(
        job_id=job.id,
        job_name=job.name,
        spec=dict(job.spec),
        fmt=export_format,
        ranked=ranked,
        weights=weights,
        summary_final_metrics=final_metrics,
    )


def _no_weights_message(job_id: int, rank: int, fmt: str, resolved: ResolvedSpec) -> str:
    problem = trainable_problem(resolved)
    head = (
        f"job {job_id} has no trained weights for rank {rank}; {_FORMAT_NAMES[fmt]} model "
        "with random weights predicts nothing. "
    )
    if problem is None:
        fix = (
            f"Retrain it first: 'nas retrain {job_id} --rank {rank}' (POST /api/v1/jobs/"
            f"{job_id}/retrain?rank={rank}), then export again"
        )
    else:
        fix = (
            f"It cannot be retrained here: {problem}. Export format=pytorch (model.py with "
            "build()) and train it on the real data yourself"
        )
    return head + fix + "; or add untrained=true for the bare graph (e.g. to time it)."


_FORMAT_NAMES = {"torchscript": "a TorchScript", "onnx": "an ONNX"}


def _weights_note(plan: ExportPlan) -> str:
    final = plan.ranked.final
    if plan.weights is not None and final is not None:
        accuracy = final.get("test_accuracy")
        tested = "" if accuracy is None else f", test accuracy {accuracy:.2f}"
        return f"trained, from scratch with the job's final recipe{tested}"
    problem = trainable_problem(parse_spec(plan.spec))
    if problem is None:
        fix = f"run 'nas retrain {plan.job_id} --rank {plan.ranked.rank}'"
    else:
        fix = f"it cannot be retrained by the service ({problem}); train model.py yourself"
    return f"none, freshly initialised; {fix}"


def _metrics(plan: ExportPlan, resolved: ResolvedSpec) -> dict[str, Any]:
    ranked = plan.ranked
    metrics: dict[str, Any] = {}
    if ranked.score is not None:
        metrics[resolved.spec.objective.metric] = ranked.score
    for name, value in {**ranked.metrics, **plan.summary_final_metrics}.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics.setdefault(name, value)
    if plan.weights is not None and ranked.final is not None:
        for name in ("test_accuracy", "train_loss"):
            if ranked.final.get(name) is not None:
                metrics[f"retrained_{name}"] = ranked.final[name]
    return metrics


def write_export(plan: ExportPlan, artifacts: Path) -> Path:
    """Build the export's file (atomically replaced) and return its absolute path."""
    resolved = parse_spec(plan.spec)
    ranked, fmt = plan.ranked, plan.fmt.name
    space = network_space(resolved, ranked.final if plan.weights is not None else None)
    arch = ranked.architecture
    input_shape, num_classes = dataset_io(resolved)
    metrics = _metrics(plan, resolved)
    target = artifacts / plan.relative_path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if fmt == "json":
            tmp.write_text(json.dumps(_json_document(plan, resolved, space, metrics), indent=2))
        elif fmt == "pytorch":
            tmp.write_bytes(_pytorch_zip(plan, resolved, space, metrics))
        else:
            model = load_network(space, arch, input_shape, num_classes, plan.weights)
            if fmt == "torchscript":
                export_torchscript(model, input_shape, tmp)
            elif fmt == "onnx":
                export_onnx(model, input_shape, tmp)
            else:
                tmp.write_text(_card(plan, resolved, space, model, metrics), encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _json_document(
    plan: ExportPlan, resolved: ResolvedSpec, space: SearchSpace, metrics: dict[str, Any]
) -> dict[str, Any]:
    input_shape, num_classes = dataset_io(resolved)
    data = export_json(
        space,
        plan.ranked.architecture,
        input_shape=input_shape,
        num_classes=num_classes,
        hyperparameters=plan.ranked.hparams,
        metrics=metrics,
        job_id=str(plan.job_id),
        trial=plan.ranked.trial_number,
        seed=resolved.spec.seed,
    )
    data["rank"] = plan.ranked.rank
    data["ranked_architectures"] = plan.ranked.count
    data["weights"] = _weights_note(plan)
    final = plan.ranked.final if plan.weights is not None else None
    data["final"] = (
        None
        if final is None
        else {k: v for k, v in final.items() if k not in ("architecture", "genotype", "weights")}
    )
    if final is not None:
        data["final"]["recipe"] = (resolved.spec.final or FinalSpec()).model_dump()
    return data


def _pytorch_zip(
    plan: ExportPlan, resolved: ResolvedSpec, space: SearchSpace, metrics: dict[str, Any]
) -> bytes:
    """model.py (standalone, imports torch only), weights.pt when trained (loads into it
    strictly: checked here), and architecture.json."""
    arch = plan.ranked.architecture
    input_shape, num_classes = dataset_io(resolved)
    source = export_pytorch_source(space, arch, input_shape, num_classes)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.py", source)
        if plan.weights is not None:
            load_network(space, arch, input_shape, num_classes, plan.weights)  # strict check
            archive.write(plan.weights, "weights.pt")
        document = _json_document(plan, resolved, space, metrics)
        archive.writestr("architecture.json", json.dumps(document, indent=2) + "\n")
    return buffer.getvalue()


def _card(
    plan: ExportPlan,
    resolved: ResolvedSpec,
    space: SearchSpace,
    model: Any,
    metrics: dict[str, Any],
) -> str:
    input_shape, _ = dataset_io(resolved)
    rank, job_id = plan.ranked.rank, plan.job_id
    hyperparameters = dict(plan.ranked.hparams)
    if plan.weights is not None:
        recipe = (resolved.spec.final or FinalSpec()).model_dump()
        hyperparameters.update({f"final.{k}": v for k, v in recipe.items() if v is not None})
    command = (
        f"nas submit job{job_id}-spec.json   # the job's spec: GET /api/v1/jobs/{job_id}\n"
        f"nas retrain {job_id} --rank {rank}\n"
        f"nas export {job_id} --format pytorch --rank {rank} -o model.zip"
    )
    card = model_card(
        space,
        plan.ranked.architecture,
        model,
        input_shape,
        accuracies=metrics,
        command=command,
        hyperparameters=hyperparameters,
        job_id=str(job_id),
        trial=plan.ranked.trial_number,
        seed=resolved.spec.seed,
        latency_runs=20,
    )
    title, _, rest = card.partition("\n")
    note = (
        f"Rank {rank} of {plan.ranked.count} distinct architectures of job {job_id} "
        f"({plan.job_name}). **Weights: {_weights_note(plan)}.**"
    )
    if plan.weights is None:
        note += " The accuracies below are the search's estimates, not of these weights."
    return f"{title}\n\n{note}\n{rest}"


def record_export(session: Session, plan: ExportPlan, artifacts: Path, path: Path) -> None:
    """Record (or refresh) the export's artifact row; ``NotFoundError`` if the job was
    deleted meanwhile (the file is then removed)."""
    if JobRepository(session).lock(plan.job_id) is None:
        path.unlink(missing_ok=True)
        raise NotFoundError(f"job {plan.job_id} not found")
    ArtifactRepository(session).put(
        job_id=plan.job_id,
        kind="export",
        path=plan.relative_path,
        size_bytes=path.stat().st_size,
        meta=plan.meta(artifacts),
    )


def cached_export(session: Session, plan: ExportPlan, artifacts: Path) -> Path | None:
    """The file of an earlier identical export (same rank, architecture, score, weights)."""
    row = ArtifactRepository(session).by_path(plan.job_id, plan.relative_path)
    if row is None or row.meta != plan.meta(artifacts):
        return None
    path = artifacts / row.path
    return path if path.is_file() else None


# --- retraining ---------------------------------------------------------------------------
class Retrainings:
    """The retrainings running in this process (background threads, at most ``limit`` at
    once; the rest wait for a slot). A retraining is a trial of its job: RUNNING while it
    trains, COMPLETE (metrics: test accuracy, ...) or FAIL when done."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._live: dict[int, set[int]] = {}  # job id -> trial numbers
        self.worker = f"{socket.gethostname()}:{os.getpid()}{RETRAIN_WORKER}"

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

    def run(self, job_id: int, number: int, work: Callable[[], None]) -> None:
        self._add(job_id, number)

        def target() -> None:
            try:
                with self._slots:
                    work()
            finally:
                self._done(job_id, number)

        threading.Thread(target=target, name=f"nas-retrain-{job_id}-{number}", daemon=True).start()


def _reap_stale(session: Session, job_id: int, retrainings: Retrainings) -> None:
    """Fail RUNNING trials of a finished job that no live retraining owns (their server
    stopped while they trained)."""
    from api.runner import runner_is_dead

    trials = TrialRepository(session)
    live = retrainings.running(job_id)
    stale = [
        t
        for t in trials.running(job_id, worker_suffix=RETRAIN_WORKER)
        if (t.worker == retrainings.worker and t.number not in live) or runner_is_dead(t.worker)
    ]
    for trial in stale:
        trials.finish(
            job_id,
            trial.number,
            state="FAIL",
            error="the server stopped while this retraining ran",
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
) -> RetrainStarted:
    """Record the retraining of rank ``rank`` as a new RUNNING trial of the job (the next
    number, in one transaction with the job's counts) and start it in the background."""
    with session_scope(write) as session:
        JobService(session).get(principal, job_id)  # 404 before anything else
        job = JobRepository(session).lock(job_id)
        assert job is not None
        resolved = parse_spec(job.spec)
        problem = trainable_problem(resolved)
        if problem is not None:
            raise InvalidRequestError(
                ["path", "job_id"], f"job {job_id} cannot be retrained: {problem}"
            )
        if not JobState(job.state).is_finished():
            raise ConflictError(
                f"job {job_id} is {job.state}; retrain its architectures once it has finished"
            )
        _reap_stale(session, job_id, retrainings)
        running = TrialRepository(session).running(job_id, worker_suffix=RETRAIN_WORKER)
        if running:
            raise ConflictError(
                f"a retraining of job {job_id} is still running (trial {running[0].number}); "
                "wait until it has finished"
            )
        ranked = rank_architecture(session, job, rank)
        trials = TrialRepository(session)
        number = max(job.n_trials, trials.next_number(job_id))
        trials.insert_many(
            [
                {
                    "job_id": job_id,
                    "number": number,
                    "candidate_id": -1,  # not a controller candidate
                    "state": "RUNNING",
                    "architecture": ranked.architecture.to_dict(),
                    "arch_key": ranked.architecture.key[:500],
                    "hparams": dict(ranked.hparams),
                    "metrics": {},
                    "worker": retrainings.worker,
                    "started_at": utcnow(),
                }
            ]
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
            write, artifacts, spec, started, ranked.architecture, dict(ranked.hparams)
        ),
    )
    return started


def _retrain(
    write: sessionmaker[Session],
    artifacts: Path,
    spec: dict[str, Any],
    started: RetrainStarted,
    arch: Architecture,
    hparams: dict[str, Any] | None = None,
) -> None:
    from workers.final import retrain

    job_id, number = started.job_id, started.trial_number
    folder = job_dir(artifacts, job_id) / "final"
    scratch = folder / f".retrain-{number}-{uuid.uuid4().hex[:8]}"
    began = time.perf_counter()
    try:
        resolved = parse_spec(spec)
        (item,) = retrain(
            resolved, search_space(resolved), [arch], out_dir=scratch, hparams=[hparams or {}]
        )
        weights = folder / f"retrain-trial{number}.pt"
        os.replace(item["weights"], weights)
    except Exception as exc:
        log.exception("job %d: retraining (trial %d) failed", job_id, number)
        _finish_retrain(write, started, error=f"{type(exc).__name__}: {exc}", began=began)
        return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    item.update(weights=str(weights.relative_to(artifacts)), rank=started.rank - 1, trial=number)
    try:
        _finish_retrain(write, started, item=item, began=began, weights=weights)
    except Exception:
        weights.unlink(missing_ok=True)
        raise


def _finish_retrain(
    write: sessionmaker[Session],
    started: RetrainStarted,
    *,
    began: float,
    item: dict[str, Any] | None = None,
    error: str | None = None,
    weights: Path | None = None,
) -> None:
    job_id, number = started.job_id, started.trial_number
    with session_scope(write) as session:
        job = JobRepository(session).lock(job_id)
        if job is None:  # deleted meanwhile (DELETE refuses while a retraining runs)
            if weights is not None:
                weights.unlink(missing_ok=True)
            return
        trials = TrialRepository(session)
        values: dict[str, Any] = {
            "finished_at": utcnow(),
            "cost_s": round(time.perf_counter() - began, 3),
        }
        if item is None:
            trials.finish(job_id, number, state="FAIL", error=error, **values)
        else:
            metrics = {
                k: item[k]
                for k in ("test_accuracy", "train_loss", "params", "flops", "train_seconds")
            }
            trials.finish(job_id, number, state="COMPLETE", metrics=metrics, **values)
            assert weights is not None
            ArtifactRepository(session).add(
                ArtifactModel(
                    job_id=job_id,
                    kind="final_weights",
                    path=item["weights"],
                    size_bytes=weights.stat().st_size,
                    meta={
                        "rank": item["rank"],
                        "test_accuracy": item["test_accuracy"],
                        "trial": number,
                    },
                )
            )
            summary = dict(job.summary or {})
            summary["final"] = [*(summary.get("final") or []), item]
            JobRepository(session).set_fields(job_id, summary=summary)
        JobRepository(session).set_fields(job_id, state_counts=trials.state_counts(job_id))


# --- deletion -----------------------------------------------------------------------------
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


__all__ = [
    "FORMATS",
    "NB201_INPUTS",
    "ExportPlan",
    "InvalidRequestError",
    "RankedArchitecture",
    "RetrainStarted",
    "Retrainings",
    "cached_export",
    "dataset_io",
    "delete_job",
    "plan_export",
    "rank_architecture",
    "record_export",
    "start_retrain",
    "write_export",
]

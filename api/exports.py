"""Exports of a job's ranked architectures (``api.ranking``) as files.

Exports use the architecture's retrained weights when there are some (the ``final:`` section
of the spec, or ``POST /jobs/{id}/retrain``: ``api.retraining``), else the weights its
search learned (a meta-learning job's best: ``meta-weights.pt`` among the job's files, the
meta-learned initialisation, exported with ``adapt``; a metric-based learner's embedding,
with ``classify``), else freshly initialised weights, and
say which. A request is planned from the database (``plan_export``), written
without it by the format's own writer (``nas.export.FORMATS``: the one dispatch on a format;
a download is the format's bundled form, e.g. pytorch's zip), and recorded. Files are written
under ``<artifacts>/jobs/{id}/exports/`` and recorded as artifacts (kind ``export``); they are
deleted with their job, like every file under ``<artifacts>/jobs/{id}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

import torch
from sqlalchemy.orm import Session

from api.auth import Principal
from api.models import JobModel, JobState
from api.ranking import InvalidRequestError, RankedArchitecture, rank_architecture
from api.repositories import ArtifactRepository, JobRepository, TrialRepository
from api.retraining import RETRAIN_WORKER, job_dir, trainable_problem
from api.services import ConflictError, JobService, NotFoundError, check_job_files
from api.settings import Settings
from api.storage import storage_error
from nas.architecture import Architecture
from nas.datasets import DATASETS, dataset_shape
from nas.errors import ExportError
from nas.evaluators import EVALUATORS
from nas.export import ExportContext, ExportFormat, get_format, supported_formats
from nas.export.formats.model_card import describe_metric
from nas.metalearning import META_WEIGHTS_FILE, MetaWeights
from nas.spaces import SPACES, SearchSpace
from nas.spec import FinalSpec, ResolvedSpec
from workers.final import final_space, retraining_recipe

log = logging.getLogger("nas.exports")

__all__ = [
    "ExportPlan",
    "cached_export",
    "export_context",
    "network_space",
    "plan_export",
    "record_export",
    "write_export",
]

#: A download is the format's bundled form where it has one (pytorch: model.py, weights.pt
#: and architecture.json in a zip).
BUNDLE = True


def network_space(resolved: ResolvedSpec, final: Mapping[str, Any] | None) -> SearchSpace:
    """The space the exported network is built in: that of the retraining that made the
    weights, else the search space with the ``final:`` width override (what a retraining
    would build, so that its weights fit the same ``model.py``; with ``channels: fit``, whose
    width is chosen per architecture when it is retrained, the searched width)."""
    space = resolved.build_space()
    if final is not None and final.get("space_config") is not None:
        return SPACES.get(space.name).from_config(final["space_config"])
    return final_space(resolved, space)


#: Bumped when what an export writes for the same job changes (2: few-shot embeddings and
#: their notes; 3: their TorchScript and ONNX; 4: the recipe with the trial's
#: hyperparameters), so that a file cached before is written again, not served.
EXPORT_REVISION = 4


@dataclass(frozen=True)
class ExportPlan:
    """What one export request will write: decided from the database, written without it."""

    job_id: int
    job_name: str
    spec: dict[str, Any]
    fmt: ExportFormat
    ranked: RankedArchitecture
    weights: Path | None  # absolute path of the retrained (or meta-learned) weights
    summary_final_metrics: dict[str, Any]
    #: ``weights`` is the search's ``MetaWeights`` file (meta-learned), not a retraining's.
    meta_learned: bool = False
    #: ... of an embedding (the network up to its classifier; protonet, matching, pretrain):
    #: its ``comparison`` kind (``MetaWeights.comparison``), else ``None``.
    embedding: str | None = None
    #: Without weights: why they cannot be retrained now (``_pending_weights``), else ``None``.
    pending: str | None = None

    @property
    def suffix(self) -> str:
        return self.fmt.file_suffix(BUNDLE)

    @property
    def relative_path(self) -> str:
        """Where the file goes, relative to the artifacts folder."""
        tag = "" if self.weights is not None else "-untrained"
        name = f"rank{self.ranked.rank}-{self.fmt.name}{tag}{self.suffix}"
        return f"jobs/{self.job_id}/exports/{name}"

    @property
    def filename(self) -> str:
        """The download's name; a network with random weights says so (``-untrained``), so
        that it is never taken for the trained one once downloaded."""
        tag = "-untrained" if self.weights is None and self.fmt.needs_network else ""
        return f"{self.job_name}-job{self.job_id}-rank{self.ranked.rank}{tag}{self.suffix}"

    @property
    def media_type(self) -> str:
        return self.fmt.file_media_type(BUNDLE)

    def meta(self, artifacts: Path) -> dict[str, Any]:
        weights = None if self.weights is None else str(self.weights.relative_to(artifacts))
        return {
            "revision": EXPORT_REVISION,
            "format": self.fmt.name,
            "rank": self.ranked.rank,
            "architecture": self.ranked.architecture.key,
            "score": self.ranked.score,
            "trial": self.ranked.trial_number,
            "ranked": self.ranked.count,
            "weights": weights,
            # the note on missing weights follows the job's state (running, retraining)
            "pending": self.pending,
        }


def plan_export(
    session: Session,
    artifacts: Path,
    principal: Principal,
    job_id: int,
    fmt: str,
    rank: int,
    *,
    settings: Settings,
    untrained: bool = False,
) -> ExportPlan:
    """Check an export request: 404 (``NotFoundError``), 409 (``ConflictError``) or 422
    (``InvalidRequestError``) before anything is built."""
    job = JobService(session).get(principal, job_id)
    resolved = ResolvedSpec.from_stored(job.spec)
    # what building the network reads
    check_job_files(job, settings, ("space", "dataset"), resolved=resolved)
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
        elif export_format.holds_weights and not untrained:
            # Retrained, but the file is not here: not "retrain it first" (or the network
            # with random weights, which the pytorch bundle would have written).
            log.warning("job %d: retrained weights %s are missing", job.id, path)
            raise ConflictError(
                f"job {job.id}: the retrained weights of rank {rank} ({ranked.final['weights']}"
                ") are not in this server's artifacts folder (NAS_ARTIFACTS_DIR; servers that "
                "share a database must share it too); export from the server that retrained "
                f"it, or retrain it here ('nas retrain {job.id} --rank {rank}'), or add "
                "untrained=true for the bare graph"
            )
        else:
            log.warning("job %d: retrained weights %s are missing", job.id, path)
    meta = None
    if weights is None:
        meta = _meta_weights(artifacts, job.id, ranked)
        weights = None if meta is None else meta[0]
    comparison = None if meta is None else meta[1].comparison
    embedding = None if comparison is None else str(comparison.get("kind"))
    if weights is None and export_format.needs_weights and not untrained:
        raise ConflictError(_no_weights_message(session, job, rank, export_format, resolved))
    evaluator = EVALUATORS.get(resolved.spec.evaluator.name)
    graph = evaluator.learns_graph(resolved.evaluator_params)
    if embedding is not None and export_format.needs_weights and not graph:
        if not untrained:
            raise ConflictError(
                f"job {job.id}: its {evaluator.name} search learned an embedding with "
                "full-context embeddings (fce): LSTMs that read a task's whole support set, "
                f"which {export_format.noun} of one example's pass cannot hold. Export "
                "format=pytorch: model.py's classify() runs them (context.pt); or add "
                "untrained=true for the bare graph (e.g. to time it)"
            )
        meta, weights, embedding = None, None, None  # the bare graph asked for
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
        meta_learned=meta is not None,
        embedding=embedding,
        pending=None if weights is not None else _pending_weights(session, job, rank, resolved),
    )


def _check_readable(job_id: int, rank: int, path: Path) -> None:
    """A 409 for a retrained weights file that cannot be read (damaged on disk): the
    network formats would fail on it deep inside the build."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, UnpicklingError) as exc:
        log.warning("job %d: retrained weights %s unreadable: %s", job_id, path, exc)
        raise ConflictError(
            f"job {job_id}: the retrained weights of rank {rank} ({path.name}) cannot be read; "
            f"retrain it again ('nas retrain {job_id} --rank {rank}'), then export again"
        ) from None


def _meta_weights(
    artifacts: Path, job_id: int, ranked: RankedArchitecture
) -> tuple[Path, MetaWeights] | None:
    """The job's meta-learned weights file (and what it holds) when they are of
    ``ranked``'s architecture (the search's best), else ``None``."""
    path = job_dir(artifacts, job_id) / "files" / META_WEIGHTS_FILE
    if not path.is_file():
        return None
    try:
        meta = MetaWeights.load(path)
        arch = Architecture.from_dict(meta.architecture)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, UnpicklingError) as exc:
        # an unreadable file exports as if it were not there
        log.warning("job %d: meta-learned weights %s unreadable: %s", job_id, path, exc)
        return None
    return (path, meta) if arch == ranked.architecture else None


def _pending_weights(
    session: Session, job: JobModel, rank: int, resolved: ResolvedSpec
) -> str | None:
    """Why a rank without weights has none yet, and when to export again: the job is still
    queued or running (its ``final:`` retrains it, or a retraining can once it ends, or the
    search keeps its best's meta-learned weights when it ends), or a retraining of the job
    runs; else ``None`` (also for a rank that can never have any here)."""
    problem = trainable_problem(resolved)
    if job.state in (JobState.QUEUED.value, JobState.RUNNING.value):
        final = resolved.spec.final
        if problem is None and final is not None and rank <= final.retrain_top_k:
            return (
                f"the job is {job.state}: its final: section retrains its top "
                f"{final.retrain_top_k} once the search ends; export again when it has finished"
            )
        if problem is None:
            return (
                f"the job is {job.state}: once it has finished, retrain it ('nas retrain "
                f"{job.id} --rank {rank}'), then export again"
            )
        if EVALUATORS.get(resolved.spec.evaluator.name).meta_learning and rank == 1:
            return (
                f"the job is {job.state}: the search keeps its best architecture's "
                "meta-learned weights when it ends; export again when it has finished"
            )
        return None
    if problem is not None:
        return None
    retraining = TrialRepository(session).running(job.id, worker_suffix=RETRAIN_WORKER)
    if retraining:
        return (
            f"a retraining of this job is running (trial {retraining[0].number}); export "
            "again when it has finished"
        )
    return None


def _no_weights_message(
    session: Session, job: JobModel, rank: int, fmt: ExportFormat, resolved: ResolvedSpec
) -> str:
    job_id = job.id
    problem = trainable_problem(resolved)
    head = (
        f"job {job_id} has no trained weights for rank {rank}; {fmt.noun} with random "
        "weights predicts nothing. "
    )
    pending = _pending_weights(session, job, rank, resolved)
    if pending is not None:
        fix = pending[0].upper() + pending[1:]
    elif problem is None:
        fix = (
            f"Retrain it first: 'nas retrain {job_id} --rank {rank}' (POST /api/v1/jobs/"
            f"{job_id}/retrain?rank={rank}), then export again"
        )
    elif (evaluator := EVALUATORS.get(resolved.spec.evaluator.name)).meta_learning and not (
        evaluator.learns_weights
    ):
        graph = (
            f" ({fmt.noun} of it answers embeddings)"
            if evaluator.learns_graph(resolved.evaluator_params)
            else ""
        )
        kept = (
            f"and keeps it for its best architecture only: export rank 1{graph}; as "
            "format=pytorch, model.py's classify() labels a task's queries with it"
            if rank > 1
            else "and this job kept none (it ended before embeddings were exported, or was "
            "cancelled): submit its spec again for one"
        )
        fix = f"A {evaluator.name} search learns an embedding, not this forward pass, {kept}"
    else:
        fix = (
            f"It cannot be retrained here: {problem}. Export format=pytorch (model.py with "
            "build()) and train it on the real data yourself"
        )
    return head + fix + "; or add untrained=true for the bare graph (e.g. to time it)."


def _weights_note(plan: ExportPlan, resolved: ResolvedSpec) -> str:
    evaluator = EVALUATORS.get(resolved.spec.evaluator.name)
    graphs = (
        "; TorchScript and ONNX hold the embedding (output `embedding`"
        + (
            ")"
            if plan.embedding == "finetune"
            else ", its batch norms normalising each call's batch: embed a task's examples "
            "together)"
        )
        if evaluator.learns_graph(resolved.evaluator_params)
        else ""
    )
    if plan.embedding == "finetune":
        return (
            f"pretrained by the search ({evaluator.name}): the network up to "
            "its classifier is the pretrained body (the classifier over the pretraining "
            "classes is not exported; this one keeps its initial weights); model.py's "
            "classify() labels a new task's query examples by a new head fitted on its "
            f"support set's embeddings{graphs}"
        )
    if plan.embedding is not None:
        return (
            f"meta-learned by the search ({evaluator.name}): the network up to "
            "its classifier is an embedding; model.py's classify() labels a new task's query "
            "examples by comparing their embeddings with its support set's. The classifier "
            f"layer keeps its initial weights: meta-training never used it{graphs}"
        )
    if plan.meta_learned:
        return (
            f"meta-learned by the search ({resolved.spec.evaluator.name}): an initialisation "
            "to adapt to a new task from its support set with model.py's adapt(); TorchScript "
            "and ONNX are its unadapted forward pass in eval mode, where batch norms (if any) "
            "use running statistics that meta-training never set"
        )
    final = plan.ranked.final
    if plan.weights is not None and final is not None:
        accuracy = final.get("test_accuracy")
        tested = "" if accuracy is None else f", test accuracy {accuracy:.2f}"
        # (a job without a final: section retrains, with nas retrain, by its defaults)
        recipe = "final recipe" if resolved.spec.final is not None else "final: defaults"
        return f"trained, from scratch with the job's {recipe}{tested}"
    space = resolved.spec.space.name
    if "pytorch" not in supported_formats(space):
        return f"none: space {space!r} builds no network, its architectures are choices only"
    if plan.pending is not None:
        return f"none, freshly initialised; {plan.pending}"
    if evaluator.meta_learning and not evaluator.learns_weights:
        why = (
            "the search keeps the learned embedding of its best architecture (rank 1) only"
            if plan.ranked.rank > 1
            else "the search kept none for it (a job that ended before embeddings were "
            "exported, or that was cancelled)"
        )
        return (
            f"none, freshly initialised: {why}; the metrics are those of the embedding it "
            f"learned, which the network of model.py becomes only when trained as the "
            f"{evaluator.name} evaluator trains it"
        )
    problem = trainable_problem(resolved)
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


def _recipe(final: FinalSpec, hparams: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``final:`` section that retrained the weights, with what the ranking trial's
    training hyperparameters set over it (``workers.final.retraining_recipe``)."""
    given = dataclasses.asdict(retraining_recipe(final))
    used = dataclasses.asdict(retraining_recipe(final, hparams))
    return final.model_dump() | {k: v for k, v in used.items() if v != given[k]}


def export_context(plan: ExportPlan, resolved: ResolvedSpec) -> ExportContext:
    """What the job knows about the planned export: the architecture in the space its weights
    fit, its metrics, provenance and what the job adds to the JSON document (rank, ranked
    count, a note on the weights, the retraining) and to the model card (the same note)."""
    ranked, job_id, rank = plan.ranked, plan.job_id, plan.ranked.rank
    meta = MetaWeights.load(plan.weights) if plan.meta_learned and plan.weights else None
    final = ranked.final if plan.weights is not None and meta is None else None
    recipe = (
        _recipe(resolved.spec.final or FinalSpec(), ranked.hparams) if final is not None else None
    )
    space = network_space(resolved, final)
    # A space without a network (the user's own table) has no input to describe.
    input_shape, num_classes = (
        (None, None)
        if space.network_class is None
        else dataset_shape(resolved.spec.dataset.name, resolved.dataset_params, resolved.spec.seed)
    )
    weights_note = _weights_note(plan, resolved)
    retraining = None
    if final is not None:
        # (nor the retraining's own rank, which counts from 0 in the job's summary.final:
        # beside the export's rank, from 1, it read as another rank)
        skip = ("architecture", "genotype", "weights", "rank")
        retraining = {k: v for k, v in final.items() if k not in skip} | {"recipe": recipe}
    note = (
        f"Rank {rank} of {ranked.count} distinct architectures of job {job_id} "
        f"({plan.job_name}). **Weights: {weights_note}.**"
    )
    if plan.weights is None:
        note += " The figures below are the search's estimates, not of these weights."
    metrics = _metrics(plan, resolved)
    return ExportContext(
        space=space,
        arch=ranked.architecture,
        input_shape=input_shape,
        num_classes=num_classes,
        inputs=(
            None
            if input_shape is None
            else DATASETS.get(resolved.spec.dataset.name).inputs_for(resolved.dataset_params)
        ),
        weights=meta.weights if meta is not None else plan.weights,
        adaptation=None if meta is None else {**meta.adaptation(), **_shots(resolved, num_classes)},
        metrics=metrics,
        metric_notes=_metric_notes(resolved, metrics),
        hyperparameters=ranked.hparams,
        recipe=recipe if final is not None else None,
        job_id=job_id,
        trial=ranked.trial_number,
        seed=resolved.spec.seed,
        command=(
            f"nas show {job_id} --spec > job{job_id}.yaml   # the job's spec, as stored\n"
            f"nas submit job{job_id}.yaml\n"
            + ("" if meta is not None else f"nas retrain {job_id} --rank {rank}\n")
            + f"nas export {job_id} --format pytorch --rank {rank} -o model.zip"
        ),
        latency_runs=20,
        note=note,
        document={
            "rank": rank,
            "ranked_architectures": ranked.count,
            "weights": weights_note,
            "final": retraining,
        },
        bundle=BUNDLE,
    )


def _metric_notes(resolved: ResolvedSpec, metrics: Mapping[str, Any]) -> dict[str, str]:
    """What each metric is for this job (``Evaluator.metric_description``: e.g. its number
    of meta-test tasks), and which are its objectives; metrics neither describes are left
    out."""
    evaluator = EVALUATORS.get(resolved.spec.evaluator.name)
    notes = {
        name: evaluator.metric_description(name, resolved.evaluator_params) for name in metrics
    }
    # What the search ranked by is the job's objective, whichever metric that is.
    objectives = resolved.spec.objective.objectives
    for place, (name, direction) in enumerate(objectives):
        if name not in metrics:
            continue
        role = (
            f"what the search ranked by ({direction})"
            if place == 0
            else f"objective {place + 1} of {len(objectives)} ({direction}): it breaks ties "
            "of the ones before it"
        )
        notes[name] = f"{notes[name] or describe_metric(name) or name}; {role}"
    return {name: note for name, note in notes.items() if note}


def _shots(resolved: ResolvedSpec, num_classes: int | None) -> dict[str, Any]:
    """A few-shot job's task size at evaluation, for the export's ``adaptation``."""
    shots = resolved.evaluator_params.get("eval_shots")
    classification = DATASETS.get(resolved.spec.dataset.name).task_loss == "cross_entropy"
    return {"shots": shots, "ways": num_classes if classification else None}


def write_export(plan: ExportPlan, artifacts: Path) -> Path:
    """Build the export's file (atomically replaced) and return its absolute path.
    ``StorageError`` (507 or 503) when the disk is full or read-only: nothing is left
    behind then (a partial file is removed, an earlier file of the same export is kept)."""
    if plan.weights is not None and plan.fmt.needs_network and not plan.meta_learned:
        _check_readable(plan.job_id, plan.ranked.rank, plan.weights)
    ctx = export_context(plan, ResolvedSpec.from_stored(plan.spec))
    target = artifacts / plan.relative_path
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        plan.fmt.write(ctx, tmp)
        os.replace(tmp, target)
    except ExportError:
        if not target.parent.exists():
            # A format's own error over the folder its job's delete moved aside meanwhile
            # (ONNX's: a 422 at query.format that named the server's temporary file)
            _remove_empty_folders(target.parent, artifacts)
            raise NotFoundError(f"job {plan.job_id} not found") from None
        raise
    except (FileNotFoundError, FileExistsError) as exc:
        # The job's folder was moved aside meanwhile, by its delete (a 500 said nothing of
        # it; mkdir meets that as an existing folder that is then no folder)
        if target.parent.is_dir():
            raise
        if target.parent.exists():  # a file where the folder should be (was a 500)
            fault = storage_error(
                NotADirectoryError(errno.ENOTDIR, str(exc)),
                target.parent,
                f"writing the {plan.fmt.name} export",
                "nothing was written",
            )
            assert fault is not None
            log.warning("job %d: %s (%s)", plan.job_id, fault, exc)
            raise fault from None
        _remove_empty_folders(target.parent, artifacts)
        raise NotFoundError(f"job {plan.job_id} not found") from None
    except Exception as exc:
        fault = storage_error(
            exc, target.parent, f"writing the {plan.fmt.name} export", "nothing was written"
        )
        if fault is None:
            raise
        log.warning("job %d: %s (%s)", plan.job_id, fault, exc)
        raise fault from None
    finally:
        with contextlib.suppress(OSError):  # a read-only disk has no partial file either
            tmp.unlink(missing_ok=True)
    return target


def record_export(session: Session, plan: ExportPlan, artifacts: Path, path: Path) -> None:
    """Record (or refresh) the export's artifact row; ``NotFoundError`` if the job was
    deleted meanwhile (the file is then removed)."""
    if JobRepository(session).lock(plan.job_id) is None:
        path.unlink(missing_ok=True)
        # (the folders write_export made again after the delete had moved the job's aside)
        _remove_empty_folders(path.parent, artifacts)
        raise NotFoundError(f"job {plan.job_id} not found")
    try:
        size = path.stat().st_size
    except FileNotFoundError:  # moved aside by the job's delete, which has not committed yet
        raise NotFoundError(f"job {plan.job_id} not found") from None
    ArtifactRepository(session).put(
        job_id=plan.job_id,
        kind="export",
        path=plan.relative_path,
        size_bytes=size,
        meta=plan.meta(artifacts),
    )


def _remove_empty_folders(folder: Path, artifacts: Path) -> None:
    """``folder`` and its parents up to the artifacts' ``jobs`` folder, each while empty."""
    stop = artifacts / "jobs"
    while folder.is_relative_to(stop) and folder != stop:
        try:
            folder.rmdir()
        except OSError:  # not empty (another export's file), or gone
            if folder.exists():
                return
        folder = folder.parent


def cached_export(session: Session, plan: ExportPlan, artifacts: Path) -> Path | None:
    """The file of an earlier identical export (same rank, architecture, score, weights)."""
    row = ArtifactRepository(session).by_path(plan.job_id, plan.relative_path)
    if row is None or row.meta != plan.meta(artifacts):
        return None
    path = artifacts / row.path
    return path if path.is_file() else None

"""Downloads of a job's best architectures and of its RL² policy, and the architectures'
retraining from scratch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import IO, Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field

from api.client import WEIGHTS_HEADER
from api.db import one_snapshot, session_scope
from api.deps import DIGITS, CurrentPrincipal, JobId, StateDep, refuse_body
from api.exports import cached_export, plan_export, record_export, write_export
from api.models import JobModel
from api.policies import stored_policy
from api.ranking import InvalidRequestError
from api.retraining import Retrainings, start_retrain
from api.services import ConflictError, JobService, NotFoundError
from api.storage import StorageError
from controllers.rl2 import META_EVALUATOR
from nas.errors import DatasetError, ExportError, WeightsMismatchError
from nas.export import FORMATS
from nas.trial import TrialState

router = APIRouter(prefix="/api/v1/jobs", tags=["exports"])

ExportFormat = Enum("ExportFormat", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]
_JSON = ExportFormat("json")

_errors: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such job, or another user's"},
    409: {
        "description": "export: no completed trial yet, no trained weights for torchscript/onnx; "
        "retrain: the job or another retraining of it runs; both: a file the job names (its "
        "dataset, a table space's file) is no longer a file under the data roots, or no longer "
        "reads as it did at submit"
    },
    422: {"description": "unknown format, rank out of range, or a format the space lacks"},
}

#: Disk faults of the artifacts folder (``api.storage``): nothing was written or changed.
STORAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"description": "the artifacts storage is read-only or failing; nothing was written"},
    507: {"description": "the artifacts storage is full; nothing was written"},
}


def retrainings(app: FastAPI) -> Retrainings:
    """This server's retrainings (created on first use)."""
    found = getattr(app.state, "nas_retrainings", None)
    if found is None:
        settings = app.state.nas.settings
        found = Retrainings(limit=settings.max_running_jobs, lease_s=settings.job_lease_s)
        app.state.nas_retrainings = found
    return found


def _http_error(exc: Exception) -> HTTPException:
    if isinstance(exc, NotFoundError):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
    if isinstance(exc, ConflictError):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    assert isinstance(exc, InvalidRequestError)
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.detail())


@router.get(
    "/{job_id}/export",
    response_class=FileResponse,
    responses={
        200: {"description": "the file, as an attachment", "content": {"*/*": {}}},
        **_errors,
        **STORAGE_ERRORS,
    },
)
def export_architecture(
    job_id: JobId,
    principal: CurrentPrincipal,
    state: StateDep,
    fmt: Annotated[ExportFormat, Query(alias="format")] = _JSON,
    rank: Annotated[int, Query(description="1 = the best distinct architecture"), DIGITS] = 1,
    untrained: Annotated[
        bool, Query(description="allow torchscript/onnx with freshly initialised weights")
    ] = False,
) -> StreamingResponse:
    """Download the job's ``rank``-th best distinct architecture (1-based) as ``json``
    (architecture, metrics, provenance), ``pytorch`` (a zip: ``model.py``, ``weights.pt``
    when trained, ``architecture.json``), ``torchscript``, ``onnx`` or ``model-card``
    (Markdown). Retrained weights are used when the job has them for that architecture,
    else the weights its search learned (a meta-learning job's best: an initialisation
    with ``adapt``, or a few-shot embedding with ``classify`` in ``model.py``, whose
    torchscript/onnx answer the embedding: output ``embedding``; 409 with full-context
    embeddings); else the export says ``weights: none``, and
    torchscript/onnx answer 409 unless ``untrained=true``. The file is kept under the job's artifacts; when it cannot be
    written there: 507 (storage full) or 503 (read-only), nothing written."""
    artifacts = state.settings.resolved_artifacts_dir()
    try:
        with state.read() as session:
            one_snapshot(session)  # (the job's delete may commit between the plan's reads)
            plan = plan_export(
                session,
                artifacts,
                principal,
                job_id,
                fmt.value,
                rank,
                settings=state.settings,
                untrained=untrained,
            )
            path = cached_export(session, plan, artifacts)
        if path is None:
            try:
                path = write_export(plan, artifacts)
            except WeightsMismatchError:  # the job's state, not the request
                fix = (
                    "submit its spec again for weights learned on the data as it is now"
                    if plan.meta_learned
                    else f"retrain it ('nas retrain {job_id} --rank {rank}'), then export again"
                )
                raise ConflictError(
                    f"job {job_id}: the trained weights of rank {rank} do not fit the network "
                    "its spec builds now (another input shape or number of classes: did the "
                    f"dataset file change since they were trained?); {fix}"
                ) from None
            except ExportError as exc:
                raise InvalidRequestError(
                    ["query", "format"], f"cannot export to {plan.fmt.name}: {exc}"
                ) from None
            with session_scope(state.write) as session:
                record_export(session, plan, artifacts, path)
    except (NotFoundError, ConflictError, InvalidRequestError) as exc:
        raise _http_error(exc) from None
    except StorageError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except DatasetError as exc:  # the job's state, not the request (it was a 422, no field)
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job {job_id}'s files cannot be read as they were at submit: {exc}",
        ) from None
    # (whether the network holds trained weights: a pytorch bundle or a model card without
    # them was written without a word, and a file saved under another name lost the tag)
    weights = None
    if plan.fmt.needs_network:
        weights = "untrained" if plan.weights is None else "trained"
    return _download(path, plan.media_type, plan.filename, job_id, weights=weights)


def _download(
    path: Path, media_type: str, filename: str, job_id: int, *, weights: str | None = None
) -> StreamingResponse:
    """The file as an attachment, opened now: a delete of the job right after (its folder
    moved aside) leaves the whole file to send. (A FileResponse opened the path once the
    answer was under way: a 500, or a 200 whose body broke off, for a download that met
    the job's delete.) A file gone already: the job was deleted, a 404."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found") from None
    size = os.fstat(handle.fileno()).st_size
    quoted = quote(filename)
    disposition = (
        f'attachment; filename="{filename}"'
        if quoted == filename
        else f"attachment; filename*=utf-8''{quoted}"
    )
    return StreamingResponse(
        _chunks(handle),
        media_type=media_type,
        headers={
            "Content-Length": str(size),
            "Content-Disposition": disposition,
            **({WEIGHTS_HEADER: weights} if weights is not None else {}),
        },
    )


def _chunks(handle: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(size):
            yield chunk


@router.get(
    "/{job_id}/policy",
    response_class=FileResponse,
    responses={
        200: {"description": "the policy file, as an attachment", "content": {"*/*": {}}},
        404: {"description": "no such job, or another user's"},
        409: {"description": "a job of yours without a policy (yet), and why"},
    },
)
def download_policy(
    job_id: JobId, principal: CurrentPrincipal, state: StateDep
) -> StreamingResponse:
    """Download the job's RL² policy file (``rl2-policy.pt``): a SUCCEEDED meta-training
    (``rl2-meta``) job's result (a CANCELLED one's as trained until the cancel), or the copy
    an ``rl2`` job runs. It is what ``controller: {name: rl2, policy: FILE}`` reads
    (``nas search``, or another service). 404 for no such job (or another user's); 409 for
    a job of yours that has none, saying why (any other job, a meta-training job that runs,
    failed, or was cancelled before its first recorded iteration)."""
    artifacts = state.settings.resolved_artifacts_dir()
    with state.read() as session:
        try:
            job = JobService(session).get(principal, job_id)
        except NotFoundError as exc:
            raise _http_error(exc) from None
        stored = stored_policy(session, job_id)
    path = None if stored is None else artifacts / stored.path
    if path is None or not path.is_file():
        raise HTTPException(status.HTTP_409_CONFLICT, _no_policy(job_id, job, stored is not None))
    return _download(path, "application/octet-stream", f"rl2-policy-job{job_id}.pt", job_id)


def _no_policy(job_id: int, job: JobModel, recorded: bool) -> str:
    """Why a job of the caller's has no policy to download."""
    if recorded:  # the row is there, the file is not: the artifacts are not this server's
        return f"job {job_id} has no RL² policy: its file is missing from this server's artifacts"
    spec = job.spec or {}
    if (spec.get("evaluator") or {}).get("name") == META_EVALUATOR:
        why = {
            "QUEUED": "it has not started",
            "RUNNING": "it is still meta-training (a policy is stored when it ends)",
            # (a cancel keeps the policy as of the last curve point, every record_every)
            "CANCELLED": "it was cancelled before its first recorded iteration "
            "(evaluator.record_every)",
            "FAILED": "it failed",
        }.get(job.state, "none was stored")
        return f"job {job_id} has no RL² policy: {why}"
    controller = spec.get("controller") or {}
    if controller.get("name") == "rl2" and controller.get("policy"):
        # (it said "an rl2 job keeps the copy it runs" of a job that runs a file of yours)
        return (
            f"job {job_id} keeps no RL² policy: it runs the policy file its spec names "
            "(controller.policy), which stays yours; a job that names policy_job keeps a copy"
        )
    return (
        f"job {job_id} has no RL² policy: only a meta-training job ({META_EVALUATOR}) leaves "
        "one, and an rl2 job keeps the copy it runs"
    )


class RetrainRead(BaseModel):
    job_id: int
    rank: int
    trial_id: int = Field(description="the retraining's trial: GET /api/v1/trials/{trial_id}")
    trial_number: int
    state: TrialState = TrialState.RUNNING
    architecture: dict[str, Any]


@router.post(
    "/{job_id}/retrain",
    response_model=RetrainRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **_errors,
        422: {
            "description": "rank out of range, a body (the rank is a query parameter), or a "
            "job whose data cannot be trained on (a NAS-Bench-201 table, a user's benchmark "
            "table)"
        },
    },
)
async def retrain_architecture(
    job_id: JobId,
    request: Request,
    principal: CurrentPrincipal,
    state: StateDep,
    rank: Annotated[int, Query(description="1 = the best distinct architecture"), DIGITS] = 1,
) -> RetrainRead:
    """Retrain the ``rank``-th best architecture of a finished job from scratch with the
    job's ``final:`` recipe (its defaults when the spec has none), in the background. It is
    recorded at once as a new RUNNING trial of the job; when done the trial is COMPLETE with
    ``test_accuracy``, ``params``, ``flops`` (or FAIL with the error), the weights are an
    artifact, the job's ``summary.final`` lists them, and exports of that rank use them.
    409 while the job runs or another retraining of it runs, or when its files no longer lie
    under the data roots; 422 for a job whose data cannot be trained on (NAS-Bench-201
    tables)."""
    await refuse_body(request)  # (after the key and the path: a 401 comes first)
    try:
        started = await anyio.to_thread.run_sync(
            lambda: start_retrain(
                state.write,
                state.settings.resolved_artifacts_dir(),
                retrainings(request.app),
                principal,
                job_id,
                rank,
                settings=state.settings,
            )
        )
    except (NotFoundError, ConflictError, InvalidRequestError) as exc:
        raise _http_error(exc) from None
    return RetrainRead(
        job_id=started.job_id,
        rank=started.rank,
        trial_id=started.trial_id,
        trial_number=started.trial_number,
        architecture=started.architecture,
    )

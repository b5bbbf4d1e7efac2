"""The dashboard: its page at ``/`` (static files shipped in ``api/dashboard/``) and the
bounded-size chart data it reads (``api.charts``), behind the same API keys as the rest."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from api import charts
from api.deps import DIGITS, CurrentPrincipal, JobId, ReadSession, StateDep, TrialId
from api.repositories import ApiKeyRepository, JobRepository, TrialRepository
from api.routes.jobs import JobStateParam
from api.schemas import JobRead
from api.services import (
    ConflictError,
    JobService,
    NotFoundError,
    check_job_files,
    job_read,
    lists_all_users,
)
from api.settings import Settings
from nas.errors import DatasetError, ExportError, NasError

STATIC = Path(__file__).resolve().parent.parent / "dashboard"

pages = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/api/v1", tags=["dashboard"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such job or trial, or another user's"}
}
#: Charts that build the job's space (a table space reads its file) ...
_READS_TABLE: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    409: {
        "description": "the job's table space file is no longer a file under the data roots, "
        "or no longer reads as it did at submit"
    },
}
#: ... and the drawing, which also reads the dataset's input shape (an npz file's).
_READS_FILES: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    409: {
        "description": "the job's table space file or dataset file is no longer a file under "
        "the data roots, or no longer reads as it did at submit"
    },
}
_ASSETS = {
    "app.js": "text/javascript",
    "charts.js": "text/javascript",
    "style.css": "text/css",
}


@pages.get("/", response_class=HTMLResponse)
def index(state: StateDep) -> HTMLResponse:
    """The dashboard's single page (the API key is asked for in the browser, unless the
    server runs without keys)."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    page = page.replace('data-auth="keys"', f'data-auth="{state.settings.auth}"', 1)
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@pages.get("/dashboard/{name}")
def asset(name: str, request: Request) -> Response:
    """One of the dashboard's own files (a fixed list: nothing else is served); 304 when the
    browser's copy is current (its ``ETag`` or ``Last-Modified`` sent back): every page load
    sent the whole script again, though ``no-cache`` asks the browser to revalidate."""
    media = _ASSETS.get(name)
    if media is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard file {name!r}")
    path = STATIC / name
    response = FileResponse(
        path, media_type=media, headers={"Cache-Control": "no-cache"}, stat_result=path.stat()
    )
    if _not_modified(response.headers, request.headers):
        kept = {k: response.headers[k] for k in ("etag", "last-modified", "cache-control")}
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=kept)
    return response


def _not_modified(ours: Mapping[str, str], theirs: Mapping[str, str]) -> bool:
    """RFC 9110's conditions: ``If-None-Match`` (weak comparison) when sent, else
    ``If-Modified-Since`` against ``Last-Modified``."""
    if (match := theirs.get("if-none-match")) is not None:
        tags = {tag.strip().removeprefix("W/") for tag in match.split(",")}
        return "*" in tags or ours["etag"].removeprefix("W/") in tags
    since = theirs.get("if-modified-since")
    if since is None:
        return False
    try:
        return parsedate_to_datetime(ours["last-modified"]) <= parsedate_to_datetime(since)
    except (TypeError, ValueError, OverflowError):
        return False  # (an unreadable date, or a year past datetime's: the whole file)


def _job(session: Any, principal: Any, job_id: int) -> Any:
    try:
        return JobService(session).get(principal, job_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


def _files_readable(job: Any, settings: Settings, sections: tuple[str, ...]) -> None:
    """409 when a file the chart is about to read (``sections`` of the spec: a table space's
    file, an npz dataset for its input shape) no longer lies under the data roots."""
    try:
        check_job_files(job, settings, sections)
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@contextmanager
def _reading_files(job: Any) -> Iterator[None]:
    """409 when a file the job names no longer reads as it did at submit (a table rewritten
    without rows): the job's state, not the request, is wrong (it was a 422 with no field)."""
    try:
        yield
    except DatasetError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job {job.id}'s files cannot be read as they were at submit: {exc}",
        ) from None


class HistoryBucket(BaseModel):
    start: int = Field(description="first trial number of the bucket")
    end: int = Field(description="last trial number of the bucket")
    min: float = Field(description="lowest completed objective in the bucket")
    max: float = Field(description="highest completed objective in the bucket")
    count: int = Field(description="completed trials with an objective in the bucket")


class HistoryStep(BaseModel):
    trial: int
    value: float


class JobHistory(BaseModel):
    job_id: int
    direction: Literal["maximize", "minimize"]
    n_trials: int
    bucket_width: int = Field(description="trial numbers per bucket")
    buckets: list[HistoryBucket] = Field(description="at most `points` buckets, number order")
    best_so_far: list[HistoryStep] = Field(description="every improvement of the best objective")


@router.get("/jobs/{job_id}/history", response_model=JobHistory, responses=_NOT_FOUND)
def job_history(
    job_id: JobId,
    session: ReadSession,
    principal: CurrentPrincipal,
    points: Annotated[int, Query(ge=10, le=5000, description="most buckets"), DIGITS] = 2000,
) -> dict[str, Any]:
    """The objective over trial numbers downsampled to at most ``points`` buckets (each its
    lowest and highest completed objective) and every best-so-far step, however many
    trials the job has."""
    return charts.history(session, _job(session, principal, job_id), points)


class ParallelColumn(BaseModel):
    name: str = Field(description="a decision of the space, or hp.NAME")
    kind: Literal["choice", "float"]
    labels: list[str] | None = Field(None, description="choice labels, by value index")
    min: float | None = None
    max: float | None = None


class ParallelRow(BaseModel):
    trial: int
    top: bool = Field(description="among the top trials (else the sample)")
    values: list[float | None] = Field(description="one per column; a choice is its index")
    objective: float


class ParallelCoordinates(BaseModel):
    job_id: int
    direction: Literal["maximize", "minimize"]
    metric: str
    columns: list[ParallelColumn]
    rows: list[ParallelRow]


@router.get("/jobs/{job_id}/parallel", response_model=ParallelCoordinates, responses=_READS_TABLE)
def job_parallel(
    job_id: JobId,
    session: ReadSession,
    principal: CurrentPrincipal,
    state: StateDep,
    top: Annotated[int, Query(ge=1, le=1000, description="best trials"), DIGITS] = 100,
    sample: Annotated[int, Query(ge=0, le=2000, description="others, evenly spaced"), DIGITS] = 400,
) -> dict[str, Any]:
    """Parallel coordinates: each decision and hyperparameter of the ``top`` best completed
    trials and of ``sample`` others evenly spaced by number, with the objective."""
    job = _job(session, principal, job_id)
    _files_readable(job, state.settings, ("space",))  # a table space reads its file
    with _reading_files(job):
        return charts.parallel_coordinates(session, job, top, sample)


class Importance(BaseModel):
    name: str
    importance: float = Field(description="share of the objective's variance, sums to 1")


class JobImportance(BaseModel):
    job_id: int
    evaluator: str = Field(description="Optuna's importance evaluator")
    trials: int = Field(description="trials it was computed on")
    importances: list[Importance] = Field(
        description="most important first; empty under two trials with a value for every "
        "parameter, or when all of them have the same objective"
    )


@router.get("/jobs/{job_id}/importance", response_model=JobImportance, responses=_READS_TABLE)
def job_importance(
    job_id: JobId,
    session: ReadSession,
    principal: CurrentPrincipal,
    state: StateDep,
    top: Annotated[int, Query(ge=1, le=1000), DIGITS] = 100,
    sample: Annotated[int, Query(ge=0, le=2000), DIGITS] = 200,
    evaluator: Annotated[
        Literal["ped-anova", "fanova"],
        Query(description="Optuna's PedAnovaImportanceEvaluator (fast) or fANOVA (16 trees)"),
    ] = "ped-anova",
) -> dict[str, Any]:
    """Importance of each decision and hyperparameter for the objective, by one of Optuna's
    importance evaluators, over the ``top`` best completed trials and ``sample`` others."""
    job = _job(session, principal, job_id)
    _files_readable(job, state.settings, ("space",))  # a table space reads its file
    with _reading_files(job):
        return charts.param_importance(session, job, top, sample, evaluator)


class ObjectiveName(BaseModel):
    metric: str
    direction: Literal["maximize", "minimize"]


class ParetoPoint(BaseModel):
    trial: int = Field(description="the trial's number")
    values: list[float | None] = Field(
        description="its metric of each objective, in their order (null: the trial has none, "
        "the worst value for the front, as for the ranking)"
    )
    rank: int | None = Field(
        None,
        description="a front member's rank, which export and retrain take; null for a "
        "joint search's configuration whose architecture ranks by another of its "
        "configurations (that rank's export has the other's hyperparameters), and for the "
        "dominated trials",
    )


class JobPareto(BaseModel):
    job_id: int
    objectives: list[ObjectiveName] = Field(description="the job's objectives, the first first")
    front: list[ParetoPoint] = Field(description="every non-dominated trial, by the first")
    others: list[ParetoPoint] = Field(description="a sample of the dominated trials")


@router.get("/jobs/{job_id}/pareto", response_model=JobPareto, responses=_NOT_FOUND)
def job_pareto(
    job_id: JobId,
    session: ReadSession,
    principal: CurrentPrincipal,
    sample: Annotated[
        int, Query(ge=0, le=5000, description="dominated trials shown"), DIGITS
    ] = 1000,
) -> dict[str, Any]:
    """A multi-objective job's Pareto front over all its objectives (every non-dominated
    completed trial, as the job's summary has it; the dashboard draws the first two) and a
    sample of the dominated ones; empty lists for a single-objective job."""
    return charts.pareto(session, _job(session, principal, job_id), sample)


class TimelineTrial(BaseModel):
    trial: int
    state: str
    start: str
    end: str | None


class TimelineWorker(BaseModel):
    worker: str
    trials: list[TimelineTrial]


class JobTimeline(BaseModel):
    job_id: int
    workers: list[TimelineWorker]


@router.get("/jobs/{job_id}/timeline", response_model=JobTimeline, responses=_NOT_FOUND)
def job_timeline(
    job_id: JobId,
    session: ReadSession,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=5000, description="latest trials"), DIGITS] = 500,
) -> dict[str, Any]:
    """The latest ``limit`` trials' start and end times, by worker."""
    return charts.timeline(session, _job(session, principal, job_id), limit)


class TrialDrawing(BaseModel):
    trial_id: int
    trial: int = Field(description="the trial's number")
    space: str
    genotype: dict[str, Any] = Field(
        description="the space's readable genotype, as in the job's summary and exports"
    )
    text: str | None = Field(
        description="the space's own drawing, as in the model card; null for a space with no "
        "network to draw (a user's table)"
    )
    svg: str | None = Field(description="the same drawing laid out as SVG; null as text is")


@router.get(
    "/trials/{trial_id}/drawing",
    response_model=TrialDrawing,
    responses={
        **_READS_FILES,
        422: {"description": "the architecture cannot be built on the job's data"},
    },
)
def trial_drawing(
    trial_id: TrialId, session: ReadSession, principal: CurrentPrincipal, state: StateDep
) -> Any:
    """The trial's architecture drawn by its space (the model card's drawing), as text and
    SVG, with its genotype."""
    trial = TrialRepository(session).get(trial_id)
    try:
        if trial is None:
            raise NotFoundError
        job = JobService(session).get(principal, trial.job_id)
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"trial {trial_id} not found") from None
    try:
        _files_readable(job, state.settings, ("space", "dataset"))  # the space, input shape
        with _reading_files(job):
            return charts.trial_drawing(job, trial)
    except (ExportError, NasError, ValueError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["path", "trial_id"], "msg": f"cannot draw: {exc}", "type": "value_error"}],
        ) from None


class JobOverview(BaseModel):
    """A job as the dashboard's jobs page lists it: the job without its spec, plus the
    spec's component names and warm-start sources."""

    job: JobRead
    controller: str | None
    space: str | None
    dataset: str | None
    evaluator: str | None
    objectives: list[str] = Field(description="the objective's metric(s)")
    warm_start: list[str] = Field(description="warm-start sources: 'job 3', a query, a run")


class JobOverviewList(BaseModel):
    data: list[JobOverview]
    count: int
    all_users: bool = Field(
        False,
        description="the list holds every user's jobs (an admin's key, or a server without keys "
        "over jobs of keyed users): each names its owner",
    )


@router.get("/dashboard/jobs", response_model=JobOverviewList)
def jobs_overview(
    session: ReadSession,
    principal: CurrentPrincipal,
    server: StateDep,
    state: JobStateParam | None = None,
    limit: Annotated[int, Query(ge=1, le=200), DIGITS] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000), DIGITS] = 0,
) -> JobOverviewList:
    """Your jobs (all for an admin), newest first, with each one's controller, space,
    dataset, evaluator, objective and warm-start sources."""
    rows, total = JobRepository(session).page(
        owner_id=principal.key_id,
        any_owner=principal.sees_all,
        state=state.value if state else None,
        limit=limit,
        offset=offset,
    )
    owners = ApiKeyRepository(session).names(j.owner_id for j in rows)
    return JobOverviewList(
        data=[
            JobOverview(
                job=job_read(j, owners.get(j.owner_id), with_spec=False, settings=server.settings),
                **charts.spec_overview(j.spec),
            )
            for j in rows
        ],
        count=total,
        all_users=lists_all_users(principal, rows),
    )

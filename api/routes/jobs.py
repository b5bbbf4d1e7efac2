from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.auth import Principal
from api.deps import AppState, CurrentPrincipal, ReadSession, SpecDocument, StateDep, WriteSession
from api.exports import delete_job as delete_job_and_files
from api.models import JobState
from api.repositories import METRIC_NAME, JobRepository, TrialRepository
from api.routes.exports import retrainings
from api.schemas import JobList, JobRead, TrialList, TrialRead
from api.services import ConflictError, JobService, NotFoundError, job_read
from nas.evaluators import EVALUATORS
from nas.spec import JobSpec

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

TrialStateParam = Enum(  # type: ignore[misc]
    "TrialStateParam", {s: s for s in ("WAITING", "RUNNING", "COMPLETE", "PRUNED", "FAIL")}
)
JobStateParam = Enum("JobStateParam", {s.value: s.value for s in JobState})  # type: ignore[misc]

_spec_body = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": JobSpec.model_json_schema()},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def _not_found(exc: NotFoundError) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


def _job(session: Any, principal: Principal, job_id: int) -> Any:
    try:
        return JobService(session).get(principal, job_id)
    except NotFoundError as exc:
        raise _not_found(exc) from None


@router.post(
    "",
    response_model=JobRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_spec_body,
    responses={422: {"description": "invalid spec: one entry per problem, with its field path"}},
)
def submit_job(
    principal: CurrentPrincipal,
    document: SpecDocument,
    session: WriteSession,
    state: StateDep,
    request: Request,
    background: BackgroundTasks,
) -> JobRead:
    """Submit a job spec (JSON, or YAML with a YAML content type). The spec is validated
    whole; an invalid one creates nothing and answers 422 with every problem's path."""
    job = JobService(session, backend=state.settings.backend).submit(principal, document)
    runner = getattr(request.app.state, "runner", None)
    if runner is not None:  # after the commit (the session closes before the response)
        background.add_task(runner.wake)
    return job_read(job, principal.name)


@router.get("", response_model=JobList)
def list_jobs(
    session: ReadSession,
    principal: CurrentPrincipal,
    state: JobStateParam | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobList:
    """Your jobs (all jobs for an admin), newest first."""
    rows, total = JobRepository(session).page(
        owner_id=principal.key_id,
        any_owner=principal.sees_all,
        state=state.value if state else None,
        limit=limit,
        offset=offset,
    )
    return JobList(data=[job_read(j, with_spec=False) for j in rows], count=total)


@router.get("/{job_id}", response_model=JobRead)
def get_job(job_id: int, session: ReadSession, principal: CurrentPrincipal) -> JobRead:
    """Status, progress, trial counts, best so far, and the summary once finished."""
    return job_read(_job(session, principal, job_id))


@router.post("/{job_id}/cancel", response_model=JobRead)
def cancel_job(job_id: int, session: WriteSession, principal: CurrentPrincipal) -> JobRead:
    """Stop a job; its recorded trials are kept. 409 when it already finished."""
    try:
        job = JobService(session).cancel(principal, job_id)
    except NotFoundError as exc:
        raise _not_found(exc) from None
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return job_read(job)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={409: {"description": "the job is RUNNING (cancel it first) or retraining"}},
)
def delete_job(
    job_id: int, request: Request, principal: CurrentPrincipal, state: StateDep
) -> Response:
    """Delete a job (yours, or any for an admin) with everything recorded of it: trials,
    intermediate values, checkpoint, artifact rows, and its files under the artifacts folder.
    A RUNNING job must be cancelled first (409), as must a retraining of it finish."""
    try:
        delete_job_and_files(
            state.write,
            state.settings.resolved_artifacts_dir(),
            retrainings(request.app),
            principal,
            job_id,
        )
    except NotFoundError as exc:
        raise _not_found(exc) from None
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _sort_keys(spec: dict[str, Any]) -> list[str]:
    evaluator = EVALUATORS.get(spec["evaluator"]["name"])
    return ["number", "objective", *evaluator.metrics]


@router.get("/{job_id}/trials", response_model=TrialList, response_class=Response)
def list_trials(
    job_id: int,
    session: ReadSession,
    principal: CurrentPrincipal,
    state: TrialStateParam | None = None,
    sort: Annotated[str, Query(description="number, objective or a metric name")] = "number",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    after: Annotated[int | None, Query(ge=-1, description="keyset cursor (number order)")] = None,
) -> Response:
    """A page of a job's trials, filtered by state and sorted by number, objective or any
    metric the job's evaluator reports. ``count`` is the total over all pages."""
    job = _job(session, principal, job_id)
    valid = _sort_keys(job.spec)
    if sort not in valid or not METRIC_NAME.match(sort):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": ["query", "sort"],
                    "msg": f"unknown sort key {sort!r}; valid: {', '.join(valid)}",
                    "type": "value_error",
                }
            ],
        )
    if after is not None and sort != "number":
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": ["query", "after"],
                    "msg": "the after cursor needs sort=number; use offset for other orders",
                    "type": "value_error",
                }
            ],
        )
    counts = job.state_counts or {}
    total = job.n_trials if state is None else int(counts.get(state.value, 0))
    descending = order == "desc"
    if sort == "number" and state is None and after is None and offset:
        # Numbers run without gaps from 0 to n_trials - 1: an offset is a keyset position.
        after = job.n_trials - offset if descending else offset - 1
        offset = 0
    rows = TrialRepository(session).page(
        job_id,
        state=state.value if state else None,
        sort=sort,
        descending=descending,
        limit=limit,
        offset=offset,
        after=after,
    )
    data = [_trial_json(row) for row in rows]
    next_after = data[-1]["number"] if sort == "number" and len(data) == limit else None
    # Plain rows to JSON directly: a page of 1,000 trials skips 1,000 model validations.
    body = {"data": data, "count": total, "next_after": next_after}
    return Response(json.dumps(body, default=_json_default), media_type="application/json")


def _trial_json(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@router.get("/{job_id}/best", response_model=list[TrialRead])
def best_trials(
    job_id: int,
    session: ReadSession,
    principal: CurrentPrincipal,
    k: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> list[TrialRead]:
    """The top-K completed trials by the job's objective, best first."""
    job = _job(session, principal, job_id)
    maximize = job.spec.get("objective", {}).get("direction", "maximize") == "maximize"
    rows = TrialRepository(session).top(job_id, k, maximize=maximize)
    return [TrialRead.model_validate(r) for r in rows]


def _visible_job_id(job_id: int, session: ReadSession, principal: CurrentPrincipal) -> int:
    """404 before the stream starts (a generator cannot answer an error status)."""
    return _job(session, principal, job_id).id


@router.get("/{job_id}/events", response_class=EventSourceResponse)
async def job_events(
    job_id: Annotated[int, Depends(_visible_job_id)], request: Request, state: StateDep
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: ``job`` (state, progress, trial count, best) whenever it changes,
    ``trial`` (number, state, objective) for each trial as it is recorded, and a last
    ``end`` once the job has finished."""
    # Trials are sent once per state: a RUNNING trial is sent again when it finishes.
    # ``done`` is the highest number below which every trial was sent finished.
    done, sent, last_job = -1, dict[int, str](), None
    poll = state.settings.poll_interval_s
    while True:
        job, trials = await asyncio.to_thread(_poll, state, job_id, done)
        fresh = False
        for number, trial_state, objective in trials:
            if sent.get(number) != trial_state:
                sent[number] = trial_state
                fresh = True
                yield ServerSentEvent(
                    event="trial",
                    id=str(number),
                    data={"number": number, "state": trial_state, "objective": objective},
                )
            if number == done + 1 and trial_state not in ("RUNNING", "WAITING"):
                done = number
                sent.pop(number, None)
        snapshot = job_read(job, with_spec=False).model_dump(
            mode="json", exclude={"spec", "summary", "created_at", "owner"}
        )
        if snapshot != last_job:
            last_job = snapshot
            yield ServerSentEvent(event="job", data=snapshot)
        if JobState(job.state).is_finished() and not fresh:
            yield ServerSentEvent(event="end", data={"state": job.state, "reason": job.reason})
            return
        if await request.is_disconnected():
            return
        if not fresh or len(trials) < 500:
            await asyncio.sleep(poll)


def _poll(state: AppState, job_id: int, last_number: int) -> tuple[Any, list[Any]]:
    with state.read() as session:
        job = JobRepository(session).get(job_id)
        trials = list(TrialRepository(session).after(job_id, last_number, 500))
        return job, trials

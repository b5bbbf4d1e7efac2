from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.auth import Principal, bearer_token, hash_key
from api.deletion import delete_job as delete_job_and_files
from api.deps import (
    BLANK_AS_ABSENT,
    DIGITS,
    INT32_MAX,
    AppState,
    CurrentPrincipal,
    JobId,
    JobIdWithoutBody,
    ReadSession,
    SpecDocument,
    StateDep,
    WriteSession,
    app_state,
    authorization_header,
    unauthorized,
)
from api.models import JobState
from api.reads import Plan
from api.repositories import (
    METRIC_NAME,
    ApiKeyRepository,
    CheckpointRepository,
    JobRepository,
    TrialRepository,
    job_evaluator_query,
    listing_header_query,
    revoked_key_query,
    trial_page_query,
    trial_rows_json,
)
from api.routes.exports import retrainings
from api.schemas import JobList, JobRead, TrialList, TrialRead
from api.services import ConflictError, JobService, NotFoundError, job_read, lists_all_users
from api.storage import StorageError
from nas.constraints import CONSTRAINTS
from nas.evaluators import EVALUATORS
from nas.spec import JOB_NAME_PATTERN
from nas.trial import TrialState

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


class _AnyCase(str, Enum):
    """A state (or an order) as a query parameter, in any case (``?state=running``,
    ``?order=DESC``): the CLI and the Python client took any, HTTP only the value as
    written (a 422)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            return next((m for m in cls if m.value.lower() == value.lower()), None)
        return None


JobStateParam = _AnyCase("JobStateParam", {s.value: s.value for s in JobState})  # type: ignore[call-overload]
TrialStateParam = _AnyCase("TrialStateParam", {s.value: s.value for s in TrialState})  # type: ignore[call-overload]
OrderParam = _AnyCase("OrderParam", {"asc": "asc", "desc": "desc"})  # type: ignore[call-overload]
ASCENDING = OrderParam("asc")

_spec_body = {
    "requestBody": {
        "required": True,
        "content": {
            # api.openapi adds JobSpec and the models it uses as components.
            "application/json": {
                "schema": {"$ref": "#/components/schemas/JobSpec"},
                "example": {
                    "name": "nb201-random",
                    "dataset": {"name": "nb201-cifar10"},
                    "space": {"name": "nb201"},
                    "controller": {"name": "random"},
                    "evaluator": {"name": "tabular"},
                    "budget": {"trials": 100},
                },
            },
            "application/yaml": {
                "schema": {
                    "type": "string",
                    "pattern": r"\S",
                    "description": "the same spec as YAML: a mapping of the JobSpec sections",
                }
            },
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
    responses={
        422: {"description": "invalid spec: one entry per problem, with its field path"},
        503: {"description": "a policy_job's policy cannot be copied (storage read-only)"},
        507: {"description": "a policy_job's policy cannot be copied (storage full)"},
    },
)
def submit_job(
    principal: CurrentPrincipal,
    document: SpecDocument,
    session: WriteSession,
    state: StateDep,
    request: Request,
    background: BackgroundTasks,
    response: Response,
) -> JobRead:
    """Submit a job spec (JSON, or YAML with a YAML content type). The spec is validated
    whole; an invalid one creates nothing and answers 422 with every problem's path. The
    201's ``Location`` is the new job's URL."""
    try:
        job = JobService(session, settings=state.settings).submit(
            principal, document.document, strict=document.strict
        )
    except StorageError as exc:  # copying a policy_job's policy
        raise HTTPException(exc.status, str(exc)) from None
    runner = getattr(request.app.state, "runner", None)
    if runner is not None:  # after the commit (the session closes before the response)
        background.add_task(runner.wake)
    response.headers["Location"] = f"{router.prefix}/{job.id}"
    return job_read(job, principal.name, settings=state.settings)


@router.get("", response_model=JobList)
def list_jobs(
    session: ReadSession,
    principal: CurrentPrincipal,
    server: StateDep,
    state: JobStateParam | None = None,
    name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=JOB_NAME_PATTERN,
            description="only jobs of this name (the spec's name, exactly)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000), DIGITS] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000), DIGITS] = 0,
) -> JobList:
    """Your jobs (all jobs for an admin), newest first; ``state``, ``name``: only those."""
    rows, total = JobRepository(session).page(
        owner_id=principal.key_id,
        any_owner=principal.sees_all,
        state=state.value if state else None,
        name=name,
        limit=limit,
        offset=offset,
    )
    owners = ApiKeyRepository(session).names(j.owner_id for j in rows)
    return JobList(
        data=[
            job_read(j, owners.get(j.owner_id), with_spec=False, settings=server.settings)
            for j in rows
        ],
        count=total,
        all_users=lists_all_users(principal, rows),
    )


def _owner(session: Any, job: Any) -> str | None:
    """The name of the key that submitted ``job`` (``None`` without authentication)."""
    return ApiKeyRepository(session).names([job.owner_id]).get(job.owner_id)


@router.get("/{job_id}", response_model=JobRead)
def get_job(
    job_id: JobId, session: ReadSession, principal: CurrentPrincipal, state: StateDep
) -> JobRead:
    """Status, progress, trial counts, best so far, and the summary once finished."""
    job = _job(session, principal, job_id)
    return job_read(job, _owner(session, job), settings=state.settings, check_files=True)


@router.post(
    "/{job_id}/cancel",
    response_model=JobRead,
    responses={409: {"description": "the job already finished"}},
)
def cancel_job(
    job_id: JobIdWithoutBody, session: WriteSession, principal: CurrentPrincipal, state: StateDep
) -> JobRead:
    """Stop a job; its recorded trials are kept. 409 when it already finished."""
    try:
        job = JobService(session).cancel(principal, job_id)
    except NotFoundError as exc:
        raise _not_found(exc) from None
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return job_read(job, _owner(session, job), settings=state.settings)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        409: {"description": "the job is RUNNING (cancel it first) or retraining"},
        503: {"description": "its files cannot be removed (read-only storage): job unchanged"},
        507: {"description": "its files cannot be moved aside (storage full): job unchanged"},
    },
)
def delete_job(
    job_id: JobIdWithoutBody, request: Request, principal: CurrentPrincipal, state: StateDep
) -> Response:
    """Delete a job (yours, or any for an admin) with everything recorded of it: trials,
    intermediate values, checkpoint, artifact rows, and its files under the artifacts folder.
    A RUNNING job must be cancelled first (409), as must a retraining of it finish. Rows
    and files go together or not at all: 503 when the files cannot be removed (read-only
    storage), the job then unchanged."""
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
    except StorageError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _sort_keys(evaluator: str) -> list[str]:
    return ["number", "objective", *EVALUATORS.get(evaluator).trial_metrics()]


@router.get(
    "/{job_id}/trials",
    response_model=TrialList,
    response_class=Response,
    # (the body is written by the database: FastAPI, given a plain Response, left the
    # 200's content out of the OpenAPI document)
    responses={
        200: {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TrialList"}}}
        }
    },
)
async def list_trials(
    job_id: JobId,
    request: Request,
    state: TrialStateParam | None = None,
    sort: Annotated[
        str,
        Query(
            max_length=100,
            pattern=METRIC_NAME.pattern,
            description="number, objective or a metric the job's evaluator reports",
        ),
    ] = "number",
    order: OrderParam = ASCENDING,
    limit: Annotated[int, Query(ge=1, le=1000), DIGITS] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000), DIGITS] = 0,
    after: Annotated[
        int | None,
        Query(ge=-1, le=INT32_MAX, description="keyset cursor (number order)"),
        DIGITS,
    ] = None,
) -> Response:
    """A page of a job's trials, filtered by state and sorted by number, objective or any
    metric the job's evaluator reports. ``count`` is the total over all pages."""
    # The hottest read: a plan of two statements (api.reads), the caller's key checked in
    # the first (api.repositories.listing_header_query).
    app = app_state(request)
    key_hash = None
    if app.settings.auth != "none":
        token = bearer_token(authorization_header(request))
        if token is None:
            raise unauthorized()
        key_hash = hash_key(token)
    query = TrialQuery(
        state.value if state else None, sort, order.value == "desc", limit, offset, after
    )
    as_json = app.reader.dialect == "postgresql"
    body = await app.reader.run(lambda: _trials_page(key_hash, job_id, query, as_json))
    return Response(body, media_type="application/json")


@dataclass(frozen=True)
class TrialQuery:
    state: str | None
    sort: str
    descending: bool
    limit: int
    offset: int
    after: int | None


def _trials_page(key_hash: str | None, job_id: int, q: TrialQuery, as_json: bool) -> Plan[str]:
    """The listing's plan: the caller, the job and its counters, then the page."""
    header = yield listing_header_query(job_id, key_hash)
    if not header and key_hash is not None:
        revoked = yield revoked_key_query(key_hash)
        raise unauthorized(revoked[0][0] if revoked else None)
    if not header or header[0][1] is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found")
    _, _, n_trials, state_counts, evaluator = header[0]
    entry = EVALUATORS.get(evaluator)
    valid = _sort_keys(evaluator)
    unknown = q.sort not in valid and METRIC_NAME.match(q.sort) is not None
    # A constraint's figure that the evaluator reports only for a constraint the job sets
    # (a NAS-Bench-201 job's params without max_params: no trial holds it, and the sort was
    # ignored, the trials in number order: the CLI probe)
    figures = {CONSTRAINTS[key]: key for key in entry.constraint_keys} if entry.metrics else {}
    for held in (*entry.metrics, *entry.extra_metrics):
        figures.pop(held, None)
    dataset, why_not = None, ""
    if (
        unknown
        or q.sort in figures
        or q.sort in entry.dataset_metrics
        or (not entry.metrics and q.sort in valid[2:])
    ):
        # A table's metrics are the columns its spec names (a column it does not name, such
        # as the held-out one, no trial holds: the sort was ignored), and the constraint
        # figures whose columns it names (params without one: the same); a meta-learner's
        # depend on its dataset (a classification job sorted by meta_val_mse: the same).
        rows = yield job_evaluator_query(job_id)
        if not rows:  # deleted meanwhile
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} not found")
        params = {k: v for k, v in (rows[0][0] or {}).items() if k != "name"}
        dataset = (rows[0][1] or {}).get("name")
        why_not = f" (its dataset {dataset!r})"
        try:
            listed = entry.listed_metrics(params, dataset)
        except ValueError:  # a section stored by an older version: its own names only
            listed = () if entry.dataset_metrics else tuple(valid[2:])
        constraints = (rows[0][2] or {}).get("constraints") or {}
        unset = {f for f, key in figures.items() if constraints.get(key) is None}
        if q.sort in unset:
            why_not = f" (it sets no objective.constraints.{figures[q.sort]})"
        valid = ["number", "objective", *(m for m in dict.fromkeys(listed) if m not in unset)]
    if q.sort not in valid or not METRIC_NAME.match(q.sort):
        if q.sort in entry.trial_metrics():
            raise _query_error(
                "sort",
                f"job {job_id}'s trials hold no {q.sort!r}{why_not}; valid: " + ", ".join(valid),
            )
        raise _query_error("sort", f"unknown sort key {q.sort!r}; valid: {', '.join(valid)}")
    if q.after is not None and q.sort != "number":
        raise _query_error(
            "after", "the after cursor needs sort=number; use offset for other orders"
        )
    if q.after is not None and q.offset:
        # (two ways to page: ?after=5&offset=5 skipped five past the cursor, unsaid)
        raise _query_error(
            "offset", "give after (a cursor) or offset, not both: each says where a page starts"
        )
    total = n_trials if q.state is None else int((state_counts or {}).get(q.state, 0))
    after, offset = q.after, q.offset
    if q.sort == "number" and q.state is None and after is None and offset:
        # Numbers run without gaps from 0 to n_trials - 1: an offset is a keyset position.
        after = n_trials - offset if q.descending else offset - 1
        offset = 0
    # One row past the page says whether another page follows: a full last page gave a
    # cursor to an empty one.
    page = yield trial_page_query(
        as_json, job_id, q.state, q.sort, q.descending, q.limit + 1, offset, after
    )
    rows = trial_rows_json(page[: q.limit], as_json)
    next_after = rows[-1][0] if q.sort == "number" and len(page) > q.limit else None
    data = ",".join(text for _, text in rows)
    next_json = "null" if next_after is None else str(next_after)
    return f'{{"data":[{data}],"count":{total},"next_after":{next_json}}}'


def _query_error(name: str, msg: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": ["query", name], "msg": msg, "type": "value_error"}],
    )


@router.get("/{job_id}/best", response_model=list[TrialRead])
def best_trials(
    job_id: JobId,
    session: ReadSession,
    principal: CurrentPrincipal,
    k: Annotated[int, Query(ge=1, le=1000), DIGITS] = 1,
) -> list[TrialRead]:
    """The top-K completed trials by the job's objective, best first (several objectives:
    ties broken by the others, in order, as the job's best)."""
    job = _job(session, principal, job_id)
    rows = TrialRepository(session).top(job_id, k, maximize=job.maximize, then=job.tie_breaks)
    return [TrialRead.model_validate(r) for r in rows]


def _visible_job_id(job_id: JobId, session: ReadSession, principal: CurrentPrincipal) -> int:
    """404 before the stream starts (a generator cannot answer an error status)."""
    return _job(session, principal, job_id).id


@router.get("/{job_id}/events", response_class=EventSourceResponse)
async def job_events(
    job_id: Annotated[int, Depends(_visible_job_id)],
    request: Request,
    state: StateDep,
    principal: CurrentPrincipal,
    last_event_id: Annotated[
        int | None,
        Header(
            ge=-1,
            le=INT32_MAX,
            description="a trial event's id: resume after it (EventSource sends it); empty: "
            "from the start",
        ),
        DIGITS,
        BLANK_AS_ABSENT,  # (pydantic runs the last first)
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: ``job`` (state, progress, trial count, best) whenever it changes,
    ``trial`` (number, state, objective) for each trial as it is recorded, and a last
    ``end`` once the job has finished (``state``, ``reason``), or ``DELETED`` once it is
    deleted while watched. The stream closes (no ``end``) once the caller's key is revoked
    or rotated: it went on sending until the job ended. A ``trial`` event's ``id`` is the
    highest trial number up to which every trial was sent finished (and, while the job runs,
    its checkpoint covers): a client that reconnects with it as ``Last-Event-ID``
    (``EventSource`` does) is sent the trials after it (again, those it saw finished above
    it) instead of all of them."""
    # Trials are sent once per state: a RUNNING trial is sent again when it finishes.
    # ``done`` is the highest number up to which every trial was sent finished.
    done, sent, last_job = -1 if last_event_id is None else last_event_id, dict[int, str](), None
    poll = state.settings.poll_interval_s
    while True:
        polled = await asyncio.to_thread(_poll, state, job_id, done, principal)
        if polled is None:  # the key was revoked since
            return
        job, trials, covered = polled
        if job is None:  # deleted since the stream started (or since the last poll)
            reason = f"job {job_id} was deleted while it was watched"
            yield ServerSentEvent(event="end", data={"state": "DELETED", "reason": reason})
            return
        fresh = False
        for number, trial_state, objective in trials:
            news = sent.get(number) != trial_state
            sent[number] = trial_state
            if number == done + 1 and TrialState(trial_state).is_finished():
                done = number
                sent.pop(number, None)
            if news:
                fresh = True
                yield ServerSentEvent(
                    event="trial",
                    # (not past the checkpoint of a running job: the trials after it are
                    # run again by a resume, maybe to other results, which a client
                    # reconnecting after the restart must be sent)
                    id=str(done if covered is None else min(done, covered - 1)),
                    data={"number": number, "state": trial_state, "objective": objective},
                )
        snapshot = job_read(job, with_spec=False, settings=state.settings).model_dump(
            mode="json", exclude={"spec", "summary", "created_at", "owner"}
        )
        if snapshot != last_job:
            last_job = snapshot
            yield ServerSentEvent(event="job", data=snapshot)
        if JobState(job.state).is_finished() and not fresh:
            yield ServerSentEvent(event="end", data={"state": job.state, "reason": job.reason})
            return
        if await request.is_disconnected() or request.app.state.stopping.is_set():
            return  # the server is stopping (api.app.request_stop): no end, the job goes on
        if not fresh or len(trials) < 500:
            await asyncio.sleep(poll)


def _poll(
    state: AppState, job_id: int, last_number: int, principal: Principal
) -> tuple[Any, list[Any], int | None] | None:
    """The job, its trials after ``last_number``, and (while it is not finished) how many
    trials its checkpoint covers; ``None`` once the caller's key (none without auth) is
    revoked or rotated."""
    with state.read() as session:
        key_id = principal.key_id
        if key_id is not None and not ApiKeyRepository(session).is_active(
            key_id, principal.key_hash
        ):
            return None
        job = JobRepository(session).get(job_id)
        trials = list(TrialRepository(session).after(job_id, last_number, 500))
        covered = None
        if job is not None and not JobState(job.state).is_finished():
            covered = CheckpointRepository(session).trial_count(job_id)
        return job, trials, covered

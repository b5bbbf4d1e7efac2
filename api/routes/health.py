from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import StateDep
from api.schemas import Health
from api.version import VERSION

router = APIRouter(tags=["health"])


#: A job runner whose every tick has failed this long makes the server unhealthy.
RUNNER_FAILING_S = 10.0


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(request: Request, state: StateDep) -> Health | JSONResponse:
    """Liveness, database reachability and the job runner's state (no authentication):
    503 when the database does not answer, or when the runner's every tick has failed for
    ``RUNNER_FAILING_S`` (a full disk: reads answer, no job starts or renews; it said ok)."""
    runner = getattr(request.app.state, "runner", None)
    failing = runner.failing() if runner is not None else None
    if runner is None:
        runner_state = "off (NAS_RUN_JOBS=false)"
    elif failing is None:
        runner_state = "ok"
    else:
        runner_state = f"failing for {failing[0]:.0f} s: {failing[1]}"
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        body = Health(
            status="unavailable",
            database=f"error: {type(exc).__name__}",
            runner=runner_state,
            version=VERSION,
        )
        return JSONResponse(body.model_dump(), status_code=503)
    database = state.engine.dialect.name
    if failing is not None and failing[0] >= RUNNER_FAILING_S:
        body = Health(status="unavailable", database=database, runner=runner_state, version=VERSION)
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok", database=database, runner=runner_state, version=VERSION)

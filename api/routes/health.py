from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import StateDep
from api.schemas import Health
from api.version import VERSION

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(state: StateDep) -> Health | JSONResponse:
    """Liveness and database reachability (no authentication)."""
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        body = Health(
            status="unavailable", database=f"error: {type(exc).__name__}", version=VERSION
        )
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok", database=state.engine.dialect.name, version=VERSION)

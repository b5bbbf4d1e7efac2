"""FastAPI dependencies as annotated aliases: sessions, the caller, the parsed spec body."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request, status
from pydantic import BeforeValidator
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.auth import LOCAL_ADMIN, Principal, authenticate, bearer_token, hash_key
from api.db import session_scope
from api.reads import Reader
from api.repositories import ApiKeyRepository, iso_utc
from api.settings import Settings
from nas.spec import parse_document


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    read: sessionmaker[Session]
    write: sessionmaker[Session]
    #: The hot read path (trial listings): ``api.reads``.
    reader: Reader


def app_state(request: Request) -> AppState:
    return request.app.state.nas


def _read_session(request: Request) -> Iterator[Session]:
    with app_state(request).read() as session:
        yield session


def _write_session(request: Request) -> Iterator[Session]:
    with session_scope(app_state(request).write) as session:
        yield session


ReadSession = Annotated[Session, Depends(_read_session, scope="function")]
# scope="function": commit before the response is sent, so a client that reads right after
# a write sees it (the default closes yield dependencies after the response).
WriteSession = Annotated[Session, Depends(_write_session, scope="function")]
StateDep = Annotated[AppState, Depends(app_state)]


def _principal(request: Request, session: ReadSession) -> Principal:
    """The caller, looked up in the request's read session, whose connection goes back to
    the pool right after: a request that writes would otherwise hold it while it waits for
    a second one (its write session). On SQLite, where writers queue for the lock, enough
    submits at once then held every pooled connection and each waited out the pool's
    time-out (500s)."""
    state = app_state(request)
    if state.settings.auth == "none":
        return LOCAL_ADMIN
    try:
        header = authorization_header(request)
        principal = authenticate(session, header)
        token = bearer_token(header) if principal is None else None
        revoked = ApiKeyRepository(session).revoked_at(hash_key(token)) if token else None
    finally:
        session.rollback()  # ends the read transaction; a later read begins another
    if principal is None:
        raise unauthorized(revoked)
    return principal


def require_caller(request: Request) -> None:
    """A known key (else the 401 or 400 raised), checked when a request's parameters are
    invalid, ahead of answering 422 (naming the route's parameters) to a request without a
    key, which the README promises a 401."""
    if app_state(request).settings.auth == "none":
        return
    with app_state(request).read() as session:
        _principal(request, session)


def authorization_header(request: Request) -> str | None:
    """The one Authorization header: with two, the first one's key was taken, whatever
    the second said (a 400: a client or proxy adds one it should replace)."""
    given = request.headers.getlist("authorization")
    if len(given) > 1:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"{len(given)} Authorization headers; send one: 'Authorization: Bearer <key>'",
        )
    return given[0] if given else None


def unauthorized(revoked_at: datetime | None = None) -> HTTPException:
    """The 401; ``revoked_at``: the key was one of this server's, revoked then (it was told
    to create a key against the right database, as for a key never known here)."""
    if revoked_at is not None:
        return HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"this API key was revoked at {iso_utc(revoked_at)}: ask an admin for a new one "
            "('nas keys create'); an admin sees the revoked key's jobs",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing or invalid API key: send 'Authorization: Bearer <key>' "
        "(create one with 'nas keys create --name NAME' against this server's database: the "
        "same --db / NAS_DATABASE_URL, else --data-dir / NAS_DATA_DIR, as 'nas serve'; a key "
        "created in another database is unknown here)",
        headers={"WWW-Authenticate": "Bearer"},
    )


CurrentPrincipal = Annotated[Principal, Depends(_principal)]

SPEC_MEDIA_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml")


@dataclass(frozen=True)
class SpecBody:
    """A parsed spec body; ``strict``: none of its types are coerced (JSON and YAML alike)."""

    document: dict[str, Any]
    strict: bool


async def _spec_document(request: Request) -> SpecBody:
    """The request body as a spec document: JSON, or YAML with a YAML content type."""
    # Media types are case-insensitive (RFC 9110 8.3.1).
    header = request.headers.get("content-type", "application/json")
    media, _, parameters = (part.strip().lower() for part in header.partition(";"))
    if media not in SPEC_MEDIA_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"content-type {media!r} is not supported; send one of {', '.join(SPEC_MEDIA_TYPES)}",
        )
    charset = next(
        (p.split("=", 1)[1].strip().strip('"') for p in parameters.split(";") if "=" in p
         and p.split("=", 1)[0].strip() == "charset"),
        "utf-8",
    )  # fmt: skip
    if charset.replace("-", "").replace("_", "") != "utf8":
        # (utf-16 was accepted, and the body read as UTF-8 all the same)
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"charset {charset!r} is not supported; send the spec as UTF-8 (charset=utf-8)",
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # (a gzip body was said to be "not UTF-8 text")
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"content-encoding {encoding!r} is not supported; send the spec uncompressed",
        )
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the body is not UTF-8 text") from None
    if not text.strip():
        raise _invalid(["<document>"], "the body is empty; send a job spec")
    syntax = "json" if media == "application/json" else "yaml"
    settings = app_state(request).settings
    document = parse_document(
        text,
        source=f"the {syntax.upper()} body",
        syntax=syntax,
        max_depth=settings.max_spec_depth,
        max_bytes=settings.max_body_bytes,  # aliases must not expand a YAML body past it
    )
    return SpecBody(document, strict=True)  # YAML too: its numbers read as numbers (nas.spec)


def _invalid(loc: list[str], msg: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": loc, "msg": msg, "type": "invalid_document"}],
    )


SpecDocument = Annotated[SpecBody, Depends(_spec_document)]


async def refuse_body(
    request: Request, why: str = "its parameters are query parameters (e.g. ?rank=2)"
) -> None:
    """For a POST whose parameters are all in its query, called by its route once the key
    and the path are checked: a body that says something is a 422 (a JSON ``{"rank": 2}``
    sent to ``/retrain`` retrained rank 1 without a word). No body, or JSON ``{}`` or
    ``null`` however spaced, says nothing."""
    raw = await request.body()
    if raw.strip():
        try:
            said = json.loads(raw)
        except ValueError:
            said = raw
        if said not in ({}, None):
            raise _invalid(
                ["body"],
                f"{request.method} {request.url.path} takes no body" + (f": {why}" if why else ""),
            )


#: The id columns' ranges: job ids are 32-bit integers (``INTEGER`` on PostgreSQL), trial ids
#: 64-bit. An id outside them is a 422 naming the path parameter, never a database error.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def _in_digits(value: Any) -> Any:
    """A whole number of a path, query or header is written in digits (``-`` first for a
    cursor's -1): Python's ``int`` reads ``3_2`` as 32 and ``+2`` or `` 2`` as 2, pydantic
    ``2.0`` as 2, and ``DELETE /jobs/3_2`` deleted job 32 (the HTTP API probe)."""
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
        raise ValueError(f"must be a whole number written in digits, got {value!r}")
    return value


#: The metadata of every integer parameter: ``Annotated[int, Query(...), DIGITS]``.
DIGITS = BeforeValidator(_in_digits)
#: An empty header as no header (an ``EventSource`` may send ``Last-Event-ID:`` empty on its
#: first connect: it was a 422).
BLANK_AS_ABSENT = BeforeValidator(lambda v: None if isinstance(v, str) and not v.strip() else v)
JobId = Annotated[int, Path(ge=1, le=INT32_MAX, description="the job's id"), DIGITS]
TrialId = Annotated[int, Path(ge=1, le=INT64_MAX, description="the trial's id"), DIGITS]


async def _job_id_without_body(request: Request, job_id: JobId, principal: CurrentPrincipal) -> int:
    """The path's job id of a route that takes nothing else (cancel, delete), with
    ``refuse_body`` once the key (``principal``) and the path are checked: a body such as
    ``{"force": true}`` on a DELETE was taken and ignored. (The route takes its id from here:
    declared twice, a bad one was two identical problems.)"""
    del principal  # (checked first: a 401 before the body)
    await refuse_body(request, why="")
    return job_id


JobIdWithoutBody = Annotated[int, Depends(_job_id_without_body)]

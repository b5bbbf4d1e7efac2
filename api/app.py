"""The FastAPI application: ``create_app(settings)``; ``nas serve`` runs it with uvicorn."""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
from fastapi import Depends, FastAPI, Request, Response, status
from fastapi.dependencies.utils import is_scalar_field
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.db import (
    check_schema,
    database_full,
    make_engine,
    make_session_factory,
    short_error,
    upgrade,
)
from api.deps import AppState, require_caller
from api.openapi import install_openapi
from api.reads import make_reader
from api.routes import curves, dashboard, exports, health, jobs, trials
from api.settings import Settings
from api.version import VERSION
from nas.errors import NasError, SpecError

log = logging.getLogger("nas.api")

#: A 503's detail: the database did not answer (down, unreachable, out of connections).
DATABASE_UNAVAILABLE = "the database is unavailable; try again shortly"
DATABASE_FULL = (
    "the database's storage is full: nothing was written. Free space on its disk (or raise "
    "its quota), then try again"
)


def _database_unavailable_errors() -> tuple[type[Exception], ...]:
    """What a request meets when the database does not answer: a connection refused or
    lost (the drivers' and SQLAlchemy's OperationalError), no pooled connection in time
    (SQLAlchemy's and psycopg_pool's time-outs)."""
    import psycopg
    import psycopg_pool
    import sqlalchemy.exc

    return (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.TimeoutError,
        psycopg.OperationalError,
        psycopg_pool.PoolTimeout,
    )


#: Where /docs and /redoc load their scripts, styles and icon from (this server).
DOCS_ASSETS = "/docs/assets"

#: How long a shutdown waits for retrainings to stop after their current epoch.
RETRAIN_STOP_S = 30.0


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuse request bodies above ``max_bytes`` with 413, whether announced by
    Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            # No endpoint reads the body of a GET: the hot read path skips the wrapping.
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes (NAS_MAX_BODY_BYTES)"},
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        )
        await response({"type": "http", "method": "POST", "headers": []}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class NoEntityTags:
    """The API sends no entity tags, so a request that changes something under a condition
    on one (``If-Match: "v1"``) cannot be met: 412 (RFC 9110 13.1.1), before anything
    changes. It was ignored: a client guarding a cancel or a delete with it acted
    unguarded. ``If-Match: *`` (any current representation) holds wherever the resource
    exists, which the route checks as always."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        tags = [v for name, v in scope["headers"] if name == b"if-match" and v.strip()]
        if tags and any(t.strip() != b"*" for t in b",".join(tags).split(b",")):
            response = JSONResponse(
                {
                    "detail": "If-Match: this API sends no entity tags (ETag), so no tag can "
                    "match; send the request without If-Match, or with If-Match: *"
                },
                status_code=status.HTTP_412_PRECONDITION_FAILED,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class NoKeysGuard:
    """A server without keys (``NAS_AUTH=none``) trusts every caller, so it answers only its
    own pages and local tools: a change sent by another site's page (``Sec-Fetch-Site``
    cross-site or same-site, or an ``Origin`` other than the ``Host`` asked) is a 403, and
    so is any request for a ``Host`` that is a name other than ``localhost`` and those of
    ``NAS_ALLOWED_HOSTS`` (an IP address is always taken). Any web page the user opened
    could cancel or delete jobs with a plain form post; through a name of its own resolved
    to this machine (DNS rebinding), read them all (the security probe)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        refused = None
        if not self._known_host(host):
            refused = (
                f"Host {host!r}: a server without keys answers only to its IP addresses, "
                "localhost and the names of NAS_ALLOWED_HOSTS"
            )
        elif scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            site = headers.get("sec-fetch-site", "").lower()
            origin = headers.get("origin")
            sent_from = _netloc(origin) if origin is not None else None
            if site in ("cross-site", "same-site") or (
                sent_from is not None and sent_from != host.lower()
            ):
                refused = (
                    f"a change sent from another site's page (Origin {origin!r}, Host "
                    f"{host!r}): a server without keys takes changes only from its own pages "
                    "and from clients that are no browser (behind a proxy: keep the Host)"
                )
        if refused is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"detail": refused}, status_code=status.HTTP_403_FORBIDDEN)
        await response(scope, receive, send)

    def _known_host(self, host: str) -> bool:
        try:
            name = (urlsplit(f"//{host}").hostname or "").rstrip(".")  # (localhost.: localhost)
        except ValueError:  # ("[::1": not a host a browser sends)
            return False
        if not name or name == "localhost" or name.endswith(".localhost"):
            return True  # (no Host: HTTP/1.0, not a browser's)
        if name in self.allowed:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def _netloc(url: str) -> str:
    """``url``'s host and port, lowercase (a URL that is none: itself, which no Host is)."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return url


#: Set in the scope of a HEAD request that ``HeadAsGet`` passes on as a GET.
HEAD_KEY = "nas.head"


class HeadAsGet:
    """HEAD answers as GET would, its headers without the body (RFC 9110 9.3.2): the API's
    routes answer GET alone, so ``curl -I`` and link checkers got 405. A streamed body
    (an event stream) ends at its first chunk: the client has its headers, and its
    disconnect stops the stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            nonlocal ended
            if message["type"] != "http.response.body":
                await send(message)
            elif not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET", HEAD_KEY: True}, receive, headers_only)


class ClientGone:
    """A client that leaves an event stream (a dashboard tab closed, Ctrl-C on ``nas
    watch``) while FastAPI's SSE keep-alive task is sending fails that task with anyio's
    ``BrokenResourceError``, and uvicorn logged it as "Exception in ASGI application" with
    a 75-line traceback, on one disconnect in three or so (fastapi discussion 15725, not
    fixed upstream). Nothing went wrong: once the response has started, an error made only
    of those (a closed or broken stream) ends the request quietly."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseExceptionGroup as group:
            _, other = group.split((anyio.BrokenResourceError, anyio.ClosedResourceError))
            if not started or other is not None:
                raise
            log.debug("%s %s: the client left the stream", scope["method"], scope["path"])


def request_stop(app: FastAPI) -> None:
    """Tell the app its server is stopping: open event streams end at their next poll.

    uvicorn waits for open connections *before* it runs the lifespan's shutdown, so a
    stream that waited for that would hold the shutdown until uvicorn cancels it (an ERROR
    and a traceback); the server calls this when it is asked to exit (safe from a signal
    handler: it only sets a ``threading.Event``)."""
    app.state.stopping.set()


def start_jobs(app: FastAPI) -> None:
    """Let the job runner of an app made with ``create_app(jobs_at_startup=False)`` take
    jobs; its server calls this once it is serving."""
    runner = app.state.runner
    if runner is not None:
        runner.start()


def create_app(settings: Settings | None = None, *, jobs_at_startup: bool = True) -> FastAPI:
    """The service's app. Its start (the lifespan) migrates or checks the database, starts
    Ray and the job runner. ``jobs_at_startup=False``: the runner takes jobs only once
    ``start_jobs(app)`` is called. A server starts the app *before* it binds its port, so
    one that calls ``start_jobs`` after binding (``nas serve``) claims no job when the port
    is taken and it exits at once."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.stopping.clear()  # (an app started again after a stop streams again)
        engine = make_engine(settings.resolved_database_url())
        try:
            if settings.migrate_on_start:
                upgrade(engine)
            else:  # refuse to start rather than serve 500s from another schema
                check_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        state = AppState(
            settings=settings,
            engine=engine,
            read=make_session_factory(engine),
            write=make_session_factory(engine, write=True),
            reader=make_reader(engine, settings.read_concurrency),
        )
        await state.reader.open()
        app.state.nas = state
        started_ray = False
        if settings.backend == "ray" and settings.run_jobs:
            # Only the job runner needs Ray; an API-only server connects at the first submit
            # that asks for GPUs. Ray's driver threads cost a busy server CPU otherwise.
            from workers.ray_backend import ensure_ray

            started_ray = ensure_ray(settings.ray_address, num_cpus=settings.ray_num_cpus)
        runner = None
        if settings.run_jobs:
            from api.runner import JobRunner

            runner = JobRunner(settings, engine)
        app.state.runner = runner
        if jobs_at_startup:
            start_jobs(app)
        try:
            yield
        finally:
            request_stop(app)
            retrainings = getattr(app.state, "nas_retrainings", None)
            if retrainings is not None and not retrainings.stop(timeout=RETRAIN_STOP_S):
                log.warning(
                    "a retraining did not stop within %.0f s of the shutdown", RETRAIN_STOP_S
                )
            if runner is not None:
                runner.stop()
            if started_ray:
                import ray

                ray.shutdown()
            await state.reader.close()
            engine.dispose()

    # /docs (Swagger UI) and /redoc with their scripts and styles served by this server, from
    # the fastapi-offline package: FastAPI's own pages load them from a CDN, and were blank
    # on a machine without internet access.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        title="nas-service",
        version=VERSION,
        description="Neural architecture search and hyperparameter optimisation jobs.",
        lifespan=lifespan,
        dependencies=[Depends(known_query_parameters)],
    )
    #: Set once the server is stopping (``request_stop``); event streams end on it.
    app.state.stopping = threading.Event()
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(HeadAsGet)
    app.add_middleware(NoEntityTags)
    if settings.auth == "none":
        app.add_middleware(NoKeysGuard, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(ClientGone)
    routers = [
        health.router,
        jobs.router,
        trials.router,
        exports.router,
        curves.router,
        dashboard.router,
        dashboard.pages,
    ]
    for router in routers:
        app.include_router(router)

    @app.exception_handler(SpecError)
    async def _spec_error(_request: Request, exc: SpecError) -> JSONResponse:
        detail = [{**e, "loc": list(e["loc"])} for e in exc.errors]
        return AsciiJSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(NasError)
    async def _nas_error(_request: Request, exc: NasError) -> JSONResponse:
        detail: Any = [{"loc": [], "msg": str(exc), "type": type(exc).__name__}]
        return AsciiJSONResponse({"detail": detail}, status_code=422)

    async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The database down or unreachable (or its pool out of connections for long): a
        # request's plain-text 500 said nothing of it; what it was goes to the log only.
        log.warning("%s %s: the database is unavailable: %s", request.method,
                    request.url.path, short_error(exc))  # fmt: skip
        if database_full(exc):  # (a 503 "try again shortly": no wait frees the space)
            return JSONResponse({"detail": DATABASE_FULL}, status_code=507)
        return JSONResponse(
            {"detail": DATABASE_UNAVAILABLE}, status_code=503, headers={"Retry-After": "5"}
        )

    for unavailable in _database_unavailable_errors():
        app.add_exception_handler(unavailable, _database_unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            # Starlette's Allow names the methods of one route; a path has one per method.
            # the routers' routes, and the app's own (/docs, /openapi.json); FastAPI wraps
            # an included router in a route that names no methods
            routes = [r for router in routers for r in router.routes]
            routes += [
                r
                for r in request.app.router.routes
                if getattr(r, "methods", None) or _serves_files(r)
            ]
            allowed = _methods_at(routes, request.scope)
            method = "HEAD" if request.scope.get(HEAD_KEY) else request.method
            return JSONResponse(
                {"detail": f"method {method} not allowed; allowed: {allowed}"},
                status_code=405,
                headers={"Allow": allowed},
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # Every /api/ route needs a key, and a caller without a known one learns that first,
        # not the route's parameters: the trial listing, which checks the key in its own
        # query, answered a bad ?limit= 422 before 401, as did a query that no route takes.
        if request.url.path.startswith("/api/"):
            try:
                await anyio.to_thread.run_sync(require_caller, request)
            except StarletteHTTPException as denied:
                return await _http_error(request, denied)
            except _database_unavailable_errors() as down:
                return await _database_unavailable(request, down)
        return await request_validation_exception_handler(request, exc)

    install_openapi(app, auth=settings.auth != "none")
    return app


def known_query_parameters(request: Request) -> None:
    """A query parameter an API route does not take is a 422 naming it and the valid ones: a
    typo (``?formt=onnx``, ``?Rank=2``) was ignored and answered as if it had not been sent."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return
    if not route.path.startswith("/api/"):  # the dashboard's page takes any (?utm=...)
        return
    known = _query_names(route)
    for name in request.query_params:
        if name not in known:
            valid = ", ".join(sorted(known)) or "none"
            raise _query_error(name, f"unknown query parameter {name!r}; valid: {valid}")
        # one value each: a second (?format=json&format=onnx) silently won
        given = len(request.query_params.getlist(name))
        if given > 1 and known[name]:
            raise _query_error(name, f"query parameter {name!r} given {given} times; give it once")


def _query_error(name: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": msg, "type": "value_error"}])


def _query_names(route: APIRoute) -> Mapping[str, bool]:
    """The query parameters ``route`` declares, each with whether it takes one value only
    (remembered on the route)."""
    known: Mapping[str, bool] | None = getattr(route, "_nas_query_names", None)
    if known is not None:
        return known
    names: dict[str, bool] = {}
    pending = [route.dependant]
    while pending:  # the route's own parameters and those of its dependencies
        dependant = pending.pop()
        names.update((param.alias, is_scalar_field(param)) for param in dependant.query_params)
        pending.extend(dependant.dependencies)
    route._nas_query_names = names  # type: ignore[attr-defined]
    return names


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an error that quotes a client's input
    can always be sent, whatever text the input held."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _serves_files(route: BaseRoute) -> bool:
    """``route`` is a folder of static files (the docs' assets), which answer GET and HEAD."""
    return isinstance(route, Mount) and isinstance(route.app, StaticFiles)


def _methods_at(routes: list[BaseRoute], scope: Scope) -> str:
    # a mount that raised the 405 (the static files) left its own prefix as the root path
    scope = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.PARTIAL:
            methods.update(getattr(route, "methods", None) or ())
        elif match is Match.FULL and _serves_files(route):
            methods.add("GET")
    if "GET" in methods:
        methods.add("HEAD")  # HeadAsGet
    return ", ".join(sorted(methods))

"""The hot read path (trial listings): a read is a plan of SQL statements, run by a reader.

A plan is a generator: it yields ``(statement, params)``, receives the statement's rows
(tuples in select order) and returns the response. It holds the logic between its
statements (a 401, a 404 or a 422 after the first one), and knows neither the driver nor
threads, so one plan runs on either reader:

- ``PgReader`` (PostgreSQL): psycopg's asyncio connections from a small ``psycopg_pool``
  pool, in autocommit, on the server's event loop. A listing then costs its statements'
  round trips and no worker-thread hop, transaction or ``SELECT 1``. The statements are
  SQLAlchemy statements compiled once for psycopg. A connection that died meanwhile (a
  database restart) fails its statement; the pool drops it, checks its idle ones, and the
  plan runs once more on a fresh connection.
- ``SyncReader`` (SQLite, and any other engine): the SQLAlchemy engine in a worker thread,
  at most ``threads`` at once.

Fewer concurrent reads than anyio's 40 threads keep a loaded 2-core server from switching
between dozens of threads and connections: requests queue on the event loop instead.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from sqlalchemy import Engine, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import Compiled

from api.db import PG_SESSION_OPTIONS

T = TypeVar("T")
#: ``application_name`` of the read pool's PostgreSQL connections (``pg_stat_activity``).
APPLICATION_NAME = "nas-reads"
Rows = Sequence[Sequence[Any]]
#: A read plan: yields statements with their parameters, gets their rows, returns a result.
Plan = Generator[tuple[Select[Any], dict[str, Any]], Rows, T]


class Reader(Protocol):
    #: The database's SQLAlchemy dialect name (``postgresql``, ``sqlite``, ...).
    dialect: str

    async def run(self, make_plan: Callable[[], Plan[T]]) -> T:
        """Run ``make_plan()``; once more on a fresh connection if the first one was dead."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


def make_reader(engine: Engine, concurrency: int) -> Reader:
    """``PgReader`` for PostgreSQL through psycopg, else ``SyncReader``."""
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        return PgReader(engine, concurrency)
    return SyncReader(engine, concurrency)


class SyncReader:
    """Runs plans on a SQLAlchemy engine in worker threads, ``threads`` at once."""

    def __init__(self, engine: Engine, threads: int) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.threads = threads
        self._limiter: CapacityLimiter | None = None  # made in the event loop

    async def open(self) -> None:
        self._limiter = CapacityLimiter(self.threads)

    async def run(self, make_plan: Callable[[], Plan[T]]) -> T:
        if self._limiter is None:
            await self.open()
        return await anyio.to_thread.run_sync(self._run, make_plan, limiter=self._limiter)

    def _run(self, make_plan: Callable[[], Plan[T]]) -> T:
        try:
            return self._drive(make_plan())
        except DBAPIError as exc:
            if not exc.connection_invalidated:  # the pool has dropped the dead connections
                raise
        return self._drive(make_plan())

    def _drive(self, plan: Plan[T]) -> T:
        with self.engine.connect() as connection:
            try:
                statement, params = next(plan)
                while True:
                    rows = connection.execute(statement, params).all()
                    statement, params = plan.send(rows)
            except StopIteration as stop:
                return stop.value

    async def close(self) -> None:
        return None


#: How long a read waits for a pooled PostgreSQL connection (a busy pool frees one in
#: milliseconds; the database down frees none).
CONNECTION_WAIT_S = 10.0


class PgReader:
    """Runs plans on PostgreSQL through psycopg's asyncio pool of ``size`` autocommit
    connections, on the event loop."""

    dialect = "postgresql"

    def __init__(self, engine: Engine, size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.sql_dialect = engine.dialect
        url = engine.url.set(drivername="postgresql")
        self.pool = AsyncConnectionPool(
            url.render_as_string(hide_password=False),
            min_size=size,
            max_size=size,
            kwargs={
                "autocommit": True,
                "application_name": APPLICATION_NAME,
                "options": PG_SESSION_OPTIONS,
            },
            open=False,
            name="nas-reads",
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30.0)

    async def run(self, make_plan: Callable[[], Plan[T]]) -> T:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            return await self._drive(make_plan())
        except PoolTimeout:
            # No connection came within the wait (the database down): that is the answer
            # (a PoolTimeout is an OperationalError, and a second wait made it 20 s, not 10)
            raise
        except psycopg.OperationalError:
            # Connections lost meanwhile (a database restart, an idle timeout): the pool has
            # thrown this one away; check the idle ones (they died too, most likely) and try
            # once more on a fresh one. A second failure is real.
            await self.pool.check()
        return await self._drive(make_plan())

    async def _drive(self, plan: Plan[T]) -> T:
        # (a database down: no connection comes, and the request answers 503 after the wait)
        async with self.pool.connection(timeout=CONNECTION_WAIT_S) as connection:
            try:
                statement, params = next(plan)
                while True:
                    sql, values = driver_statement(statement, params, self.sql_dialect)
                    cursor = await connection.execute(sql, values)
                    statement, params = plan.send(await cursor.fetchall())
            except StopIteration as stop:
                return stop.value

    async def close(self) -> None:
        await self.pool.close()


def driver_statement(
    statement: Select[Any], params: dict[str, Any], dialect: Dialect
) -> tuple[str, dict[str, Any]]:
    """``statement`` as the driver's SQL text (compiled once per statement) and
    ``params`` completed with the statement's own bound values (a JSON path, say),
    converted as SQLAlchemy converts them before handing them to the driver."""
    compiled = _compiled(statement, dialect)
    values = compiled.construct_params(params)
    for name, process in compiled._bind_processors.items():
        if name in values and process is not None:
            values[name] = process(values[name])
    return compiled.string, values


@lru_cache(maxsize=512)
def _compiled(statement: Select[Any], dialect: Dialect) -> Compiled:
    # The plans' statements are themselves built once per shape (cached), so they are
    # the same objects from one request to the next.
    return statement.compile(dialect=dialect)

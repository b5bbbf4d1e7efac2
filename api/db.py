"""Engine, sessions and schema migrations.

SQLite gets WAL mode and a busy timeout, so readers never block the writer and writers wait
for each other instead of failing with "database is locked". PostgreSQL is used as is.
The session commits or rolls back once, at the edge of a request or a unit of work
(``session_scope``); repositories never commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("nas.db")

T = TypeVar("T")

#: Alembic's version table, named so that an Optuna storage (whose own Alembic table is
#: ``alembic_version``) can share the database.
VERSION_TABLE = "nas_alembic_version"
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; creates the SQLite file's folder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Take over pysqlite's transaction handling, so a writing unit of work can
            # BEGIN IMMEDIATE: writers then queue on the busy timeout at BEGIN instead of
            # failing when a read transaction upgrades to a write. Readers BEGIN deferred and
            # never block anyone in WAL mode.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get("nas_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    # Close to the number of request threads (anyio: 40), so a busy
    # server reuses connections instead of opening and closing overflow ones.
    kwargs.setdefault("pool_size", 30)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    # Timestamps in UTC whatever the database's TimeZone setting (JSON built in SQL, as the
    # trial listing's, formats them in the session's zone).
    connect_args = {"options": PG_SESSION_OPTIONS, **kwargs.pop("connect_args", {})}
    return create_engine(url, connect_args=connect_args, **kwargs)


#: Settings of every PostgreSQL session this service opens.
PG_SESSION_OPTIONS = "-c timezone=UTC"


def make_session_factory(engine: Engine, *, write: bool = False) -> sessionmaker[Session]:
    """Sessions for reading, or (``write=True``) for units of work that write: on SQLite
    those take the write lock when they begin."""
    bind = engine.execution_options(nas_write=True) if write else engine
    return sessionmaker(bind, expire_on_commit=False)


def one_snapshot(session: Session) -> Session:
    """``session`` with every read of its transaction on one snapshot, called before its
    first statement. PostgreSQL's default (read committed) takes one per statement: an
    export that ranks a job's trials in several reads met a delete between two of them (a
    trial the first read found was gone in the next). SQLite's transaction already reads one
    snapshot (WAL)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    return session


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        try:
            session.rollback()
        except Exception:  # a dead connection: the error that killed it is the one to raise
            log.debug("rollback failed", exc_info=True)
        raise
    finally:
        session.close()


#: Longest pause between two tries of a unit of work (``retry_transient``).
RETRY_PAUSE_MAX_S = 2.0


class DatabaseUnavailable(Exception):
    """Transient database errors went on for longer than the retry budget."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database error that a new try on a new connection may not meet:
    a lost connection (terminated, a restart), a serialization failure or deadlock, SQLite's
    busy database, an exhausted connection pool. Constraint violations, bad SQL and data
    errors are not."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection free in time
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # psycopg: connection failures, AdminShutdown, CannotConnectNow, SerializationFailure,
    # DeadlockDetected are OperationalError; sqlite3: "database is locked" and I/O errors.
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))


#: SQLite's result code for a full database or disk; PostgreSQL's SQLSTATE disk_full.
SQLITE_FULL = 13
PG_DISK_FULL = "53100"


def database_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's storage being full (SQLite's "database or disk is
    full", PostgreSQL's ``disk_full``): nothing more can be written until space is freed,
    which waiting alone does not bring."""
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL:
        return True
    return getattr(orig, "sqlstate", None) == PG_DISK_FULL


def short_error(exc: BaseException, limit: int = 300) -> str:
    """``exc`` in at most ``limit`` characters, for a job's reason or a trial's error: a
    database error is its driver's message (first line), never the statement or its
    parameters (those go to the log)."""
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        orig = exc.orig
        lines = str(orig).strip().splitlines() or [""]
        text = f"database error: {type(orig).__name__}: {lines[0].strip()}"
    elif isinstance(exc, DatabaseUnavailable):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def retry_transient(
    factory: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    retry_s: float,
    what: str,
) -> T:
    """Run ``work`` in a unit of work (``session_scope``); on a transient error
    (``is_transient``) roll back and run it again in a new session, on a new connection,
    pausing 0.05 s, then twice as long each time up to ``RETRY_PAUSE_MAX_S``, for up to
    ``retry_s`` seconds from the first error; then ``DatabaseUnavailable``. ``work`` must be
    idempotent: a try whose commit reached the database but whose answer was lost is tried
    again. Other errors are raised at once."""
    first: float | None = None
    pause = 0.05
    tries = 0
    while True:
        try:
            with session_scope(factory) as session:
                return work(session)
        except Exception as exc:
            if not is_transient(exc):
                raise
            tries += 1
            now = time.monotonic()
            first = now if first is None else first
            if now - first >= retry_s:
                log.error("%s: the database failed %d times in %.1f s", what, tries, now - first)
                raise DatabaseUnavailable(
                    f"the database was unavailable for {retry_s:g} s (NAS_DB_RETRY_S) while "
                    f"{what}: {short_error(exc, 160)}"
                ) from exc
            log.warning("%s: %s; trying again in %.2f s", what, short_error(exc), pause)
            log.debug("%s: transient database error", what, exc_info=True)
            time.sleep(pause)
            pause = min(pause * 2, RETRY_PAUSE_MAX_S)


#: What the migrations make that the models do not declare: alembic's autogenerate leaves
#: them alone (it would write a migration dropping them). The objective-order indexes are
#: dialect-specific: migration 0002 makes them, the models only mention them.
MADE_BY_MIGRATIONS = frozenset(
    {VERSION_TABLE, "ix_nas_trials_job_objective_asc", "ix_nas_trials_job_objective_desc"}
)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's ``include_object`` hook: compare everything but ``MADE_BY_MIGRATIONS``."""
    return name not in MADE_BY_MIGRATIONS


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


#: The PostgreSQL advisory lock key that serialises schema upgrades (any constant of ours).
_UPGRADE_LOCK = 0x6E61735F6462  # "nas_db"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent).

    On SQLite the migrations run with foreign keys off, so that rebuilding a table (0004)
    does not cascade its implicit delete to the rows referring to it; they are checked
    before the commit and turned on again after. (SQLite ignores the pragma inside a
    transaction: it is set on the driver's connection before BEGIN.)"""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        driver = connection.connection.dbapi_connection
        if sqlite:
            driver.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            # One upgrade at a time (servers starting together on a new database: one died
            # of "database is locked", or on PostgreSQL of a duplicate type, while both
            # created the tables); the next then finds the schema at head. SQLite: BEGIN
            # IMMEDIATE, which waits on the busy timeout; PostgreSQL: a lock to the commit.
            connection.execution_options(nas_write=True)
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_UPGRADE_LOCK})")
                check_upgradable(connection)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"foreign keys broken by the upgrade: {broken[:5]}")
        finally:
            if sqlite:
                driver.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _revision_of(connection)


def _revision_of(connection: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def check_upgradable(connection: Any) -> None:
    """``SchemaUnusable`` when ``upgrade`` cannot bring this database to this version's
    schema: a newer version wrote it (a revision this one does not know), or it holds the
    service's tables without the table that says their revision (alembic then tried to
    create them again: "table nas_api_keys already exists", read as a connection problem)."""
    from sqlalchemy import inspect

    found = _revision_of(connection)
    if found is not None and found not in _known_revisions():
        raise SchemaUnusable(_newer_schema(found))
    if found is None and inspect(connection).has_table("nas_jobs"):
        raise SchemaUnusable(
            f"the database holds this service's tables but not its schema revision (the "
            f"table {VERSION_TABLE} is missing), so which migrations it has had is unknown: "
            f"restore that table (or 'alembic stamp' the revision its tables are at), or use "
            "a new database"
        )


def _newer_schema(found: str) -> str:
    return (
        f"the database is at schema revision {found}, which this version (schema "
        f"{head_revision()}) does not know: a newer version of nas wrote it; use that version "
        "or a newer one (an older one cannot read or downgrade it)"
    )


def head_revision() -> str:
    """The revision ``upgrade`` brings a database to: the schema this code reads and writes."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "api/migrations has no revision"  # the package is broken
    return head


class SchemaNotCurrent(Exception):
    """The database is not at ``head_revision``, and this process was told not to migrate
    it (``NAS_MIGRATE_ON_START=false``)."""


class SchemaUnusable(SchemaNotCurrent):
    """The database's schema cannot be brought to ``head_revision`` by this version
    (``check_upgradable``)."""


def check_schema(engine: Engine) -> None:
    """``SchemaNotCurrent`` unless the database is at ``head_revision``. A server that
    does not migrate on start checks this first: on a database never migrated, or migrated
    by another version, it would answer every request with a 500 and fail every runner
    tick."""
    found = current_revision(engine)
    head = head_revision()
    if found is not None and found not in _known_revisions():
        raise SchemaUnusable(_newer_schema(found))
    if found != head:
        raise SchemaNotCurrent(
            f"the database is at revision {found or 'none (never migrated)'}, not {head} "
            "(this version's schema), and NAS_MIGRATE_ON_START is false: run 'nas db "
            "upgrade' with the server's --db or --data-dir first"
        )

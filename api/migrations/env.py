"""Alembic environment: runs on the connection ``api.db.upgrade`` hands over (or on
``sqlalchemy.url``), with this project's own version table."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from api.db import VERSION_TABLE, include_object
from api.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,  # (autogenerate: not the indexes only migrations make)
        render_as_batch=connection.dialect.name == "sqlite",
    )


connection = config.attributes.get("connection")
if connection is not None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()

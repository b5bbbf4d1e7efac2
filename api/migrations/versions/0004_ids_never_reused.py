"""Job and trial ids are never reused: SQLite tables with AUTOINCREMENT.

Without AUTOINCREMENT SQLite gives a new row ``max(id) + 1``, so deleting the newest job
handed its id to the next submit, though warm starts, exports and logs refer to jobs (and
``/api/v1/trials/{id}`` to trials) by id. PostgreSQL's sequences never go back: nothing to do
there. On SQLite both tables are rebuilt with their rows, ids, constraints and indexes (the
index statements are replayed as written, so 0002's ordered indexes keep their order); ids
freed before this upgrade cannot be known any more, ids from here on are never reused.

The rebuild drops the old ``nas_jobs``: with foreign keys on, SQLite would first delete its
rows and cascade to every trial, so it runs only with them off (``api.db.upgrade`` does so,
and checks the foreign keys after); otherwise it refuses rather than lose data.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("nas_jobs", "nas_trials")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "migration 0004 rebuilds nas_jobs, which with foreign keys on would delete every "
            "trial: upgrade with 'nas db upgrade' (or api.db.upgrade), which turns them off"
        )
    for table in TABLES:
        indexes = bind.execute(
            sa.text(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = :table AND sql IS NOT NULL"
            ),
            {"table": table},
        ).all()
        for name, _sql in indexes:
            op.drop_index(name, table_name=table)
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
        for _name, sql in indexes:
            bind.exec_driver_sql(sql)


def downgrade() -> None:
    # Kept: going back to reusing ids would break what refers to the ones already handed out.
    pass

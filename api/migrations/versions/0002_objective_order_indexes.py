"""Trial listings sorted by objective use an index in both directions, NULLs (failed
trials) last, with the trial number as tie-breaker.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nas_trials") as batch:
        batch.drop_index("ix_nas_trials_job_objective")
    postgres = op.get_bind().dialect.name == "postgresql"
    # PostgreSQL sorts NULLs last ascending and first descending, SQLite the other way; each
    # index is declared in the order the listing asks for (NULLS LAST where the engine
    # supports saying so; SQLite's descending order has NULLs last already).
    last = " NULLS LAST" if postgres else ""
    op.create_index(
        "ix_nas_trials_job_objective_asc",
        "nas_trials",
        ["job_id", sa.text(f"objective ASC{last}"), "number"],
    )
    op.create_index(
        "ix_nas_trials_job_objective_desc",
        "nas_trials",
        ["job_id", sa.text(f"objective DESC{last}"), "number"],
    )


def downgrade() -> None:
    op.drop_index("ix_nas_trials_job_objective_desc", table_name="nas_trials")
    op.drop_index("ix_nas_trials_job_objective_asc", table_name="nas_trials")
    with op.batch_alter_table("nas_trials") as batch:
        batch.create_index("ix_nas_trials_job_objective", ["job_id", "objective"])

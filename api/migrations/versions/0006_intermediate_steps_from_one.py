"""Intermediate values' steps count epochs trained, from 1 (as the README says and as the
pruners count them): rows written before were 0-based, so each stored step of a trial counted
from 0 moves up by one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only the trials counted from 0: every such trial has a step 0, which one counted from 1
    # never has (the code counted from 1 for a while before this revision came, so a
    # database may hold both; those trials moved twice, a 2-epoch trial reaching step 3).
    # The trials are listed first: an UPDATE that looked for step 0 while it moved the rows
    # could, on SQLite, miss a trial's step 0 it had already moved.
    op.execute(
        "CREATE TEMPORARY TABLE nas_zero_based AS SELECT DISTINCT job_id, trial_number "
        "FROM nas_intermediate_values WHERE step = 0"
    )
    # Through negatives: a unique (job, trial, step) would clash mid-statement on PostgreSQL,
    # which checks it row by row, if step became step + 1 in one go.
    op.execute(
        "UPDATE nas_intermediate_values SET step = -(step + 1) WHERE EXISTS (SELECT 1 FROM "
        "nas_zero_based AS z WHERE z.job_id = nas_intermediate_values.job_id "
        "AND z.trial_number = nas_intermediate_values.trial_number)"
    )
    op.execute("UPDATE nas_intermediate_values SET step = -step WHERE step < 0")
    op.execute("DROP TABLE nas_zero_based")


def downgrade() -> None:
    # (every step moves down: the code before counted from 0)
    op.execute("UPDATE nas_intermediate_values SET step = -step")
    op.execute("UPDATE nas_intermediate_values SET step = -step - 1")

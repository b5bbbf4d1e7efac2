"""Intermediate values' steps count epochs trained, from 1 (as the README says and as the
pruners count them): rows written before were 0-based, so every stored step moves up by one.

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
    # Through negatives: a unique (job, trial, step) would clash mid-statement on PostgreSQL,
    # which checks it row by row, if step became step + 1 in one go.
    op.execute("UPDATE nas_intermediate_values SET step = -(step + 1)")
    op.execute("UPDATE nas_intermediate_values SET step = -step")


def downgrade() -> None:
    op.execute("UPDATE nas_intermediate_values SET step = -step")
    op.execute("UPDATE nas_intermediate_values SET step = -step - 1")

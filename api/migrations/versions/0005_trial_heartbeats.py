"""A trial's heartbeat: a retraining (a trial of a finished job, trained by whichever server
took the request) renews it while it trains, so that any server can tell a retraining whose
server died (on another machine too) from one that still runs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "nas_trials", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("nas_trials") as batch:
        batch.drop_column("heartbeat_at")

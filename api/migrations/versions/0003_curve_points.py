"""Per-epoch curves of a job (a shared-weight search's supernet epochs), served by
``GET /api/v1/jobs/{id}/curves``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The unique constraint's index also serves the reads (a job's points in series and
    # step order) and the resume's delete (a series' points from a step on).
    op.create_table(
        "nas_curve_points",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("series", sa.String(length=50), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["nas_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "series", "step", name="uq_nas_curve_points_series_step"),
    )


def downgrade() -> None:
    op.drop_table("nas_curve_points")

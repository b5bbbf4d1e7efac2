"""Per-epoch curves of a job (a shared-weight search's supernet epochs), served by
``GET /api/v1/jobs/{id}/curves``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

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
    _backfill()


def _backfill() -> None:
    """Jobs checkpointed before this revision kept their supernet epochs only in the
    checkpoint's loop state: copy them into the table, so their curves are served too and a
    running job's curve has no gap when it resumes."""
    bind = op.get_bind()
    points = sa.table(
        "nas_curve_points",
        sa.column("job_id", sa.Integer()),
        sa.column("series", sa.String()),
        sa.column("step", sa.Integer()),
        sa.column("values", sa.JSON()),
        sa.column("recorded_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    rows = []
    for job_id, loop_state in bind.execute(
        sa.text("SELECT job_id, loop_state FROM nas_checkpoints")
    ):
        state = json.loads(loop_state) if isinstance(loop_state, str) else loop_state
        for point in (state or {}).get("curve") or []:
            if not isinstance(point, dict) or not isinstance(point.get("epoch"), int):
                continue
            values = {
                k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in point.items()
                if k != "epoch"
            }
            rows.append(
                {
                    "job_id": job_id,
                    "series": "supernet",
                    "step": point["epoch"],
                    "values": values,
                    "recorded_at": now,
                }
            )
    if rows:
        op.bulk_insert(points, rows)


def downgrade() -> None:
    op.drop_table("nas_curve_points")

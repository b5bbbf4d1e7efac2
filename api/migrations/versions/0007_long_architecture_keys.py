"""Architecture keys longer than ``nas_trials.arch_key`` (500 characters: enas-macro past
some 20 layers) were cut short, which made architectures apart only past that length one
architecture to the ranking, exports and retraining; they now end in the full key's SHA-256
(``api.models.stored_arch_key``). The stored ones are recomputed from the trial's
architecture.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

LENGTH = 500

trials = sa.table(
    "nas_trials",
    sa.column("id", sa.Integer),
    sa.column("architecture", sa.JSON),
    sa.column("arch_key", sa.String),
)


def _full_key(architecture: dict[str, Any]) -> str:
    # (Architecture.key as of this revision, frozen here)
    choices = ".".join(str(int(c)) for c in architecture["choices"])
    return f"{architecture['space']}/v{int(architecture.get('version', 1))}/{choices}"


def _rewrite(key_of: Any) -> None:
    # Only keys of the column's full length can have been cut (or hashed).
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(trials.c.id, trials.c.architecture).where(
            sa.func.length(trials.c.arch_key) >= LENGTH
        )
    ).all()
    for row in rows:
        connection.execute(
            trials.update()
            .where(trials.c.id == row.id)
            .values(arch_key=key_of(_full_key(row.architecture)))
        )


def upgrade() -> None:
    def hashed(key: str) -> str:
        if len(key) <= LENGTH:
            return key
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{key[: LENGTH - len(digest) - 1]}~{digest}"

    _rewrite(hashed)


def downgrade() -> None:
    _rewrite(lambda key: key[:LENGTH])

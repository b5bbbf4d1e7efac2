"""SQLAlchemy ORM models (tables). API schemas live in ``api.schemas``; queries in
``api.repositories``. Every change here needs an Alembic migration in ``api/migrations``."""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


#: ``TrialModel.arch_key``'s length.
ARCH_KEY_LENGTH = 500


def stored_arch_key(key: str) -> str:
    """An architecture's key (``Architecture.key``) as ``TrialModel.arch_key`` holds it: a
    longer one (enas-macro past some 20 layers) ends in its SHA-256 instead, so that two
    architectures apart only past the column's length stay two (cut short, they were one
    architecture to the ranking, exports and retraining)."""
    if len(key) <= ARCH_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: ARCH_KEY_LENGTH - len(digest) - 1]}~{digest}"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class JobState(str, enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def is_finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp with time zone that reads back aware and in UTC on every database. SQLite
    keeps no zone: its values are written in UTC and would read back naive, which JSON then
    shows without an offset and ``.timestamp()`` takes for local time."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)  # PostgreSQL answers in its session's time zone


_ts = UtcDateTime()


#: The longest key name the column holds (PostgreSQL refuses longer ones; SQLite would not).
KEY_NAME_LENGTH = 200


class ApiKeyModel(Base):
    __tablename__ = "nas_api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(KEY_NAME_LENGTH))
    #: The key's first characters, to recognise it in listings; the key itself is not stored.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(_ts, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(_ts, nullable=True)


class JobModel(Base):
    __tablename__ = "nas_jobs"
    __table_args__ = (
        Index("ix_nas_jobs_state", "state", "id"),
        Index("ix_nas_jobs_owner", "owner_id", "id"),
        # Ids are never reused, also after the newest job was deleted (migration 0004).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("nas_api_keys.id"), nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    #: Why the job ended (or the error that failed it; the stop reason of a finished search).
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(_ts, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(_ts, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(_ts, nullable=True)
    #: The runner holding the job (``host:pid:token``) and when it last renewed its lease.
    runner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(_ts, nullable=True)
    #: How many times the job was resumed from a checkpoint after its runner stopped.
    resumes: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    #: Trials recorded (numbers 0..n_trials-1) and their count per state: the totals of
    #: trial listings, kept here so a listing never counts 100k rows.
    n_trials: Mapped[int] = mapped_column(Integer, default=0)
    state_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    best_trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    best_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Result of a finished search: stop reason, ranked architectures, final retraining.
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    @property
    def direction(self) -> str:
        """The objective's direction in the stored spec (``maximize`` or ``minimize``)."""
        return str((self.spec.get("objective") or {}).get("direction", "maximize"))

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def tie_breaks(self) -> list[tuple[str, str]]:
        """The objectives after the first (``(metric, direction)``), which break ties of the
        first when trials are ranked (``nas.pareto.tie_break_key``); none with one."""
        objective = self.spec.get("objective") or {}
        metrics, directions = objective.get("metrics") or [], objective.get("directions") or []
        return [(str(m), str(d)) for m, d in zip(metrics, directions, strict=False)][1:]


class TrialModel(Base):
    __tablename__ = "nas_trials"
    __table_args__ = (
        UniqueConstraint("job_id", "number", name="uq_nas_trials_job_number"),
        Index("ix_nas_trials_job_state_number", "job_id", "state", "number"),
        # Objective order (both directions, NULLs last): dialect-specific, created by
        # migration 0002 (ix_nas_trials_job_objective_asc / _desc).
        {"sqlite_autoincrement": True},  # ids never reused (migration 0004)
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("nas_jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    candidate_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    architecture: Mapped[dict[str, Any]] = mapped_column(JSON)
    arch_key: Mapped[str] = mapped_column(String(ARCH_KEY_LENGTH))
    hparams: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cost_s: Mapped[float] = mapped_column(Float, default=0.0)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: Shared-weight search: the supernet epoch and the reward's step within it.
    epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(_ts, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(_ts, nullable=True)
    #: Renewed while a retraining trains (``api.retraining``); None for search trials.
    heartbeat_at: Mapped[datetime | None] = mapped_column(_ts, nullable=True)


class IntermediateValueModel(Base):
    """A value a trial reported while training (per epoch), keyed by the trial's number so
    it can be written before the trial's own row is final."""

    __tablename__ = "nas_intermediate_values"
    __table_args__ = (
        UniqueConstraint("job_id", "trial_number", "step", name="uq_nas_iv_trial_step"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("nas_jobs.id", ondelete="CASCADE"))
    trial_number: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(_ts, default=utcnow)


class CheckpointModel(Base):
    """The latest consistent state of a running job: the controller's ``state_dict``, the
    search loop's progress, and (shared-weight search) the supernet file. Written in the same
    transaction as the trials it covers (numbers < ``trial_count``)."""

    __tablename__ = "nas_checkpoints"

    job_id: Mapped[int] = mapped_column(
        ForeignKey("nas_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, default=0)
    trial_count: Mapped[int] = mapped_column(Integer)
    controller_state: Mapped[dict[str, Any]] = mapped_column(JSON)
    loop_state: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Supernet + optimizer state (``torch.save``), relative to the artifacts folder.
    evaluator_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(_ts, default=utcnow)


class ArtifactModel(Base):
    """A file of a job under the artifacts folder (retrained weights, exports)."""

    __tablename__ = "nas_artifacts"
    __table_args__ = (Index("ix_nas_artifacts_job", "job_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("nas_jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    #: Relative to the artifacts folder.
    path: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(_ts, default=utcnow)


class CurvePointModel(Base):
    """One point of a job's per-epoch curve. ``series`` names the curve: ``supernet`` is a
    shared-weight search's epochs (the supernet's training stats, the controller's mean
    reward, entropy and baseline: the points of ``nas search``'s ``curve.json``); ``step`` is
    the epoch, ``values`` the rest of the point."""

    __tablename__ = "nas_curve_points"
    __table_args__ = (
        UniqueConstraint("job_id", "series", "step", name="uq_nas_curve_points_series_step"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("nas_jobs.id", ondelete="CASCADE"))
    series: Mapped[str] = mapped_column(String(50))
    step: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(_ts, default=utcnow)

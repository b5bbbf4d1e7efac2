"""Queries, one repository per aggregate. Repositories flush but never commit: the caller's
unit of work (``api.db.session_scope``) does, once."""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session

from api.models import (
    ApiKeyModel,
    ArtifactModel,
    CheckpointModel,
    CurvePointModel,
    IntermediateValueModel,
    JobModel,
    JobState,
    TrialModel,
    stored_arch_key,
    utcnow,
)
from nas.architecture import Architecture
from nas.trial import RunningTrial, TrialRecord, TrialResult, TrialState

#: A metric name the trial listing sorts by: a table's columns are named as the user's file
#: names them (``val/acc``, ``acc@1``, ``train time (s)``); a double quote, a backslash or a
#: control character would end or escape SQLite's JSON path (``$."name"``).
METRIC_NAME = re.compile(r'^[^"\\\x00-\x1f\x7f]{1,100}$')


def _insert_new(
    session: Session, model: type[Any], rows: Sequence[Mapping[str, Any]], key: Sequence[str]
) -> None:
    """Insert ``rows``, skipping those whose ``key`` (a unique constraint's columns) is
    there already: the runner's writes are retried after a lost connection, and a try whose
    commit was lost in transit must not add its rows twice (or fail on them)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - the service runs on SQLite and PostgreSQL
        session.execute(insert(model), list(rows))
        return
    statement = dialect_insert(model).on_conflict_do_nothing(index_elements=list(key))
    session.execute(statement, list(rows))


class ApiKeyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, key: ApiKeyModel) -> ApiKeyModel:
        self.session.add(key)
        self.session.flush()
        return key

    def active_by_hash(self, key_hash: str) -> ApiKeyModel | None:
        return self.session.scalar(
            select(ApiKeyModel).where(
                ApiKeyModel.key_hash == key_hash, ApiKeyModel.revoked_at.is_(None)
            )
        )

    def revoked_at(self, key_hash: str) -> datetime | None:
        """When the key of ``key_hash`` was revoked; ``None``: active, or never a key here."""
        statement, params = revoked_key_query(key_hash)
        return self.session.execute(statement, params).scalar()

    def is_active(self, key_id: int, key_hash: str | None = None) -> bool:
        """The key exists and is not revoked (with ``key_hash``: nor rotated since)."""
        statement = select(ApiKeyModel.id).where(
            ApiKeyModel.id == key_id, ApiKeyModel.revoked_at.is_(None)
        )
        if key_hash is not None:
            statement = statement.where(ApiKeyModel.key_hash == key_hash)
        return self.session.scalar(statement) is not None

    def replace_secret(self, key_id: int, *, prefix: str, key_hash: str) -> ApiKeyModel | None:
        """Give the active key ``key_id`` another secret (``rotate_key``); ``None`` when no
        active key has that id."""
        row = self.session.scalar(
            select(ApiKeyModel)
            .where(ApiKeyModel.id == key_id, ApiKeyModel.revoked_at.is_(None))
            .with_for_update()
        )
        if row is None:
            return None
        row.prefix, row.key_hash = prefix, key_hash
        self.session.flush()
        return row

    def list(self) -> Sequence[ApiKeyModel]:
        return self.session.scalars(select(ApiKeyModel).order_by(ApiKeyModel.id)).all()

    def names(self, key_ids: Iterable[int | None]) -> dict[int, str]:
        """The names of these keys (a job's ``owner_id``: whose job it is), by id."""
        wanted = {i for i in key_ids if i is not None}
        if not wanted:
            return {}
        rows = self.session.execute(
            select(ApiKeyModel.id, ApiKeyModel.name).where(ApiKeyModel.id.in_(wanted))
        )
        return {key_id: name for key_id, name in rows}

    def revoke(self, key_id: int) -> bool:
        result = self.session.execute(
            update(ApiKeyModel)
            .where(ApiKeyModel.id == key_id, ApiKeyModel.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return bool(result.rowcount)


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, job: JobModel) -> JobModel:
        self.session.add(job)
        self.session.flush()
        return job

    def was_given(self, job_id: int) -> bool:
        """Whether ``job_id`` was ever a job's id (it may be deleted since): ids are never
        reused, so it is at most the highest id given (SQLite's AUTOINCREMENT counter,
        PostgreSQL's sequence)."""
        if self.session.get_bind().dialect.name == "postgresql":
            highest = self.session.scalar(
                text(
                    "SELECT pg_sequence_last_value("
                    "pg_get_serial_sequence('nas_jobs', 'id')::regclass)"
                )
            )
        else:
            highest = self.session.scalar(
                text("SELECT seq FROM sqlite_sequence WHERE name = 'nas_jobs'")
            )
        return 1 <= job_id <= int(highest or 0)

    def get(
        self, job_id: int, *, owner_id: int | None = None, any_owner: bool = True
    ) -> JobModel | None:
        """The job, or ``None`` when it does not exist or (``any_owner=False``) belongs to
        someone other than ``owner_id``."""
        job = self.session.get(JobModel, job_id)
        if job is None or (not any_owner and job.owner_id != owner_id):
            return None
        return job

    def page(
        self,
        *,
        owner_id: int | None,
        any_owner: bool,
        state: str | None,
        limit: int,
        offset: int,
        name: str | None = None,
    ) -> tuple[Sequence[JobModel], int]:
        query: Select[Any] = select(JobModel)
        if not any_owner:
            query = query.where(JobModel.owner_id == owner_id)
        if state is not None:
            query = query.where(JobModel.state == state)
        if name is not None:
            query = query.where(JobModel.name == name)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(
            query.order_by(JobModel.id.desc()).limit(limit).offset(offset)
        ).all()
        return rows, total

    def unfinished_ids(self, owner_id: int) -> list[int]:
        """The ids of the owner's QUEUED and RUNNING jobs, oldest first."""
        states = [JobState.QUEUED.value, JobState.RUNNING.value]
        query = select(JobModel.id).where(JobModel.owner_id == owner_id, JobModel.state.in_(states))
        return list(self.session.scalars(query.order_by(JobModel.id)))

    def claimable(
        self, *, stale_before: datetime, limit: int | None, cancelled: bool = False
    ) -> Sequence[JobModel]:
        """QUEUED jobs and RUNNING jobs whose runner let its lease expire (or released it),
        oldest first; ``cancelled``: only such RUNNING jobs asked to cancel."""
        unheld = (JobModel.state == JobState.RUNNING.value) & (
            JobModel.heartbeat_at.is_(None) | (JobModel.heartbeat_at < stale_before)
        )
        condition = (
            unheld & JobModel.cancel_requested.is_(True)
            if cancelled
            else or_(JobModel.state == JobState.QUEUED.value, unheld)
        )
        return self.session.scalars(
            select(JobModel).where(condition).order_by(JobModel.id).limit(limit)
        ).all()

    def running_elsewhere(self, runner: str) -> Sequence[JobModel]:
        return self.session.scalars(
            select(JobModel).where(
                JobModel.state == JobState.RUNNING.value,
                JobModel.runner.is_not(None),
                JobModel.runner != runner,
            )
        ).all()

    def claim(self, job: JobModel, runner: str, *, stale_before: datetime, force: bool) -> bool:
        """Compare-and-set: take ``job`` for ``runner`` unless another runner took it first.
        ``force`` takes over a RUNNING job whatever its lease (its runner is known dead)."""
        now = utcnow()
        condition = JobModel.state == JobState.QUEUED.value
        if job.state == JobState.RUNNING.value:
            condition = (JobModel.state == JobState.RUNNING.value) & (
                JobModel.runner.is_(None) if job.runner is None else (JobModel.runner == job.runner)
            )
            if not force:
                condition = condition & (
                    JobModel.heartbeat_at.is_(None) | (JobModel.heartbeat_at < stale_before)
                )
        result = self.session.execute(
            update(JobModel)
            .where(JobModel.id == job.id, condition)
            .values(
                state=JobState.RUNNING.value,
                runner=runner,
                heartbeat_at=now,
                started_at=func.coalesce(JobModel.started_at, now),
                # What the last runner's search waited for (Ray's room, its final
                # retraining) is not this one's: it stayed while the trials ran again.
                reason=None,
            )
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    def renew(
        self, runner: str, job_ids: Iterable[int], progress: Mapping[int, float] | None = None
    ) -> dict[int, bool]:
        """Renew the leases of ``runner``'s jobs, with the ``progress`` of those it names
        (a time budget's share moves during a long trial too); answers which ask to be
        cancelled."""
        ids = list(job_ids)
        if not ids:
            return {}
        now, progress = utcnow(), progress or {}
        plain = [job_id for job_id in ids if job_id not in progress]
        for job_id, fraction in progress.items():
            self.session.execute(
                update(JobModel)
                .where(JobModel.id == job_id, JobModel.runner == runner)
                .values(heartbeat_at=now, progress=fraction)
                .execution_options(synchronize_session=False)
            )
        if plain:
            self.session.execute(
                update(JobModel)
                .where(JobModel.id.in_(plain), JobModel.runner == runner)
                .values(heartbeat_at=now)
                .execution_options(synchronize_session=False)
            )
        rows = self.session.execute(
            select(JobModel.id, JobModel.cancel_requested).where(JobModel.id.in_(ids))
        ).all()
        return {row.id: bool(row.cancel_requested) for row in rows}

    def set_fields(self, job_id: int, **values: Any) -> None:
        self.session.execute(
            update(JobModel)
            .where(JobModel.id == job_id)
            .values(**_storable(values))
            .execution_options(synchronize_session=False)
        )

    def set_fields_held(self, job_id: int, holder: str, /, **values: Any) -> bool:
        """``set_fields`` on a job that the runner ``holder`` still holds; False (nothing
        set) when another runner took it over (after this one's lease expired)."""
        result = self.session.execute(
            update(JobModel)
            .where(JobModel.id == job_id, JobModel.runner == holder)
            .values(**_storable(values))
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    def lock(self, job_id: int) -> JobModel | None:
        """The job, freshly read and locked for this transaction (PostgreSQL: a row lock;
        SQLite: a writing session holds the database's write lock already)."""
        return self.session.scalar(
            select(JobModel)
            .where(JobModel.id == job_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def state_now(self, job_id: int) -> str | None:
        """The job's state as the database has it now (not the session's copy of the row);
        ``None`` when it is gone."""
        return self.session.scalar(select(JobModel.state).where(JobModel.id == job_id))

    def delete(self, job_id: int) -> bool:
        """Delete a job that is not RUNNING; its trials, intermediate values, checkpoint,
        curve points and artifact rows go with it (ON DELETE CASCADE). False when it is
        RUNNING or gone."""
        result = self.session.execute(
            delete(JobModel)
            .where(JobModel.id == job_id, JobModel.state != JobState.RUNNING.value)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def _timestamp(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


def _running_row(
    job_id: int, trial: RunningTrial, state: TrialState = TrialState.RUNNING
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "number": trial.number,
        "candidate_id": trial.candidate_id,
        "state": state.value,
        "architecture": trial.architecture.to_dict(),
        "arch_key": stored_arch_key(trial.architecture.key),
        "hparams": dict(trial.hparams),
        "metrics": {},
        "worker": trial.worker,
        "started_at": _timestamp(trial.started_at),
    }


def _storable(values: dict[str, Any]) -> dict[str, Any]:
    """A job's fields as stored: its summary (the best's metrics, the Pareto values, the
    final figures) with numbers that are not finite as null, which JSON can hold (PostgreSQL
    refused the finished job's row over one NaN metric)."""
    if values.get("summary") is not None:
        values = {**values, "summary": finite(values["summary"])}
    return values


def _record_row(job_id: int, record: TrialRecord) -> dict[str, Any]:
    result = record.result
    return {
        "job_id": job_id,
        "number": record.number,
        "candidate_id": record.candidate_id,
        "state": result.state.value,
        "architecture": record.architecture.to_dict(),
        "arch_key": stored_arch_key(record.architecture.key),
        "hparams": dict(record.hparams),
        "objective": result.objective,
        # JSON holds no NaN or infinity (PostgreSQL refused the row; SQLite's JSON functions,
        # which sort the listing, failed on it): stored as null, read back as absent
        "metrics": finite(dict(result.metrics)),
        "cost_s": result.cost_s,
        "simulated": result.simulated,
        "error": result.error,
        "worker": record.worker,
        "epoch": record.epoch,
        "step": record.step,
        "started_at": _timestamp(record.started_at),
        "finished_at": _timestamp(record.finished_at),
    }


def trial_record(row: TrialModel) -> TrialRecord:
    """A stored finished trial as the search loop recorded it."""
    return TrialRecord(
        number=row.number,
        candidate_id=row.candidate_id,
        architecture=Architecture.from_dict(row.architecture),
        hparams=dict(row.hparams or {}),
        result=TrialResult(
            state=TrialState(row.state),
            objective=row.objective,
            # (a metric stored as null was not finite: absent, as a loop reads it, `.get`)
            metrics={k: v for k, v in (row.metrics or {}).items() if v is not None},
            cost_s=row.cost_s,
            simulated=row.simulated,
            error=row.error,
        ),
        started_at=row.started_at.timestamp() if row.started_at else 0.0,
        finished_at=row.finished_at.timestamp() if row.finished_at else 0.0,
        epoch=row.epoch,
        step=row.step,
        worker=row.worker,
    )


class TrialRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_waiting(self, job_id: int, trials: Sequence[RunningTrial]) -> None:
        """Record trials handed to workers that have not started them (state WAITING); a
        number recorded already (a retried write) is kept as it is."""
        rows = [_running_row(job_id, t, TrialState.WAITING) for t in trials]
        _insert_new(self.session, TrialModel, rows, ("job_id", "number"))

    def add_running(self, job_id: int, trials: Sequence[RunningTrial]) -> None:
        """Record trials that started and have no result yet (state RUNNING): new rows, or
        rows WAITING or RUNNING until now (a trial started again after its worker was
        lost), which take the trial's worker and start; a finished trial's row is kept as
        it is."""
        rows = [_running_row(job_id, t) for t in trials]
        _insert_new(self.session, TrialModel, rows, ("job_id", "number"))
        for trial in trials:
            self.session.execute(
                update(TrialModel)
                .where(
                    TrialModel.job_id == job_id,
                    TrialModel.number == trial.number,
                    TrialModel.state.in_((TrialState.WAITING.value, TrialState.RUNNING.value)),
                )
                .values(
                    state=TrialState.RUNNING.value,
                    worker=trial.worker,
                    started_at=_timestamp(trial.started_at),
                )
                .execution_options(synchronize_session=False)
            )

    def add_records(self, job_id: int, records: Sequence[TrialRecord]) -> None:
        """Record finished trials; a number recorded already (a retried write) is kept."""
        rows = [_record_row(job_id, r) for r in records]
        _insert_new(self.session, TrialModel, rows, ("job_id", "number"))

    def finish_records(self, job_id: int, records: Sequence[TrialRecord]) -> None:
        """Finish trials recorded as RUNNING (``add_running``), matched by number."""
        for record in records:
            values = _record_row(job_id, record)
            del values["job_id"], values["number"]
            self.session.execute(
                update(TrialModel)
                .where(TrialModel.job_id == job_id, TrialModel.number == record.number)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    def records_before(self, job_id: int, number: int) -> list[TrialRecord]:
        """The finished trials numbered below ``number``, in order."""
        return [trial_record(row) for row in self.all_before(job_id, number)]

    def delete_from(self, job_id: int, number: int) -> int:
        """Remove trials numbered ``number`` and later (work after the last checkpoint)."""
        self.session.execute(
            delete(IntermediateValueModel).where(
                IntermediateValueModel.job_id == job_id,
                IntermediateValueModel.trial_number >= number,
            )
        )
        result = self.session.execute(
            delete(TrialModel).where(TrialModel.job_id == job_id, TrialModel.number >= number)
        )
        return int(result.rowcount or 0)

    def state_counts(self, job_id: int) -> dict[str, int]:
        rows = self.session.execute(
            select(TrialModel.state, func.count())
            .where(TrialModel.job_id == job_id)
            .group_by(TrialModel.state)
        ).all()
        return {state: int(n) for state, n in rows}

    def mark_running_failed(self, job_id: int, error: str, waiting_error: str | None = None) -> int:
        """The job's RUNNING trials become FAIL with ``error``, ending now, each costing the
        time it ran (it recorded 0 s, while its timeline bar ran on); its WAITING ones, which
        never started, FAIL with ``waiting_error`` (or ``error``) at no cost."""
        now = utcnow()
        running = self.session.scalars(
            select(TrialModel).where(
                TrialModel.job_id == job_id,
                TrialModel.state.in_((TrialState.RUNNING.value, TrialState.WAITING.value)),
            )
        ).all()
        for trial in running:
            waited = trial.state == TrialState.WAITING.value
            trial.error = (waiting_error or error) if waited else error
            trial.state, trial.finished_at = TrialState.FAIL.value, now
            if trial.started_at is not None:
                trial.cost_s = max(0.0, (now - trial.started_at).total_seconds())
        self.session.flush()
        return len(running)

    def all_before(self, job_id: int, number: int) -> Sequence[TrialModel]:
        return self.session.scalars(
            select(TrialModel)
            .where(TrialModel.job_id == job_id, TrialModel.number < number)
            .order_by(TrialModel.number)
        ).all()

    def get(self, trial_id: int) -> TrialModel | None:
        return self.session.get(TrialModel, trial_id)

    def top(
        self,
        job_id: int,
        k: int,
        *,
        maximize: bool,
        then: Sequence[tuple[str, str]] = (),
        metric: str | None = None,
    ) -> Sequence[TrialModel]:
        """The best ``k`` completed trials by objective (or by the metric ``metric``, those
        without it last), ties broken by the other objectives ``then``
        (``JobModel.tie_breaks``), then the earlier trial."""
        key = TrialModel.objective if metric is None else metric_value(TrialModel.metrics, metric)
        order = rank_order(key, TrialModel.metrics, maximize, then)
        order[0] = order[0].nulls_last()
        return self.session.scalars(
            select(TrialModel)
            .where(
                TrialModel.job_id == job_id,
                TrialModel.state == TrialState.COMPLETE.value,
                TrialModel.objective.is_not(None),
            )
            .order_by(*order)
            .order_by(TrialModel.number)
            .limit(k)
        ).all()

    def count_scored(self, job_id: int) -> int:
        """Completed trials with an objective: the search's, not its retrainings (COMPLETE
        trials too, which have none)."""
        return int(
            self.session.scalar(
                select(func.count()).where(
                    TrialModel.job_id == job_id,
                    TrialModel.state == TrialState.COMPLETE.value,
                    TrialModel.objective.is_not(None),
                )
            )
            or 0
        )

    def _ranked_query(self, job_id: int, exclude_keys: Sequence[str]) -> Any:
        query = select(TrialModel.arch_key).where(
            TrialModel.job_id == job_id,
            TrialModel.state == TrialState.COMPLETE.value,
            TrialModel.objective.is_not(None),
        )
        if exclude_keys:
            query = query.where(TrialModel.arch_key.not_in(list(exclude_keys)))
        return query

    def count_ranked(self, job_id: int, *, exclude_keys: Sequence[str] = ()) -> int:
        """Distinct architectures among the completed trials (other than ``exclude_keys``)."""
        query = self._ranked_query(job_id, exclude_keys).distinct().subquery()
        return int(self.session.scalar(select(func.count()).select_from(query)) or 0)

    def ranked_architecture(
        self,
        job_id: int,
        offset: int,
        *,
        exclude_keys: Sequence[str] = (),
        maximize: bool,
        then: Sequence[tuple[str, str]] = (),
    ) -> tuple[str, float]:
        """The ``offset``-th (0-based) best distinct architecture of the completed trials by
        its best trial (``best_of_architecture``), ties the one first tried first: its key
        and best objective."""
        ranking = self._ranking(job_id, exclude_keys, maximize, then)
        row = self.session.execute(ranking.offset(offset).limit(1)).one()
        return str(row.arch_key), float(row.value)

    def ranking(
        self,
        job_id: int,
        *,
        exclude_keys: Sequence[str] = (),
        maximize: bool,
        then: Sequence[tuple[str, str]] = (),
    ) -> list[tuple[str, dict[str, Any]]]:
        """Every distinct architecture of the completed trials (other than ``exclude_keys``)
        in ``ranked_architecture``'s order: its key and its best trial's hyperparameters."""
        rows = self.session.execute(self._ranking(job_id, exclude_keys, maximize, then)).all()
        return [(str(row.arch_key), dict(row.hparams or {})) for row in rows]

    def _ranking(
        self,
        job_id: int,
        exclude_keys: Sequence[str],
        maximize: bool,
        then: Sequence[tuple[str, str]],
    ) -> Select[Any]:
        tie_breaks = [
            metric_value(TrialModel.metrics, m).label(f"then_{i}") for i, (m, _) in enumerate(then)
        ]
        place = func.row_number().over(
            partition_by=TrialModel.arch_key,
            order_by=[
                *rank_order(TrialModel.objective, TrialModel.metrics, maximize, then),
                TrialModel.number,
            ],
        )
        per_architecture = (
            self._ranked_query(job_id, exclude_keys)
            .add_columns(
                TrialModel.objective.label("value"),
                TrialModel.hparams.label("hparams"),
                place.label("place"),
                func.min(TrialModel.number).over(partition_by=TrialModel.arch_key).label("first"),
                *tie_breaks,
            )
            .subquery()
        )
        c = per_architecture.c
        order = rank_order(
            c.value, None, maximize, [(c[f"then_{i}"], d) for i, (_, d) in enumerate(then)]
        )
        return select(c.arch_key, c.value, c.hparams).where(c.place == 1).order_by(*order, c.first)

    def best_of_architecture(
        self,
        job_id: int,
        arch_key: str,
        *,
        maximize: bool,
        then: Sequence[tuple[str, str]] = (),
    ) -> TrialModel | None:
        """The completed trial of ``arch_key`` that ranks first (``top``'s order)."""
        return self.session.scalar(
            select(TrialModel)
            .where(
                TrialModel.job_id == job_id,
                TrialModel.arch_key == arch_key,
                TrialModel.state == TrialState.COMPLETE.value,
                TrialModel.objective.is_not(None),
            )
            .order_by(*rank_order(TrialModel.objective, TrialModel.metrics, maximize, then))
            .order_by(TrialModel.number)
            .limit(1)
        )

    def running(self, job_id: int, *, worker_suffix: str | None = None) -> Sequence[TrialModel]:
        """RUNNING trials of the job (those whose worker ends with ``worker_suffix``)."""
        query = select(TrialModel).where(
            TrialModel.job_id == job_id, TrialModel.state == TrialState.RUNNING.value
        )
        if worker_suffix is not None:
            query = query.where(TrialModel.worker.endswith(worker_suffix, autoescape=True))
        return self.session.scalars(query.order_by(TrialModel.number)).all()

    def beat(self, job_id: int, numbers: Sequence[int]) -> None:
        """Renew the heartbeat of the job's RUNNING trials ``numbers``."""
        self.session.execute(
            update(TrialModel)
            .where(
                TrialModel.job_id == job_id,
                TrialModel.number.in_(list(numbers)),
                TrialModel.state == TrialState.RUNNING.value,
            )
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    def start_now(self, job_id: int, number: int) -> None:
        """The job's RUNNING trial ``number`` starts now (a retraining that waited for a
        slot since it was asked for)."""
        self.session.execute(
            update(TrialModel)
            .where(
                TrialModel.job_id == job_id,
                TrialModel.number == number,
                TrialModel.state == TrialState.RUNNING.value,
            )
            .values(started_at=utcnow())
            .execution_options(synchronize_session=False)
        )

    def finish(self, job_id: int, number: int, **values: Any) -> None:
        """Set a trial's result fields (state, metrics, error, finished_at, ...)."""
        if "metrics" in values:
            values["metrics"] = finite(values["metrics"])
        self.session.execute(
            update(TrialModel)
            .where(TrialModel.job_id == job_id, TrialModel.number == number)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def next_number(self, job_id: int) -> int:
        """One past the highest trial number of the job (0 when it has none)."""
        highest = self.session.scalar(
            select(func.max(TrialModel.number)).where(TrialModel.job_id == job_id)
        )
        return 0 if highest is None else int(highest) + 1

    def id_of(self, job_id: int, number: int) -> int:
        return int(
            self.session.scalar(
                select(TrialModel.id).where(
                    TrialModel.job_id == job_id, TrialModel.number == number
                )
            )
        )

    def after(self, job_id: int, number: int, limit: int) -> Sequence[Any]:
        """Compact rows (number, state, objective) of trials numbered above ``number``."""
        return self.session.execute(
            select(TrialModel.number, TrialModel.state, TrialModel.objective)
            .where(TrialModel.job_id == job_id, TrialModel.number > number)
            .order_by(TrialModel.number)
            .limit(limit)
        ).all()

    def best_so_far(self, job_id: int, *, maximize: bool) -> list[tuple[int, float]]:
        """``(trial number, objective)`` of each completed trial that improved on every
        earlier one (in number order): the steps of the best-so-far curve, few even for a
        100k-trial job. One query: a window function keeps the best before each trial."""
        best = func.max if maximize else func.min
        done = (
            select(
                TrialModel.number,
                TrialModel.objective,
                best(TrialModel.objective)
                .over(order_by=TrialModel.number, rows=(None, -1))
                .label("before"),
            )
            .where(
                TrialModel.job_id == job_id,
                TrialModel.state == TrialState.COMPLETE.value,
                TrialModel.objective.is_not(None),
            )
            .subquery()
        )
        better = done.c.objective > done.c.before if maximize else done.c.objective < done.c.before
        rows = self.session.execute(
            select(done.c.number, done.c.objective)
            .where(or_(done.c.before.is_(None), better))
            .order_by(done.c.number)
        ).all()
        return [(int(number), float(value)) for number, value in rows]

    def add_intermediate(self, job_id: int, trial_number: int, step: int, values: dict) -> None:
        """Record a trial's values at ``step``; a step recorded already is kept."""
        row = {
            "job_id": job_id,
            "trial_number": trial_number,
            "step": step,
            "values": finite(values),
        }
        _insert_new(self.session, IntermediateValueModel, [row], ("job_id", "trial_number", "step"))

    def intermediate(self, job_id: int, trial_number: int) -> Sequence[IntermediateValueModel]:
        return self.session.scalars(
            select(IntermediateValueModel)
            .where(
                IntermediateValueModel.job_id == job_id,
                IntermediateValueModel.trial_number == trial_number,
            )
            .order_by(IntermediateValueModel.step)
        ).all()


class CurveRepository:
    """A job's per-epoch curves (``CurvePointModel``): the runner adds each checkpoint's new
    points in the checkpoint's transaction, and drops those after the checkpoint at resume.

    Example:
        >>> curves = CurveRepository(session)
        >>> curves.add_many(job.id, "supernet", [{"epoch": 0, "mean_reward": 0.41}])
        1
        >>> curves.delete_from(job.id, "supernet", 0)  # resuming from before epoch 0
        1
    """

    #: The key of a point that holds its step.
    STEP_KEY = "epoch"

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, job_id: int, series: str, points: Iterable[Mapping[str, Any]]) -> int:
        """Record ``points`` of ``series``: dicts with an integer ``epoch`` (the step; unique
        per job and series) and any other values. Non-finite floats are stored as ``None``
        (JSON has no NaN); a point whose step is recorded already (a retried write) is kept
        as it is. Returns how many were given."""
        rows = []
        for point in points:
            step = point.get(self.STEP_KEY)
            if isinstance(step, bool) or not isinstance(step, numbers.Integral):
                raise TypeError(
                    f"a curve point needs an integer {self.STEP_KEY!r}; got {dict(point)!r}"
                )
            values = {k: finite(v) for k, v in point.items() if k != self.STEP_KEY}
            rows.append({"job_id": job_id, "series": series, "step": int(step), "values": values})
        _insert_new(self.session, CurvePointModel, rows, ("job_id", "series", "step"))
        return len(rows)

    def delete_from(self, job_id: int, series: str | None, step: int) -> int:
        """Remove the points of ``series`` (``None``: of every series) at ``step`` and later
        (epochs after the last checkpoint); returns how many."""
        query = delete(CurvePointModel).where(
            CurvePointModel.job_id == job_id, CurvePointModel.step >= step
        )
        if series is not None:
            query = query.where(CurvePointModel.series == series)
        return int(self.session.execute(query).rowcount or 0)

    def points(self, job_id: int) -> Sequence[CurvePointModel]:
        """Every point of the job, by series then step."""
        return self.session.scalars(
            select(CurvePointModel)
            .where(CurvePointModel.job_id == job_id)
            .order_by(CurvePointModel.series, CurvePointModel.step)
        ).all()


def finite(value: Any) -> Any:
    """``value`` with every float that is not finite (inside dicts and lists too) as
    ``None``: JSON has no NaN or infinity, and the API answers ``null`` for them everywhere,
    as pydantic writes a trial's own read (``TrialRead``) and as curve points are stored."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """``value`` as JSON text, non-finite floats ``null`` (``finite``); the common case,
    with none, is encoded at once."""
    try:
        return json.dumps(value, default=_json_default, allow_nan=False)
    except ValueError:  # a NaN or infinity somewhere
        return json.dumps(finite(value), default=_json_default, allow_nan=False)


class CheckpointRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def trial_count(self, job_id: int) -> int:
        """How many trials the job's checkpoint covers (0 without one), its state unread."""
        return (
            self.session.scalar(
                select(CheckpointModel.trial_count).where(CheckpointModel.job_id == job_id)
            )
            or 0
        )

    def get(self, job_id: int) -> CheckpointModel | None:
        return self.session.get(CheckpointModel, job_id)

    def save(
        self,
        job_id: int,
        *,
        trial_count: int,
        controller_state: dict[str, Any],
        loop_state: dict[str, Any],
        evaluator_path: str | None,
    ) -> int:
        """Replace the job's checkpoint; returns its sequence number."""
        current = self.session.get(CheckpointModel, job_id)
        if current is None:
            current = CheckpointModel(job_id=job_id, seq=0)
            self.session.add(current)
        else:
            current.seq += 1
        current.trial_count = trial_count
        current.controller_state = controller_state
        current.loop_state = loop_state
        current.evaluator_path = evaluator_path
        current.created_at = utcnow()
        self.session.flush()
        return current.seq

    def set_final_controller(
        self, job_id: int, controller_state: dict[str, Any], *, trial_count: int
    ) -> None:
        """A finished job's controller state as it ended, in its checkpoint row (what a
        later job's warm start reads), the rest of the row kept; a job that never
        checkpointed gets a row of that state alone (no loop to resume: it has finished)."""
        current = self.session.get(CheckpointModel, job_id)
        if current is None:
            self.save(
                job_id,
                trial_count=trial_count,
                controller_state=controller_state,
                loop_state={},
                evaluator_path=None,
            )
            return
        current.seq += 1
        current.controller_state = controller_state
        current.created_at = utcnow()
        self.session.flush()


class ArtifactRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, artifact: ArtifactModel) -> ArtifactModel:
        self.session.add(artifact)
        self.session.flush()
        return artifact

    def for_job(self, job_id: int) -> Sequence[ArtifactModel]:
        return self.session.scalars(
            select(ArtifactModel).where(ArtifactModel.job_id == job_id).order_by(ArtifactModel.id)
        ).all()

    def by_path(self, job_id: int, path: str) -> ArtifactModel | None:
        return self.session.scalar(
            select(ArtifactModel)
            .where(ArtifactModel.job_id == job_id, ArtifactModel.path == path)
            .order_by(ArtifactModel.id.desc())
            .limit(1)
        )

    def put(
        self, *, job_id: int, kind: str, path: str, size_bytes: int, meta: dict[str, Any]
    ) -> ArtifactModel:
        """Record the file at ``path``, replacing the record of an earlier file there."""
        row = self.by_path(job_id, path)
        if row is None:
            return self.add(
                ArtifactModel(job_id=job_id, kind=kind, path=path, size_bytes=size_bytes, meta=meta)
            )
        row.kind, row.size_bytes, row.meta, row.created_at = kind, size_bytes, meta, utcnow()
        self.session.flush()
        return row


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def iso_utc(moment: datetime) -> str:
    """An aware timestamp as the API writes it everywhere (pydantic's form): UTC, ``Z``,
    microseconds only when there are any (``2026-12-05T08:41:15.123456Z``)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso_utc_sql(column: Any) -> ColumnElement[str]:
    """PostgreSQL's text of a ``timestamptz`` column in ``iso_utc``'s form (``row_to_json``
    would write the session's offset, ``+00:00``)."""
    utc = func.timezone("UTC", column)
    fraction = case(
        (func.extract("microseconds", column) % 1_000_000 == 0, ""),
        else_=func.to_char(utc, ".US"),
    )
    return (func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS') + fraction + "Z").label(column.key)


#: The columns of a trial listing (``api.schemas.TrialRead``), selected as plain rows.
LISTING = (
    TrialModel.id,
    TrialModel.job_id,
    TrialModel.number,
    TrialModel.state,
    TrialModel.objective,
    TrialModel.metrics,
    TrialModel.architecture,
    TrialModel.hparams,
    TrialModel.cost_s,
    TrialModel.simulated,
    TrialModel.error,
    TrialModel.worker,
    TrialModel.epoch,
    TrialModel.step,
    TrialModel.started_at,
    TrialModel.finished_at,
)


def _float_json_sql(column: Any) -> ColumnElement[Any]:
    """PostgreSQL's JSON of a ``double precision`` column as Python writes it:
    ``row_to_json`` writes a whole number without its ``.0`` (``82``), which a client reads
    as an integer where SQLite's listing and every other endpoint give ``82.0``. A whole
    number below 1e16 (where Python's ``repr`` turns to exponents) becomes a one-decimal
    ``numeric``, which keeps its ``.0``; any other value is written as before."""
    whole = and_(column == func.trunc(column), func.abs(column) < 1e16)
    # NaN and infinities: null, as everywhere (to_json writes the strings "NaN", "Infinity")
    nonfinite = column.in_(
        [literal_column(f"'{v}'::float8") for v in ("NaN", "Infinity", "-Infinity")]
    )
    return case(
        (nonfinite, literal_column("'null'::json")),
        (whole, func.to_json(cast(column, Numeric(18, 1)))),
        else_=func.to_json(column),
    ).label(column.key)


#: ``LISTING`` for PostgreSQL's JSON rows: timestamps as ``iso_utc`` text.
_LISTING_PG = tuple(
    _iso_utc_sql(c) if c.key in ("started_at", "finished_at") else c for c in LISTING
)
#: The float columns of ``LISTING``, written by ``_float_json_sql`` in PostgreSQL's rows.
_FLOATS = ("objective", "cost_s")


# The hot read path (``api.reads``): statements built once per shape, with bound parameters
# for the values, so a request neither builds nor compiles SQL.
_REVOKED_KEY = select(ApiKeyModel.revoked_at).where(
    ApiKeyModel.key_hash == bindparam("key_hash"), ApiKeyModel.revoked_at.is_not(None)
)


def revoked_key_query(key_hash: str) -> tuple[Select[Any], dict[str, Any]]:
    """When the key of ``key_hash`` was revoked (a 401 says so); no row: never a key here
    (or rotated since: the old secret's hash is gone)."""
    return _REVOKED_KEY, {"key_hash": key_hash}


def listing_header_query(job_id: int, key_hash: str | None) -> tuple[Select[Any], dict[str, Any]]:
    """What a trial listing needs, with the caller's key checked in the same query.

    ``key_hash`` is the SHA-256 of the caller's API key, or ``None`` when authentication is
    off. No row: the key is unknown or revoked (with ``key_hash=None``: the job is missing).
    Else one row ``(key_found, job_id, n_trials, state_counts, evaluator)``: ``job_id`` is
    ``None`` when the job does not exist, or belongs to another user and the key is not an
    admin's; ``evaluator`` is the spec's evaluator name."""
    if key_hash is None:
        return _listing_header(False), {"job_id": job_id}
    return _listing_header(True), {"job_id": job_id, "key_hash": key_hash}


@lru_cache(maxsize=2)
def _listing_header(with_key: bool) -> Select[Any]:
    job_columns = (
        JobModel.id.label("job_id"),
        JobModel.n_trials,
        JobModel.state_counts,
        JobModel.spec[("evaluator", "name")].as_string().label("evaluator"),
    )
    if not with_key:
        return select(true().label("key_found"), *job_columns).where(
            JobModel.id == bindparam("job_id")
        )
    return (
        select(ApiKeyModel.id.label("key_found"), *job_columns)
        .select_from(ApiKeyModel)
        .outerjoin(
            JobModel,
            and_(
                JobModel.id == bindparam("job_id"),
                or_(ApiKeyModel.admin, JobModel.owner_id == ApiKeyModel.id),
            ),
        )
        .where(ApiKeyModel.key_hash == bindparam("key_hash"), ApiKeyModel.revoked_at.is_(None))
    )


#: A job's stored evaluator and dataset sections, for the rare read that needs more of its
#: spec than the listing header (a table job's metric names, a meta-learner's dataset).
_JOB_EVALUATOR = select(
    JobModel.spec["evaluator"], JobModel.spec["dataset"], JobModel.spec["objective"]
).where(JobModel.id == bindparam("job_id"))


def job_evaluator_query(job_id: int) -> tuple[Select[Any], dict[str, Any]]:
    """The job's stored ``evaluator``, ``dataset`` and ``objective`` sections (one row,
    three columns; none when it is gone)."""
    return _JOB_EVALUATOR, {"job_id": job_id}


def trial_rows_json(rows: Sequence[Sequence[Any]], as_json: bool) -> list[tuple[int, str]]:
    """The rows of ``trial_page_query`` as ``(number, JSON object text)``: written by
    PostgreSQL (``as_json``), else encoded here. (SQLite's JSON functions print floats
    with 15 digits only, so SQLite rows are encoded exactly, in Python.)"""
    if as_json:
        return [(row[0], row[1]) for row in rows]
    keys = [column.key for column in LISTING]
    number = keys.index("number")
    return [(row[number], json_text(dict(zip(keys, row)))) for row in rows]


def trial_page_query(
    as_json: bool,
    job_id: int,
    state: str | None,
    sort: str,
    descending: bool,
    limit: int,
    offset: int,
    after: int | None,
) -> tuple[Select[Any], dict[str, Any]]:
    """A page of a job's trials: its statement and parameters. Rows of ``LISTING``, or with
    ``as_json`` (PostgreSQL) ``(number, JSON object text)``, the JSON written by the
    database so the service neither parses the JSON columns nor encodes the page. ``sort``
    is ``number``, ``objective`` or a metric name; trials without the sort value come last;
    ``after`` is a keyset cursor for ``number`` order (constant time however deep the
    page); an ``offset`` skips rows in the index alone."""
    keyset = sort == "number" and after is not None
    statement = _page_statement(as_json, state is not None, sort, descending, keyset, offset > 0)
    params: dict[str, Any] = {"job_id": job_id, "limit": limit}
    if state is not None:
        params["state"] = state
    if keyset:
        params["after"] = after
    if offset:
        params["offset"] = offset
    return statement, params


@lru_cache(maxsize=256)
def _page_statement(
    as_json: bool, filtered: bool, sort: str, descending: bool, keyset: bool, offset: bool
) -> Select[Any]:
    job = TrialModel.job_id == bindparam("job_id")
    conditions = [job]
    if filtered:
        conditions.append(TrialModel.state == bindparam("state"))
    if keyset:
        after = bindparam("after")
        conditions.append(TrialModel.number < after if descending else TrialModel.number > after)
    order = _page_order(TrialModel, sort, descending)
    columns = _LISTING_PG if as_json else LISTING
    if not offset:
        page = select(*columns).where(*conditions).order_by(*order).limit(bindparam("limit"))
    else:
        # A deep offset skips its rows in the index alone (an index-only scan: only numbers
        # are selected), then reads the page's rows alone.
        numbers = (
            select(TrialModel.number)
            .where(*conditions)
            .order_by(*order)
            .limit(bindparam("limit"))
            .offset(bindparam("offset"))
        ).subquery()
        page = (
            select(*columns)
            .join(numbers, and_(job, TrialModel.number == numbers.c.number))
            .order_by(*order)
        )
    if not as_json:
        return page
    # PostgreSQL writes each row as JSON: row_to_json of the page's rows costs it a third
    # less than json_build_object with the names spelled out, and the keys are the same.
    # The floats are rewritten in a lateral row of their own, so the page still sorts on
    # the numbers themselves.
    rows = page.subquery("p")
    written = (
        select(*(_float_json_sql(c) if c.key in _FLOATS else c for c in rows.c))
        .correlate(rows)
        .lateral("t")
    )
    return (
        select(rows.c.number, cast(func.row_to_json(literal_column("t")), Text))
        .select_from(rows.join(written, true()))
        .order_by(*_page_order(rows.c, sort, descending))
    )


def _page_order(columns: Any, sort: str, descending: bool) -> list[Any]:
    """ORDER BY of a page; ``columns`` is ``TrialModel`` or a subquery's ``.c``."""
    if sort == "number":
        return [columns.number.desc() if descending else columns.number.asc()]
    key = columns.objective if sort == "objective" else columns.metrics[sort].as_float()
    return [(key.desc() if descending else key.asc()).nulls_last(), columns.number.asc()]


def metric_value(metrics: Any, name: str) -> ColumnElement[Any]:
    """A trial's metric ``name`` as a float (NULL when it has none), from a ``metrics`` column."""
    return metrics[name].as_float()


def rank_order(
    objective: Any, metrics: Any, maximize: bool, then: Sequence[tuple[Any, str]]
) -> list[Any]:
    """ORDER BY of a ranking, best first: ``objective``, then each tie-breaking objective of
    ``then`` (a metric's name read from ``metrics``, or with ``metrics`` None a column),
    missing values last: ``nas.pareto.tie_break_key`` in SQL."""
    order = [objective.desc() if maximize else objective.asc()]
    for name, direction in then:
        value = name if metrics is None else metric_value(metrics, name)
        order.append((value.desc() if direction == "maximize" else value.asc()).nulls_last())
    return order

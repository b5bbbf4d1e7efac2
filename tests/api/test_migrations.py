"""Alembic migrations: own version table, idempotent, reversible, and an Optuna storage can
share the database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from api.app import create_app
from api.db import (
    MIGRATIONS,
    VERSION_TABLE,
    SchemaNotCurrent,
    SchemaUnusable,
    alembic_config,
    check_schema,
    current_revision,
    head_revision,
    include_object,
    make_engine,
    make_session_factory,
    session_scope,
    upgrade,
)
from api.models import Base, CurvePointModel, JobModel
from api.repositories import CheckpointRepository, CurveRepository, JobRepository
from tests.api.conftest import make_settings

OUR_TABLES = {t.name for t in Base.metadata.sorted_tables}
HEAD = "0007"


def test_upgrade_creates_every_table_with_our_version_table(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        upgrade(engine)  # idempotent
        tables = set(inspect(engine).get_table_names())
        assert OUR_TABLES | {VERSION_TABLE} <= tables
        assert "alembic_version" not in tables
        assert current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_upgrades_started_together_on_a_new_database_all_succeed(database_url: str) -> None:
    """Servers (or nas db upgrade and a server) starting at once on a new PostgreSQL
    database: one of them died of a duplicate key while both created the tables."""
    code = "import sys; from api.db import make_engine, upgrade; upgrade(make_engine(sys.argv[1]))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, database_url], stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_a_server_that_does_not_migrate_starts_only_on_a_database_at_head(
    database_url: str, tmp_path: Path
) -> None:
    """``NAS_MIGRATE_ON_START=false`` on a database never migrated started a server whose
    /healthz said ok while every API call was a 500 and every runner tick a traceback. It
    now refuses to start, saying to run ``nas db upgrade``, also on a database an older
    version left behind; at the head revision it starts."""
    app = create_app(make_settings(database_url, tmp_path, migrate_on_start=False))

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            pass

    def start_and_stop() -> None:
        """The app's start and stop, on an event loop of a thread of its own (this one may
        run one already: a browser test before, in the same pytest worker)."""
        raised: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(lifespan())
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                raised.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "the app's start or stop hung"
        if raised:
            raise raised[0]

    with pytest.raises(SchemaNotCurrent, match=rf"at revision none \(never migrated\), not {HEAD}"):
        start_and_stop()
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None  # refused without migrating
        upgrade(engine, "0004")
        with pytest.raises(SchemaNotCurrent, match="at revision 0004.*run 'nas db upgrade'"):
            start_and_stop()
        upgrade(engine)
        start_and_stop()
    finally:
        engine.dispose()
    assert head_revision() == HEAD


def test_downgrade_then_upgrade(database_url: str) -> None:
    from alembic import command

    from api.db import alembic_config

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        config = alembic_config(database_url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert not OUR_TABLES & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert OUR_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_optuna_storage_shares_the_database(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(database_url)
        study = optuna.create_study(storage=storage, study_name="shared")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        upgrade(engine)  # ours still at head next to Optuna's alembic_version
        assert current_revision(engine) == HEAD
        tables = set(inspect(engine).get_table_names())
        assert {"alembic_version", VERSION_TABLE, "studies"} <= tables
        assert len(optuna.load_study(study_name="shared", storage=storage).trials) == 3
        storage.remove_session()
        storage.engine.dispose()
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_models_schema(database_url: str, tmp_path: Path) -> None:
    """With the hook alembic's environment gives autogenerate (``api.db.include_object``):
    without it, a generated migration would drop the indexes only migration 0002 makes."""
    from alembic import command

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_object": include_object}
            )
            assert compare_metadata(context, Base.metadata) == []
        # Autogenerate through the project's environment writes an empty migration (into
        # a folder of this test's: the project's would give other tests a new head).
        config = alembic_config(database_url)
        versions = MIGRATIONS / "versions"
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", f"{versions}{os.pathsep}{tmp_path}")
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            script = command.revision(
                config, "drift", autogenerate=True, rev_id="9999", version_path=str(tmp_path)
            )
        source = Path(script.path).read_text()  # type: ignore[union-attr]
        assert Path(script.path).parent == tmp_path  # type: ignore[union-attr]
        body = source.split("def upgrade() -> None:")[1]
        assert "op." not in body, source
    finally:
        engine.dispose()


def test_upgrade_from_0002_keeps_jobs_and_adds_curve_points(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0002")
        assert "nas_curve_points" not in inspect(engine).get_table_names()
        write = make_session_factory(engine, write=True)
        with session_scope(write) as session:
            job = JobRepository(session).add(
                JobModel(name="old", spec={}, state="SUCCEEDED", state_counts={})
            )
            job_id = job.id
        upgrade(engine)
        assert current_revision(engine) == HEAD
        with session_scope(write) as session:
            assert JobRepository(session).get(job_id) is not None
            assert CurveRepository(session).add_many(job_id, "supernet", [{"epoch": 0}]) == 1
        with session_scope(write) as session:
            assert JobRepository(session).delete(job_id)
        with write() as session:  # ON DELETE CASCADE
            assert session.scalar(select(func.count()).select_from(CurvePointModel)) == 0
    finally:
        engine.dispose()


def test_upgrade_to_0003_copies_checkpointed_epochs_into_the_curve_table(
    database_url: str,
) -> None:
    """A shared-weight job checkpointed before 0003 kept its epochs in the checkpoint only:
    the upgrade serves them as its curve, and the runner goes on from there without a gap."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0002")
        write = make_session_factory(engine, write=True)
        curve = [
            {"epoch": 0, "train_loss": 2.0, "mean_reward": 40.5, "entropy": 1.5},
            {"epoch": 1, "train_loss": 1.5, "mean_reward": None, "entropy": 1.4},
        ]
        with session_scope(write) as session:
            job = JobRepository(session).add(
                JobModel(name="enas", spec={}, state="RUNNING", state_counts={})
            )
            job_id = job.id
            other = (
                JobRepository(session)
                .add(JobModel(name="table", spec={}, state="RUNNING", state_counts={}))
                .id
            )
            checkpoints = CheckpointRepository(session)
            loop = {"trials": 20, "used_trials": 20, "used_simulated": 0.0, "elapsed_s": 3.0}
            checkpoints.save(
                job_id,
                trial_count=20,
                controller_state={},
                loop_state={**loop, "curve": curve},
                evaluator_path=None,
            )
            checkpoints.save(
                other, trial_count=20, controller_state={}, loop_state=loop, evaluator_path=None
            )
        upgrade(engine)
        with write() as session:
            points = CurveRepository(session).points(job_id)
            assert [(p.series, p.step) for p in points] == [("supernet", 0), ("supernet", 1)]
            assert points[0].values == {"train_loss": 2.0, "mean_reward": 40.5, "entropy": 1.5}
            assert points[1].values["mean_reward"] is None
            assert CurveRepository(session).points(other) == []
    finally:
        engine.dispose()


def _old_job(write: Any) -> int:
    """A finished job's row, written at an older revision (the ORM's columns it has)."""
    with session_scope(write) as session:
        job = JobModel(name="old", spec={}, state="SUCCEEDED", state_counts={})
        return JobRepository(session).add(job).id


def _downgrade(engine: Any, database_url: str, revision: str) -> None:
    from alembic import command

    config = alembic_config(database_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_upgrade_to_0006_counts_stored_intermediate_steps_from_one(database_url: str) -> None:
    """Steps were stored from 0 (a trial pruned at epoch 2 showed steps 0 and 1); they count
    epochs trained from 1 since, and the upgrade moves the stored ones alike (and back)."""

    from api.repositories import TrialRepository

    engine = make_engine(database_url)
    try:
        upgrade(engine, "0005")
        write = make_session_factory(engine, write=True)
        job_id = _old_job(write)
        with session_scope(write) as session:
            trials = TrialRepository(session)
            for step in (0, 1, 2):
                trials.add_intermediate(job_id, 0, step, {"val_accuracy": 10.0 * step})
            # Written by the code that counted from 1 while the schema was still at 0005:
            # already right (it moved up too, a 2-epoch trial reaching step 3)
            for step in (1, 2):
                trials.add_intermediate(job_id, 1, step, {"val_accuracy": 10.0 * step})

        def steps(trial: int = 0) -> list[tuple[int, float]]:
            with write() as session:
                rows = TrialRepository(session).intermediate(job_id, trial)
                return [(r.step, r.values["val_accuracy"]) for r in rows]

        upgrade(engine)
        assert steps() == [(1, 0.0), (2, 10.0), (3, 20.0)]
        assert steps(1) == [(1, 10.0), (2, 20.0)]
        _downgrade(engine, database_url, "0005")
        assert steps() == [(0, 0.0), (1, 10.0), (2, 20.0)]
    finally:
        engine.dispose()


def test_upgrade_to_0007_keeps_long_architecture_keys_apart(database_url: str) -> None:
    """Keys past the column's 500 characters were stored cut short (two architectures apart
    only past there were one); the upgrade rewrites them as they are stored now (and back)."""
    from sqlalchemy import text

    from api.models import TrialModel, stored_arch_key
    from nas.architecture import Architecture

    long = Architecture("enas-macro", (0,) * 24 + (1,) * 276)
    short = Architecture("nb201", (0, 1, 2, 3, 4, 0))
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0006")
        write = make_session_factory(engine, write=True)
        job_id = _old_job(write)
        with engine.begin() as connection:
            for number, arch in enumerate((long, short)):
                connection.execute(
                    text(
                        "INSERT INTO nas_trials (job_id, number, candidate_id, state, "
                        "architecture, arch_key, hparams, metrics, cost_s, simulated) VALUES "
                        "(:job, :number, :number, 'COMPLETE', :arch, :key, '{}', '{}', 0, false)"
                    ),
                    {
                        "job": job_id,
                        "number": number,
                        "arch": arch.to_json(),
                        "key": arch.key[:500],
                    },
                )

        def keys() -> list[str]:
            with write() as session:
                rows = session.query(TrialModel).order_by(TrialModel.number)
                return [row.arch_key for row in rows]

        upgrade(engine)
        assert keys() == [stored_arch_key(long.key), short.key]
        assert keys()[0] != long.key[:500]
        _downgrade(engine, database_url, "0006")
        assert keys() == [long.key[:500], short.key]
    finally:
        engine.dispose()


def test_a_database_of_a_newer_version_or_without_its_revision_is_refused_in_one_line(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database a newer version wrote (a revision this one does not know) gave every
    command alembic's traceback; one with the tables but no version table was said to be a
    "database error: table nas_api_keys already exists", and nas serve printed tracebacks."""
    from sqlalchemy import text

    from api.cli import main

    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
        commands = (["db", "--db", database_url, "upgrade"], ["serve", "--db", database_url])
        for args in commands:
            assert main(args) == 1
            err = capsys.readouterr().err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert "at schema revision 0099, which this version (schema 0007) does not " in err
            assert "a newer version of nas wrote it" in err
        with pytest.raises(SchemaUnusable, match="a newer version of nas wrote it"):
            upgrade(engine)
        with pytest.raises(SchemaUnusable, match="a newer version of nas wrote it"):
            check_schema(engine)  # (NAS_MIGRATE_ON_START=false: not "run nas db upgrade")
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        for args in commands:
            assert main(args) == 1
            err = capsys.readouterr().err
            assert "Traceback" not in err and "already exists" not in err, err
            assert f"the table {VERSION_TABLE} is missing" in err
        assert not inspect(engine).has_table(VERSION_TABLE)  # (nothing made meanwhile)
    finally:
        engine.dispose()

"""Alembic migrations: own version table, idempotent, reversible, and an Optuna storage can
share the database."""

from __future__ import annotations

import optuna
from sqlalchemy import inspect

from api.db import VERSION_TABLE, current_revision, make_engine, upgrade
from api.models import Base

OUR_TABLES = {t.name for t in Base.metadata.sorted_tables}


def test_upgrade_creates_every_table_with_our_version_table(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        upgrade(engine)  # idempotent
        tables = set(inspect(engine).get_table_names())
        assert OUR_TABLES | {VERSION_TABLE} <= tables
        assert "alembic_version" not in tables
        assert current_revision(engine) == "0002"
    finally:
        engine.dispose()


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
        assert current_revision(engine) == "0002"
        tables = set(inspect(engine).get_table_names())
        assert {"alembic_version", VERSION_TABLE, "studies"} <= tables
        assert len(optuna.load_study(study_name="shared", storage=storage).trials) == 3
        storage.remove_session()
        storage.engine.dispose()
    finally:
        engine.dispose()

"""Ids are never reused (issue 13, item 16): a job or trial id names one job or trial for
good (warm starts, exports and logs refer to them), also after the newest was deleted; on
SQLite that takes AUTOINCREMENT tables (migration 0004), PostgreSQL's sequences never go back.
Over real HTTP and on the database directly, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from api.client import ApiError, NasClient
from api.db import make_engine, make_session_factory, session_scope, upgrade
from api.models import JobModel, TrialModel
from api.repositories import JobRepository
from tests.api.conftest import nb201_spec, wait_for


def _submit_and_finish(client: NasClient, spec: dict[str, Any]) -> int:
    job_id = int(client.submit(spec)["id"])

    def finished() -> bool:
        try:
            return client.job(job_id)["state"] == "SUCCEEDED"
        except ApiError as exc:  # not committed yet: the 201 goes out before the commit
            if exc.status_code != 404:
                raise
            return False

    wait_for(finished, timeout=60)
    return job_id


def test_deleting_the_newest_job_never_gives_its_ids_to_the_next(client: NasClient) -> None:
    spec = nb201_spec(budget={"trials": 5})
    first = _submit_and_finish(client, spec)
    first_trials = [t["id"] for t in client.all_trials(first)]
    assert len(first_trials) == 5
    client.delete(first)

    second = _submit_and_finish(client, spec)
    assert second > first
    second_trials = [t["id"] for t in client.all_trials(second)]
    assert len(second_trials) == 5
    assert min(second_trials) > max(first_trials)
    try:
        client.job(first)
        raise AssertionError(f"job {first} still exists")
    except ApiError as exc:
        assert exc.status_code == 404


def test_upgrade_to_0004_keeps_jobs_and_trials_and_stops_reusing_their_ids(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0003")
        write = make_session_factory(engine, write=True)
        with session_scope(write) as session:
            jobs = JobRepository(session)
            kept = jobs.add(JobModel(name="kept", spec={}, state="SUCCEEDED", state_counts={}))
            newest = jobs.add(JobModel(name="new", spec={}, state="SUCCEEDED", state_counts={}))
            kept_id, newest_id = kept.id, newest.id
            for job_id, number in [(kept_id, 0), (newest_id, 0), (newest_id, 1)]:
                # (the columns of 0003's table: the model has later ones)
                session.execute(
                    insert(TrialModel).values(
                        job_id=job_id,
                        number=number,
                        candidate_id=number,
                        state="COMPLETE",
                        architecture={"space": "nb201", "choices": [number]},
                        arch_key=f"k{number}",
                        hparams={},
                        metrics={},
                        cost_s=0.0,
                        simulated=False,
                        objective=0.5 + number,
                    )
                )
        with write() as session:
            trial_ids = session.scalars(select(TrialModel.id).order_by(TrialModel.id)).all()
        upgrade(engine)
        with session_scope(write) as session:
            rows = session.execute(select(JobModel.id, JobModel.name).order_by(JobModel.id)).all()
            assert [tuple(r) for r in rows] == [(kept_id, "kept"), (newest_id, "new")]
            assert session.scalars(select(TrialModel.id).order_by(TrialModel.id)).all() == (
                trial_ids
            )
            assert JobRepository(session).delete(newest_id)
        with session_scope(write) as session:  # ON DELETE CASCADE still holds
            remaining = session.scalars(select(TrialModel.job_id)).all()
            assert remaining == [kept_id]
            again = JobRepository(session).add(
                JobModel(name="again", spec={}, state="SUCCEEDED", state_counts={})
            )
            session.add(
                TrialModel(
                    job_id=again.id,
                    number=0,
                    candidate_id=0,
                    state="COMPLETE",
                    architecture={"space": "nb201", "choices": [0]},
                    arch_key="k0",
                )
            )
            session.flush()
            assert again.id > newest_id
            new_trial = session.scalar(select(TrialModel.id).where(TrialModel.job_id == again.id))
            assert new_trial is not None and new_trial > max(trial_ids)
    finally:
        engine.dispose()

"""The hot read path (api.reads): trial listings as written by the database or by the service,
a dead pooled connection, and an API-only server that starts Ray only to check a GPU request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from api.client import ApiError
from api.db import make_engine
from api.reads import APPLICATION_NAME
from tests.api.conftest import PG_ADMIN, LiveServer, make_settings, nb201_spec, postgres_database


def test_listed_trials_equal_their_detail_exactly(server_factory: Any) -> None:
    """Every field of a listed trial (JSON written by PostgreSQL, or by the service on
    SQLite) equals the trial's own endpoint, floats to the last bit and timestamps to the
    letter (UTC, written with ``Z`` as everywhere else)."""
    server: LiveServer = server_factory()
    with server.client(server.create_key("a")) as client:
        job_id = client.submit(nb201_spec(budget={"trials": 40}))["id"]
        client.wait(job_id, timeout=60)
        page = client.trials(job_id, limit=40)
        assert page["count"] == 40 and page["next_after"] is None  # a full last page
        for listed in page["data"]:
            detail = client.trial(listed["id"])
            assert set(listed) == set(detail) - {"intermediate_values"}
            for field, value in listed.items():
                assert value == detail[field], field
            assert listed["finished_at"].endswith("Z"), listed
            assert isinstance(listed["simulated"], bool)
            assert listed["objective"] == listed["metrics"]["val_accuracy"]


def test_listed_whole_numbers_are_written_as_floats_on_either_database(
    server_factory: Any,
) -> None:
    """A whole-number objective or cost is a float in the listing, as in the trial's own
    endpoint (PostgreSQL's ``row_to_json`` wrote ``82`` where SQLite's listing wrote
    ``82.0``); the page still sorts on the numbers."""
    server: LiveServer = server_factory()
    key = server.create_key("a")
    with server.client(key) as client:
        job_id = client.submit(nb201_spec(budget={"trials": 6}))["id"]
        client.wait(job_id, timeout=60)
        engine = make_engine(server.settings.database_url)
        try:
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "UPDATE nas_trials SET objective = 100 - number, cost_s = 3"
                        " WHERE job_id = :job AND number < 2"
                    ),
                    {"job": job_id},
                )
        finally:
            engine.dispose()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http:
            listing = http.get(
                f"/api/v1/jobs/{job_id}/trials", params={"sort": "objective", "order": "desc"}
            )
            detail = http.get(f"/api/v1/trials/{listing.json()['data'][0]['id']}")
        first = listing.json()["data"][0]
        assert [t["number"] for t in listing.json()["data"][:2]] == [0, 1]
        for body in (listing.text, detail.text):
            compact = body.replace(" ", "")
            assert '"objective":100.0' in compact and '"cost_s":3.0' in compact, body[:300]
            assert '"objective":100,' not in compact and '"cost_s":3,' not in compact
        assert isinstance(first["objective"], float) and isinstance(first["cost_s"], float)


def test_listed_non_finite_numbers_are_null_as_in_the_trials_own_read(
    server_factory: Any,
) -> None:
    """An infinite cost (a table's scale that overflowed) was listed as a bare ``Infinity``
    on SQLite (invalid JSON) and as the string ``"Infinity"`` on PostgreSQL, while the
    trial's own read answered null."""
    server: LiveServer = server_factory()
    key = server.create_key("a")
    with server.client(key) as client:
        job_id = client.submit(nb201_spec(budget={"trials": 3}))["id"]
        client.wait(job_id, timeout=60)
    engine = make_engine(server.settings.database_url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    # SQLite: 9e999 reads as infinity and keeps no NaN; PostgreSQL: its JSON
                    # holds no infinity (the text a JSON column of SQLite may hold)
                    'UPDATE nas_trials SET cost_s = 9e999, metrics = \'{"val_accuracy": '
                    '-Infinity, "x": [NaN]}\' WHERE job_id = :job AND number = 0'
                    if sqlite
                    else "UPDATE nas_trials SET cost_s = 'Infinity', objective = 'NaN'"
                    " WHERE job_id = :job AND number = 0"
                ),
                {"job": job_id},
            )
    finally:
        engine.dispose()

    def strict_json(body: str) -> Any:
        def refuse(name: str) -> None:
            raise AssertionError(f"{name} in {body[:300]}")

        return json.loads(body, parse_constant=refuse)

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http:
        for sort in ("number", "objective"):
            listing = http.get(f"/api/v1/jobs/{job_id}/trials", params={"sort": sort})
            assert listing.status_code == 200
            (first,) = [t for t in strict_json(listing.text)["data"] if t["number"] == 0]
            detail = strict_json(http.get(f"/api/v1/trials/{first['id']}").text)
            assert first["cost_s"] is None
            for field, value in first.items():
                assert value == detail[field], field
            if sqlite:
                assert first["metrics"] == {"val_accuracy": None, "x": [None]}
            else:
                assert first["objective"] is None


def test_listing_errors_name_the_parameter_and_leave_nothing_behind(server_factory: Any) -> None:
    server: LiveServer = server_factory(run_jobs=False)
    key = server.create_key("a")
    with server.client(key) as client:
        job_id = client.submit(nb201_spec())["id"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http:
        bad_sort = http.get(f"/api/v1/jobs/{job_id}/trials", params={"sort": "nope"})
        assert bad_sort.status_code == 422
        assert bad_sort.json()["detail"][0]["loc"] == ["query", "sort"]
        assert "valid: number, objective, " in bad_sort.json()["detail"][0]["msg"]
        cursor = http.get(f"/api/v1/jobs/{job_id}/trials", params={"sort": "objective", "after": 3})
        assert cursor.status_code == 422 and cursor.json()["detail"][0]["loc"] == ["query", "after"]
        assert http.get("/api/v1/jobs/999999/trials").status_code == 404
        empty = http.get(f"/api/v1/jobs/{job_id}/trials")
        assert empty.status_code == 200
        assert empty.json() == {"data": [], "count": 0, "next_after": None}


def _kill_read_connections(database_url: str) -> int:
    database = database_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = %s",
            (database, APPLICATION_NAME),
        ).fetchall()
    return len(rows)


def test_listing_survives_its_pooled_connections_being_killed(tmp_path: Path) -> None:
    """PostgreSQL only: the read pool's connections (no ping at checkout) all die, as in
    a database restart; the next listing still answers, on fresh connections."""
    with postgres_database() as url:
        server = LiveServer(make_settings(url, tmp_path / "data")).start()
        try:
            key = server.create_key("a")
            with server.client(key) as client:
                job_id = client.submit(nb201_spec(budget={"trials": 30}))["id"]
                client.wait(job_id, timeout=60)
                before = client.trials(job_id, limit=30)
                assert _kill_read_connections(url) == server.settings.read_concurrency
                assert client.trials(job_id, limit=30) == before
                assert client.trials(job_id, limit=5, offset=10)["data"][0]["number"] == 10
        finally:
            server.stop()


# One database: what is checked is when the service starts Ray, not the storage.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_api_only_server_starts_ray_only_to_check_a_gpu_request(server_factory: Any) -> None:
    import ray

    assert not ray.is_initialized(), "an earlier test left Ray running"
    server: LiveServer = server_factory(backend="ray", run_jobs=False, ray_num_cpus=1)
    try:
        with server.client(server.create_key("a")) as client:
            job_id = client.submit(nb201_spec())["id"]
            assert client.trials(job_id)["count"] == 0
            assert client.job(job_id)["state"] == "QUEUED"
            assert not ray.is_initialized()
            with pytest.raises(ApiError) as err:
                client.submit(nb201_spec(resources={"gpus_per_trial": 1}))
            assert err.value.status_code == 422
            assert "gpus_per_trial" in str(err.value) and "has 0 GPUs" in str(err.value)
            assert ray.is_initialized()
    finally:
        ray.shutdown()


def test_a_trial_with_a_metric_that_is_not_finite_is_stored_and_read_back_without_it(
    database_url: str,
) -> None:
    """PostgreSQL refused the row (its JSON has no NaN: the trial's write failed) and
    SQLite stored a bare NaN its JSON functions cannot read, so sorting by it failed. Stored
    as null, the metric reads back as absent (what a loop's ``metrics.get`` expects)."""
    from sqlalchemy import select

    from api.db import make_session_factory, session_scope, upgrade
    from api.models import JobModel, JobState, TrialModel
    from api.repositories import JobRepository, TrialRepository, trial_record
    from nas.architecture import Architecture
    from nas.trial import TrialRecord, TrialResult, TrialState

    engine = make_engine(database_url)
    upgrade(engine)
    write = make_session_factory(engine, write=True)
    try:
        with session_scope(write) as session:
            job = JobRepository(session).add(
                JobModel(name="nan", spec=nb201_spec(), state=JobState.RUNNING.value)
            )
            result = TrialResult(
                state=TrialState.COMPLETE,
                objective=1.0,
                metrics={"val_accuracy": 1.0, "train_loss": float("nan"), "x": float("inf")},
            )
            arch = Architecture("nb201", (0, 1, 2, 3, 4, 0))
            record = TrialRecord(0, 0, arch, {}, result, started_at=0.0, finished_at=1.0)
            trials = TrialRepository(session)
            trials.add_records(job.id, [record])
            trials.add_intermediate(job.id, 0, 0, {"loss": float("nan")})
            # the finished job's summary holds the best's metrics as told (PostgreSQL
            # refused the job's row over the NaN)
            best = {"trial": 0, "metrics": dict(result.metrics)}
            JobRepository(session).set_fields(job.id, summary={"best": best})
            job_id = job.id
        with session_scope(write) as session:
            trials = TrialRepository(session)
            by_loss = TrialModel.metrics["train_loss"].as_float()  # as the listing sorts
            (row,) = session.scalars(
                select(TrialModel).where(TrialModel.job_id == job_id).order_by(by_loss)
            ).all()
            assert row.metrics == {"val_accuracy": 1.0, "train_loss": None, "x": None}
            assert trial_record(row).result.metrics == {"val_accuracy": 1.0}
            assert [v.values for v in trials.intermediate(job_id, 0)] == [{"loss": None}]
            stored = JobRepository(session).get(job_id)
            assert stored is not None and stored.summary["best"]["metrics"] == row.metrics
    finally:
        engine.dispose()

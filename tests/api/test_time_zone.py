"""Timestamps are UTC on PostgreSQL whatever the database's ``TimeZone`` setting: the ORM's
and the SQL-built listings' (the trial page, the timeline) alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from tests.api.conftest import LiveServer, make_settings, nb201_spec, postgres_database


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), text
    return moment


def test_a_database_in_another_time_zone_still_answers_utc(tmp_path: Path) -> None:
    with postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        admin = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Kolkata'")
        server = LiveServer(make_settings(url, tmp_path / "data")).start()
        try:
            with server.client(server.create_key("tz")) as client:
                before = datetime.now(UTC)
                job = client.wait(client.submit(nb201_spec(budget={"trials": 3}))["id"], timeout=60)
                after = datetime.now(UTC) + timedelta(seconds=1)
                for field in ("created_at", "started_at", "finished_at"):
                    assert before - timedelta(seconds=1) <= _utc(job[field]) <= after, job
                trials = client.trials(job["id"])["data"]
                assert trials and all(
                    before - timedelta(seconds=1) <= _utc(t["started_at"]) <= after for t in trials
                ), trials
                timeline = client._http.get(f"/api/v1/jobs/{job['id']}/timeline").json()
                spans = [t for worker in timeline["workers"] for t in worker["trials"]]
                assert spans, timeline
                for span in spans:
                    assert before - timedelta(seconds=1) <= _utc(span["start"]) <= after
        finally:
            server.stop()

"""32 concurrent HTTP readers while 1,000 trial results are written by 4 writers: no
"database is locked", no lost or duplicated writes, on SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import tls_context
from api.db import session_scope
from api.models import JobModel
from api.repositories import JobRepository, TrialRepository
from api.services import JobService
from nas.architecture import Architecture
from nas.trial import TrialRecord, TrialResult, TrialState
from tests.api.conftest import LiveServer, make_settings, nb201_spec, postgres_database

WRITERS, PER_WRITER, BATCH, READERS = 4, 250, 10, 32


def _trial(number: int) -> TrialRecord:
    now = time.time()
    return TrialRecord(
        number=number,
        candidate_id=number,
        architecture=Architecture("nb201", (number % 5,) * 6, 1),
        hparams={},
        result=TrialResult(
            TrialState.COMPLETE,
            float(number % 97),
            {"val_accuracy": float(number % 97)},
            cost_s=1.0,
            simulated=True,
        ),
        started_at=now,
        finished_at=now,
        worker="test",
    )


def test_concurrent_readers_and_writers(server_factory: Any) -> None:
    server: LiveServer = server_factory(run_jobs=False)
    key = server.create_key("a")
    headers = {"Authorization": f"Bearer {key}"}
    job_id = httpx.post(f"{server.url}/api/v1/jobs", json=nb201_spec(), headers=headers).json()[
        "id"
    ]
    write = server.app.state.nas.write
    done = threading.Event()
    errors: list[str] = []

    def writer(index: int) -> None:
        numbers = list(range(index, WRITERS * PER_WRITER, WRITERS))
        try:
            for start in range(0, len(numbers), BATCH):
                batch = numbers[start : start + BATCH]
                with session_scope(write) as session:
                    TrialRepository(session).add_records(job_id, [_trial(n) for n in batch])
                    JobRepository(session).set_fields(
                        job_id, n_trials=JobModel.n_trials + len(batch)
                    )
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            errors.append(f"writer {index}: {exc!r}")

    def reader(index: int) -> None:
        rng = random.Random(index)
        last_count = 0
        with httpx.Client(
            base_url=server.url, headers=headers, timeout=60, verify=tls_context()
        ) as http:
            while not done.is_set():
                if rng.random() < 0.5:
                    path = f"/api/v1/jobs/{job_id}/trials?limit=50&after={rng.randint(-1, 999)}"
                else:
                    path = f"/api/v1/jobs/{job_id}/trials?sort=objective&order=desc&limit=20"
                response = http.get(path)
                if response.status_code != 200:
                    errors.append(f"reader {index}: {response.status_code} {response.text}")
                    return
                page = response.json()
                numbers = [t["number"] for t in page["data"]]
                if len(set(numbers)) != len(numbers):
                    errors.append(f"reader {index}: duplicate numbers {numbers}")
                if page["count"] < last_count:
                    errors.append(f"reader {index}: count went back {last_count}->{page['count']}")
                last_count = page["count"]

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
    writers = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(300)
    done.set()
    for t in readers:
        t.join(60)
    assert not errors, errors[:5]
    with httpx.Client(base_url=server.url, headers=headers) as http:
        numbers = []
        after = -1
        while after is not None:
            page = http.get(f"/api/v1/jobs/{job_id}/trials?limit=1000&after={after}").json()
            numbers += [t["number"] for t in page["data"]]
            after = page["next_after"]
        assert page["count"] == WRITERS * PER_WRITER
    assert numbers == list(range(WRITERS * PER_WRITER))


def test_many_submits_at_once_are_all_created(server_factory: Any) -> None:
    """24 submits at once: on SQLite each held its read connection (the key lookup) while it
    waited for a second, its write session, until the 15-connection pool ran dry; they all
    waited out the pool's 30 s, then most answered 500."""
    server: LiveServer = server_factory(run_jobs=False)
    headers = {"Authorization": f"Bearer {server.create_key('a')}"}
    answers: list[tuple[int, float]] = []
    start = threading.Barrier(24)

    def submit() -> None:
        with httpx.Client(
            base_url=server.url, headers=headers, timeout=60, verify=tls_context()
        ) as http:
            start.wait()
            began = time.monotonic()
            response = http.post("/api/v1/jobs", json=nb201_spec())
            answers.append((response.status_code, time.monotonic() - began))

    threads = [threading.Thread(target=submit) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert sorted(code for code, _ in answers) == [201] * 24
    assert max(seconds for _, seconds in answers) < 25  # not a pool's 30 s time-out
    with httpx.Client(base_url=server.url, headers=headers) as http:
        assert http.get("/api/v1/jobs?limit=100").json()["count"] == 24


def test_a_cancel_that_meets_a_committed_delete_is_a_404(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a cancel racing a delete of its QUEUED job answered 500 (the probe of
    lifecycle operations: ``StaleDataError``, its UPDATE matched no row), the delete having
    committed between the cancel's read and its flush. The interleaving made certain: the
    job is deleted, in another transaction, right after the cancel's first read. (SQLite
    serialises writing sessions, so the window is PostgreSQL's.)"""
    with postgres_database() as url:
        server = LiveServer(make_settings(url, tmp_path / "data", run_jobs=False)).start()
        try:
            headers = {"Authorization": f"Bearer {server.create_key('a')}"}
            write = server.app.state.nas.write
            read_job = JobService.get

            def read_then_deleted(self: JobService, principal: Any, job_id: int) -> Any:
                job = read_job(self, principal, job_id)
                with session_scope(write) as other:
                    assert JobRepository(other).delete(job_id)
                return job

            with httpx.Client(
                base_url=server.url, headers=headers, timeout=60, verify=tls_context()
            ) as http:
                job_id = http.post("/api/v1/jobs", json=nb201_spec()).json()["id"]
                monkeypatch.setattr(JobService, "get", read_then_deleted)
                answer = http.post(f"/api/v1/jobs/{job_id}/cancel")
                monkeypatch.undo()
                assert answer.status_code == 404, answer.text
                assert answer.json()["detail"] == f"job {job_id} not found"
                assert http.get(f"/api/v1/jobs/{job_id}").status_code == 404
        finally:
            server.stop()


def test_a_delete_that_meets_a_committed_delete_is_a_404(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deletes of one finished job through two servers at once: the later one was told
    "job N started meanwhile: cancel it first" of a job that was gone (the probe of servers
    sharing a database). Made certain as above: the job is deleted in another transaction
    right after the delete's first read (PostgreSQL's window)."""
    import api.deletion

    with postgres_database() as url:
        server = LiveServer(make_settings(url, tmp_path / "data", run_jobs=False)).start()
        try:
            headers = {"Authorization": f"Bearer {server.create_key('a')}"}
            write = server.app.state.nas.write
            reap = api.deletion.reap_stale_retrainings

            def then_deleted(session: Any, job_id: int, retrainings: Any) -> None:
                reap(session, job_id, retrainings)
                with session_scope(write) as other:
                    assert JobRepository(other).delete(job_id)

            with httpx.Client(
                base_url=server.url, headers=headers, timeout=60, verify=tls_context()
            ) as http:
                job_id = http.post("/api/v1/jobs", json=nb201_spec()).json()["id"]
                assert http.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
                monkeypatch.setattr(api.deletion, "reap_stale_retrainings", then_deleted)
                answer = http.delete(f"/api/v1/jobs/{job_id}")
                monkeypatch.undo()
                assert answer.status_code == 404, answer.text
                assert answer.json()["detail"] == f"job {job_id} not found"
        finally:
            server.stop()

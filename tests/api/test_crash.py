"""``kill -9`` of a real server process in the middle of a job: the restarted server resumes
the job from its checkpoint; no trial is lost, duplicated or left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import create_key
from api.client import tls_context
from api.db import make_engine, make_session_factory, session_scope, upgrade
from tests.api.conftest import PollingClient, free_port, standalone_spec, wait_for
from tests.conftest import REPO


def _serve(
    database_url: str, data_dir: Path, port: int, log: Path, *, timeout: float = 60
) -> subprocess.Popen[Any]:
    env = {
        **os.environ,
        "NAS_DATABASE_URL": database_url,
        "NAS_DATA_DIR": str(data_dir),
        "NAS_POLL_INTERVAL_S": "0.1",
        "NAS_FLUSH_INTERVAL_S": "0.1",
        "NAS_JOB_LEASE_S": "60",  # the dead process is detected directly, not by lease expiry
        "NAS_TORCH_THREADS": "1",
        "NAS_BACKEND": "inline",  # durability of the database is the point here, not Ray
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            return http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    with httpx.Client(timeout=1, verify=tls_context()) as http:
        wait_for(healthy, timeout=timeout, interval=0.2)
    return process


def _key(database_url: str) -> str:
    """A fresh API key in the (upgraded) database."""
    engine = make_engine(database_url)
    upgrade(engine)
    with session_scope(make_session_factory(engine, write=True)) as session:
        key = create_key(session, name="a")[1]
    engine.dispose()
    return key


@pytest.mark.slow
def test_sigkill_mid_job_then_restart_resumes_from_the_checkpoint(
    database_url: str, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    key = _key(database_url)  # before the server starts: one process upgrades the schema
    port, log = free_port(), tmp_path / "server.log"
    server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
    client = PollingClient(f"http://127.0.0.1:{port}", api_key=key)
    try:
        job_id = client.submit(standalone_spec(trials=8, epochs=3))["id"]
        # Kill while a trial is training, after a few were recorded.
        wait_for(
            lambda: (
                (j := client.job(job_id))["trial_states"].get("COMPLETE", 0) >= 3
                and j["trial_states"].get("RUNNING", 0) == 1
            ),
            timeout=time_left(120),
            interval=0.02,
        )
        before = {t["number"]: (t["id"], t["state"]) for t in client.all_trials(job_id)}
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        assert client_state(database_url, job_id) == "RUNNING"  # the crash left it RUNNING

        server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
        job = client.wait(job_id, timeout=time_left())
        assert job["state"] == "SUCCEEDED", job["reason"]
        assert job["resumes"] == 1
        trials = list(client.all_trials(job_id))
        numbers = [t["number"] for t in trials]
        assert numbers == list(range(8))  # unique and contiguous
        assert all(t["state"] == "COMPLETE" for t in trials)  # none left RUNNING
        # Trials finished before the kill were kept (same rows), not redone from scratch.
        kept = [n for n, (_, state) in before.items() if state == "COMPLETE"]
        assert len(kept) >= 3
        by_number = {t["number"]: t["id"] for t in trials}
        assert all(by_number[n] == before[n][0] for n in kept)
        assert "resumed from the checkpoint at trial" in log.read_text()
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.slow
def test_sigkill_mid_shared_weight_search_resumes_trials_and_curves_without_gaps(
    database_url: str, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """The supernet search checkpoints at epoch ends: after a ``kill -9`` mid-epoch the
    restarted server redoes that epoch whole; trials and the per-epoch curve have no gap and
    no duplicate."""
    key = _key(database_url)  # before the server starts: one process upgrades the schema
    port, log = free_port(), tmp_path / "server.log"
    server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
    client = PollingClient(f"http://127.0.0.1:{port}", api_key=key)
    spec = {
        "name": "digits-enas",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "enas", "num_aggregate": 5},
        "evaluator": {
            "name": "shared-weights",
            "epochs": 3,
            "batch_size": 64,
            "rewards_per_epoch": 10,
        },
        "budget": {"minutes": 10},
        "seed": 0,
    }
    try:
        job_id = client.submit(spec)["id"]
        # Kill after an epoch was checkpointed and while later rewards are recorded.
        wait_for(
            lambda: len(client.curves(job_id)["epochs"].get("supernet", [])) >= 1,
            timeout=time_left(120),
            interval=0.02,
        )
        before = client.curves(job_id)["epochs"]["supernet"]
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
        job = client.wait(job_id, timeout=time_left())
        assert job["state"] == "SUCCEEDED", job["reason"]
        assert job["resumes"] == 1
        trials = list(client.all_trials(job_id))
        curve = client.curves(job_id)["epochs"]["supernet"]
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    assert [t["number"] for t in trials] == list(range(30))
    assert [sum(t["epoch"] == e for t in trials) for e in range(3)] == [10] * 3
    assert [p["epoch"] for p in curve] == list(range(3))
    assert all(p["rewards"] == 10 and p["entropy"] > 0 for p in curve)
    assert curve[: len(before)] == before  # checkpointed epochs were kept, not redone


def client_state(database_url: str, job_id: int) -> str:
    from api.models import JobModel

    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            job = session.get(JobModel, job_id)
            assert job is not None
            return job.state
    finally:
        engine.dispose()

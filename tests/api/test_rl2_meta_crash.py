"""``kill -9`` of the server mid meta-training: the restarted server resumes from the last
checkpoint (policy, optimizer, random generators) and stores exactly the policy the
uninterrupted job would have (SQLite; the storage path is the same on PostgreSQL, which
``test_rl2_meta_jobs`` runs)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from api.client import NasClient
from controllers.rl2 import load_policy
from tests.api.conftest import free_port, wait_for
from tests.api.test_crash import _key, _serve, client_state
from tests.workers.test_meta_train_search import table_meta_spec
from workers.meta_train import MetaTrainSearch
from workers.search import parse_spec


@pytest.mark.slow
def test_sigkill_mid_meta_training_resumes_to_the_same_policy(
    tmp_path: Path, time_left: Callable[..., float]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'nas.db'}"
    spec = table_meta_spec(tmp_path / "data")
    key = _key(database_url)
    port, log = free_port(), tmp_path / "server.log"
    server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
    client = NasClient(f"http://127.0.0.1:{port}", api_key=key)
    try:
        job_id = client.submit(spec)["id"]
        wait_for(
            lambda: len(client.curves(job_id)["epochs"].get("meta_train", [])) >= 3,
            timeout=time_left(60),
            interval=0.02,
        )
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        assert client_state(database_url, job_id) == "RUNNING"
        recorded = len(client_curves_offline(database_url, job_id))
        assert recorded < 16, "the job ended before the kill: nothing was resumed"
        server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
        job = client.wait(job_id, timeout=time_left())
        assert job["state"] == "SUCCEEDED", job["reason"]
        assert job["resumes"] == 1
        points = client.curves(job_id)["epochs"]["meta_train"]
        assert [p["iteration"] for p in points] == list(range(1, 17))  # no gap, none twice
        resumed = re.search(
            r"resumed from the checkpoint at meta-training iteration (\d+)", log.read_text()
        )
        assert resumed and 3 <= int(resumed.group(1)) <= recorded, log.read_text()[-2000:]
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    files = tmp_path / "data" / "artifacts" / "jobs" / str(job_id) / "files"
    stored, _ = load_policy(files / "rl2-policy.pt")
    reference, _ = load_policy_bytes(MetaTrainSearch(parse_spec(spec)).run().files[0].data)
    for a, b in zip(stored.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def load_policy_bytes(data: bytes) -> tuple[torch.nn.Module, dict[str, Any]]:
    import io

    return load_policy(io.BytesIO(data))


def client_curves_offline(database_url: str, job_id: int) -> list[object]:
    """The job's curve points read from the database (the server is down)."""
    from api.db import make_engine, make_session_factory, session_scope
    from api.repositories import CurveRepository

    engine = make_engine(database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return list(CurveRepository(session).points(job_id))
    finally:
        engine.dispose()

"""``kill -9`` of the server in the middle of a meta-learning trial: the restarted server
continues that trial from its last meta-epoch checkpoint (weights, Adam's moments, the task
stream), not from scratch, and records exactly what the uninterrupted search would have
(SQLite; the storage path is the same on PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.client import NasClient
from tests.api.conftest import free_port, wait_for
from tests.api.test_crash import _key, _serve, client_state
from workers.search import SearchLoop, parse_spec

SPEC: dict[str, Any] = {
    "name": "sine-crash",
    "dataset": {"name": "sinusoid"},
    "space": {"name": "mlp", "max_layers": 2, "widths": [40]},
    "controller": {"name": "random"},
    "evaluator": {
        "name": "maml",
        "meta_iterations": 600,  # 10 meta-epochs of 60: under a second each on a busy core
        "meta_batch": 5,
        "val_tasks": 10,
        "test_tasks": 20,
        "eval_points": 50,
    },
    "hparams": {"inner_lr": {"type": "float", "low": 0.003, "high": 0.03, "log": True}},
    "objective": {"metric": "meta_val_mse", "direction": "minimize"},
    "budget": {"trials": 1},
    "seed": 5,
}


def _epochs(client: NasClient, job_id: int) -> int:
    trials = client.trials(job_id)["data"]
    if not trials:
        return 0
    return len(client.trial(trials[0]["id"])["intermediate_values"])


def _checkpoint(database_url: str, job_id: int) -> dict[str, Any] | None:
    """The job's checkpoint's loop state, read from the database (the server is down)."""
    from api.db import make_engine, make_session_factory, session_scope
    from api.repositories import CheckpointRepository

    engine = make_engine(database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            checkpoint = CheckpointRepository(session).get(job_id)
            return None if checkpoint is None else dict(checkpoint.loop_state)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_sigkill_mid_meta_training_continues_the_trial_from_its_checkpoint(
    tmp_path: Path, time_left: Callable[..., float]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'nas.db'}"
    key = _key(database_url)
    port, log = free_port(), tmp_path / "server.log"
    server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
    client = NasClient(f"http://127.0.0.1:{port}", api_key=key)
    try:
        job_id = client.submit(SPEC)["id"]
        wait_for(lambda: _epochs(client, job_id) >= 3, timeout=time_left(60), interval=0.05)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        assert client_state(database_url, job_id) == "RUNNING"
        loop = _checkpoint(database_url, job_id)
        assert loop is not None and loop["trials"] == 0
        epoch = loop["running"]["epoch"]
        assert 2 <= epoch < 10, "the kill did not land inside the trial's meta-training"
        server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
        job = client.wait(job_id, timeout=time_left())
        assert job["state"] == "SUCCEEDED", job["reason"]
        assert job["resumes"] == 1
        assert f"trial 0 goes on after its epoch {epoch}" in log.read_text()
        (trial,) = client.trials(job_id)["data"]
        assert trial["number"] == 0 and trial["state"] == "COMPLETE"
        steps = [v["step"] for v in client.trial(trial["id"])["intermediate_values"]]
        assert steps == list(range(1, 11))  # every meta-epoch once, numbered from 1
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    # What the uninterrupted search records, in this process.
    reference = SearchLoop(parse_spec(SPEC)).run()
    assert reference is not None
    assert trial["objective"] == reference.trials[0].result.objective
    assert trial["metrics"] == reference.trials[0].result.metrics
    assert job["summary"]["best"]["final_metrics"] == reference.final_metrics

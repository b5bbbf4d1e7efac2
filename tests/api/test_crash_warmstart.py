"""``kill -9`` of a real server mid warm-started job (issue 14): the resumed job proposes
exactly what the same job run without interruption proposes, priors included."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.conftest import PollingClient, free_port, standalone_spec, wait_for
from tests.api.test_crash import _key, _serve


# One database: what is checked is the controller's resume; tests/api/test_crash.py checks the
# kill -9 resume of the storage on both.
@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_warm_started_job_resumes_exactly_after_kill_9(
    database_url: str, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    key = _key(database_url)
    port, log = free_port(), tmp_path / "server.log"
    server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
    client = PollingClient(f"http://127.0.0.1:{port}", api_key=key)
    try:
        source = client.submit(standalone_spec(trials=6, epochs=1, controller={"name": "random"}))
        assert client.wait(source["id"], timeout=time_left(180))["state"] == "SUCCEEDED"
        warm = standalone_spec(
            trials=7,  # the 5 priors, then 2 children bred from them
            epochs=2,
            controller={"name": "evolution", "population_size": 4, "sample_size": 2},
            warm_start={"jobs": [source["id"]], "top_k": 5},
        )
        reference = client.submit(warm)["id"]
        assert client.wait(reference, timeout=time_left(180))["state"] == "SUCCEEDED"

        job_id = client.submit(warm)["id"]
        wait_for(  # kill while the priors are still being proposed
            lambda: (
                (j := client.job(job_id))["trial_states"].get("COMPLETE", 0) >= 2
                and j["trial_states"].get("RUNNING", 0) == 1
            ),
            timeout=time_left(120),
            interval=0.02,
        )
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        server = _serve(database_url, tmp_path / "data", port, log, timeout=time_left(60))
        job = client.wait(job_id, timeout=time_left(180))
        assert job["state"] == "SUCCEEDED", job["reason"]
        assert job["resumes"] == 1

        def proposals(job: int) -> list[tuple[list[int], float | None]]:
            return [(t["architecture"]["choices"], t["objective"]) for t in client.all_trials(job)]

        assert proposals(job_id) == proposals(reference)
        priors = client.job(job_id)["spec"]["warm_start"]["priors"]
        assert [c for c, _ in proposals(job_id)[:5]] == [
            p["architecture"]["choices"] for p in priors
        ]
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

"""Over HTTP: a job whose time budget cut its supernet short carries the warning, or fails
with ``budget.on_time_limit: fail``; retraining wider than the searched size under
``objective.constraints`` is refused at submit (issue 17 items 5a, 5b)."""

from __future__ import annotations

from typing import Any

import httpx

from api.cli import describe_job
from api.client import NasClient
from tests.api.conftest import LiveServer, nb201_spec, standalone_spec
from tests.workers.test_meta_train_search import table_meta_spec
from tests.workers.test_time_limit import _spec


def test_a_supernet_cut_short_is_a_warning_on_the_job_or_its_failure(client: NasClient) -> None:
    warned = client.submit(_spec())["id"]
    failed = client.submit(_spec(on_time_limit="fail"))["id"]
    job = client.wait(warned, timeout=100)
    assert job["state"] == "SUCCEEDED", job["reason"]
    (warning,) = job["warnings"]
    assert "stopped the supernet's training" in warning and "of its 200 epochs" in warning
    assert "the derived architectures were ranked by them" in warning
    assert "supernet epochs" in job["reason"] and job["summary"]["final"]
    assert f"WARNING: {warning}" in describe_job(job, None)
    job = client.wait(failed, timeout=100)
    assert job["state"] == "FAILED"
    assert "budget.on_time_limit: fail" in job["reason"] and job["warnings"]
    assert not job["summary"]["final"]
    # (it said the derived architectures were ranked by the undertrained weights: none is)
    assert "so the job fails and derives nothing" in job["warnings"][0]


def test_final_channels_beyond_the_searched_width_under_constraints_is_422(
    server: LiveServer, user_key: str
) -> None:
    spec = standalone_spec(
        objective={"metric": "val_accuracy", "constraints": {"max_params": 9200}},
        final={"channels": 48},
    )
    headers = {"Authorization": f"Bearer {user_key}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        response = http.post("/api/v1/jobs", json=spec)
        assert response.status_code == 422, response.text
        errors = {".".join(map(str, e["loc"])): e["msg"] for e in response.json()["detail"]}
        assert "max_params" in errors["final.channels"], errors
        assert http.get("/api/v1/jobs").json()["count"] == 0
        spec["final"] = {"channels": spec["space"]["channels"]}  # the searched width: fine
        assert http.post("/api/v1/jobs", json=spec).status_code == 201


def test_a_minutes_budget_is_the_plan_in_the_service_too(server_factory: Any) -> None:
    """The service stored a minutes-only job with budget.trials at its trial limit: the time
    running out then 'cut the search short' (a warning, or with on_time_limit: fail a
    FAILED job) where nas search, on the same file, succeeded; and a meta-training job's
    stored spec, which then had budget.trials, was refused when submitted again. The limit
    is budget.max_trials now: a cap that stops the search, not a plan."""
    server = server_factory()
    limit = server.settings.max_trials_per_job
    with server.client(server.create_key("t")) as client:
        timed = client.submit(nb201_spec(budget={"minutes": 0.02, "on_time_limit": "fail"}))
        assert timed["spec"]["budget"]["max_trials"] == limit
        capped = client.submit(nb201_spec(budget={"minutes": 5, "max_trials": 30}))
        job = client.wait(timed["id"], timeout=60)
        assert job["state"] == "SUCCEEDED" and job["warnings"] == [], job["reason"]
        assert "time budget reached" in job["reason"] and job["n_trials"] < limit
        job = client.wait(capped["id"], timeout=60)
        assert job["state"] == "SUCCEEDED" and job["n_trials"] == 30, job["reason"]
        assert "trial limit reached (30" in job["reason"]
        meta = client.submit(table_meta_spec(server.settings.data_dir))
        assert meta["spec"]["budget"]["max_trials"] == limit
        client.cancel(meta["id"])
        again = client.submit(meta["spec"])  # the stored spec submits again
        client.cancel(again["id"])

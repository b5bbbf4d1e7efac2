"""Over HTTP: a job whose time budget cut its supernet short carries the warning, or fails
with ``budget.on_time_limit: fail``; retraining wider than the searched size under
``objective.constraints`` is refused at submit (issue 17 items 5a, 5b)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from api.cli import describe_job
from api.client import NasClient
from tests.api.conftest import LiveServer, nb201_spec, standalone_spec, wait_for
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


def test_a_long_meta_learning_trial_shows_its_time_and_stops_at_once_on_cancel(
    client: NasClient, time_left: Callable[..., float]
) -> None:
    """A meta-learning trial reports at the end of each of its 10 meta-epochs: before its
    first, the job's progress stood at its start value although its time budget ran (job
    progress was written only with trials), and a cancel waited for that meta-epoch's end
    (minutes for a large network). Now progress follows the time budget while the trial
    runs, and a cancel stops it within a meta-iteration."""
    spec = {
        "name": "long-maml",
        "dataset": {"name": "sinusoid"},
        "space": {"name": "mlp", "min_layers": 2, "max_layers": 2, "widths": [40]},
        "controller": {"name": "random"},
        # 100,000 meta-iterations to a meta-epoch: never one within this test
        "evaluator": {"name": "maml", "meta_iterations": 1_000_000},
        "objective": {"metric": "meta_val_mse", "direction": "minimize"},
        "budget": {"trials": 1, "minutes": 10},
    }
    job_id = client.submit(spec)["id"]
    trial = wait_for(
        lambda: next(iter(client.trials(job_id, state="RUNNING")["data"]), None),
        timeout=time_left(60),
    )
    first = client.job(job_id)["progress"]
    grown = wait_for(
        lambda: (p := client.job(job_id)["progress"]) > first + 0.001 and p,
        timeout=time_left(30),
    )
    assert grown <= 0.2 and client.trial(trial["id"])["intermediate_values"] == []
    client.cancel(job_id)
    asked = time.monotonic()
    job = client.wait(job_id, timeout=time_left(60), poll=0.1)
    assert job["state"] == "CANCELLED", job["reason"]
    assert time.monotonic() - asked < 20, "the cancel waited for the meta-epoch"
    (ended,) = client.all_trials(job_id)
    assert ended["state"] == "FAIL" and "cancelled while this trial ran" in ended["error"]


def test_on_time_limit_fail_stops_a_running_trial_and_leaves_no_trial_running(
    client: NasClient,
) -> None:
    """The job failed only once its running trial had ended (35 s of a 15 s budget); now
    the trial stops at its next epoch, and its row is not left RUNNING in a FAILED job."""
    from tests.workers.test_time_limit import LONG_TRIALS

    job = client.wait(client.submit(LONG_TRIALS)["id"], timeout=100)
    assert job["state"] == "FAILED", job
    assert "budget.on_time_limit: fail" in job["reason"]
    assert job["n_trials"] == 0 and job["trial_states"] == {}, job
    assert job["summary"]["stop_reason"].endswith("the trial running then stopped")

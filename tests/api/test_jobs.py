"""Submit, monitor and page a job over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from api.client import ApiError, NasClient
from tests.api.conftest import LiveServer, nb201_spec, standalone_spec


def test_submit_runs_to_success_and_records_every_trial(client: NasClient) -> None:
    job = client.submit(nb201_spec(budget={"trials": 300}))
    assert job["state"] == "QUEUED" and job["n_trials"] == 0
    done = client.wait(job["id"], timeout=60)
    assert done["state"] == "SUCCEEDED", done["reason"]
    assert done["reason"] == "trial budget reached (300)"
    assert done["n_trials"] == 300 and done["trial_states"] == {"COMPLETE": 300}
    assert done["progress"] == 1.0
    numbers = [t["number"] for t in client.all_trials(job["id"], page=64)]
    assert numbers == list(range(300))
    best = client.best(job["id"], 5)
    objectives = [t["objective"] for t in best]
    assert objectives == sorted(objectives, reverse=True)
    assert done["best"] == {"trial_number": best[0]["number"], "value": best[0]["objective"]}
    assert done["summary"]["best"]["architecture"] == best[0]["architecture"]


# One database: what is checked is how the client sends a file.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_yaml_file_in_flow_style_is_submitted_as_yaml(client: NasClient, tmp_path: Path) -> None:
    """A ``.yaml`` file in flow style starts with ``{`` and was sent as JSON: a 422 "not
    valid JSON" for a file the server reads fine as YAML."""
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(nb201_spec(name="flow"), default_flow_style=True))
    assert path.read_text().startswith("{")
    assert client.submit(path)["name"] == "flow"


def test_trial_listing_pages_filters_and_sorts(client: NasClient) -> None:
    job_id = client.submit(nb201_spec(budget={"trials": 120}))["id"]
    client.wait(job_id, timeout=60)
    page = client.trials(job_id, limit=50, offset=100)
    assert page["count"] == 120 and [t["number"] for t in page["data"]] == list(range(100, 120))
    page = client.trials(job_id, order="desc", limit=5, offset=10)
    assert [t["number"] for t in page["data"]] == [109, 108, 107, 106, 105]
    page = client.trials(job_id, state="COMPLETE", order="desc", limit=3, offset=1)
    assert [t["number"] for t in page["data"]] == [118, 117, 116]
    page = client.trials(job_id, limit=50, after=49)
    assert page["data"][0]["number"] == 50 and page["next_after"] == 99
    # A full last page ends the cursor (it gave one to an empty page), filtered or not.
    for state in (None, "COMPLETE"):
        page = client.trials(job_id, state=state, limit=20, after=99)
        assert [t["number"] for t in page["data"]] == list(range(100, 120))
        assert page["next_after"] is None, state
    assert client.trials(job_id, order="desc", limit=20, after=20)["next_after"] is None
    assert client.trials(job_id, order="desc", limit=20, after=21)["next_after"] == 1
    by_objective = client.trials(job_id, sort="objective", order="desc", limit=10)["data"]
    assert [t["objective"] for t in by_objective] == [
        t["objective"] for t in client.best(job_id, 10)
    ]
    # a constraint's figure the job does not constrain: no trial holds it (the sort was
    # ignored, the trials in number order: the CLI probe)
    with pytest.raises(ApiError) as refused:
        client.trials(job_id, sort="params", order="desc")
    said = str(refused.value)
    assert refused.value.status_code == 422
    assert "trials hold no 'params' (it sets no objective.constraints.max_params)" in said
    assert "params_M" in said and "latency_ms" not in said, said
    by_metric = client.trials(job_id, sort="params_M", order="asc", limit=120)["data"]
    values = [t["metrics"]["params_M"] for t in by_metric]
    assert values == sorted(values)
    assert client.trials(job_id, state="COMPLETE", limit=1)["count"] == 120
    assert client.trials(job_id, state="FAIL")["count"] == 0
    one = client.trial(by_objective[0]["id"])
    assert one["number"] == by_objective[0]["number"] and one["intermediate_values"] == []


def test_events_stream_every_trial_then_end(client: NasClient) -> None:
    job_id = client.submit(nb201_spec(budget={"trials": 80}))["id"]
    trials, jobs, ends = [], [], []
    for event, data in client.events(job_id):
        {"trial": trials, "job": jobs, "end": ends}[event].append(data)
    assert [t["number"] for t in trials] == list(range(80))
    assert all(t["state"] == "COMPLETE" and t["objective"] is not None for t in trials)
    assert jobs[-1]["state"] == "SUCCEEDED" and jobs[-1]["n_trials"] == 80
    assert ends == [{"state": "SUCCEEDED", "reason": "trial budget reached (80)"}]


def test_cancel_queued_and_finished_jobs(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: LiveServer = server_factory(run_jobs=False)  # nothing picks jobs up
    with server.client(server.create_key("a")) as client:
        job = client.submit(nb201_spec())
        cancelled = client.cancel(job["id"])
        assert cancelled["state"] == "CANCELLED" and "before it started" in cancelled["reason"]
        with pytest.raises(ApiError) as err:
            client.cancel(job["id"])
        assert err.value.status_code == 409 and "already CANCELLED" in str(err.value)


def test_a_job_waiting_to_start_or_to_be_taken_over_says_so(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A QUEUED job (every run slot busy, or no server that runs jobs) and a RUNNING one
    whose server stopped (its progress frozen until another server had a free slot) had no
    reason: the job page said RUNNING, 0 %, and nothing else."""
    from datetime import timedelta

    from api.db import make_session_factory, session_scope
    from api.models import utcnow
    from api.repositories import JobRepository
    from api.services import QUEUED_REASON

    server: LiveServer = server_factory(run_jobs=False)  # nothing picks jobs up
    write = make_session_factory(server.app.state.nas.engine, write=True)

    def stored(**values: object) -> None:
        with session_scope(write) as session:
            JobRepository(session).set_fields(job_id, **values)

    key = server.create_key("a")
    with server.client(key) as client:
        job = client.submit(nb201_spec())
        job_id = job["id"]
        assert job["reason"] == QUEUED_REASON
        assert client.job(job_id)["reason"] == QUEUED_REASON
        assert client.jobs()["data"][0]["reason"] == QUEUED_REASON
        overview = httpx.get(
            f"{server.url}/api/v1/dashboard/jobs", headers={"Authorization": f"Bearer {key}"}
        ).json()["data"][0]["job"]
        assert overview["reason"] == QUEUED_REASON
        lease = server.settings.job_lease_s
        stored(state="RUNNING", runner="gone:1:x", heartbeat_at=utcnow() + timedelta(seconds=60))
        assert client.job(job_id)["reason"] is None  # (its lease holds)
        renewed = utcnow() - timedelta(seconds=lease + 60)
        stored(heartbeat_at=renewed)
        reason = client.job(job_id)["reason"]
        assert reason == (
            f"its server (gone:1:x) has not renewed its lease since "
            f"{renewed:%Y-%m-%d %H:%M:%S} UTC (stopped or unreachable): a server with a free "
            "run slot takes the job over and resumes it from its last checkpoint"
        )
        stored(runner=None, heartbeat_at=None)  # released by its server as it stopped
        assert client.job(job_id)["reason"].startswith("its server stopped and released it: ")
        stored(runner="here:1:y", heartbeat_at=utcnow(), reason="waiting for Ray")
        assert client.job(job_id)["reason"] == "waiting for Ray"  # the runner's own


def test_jobs_list_is_paged_newest_first(client: NasClient) -> None:
    ids = [client.submit(nb201_spec(name=f"job{i}", budget={"trials": 5}))["id"] for i in range(3)]
    page = client.jobs(limit=2)
    assert page["count"] == 3 and [j["id"] for j in page["data"]] == ids[::-1][:2]
    # By name, as Optuna looks a study up (the probe of a new user's tasks: a 422 before)
    ids.append(client.submit(nb201_spec(name="job1", budget={"trials": 5}))["id"])
    named = client.jobs(name="job1")
    assert named["count"] == 2 and [j["id"] for j in named["data"]] == [ids[3], ids[1]]
    assert client.jobs(name="job").get("count") == 0  # the name exactly, not a prefix
    with pytest.raises(ApiError) as refused:
        client.jobs(name="no spaces")
    assert refused.value.status_code == 422 and refused.value.detail[0]["loc"] == [
        "query",
        "name",
    ]


def test_healthz_reports_the_database(server: LiveServer) -> None:
    with server.client() as anonymous:
        health = anonymous.health()
    assert health["status"] == "ok"
    assert health["database"] == server.app.state.nas.engine.dialect.name


def test_trials_sort_by_the_metrics_their_rows_show(
    client: NasClient, time_left: Callable[..., float]
) -> None:
    """A standalone trial's lr_restarts, and a retraining's test_accuracy, are columns of
    the listing (nas trials shows them) but sorting by them was a 422."""
    job = client.wait(
        client.submit(standalone_spec(trials=2, epochs=1, final={"epochs": 1}))["id"],
        timeout=time_left(120),
    )
    assert job["state"] == "SUCCEEDED", job["reason"]
    retraining = client.retrain(job["id"], 1)["trial_id"]
    assert client.wait_trial(retraining, timeout=time_left(120))["state"] == "COMPLETE"
    by_test = client.trials(job["id"], sort="test_accuracy", order="desc")["data"]
    assert by_test[0]["id"] == retraining and "test_accuracy" in by_test[0]["metrics"]
    by_restarts = client.trials(job["id"], sort="lr_restarts")["data"]
    assert len(by_restarts) == 3 and "lr_restarts" in by_restarts[0]["metrics"]
    with pytest.raises(ApiError) as refused:  # a name no trial of it holds is still refused
        client.trials(job["id"], sort="meta_val_accuracy")
    assert "lr_restarts, epochs_trained, test_accuracy, train_seconds" in str(refused.value)

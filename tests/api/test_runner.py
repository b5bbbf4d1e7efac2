"""The job runner: cancel, several jobs at once, failures, resume after a server restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.client import ApiError, NasClient
from api.db import session_scope
from api.models import JobModel
from api.repositories import JobRepository
from api.runner import JobRunner
from tests.api.conftest import LiveServer, make_settings, nb201_spec, standalone_spec, wait_for


def _numbers(client: NasClient, job_id: int) -> list[int]:
    return [t["number"] for t in client.all_trials(job_id)]


def test_cancel_stops_a_running_job_within_seconds_and_keeps_its_trials(
    client: NasClient,
) -> None:
    job_id = client.submit(standalone_spec(trials=200, epochs=4))["id"]
    wait_for(lambda: client.job(job_id)["trial_states"].get("COMPLETE", 0) >= 2, timeout=60)
    asked = time.monotonic()
    client.cancel(job_id)
    job = client.wait(job_id, timeout=30, poll=0.05)
    assert time.monotonic() - asked < 5.0
    assert job["state"] == "CANCELLED" and "cancelled by user" in job["reason"]
    trials = list(client.all_trials(job_id))
    assert [t["number"] for t in trials] == list(range(len(trials)))
    assert not [t for t in trials if t["state"] == "RUNNING"]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert len(complete) >= 2 and all(t["objective"] is not None for t in complete)
    # A trial that was training when the cancel came is FAIL with the cause, never RUNNING.
    assert all("cancelled" in t["error"] for t in trials if t["state"] == "FAIL")
    for t in trials:  # ... and costs the time it ran (it said 0 s)
        if t["state"] == "FAIL":
            ran = datetime.fromisoformat(t["finished_at"]) - datetime.fromisoformat(t["started_at"])
            assert t["cost_s"] == pytest.approx(ran.total_seconds(), abs=0.01) and t["cost_s"] > 0
    assert job["n_trials"] == len(trials)
    # the reason counts them as the listing does (it said "after 0 trials" beside 1 FAIL)
    stopped = sum(t["state"] == "FAIL" for t in trials)
    assert job["reason"] == (
        f"cancelled by user after {len(trials) - stopped} finished trials"
        + (f" ({stopped} running, now FAIL)" if stopped else "")
    )


def test_cancel_during_the_final_retraining_stops_it_at_the_next_epoch(
    client: NasClient, time_left: Callable[..., float], tmp_path: Path
) -> None:
    """A cancel during ``final:`` was ignored: the job trained on (up to 10,000 epochs of each
    of 100 architectures), could not be deleted meanwhile, and ended SUCCEEDED."""
    spec = standalone_spec(trials=1, epochs=1, final={"epochs": 10_000, "retrain_top_k": 1})
    job_id = client.submit(spec)["id"]

    def retraining() -> bool:
        job = client.job(job_id)
        return job["state"] == "RUNNING" and job["trial_states"].get("COMPLETE", 0) == 1

    wait_for(retraining, timeout=time_left(60))
    # The job says what it does (it said nothing, at 100 %, for as long as the retraining took)
    said = "the search ended after 1 trial; retraining its best architecture with final: "
    job = wait_for(
        lambda: (j := client.job(job_id))["reason"] is not None and j, timeout=time_left(30)
    )
    assert job["reason"] == said + "(10000 epochs each)", job
    # An export asked meanwhile says the weights are coming, not "retrain it first" (which
    # a running job refuses).
    with pytest.raises(ApiError) as refused:
        client.export(job_id, "torchscript", 1, tmp_path / "model.pt")
    assert refused.value.status_code == 409
    assert "The job is RUNNING: its final: section retrains its top 1" in str(refused.value)
    assert "nas retrain" not in str(refused.value)
    # ... and so does the JSON export's weights note (it said "run 'nas retrain'", a 409)
    doc = json.loads(client.export(job_id, "json", 1, tmp_path / "best.json").read_text())
    assert doc["weights"].startswith("none, freshly initialised; the job is RUNNING: its final:")
    assert "nas retrain" not in doc["weights"]
    time.sleep(0.5)  # some epochs into it
    asked = time.monotonic()
    client.cancel(job_id)
    job = client.wait(job_id, timeout=time_left(30), poll=0.05)
    assert time.monotonic() - asked < 10.0
    assert job["state"] == "CANCELLED", job["reason"]
    assert "during the final retraining" in job["reason"]
    assert not (job["summary"] or {}).get("final")
    assert [t["state"] for t in client.all_trials(job_id)] == ["COMPLETE"]
    # The search had ended: its result is kept (summary was null, and an ENAS job's derived
    # architecture, its answer, was lost with it)
    [trial] = client.all_trials(job_id)
    assert job["summary"]["best"]["architecture"] == trial["architecture"]
    assert job["summary"]["best"]["trial"] == 0 and job["summary"]["final"] == []


def test_a_cancel_that_comes_as_the_search_ends_is_said_in_the_reason(
    server: LiveServer, client: NasClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel answered 200 as the search ended, then the job SUCCEEDED with
    ``cancel_requested`` true and nothing said (the probe of lifecycle operations). The
    cancel made certain to come between the search's end and the job's record of it."""
    from api.auth import LOCAL_ADMIN
    from api.runner import CANCELLED, JobExecution
    from api.services import JobService

    finish = JobExecution._finish

    def cancelled_meanwhile(self: JobExecution, state: Any, reason: str, **kwargs: Any) -> None:
        with session_scope(server.app.state.nas.write) as session:
            job = JobService(session).cancel(LOCAL_ADMIN, self.job_id)
            assert job.state == "RUNNING"
        # ... and the runner's heartbeat read it before the record (a race that left the
        # reason without the note in a CI run: the cancel, read after the search, stopped
        # nothing)
        self.request_stop(CANCELLED)
        finish(self, state, reason, **kwargs)

    monkeypatch.setattr(JobExecution, "_finish", cancelled_meanwhile)
    job = client.wait(client.submit(nb201_spec(budget={"trials": 5}))["id"], timeout=60)
    assert job["state"] == "SUCCEEDED" and job["cancel_requested"], job
    assert job["reason"] == (
        "trial budget reached (5) (the cancel requested as the search ended came too late to "
        "stop it)"
    )


def test_running_trials_are_visible_with_intermediate_values(client: NasClient) -> None:
    job_id = client.submit(standalone_spec(trials=3, epochs=3))["id"]
    client.wait(job_id, timeout=60)
    trials = list(client.all_trials(job_id))
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3
    detail = client.trial(trials[0]["id"])
    assert [v["step"] for v in detail["intermediate_values"]] == [1, 2, 3]  # epochs trained
    assert detail["worker"].startswith("inline@")
    assert detail["metrics"]["params"] > 0 and detail["started_at"] < detail["finished_at"]


def test_several_jobs_run_at_once(server_factory: Any, time_left: Callable[..., float]) -> None:
    server: LiveServer = server_factory(max_running_jobs=2)
    with server.client(server.create_key("a")) as client:
        ids = [client.submit(standalone_spec(trials=4, epochs=2, seed=s))["id"] for s in range(3)]
        both = wait_for(
            lambda: [j["id"] for j in client.jobs(state="RUNNING")["data"]], timeout=time_left(30)
        )
        seen_two = wait_for(
            lambda: len(client.jobs(state="RUNNING")["data"]) == 2, timeout=time_left(30)
        )
        assert both and seen_two
        assert client.job(ids[2])["state"] == "QUEUED"  # the cap holds the third back
        for job_id in ids:
            assert client.wait(job_id, timeout=time_left(120))["state"] == "SUCCEEDED"
            assert _numbers(client, job_id) == list(range(4))


def _npz_job_queued(server_factory: Any) -> tuple[LiveServer, str, Path, int]:
    """A server that runs no job, a key, an ``npz`` file under its data folder and a QUEUED
    standalone job on it."""
    api_only: LiveServer = server_factory(run_jobs=False)
    data_dir = api_only.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / "data.npz"
    np.savez(data, x=np.zeros((40, 16), np.float32), y=np.arange(40) % 2)
    key = api_only.create_key("a")
    with api_only.client(key) as client:
        spec = standalone_spec(trials=2, epochs=1, dataset={"name": "npz", "path": str(data)})
        job_id = int(client.submit(spec)["id"])
    return api_only, key, data, job_id


def test_a_dataset_broken_after_submit_fails_the_job_and_leaves_no_trial_running(
    server_factory: Any, time_left: Callable[..., float]
) -> None:
    """A file that passed the submit checks and broke since fails the job naming the field,
    and leaves no trial RUNNING."""
    _, key, data, job_id = _npz_job_queued(server_factory)
    np.savez(data, x=np.zeros((40, 0), np.float32), y=np.arange(40) % 2)  # no features
    runner: LiveServer = server_factory()
    with runner.client(key) as client:
        job = client.wait(job_id, timeout=time_left(60))
        assert job["state"] == "FAILED"
        assert "dataset.path: x examples must have every dimension at least 1" in job["reason"]
        # (the file is refused as the data loads, before a trial starts; a trial that had
        # started is failed with the job, as a cancel's are: test_cancel_stops_...)
        assert "RUNNING" not in job["trial_states"], list(client.all_trials(job_id))


def test_a_file_swapped_for_a_link_outside_the_roots_after_submit_fails_the_job_unread(
    server_factory: Any, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """Files are confined at submit and again when the job starts: one replaced since by a
    symlink to a file outside the data roots fails the job at its field, and is not read."""
    api_only: LiveServer = server_factory(run_jobs=False)
    data_dir = api_only.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / "data.npz"
    arrays = {"x": np.zeros((40, 16), np.float32), "y": np.arange(40) % 2}
    np.savez(data, **arrays)
    key = api_only.create_key("a")
    with api_only.client(key) as client:
        job_id = client.submit(
            standalone_spec(trials=2, epochs=1, dataset={"name": "npz", "path": str(data)})
        )["id"]
    outside = tmp_path / "outside.npz"  # a valid file: only the confinement refuses it
    np.savez(outside, **arrays)
    data.unlink()
    data.symlink_to(outside)
    runner: LiveServer = server_factory()
    with runner.client(key) as client:
        job = client.wait(job_id, timeout=time_left(60))
        assert job["state"] == "FAILED"
        assert "dataset.path: no longer lies under this server's data roots" in job["reason"]
        assert job["n_trials"] == 0


def test_a_dataset_swapped_out_of_the_roots_during_the_search_is_not_retrained_on(
    client: NasClient, server: LiveServer, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """The ``final:`` retraining reads the dataset again (maybe hours after the start): a file
    replaced by a link out of the roots meanwhile fails the job at that field."""
    data_dir = server.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / "data.npz"
    arrays = {"x": np.zeros((40, 16), np.float32), "y": np.arange(40) % 2}
    np.savez(data, **arrays)
    spec = standalone_spec(
        trials=120, epochs=1, dataset={"name": "npz", "path": str(data)}, final={"epochs": 1}
    )
    job_id = client.submit(spec)["id"]
    wait_for(lambda: client.job(job_id)["n_trials"] >= 1, timeout=time_left(60))
    outside = tmp_path / "outside.npz"
    np.savez(outside, **arrays)
    data.unlink()
    data.symlink_to(outside)
    job = client.wait(job_id, timeout=time_left())
    assert job["state"] == "FAILED", job["reason"]
    assert "dataset.path: no longer lies under this server's data roots" in job["reason"]
    assert job["n_trials"] == 120  # the search ran; only the retraining was refused


def test_a_dataset_replaced_during_the_search_is_said_and_not_retrained_on(
    client: NasClient, server: LiveServer, time_left: Callable[..., float]
) -> None:
    """A file overwritten under the roots while the search ran (other classes): ``final:``
    retrained on the new file (its test accuracy 0.0, a 7-class head) and the job SUCCEEDED
    with no warning, only its exports refused afterwards (the review of ``data_files``)."""
    data_dir = server.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / "replaced.npz"
    x = np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32)
    np.savez(data, x=x, y=np.arange(60) % 3)
    spec = standalone_spec(
        trials=40, epochs=1, dataset={"name": "npz", "path": str(data)}, final={"epochs": 1}
    )
    job_id = client.submit(spec)["id"]
    wait_for(lambda: client.job(job_id)["n_trials"] >= 1, timeout=time_left(60))
    np.savez(data, x=x, y=np.arange(60) % 7)
    job = client.wait(job_id, timeout=time_left())
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["summary"]["final"] == []
    said = (
        "dataset.path: the file changed while the search ran (other contents than at its "
        "start): trials after the change may have read the new file, and final: retrained "
        "nothing; retraining and exports are refused until the search's file is back"
    )
    assert said in job["warnings"], job["warnings"]
    assert "the file changed since the search" in job["retrain_refused"]


def test_a_dataset_replaced_while_the_job_was_stopped_fails_its_resume(
    server_factory: Any, time_left: Callable[..., float]
) -> None:
    """A restarted server took the file's fingerprints anew: a dataset replaced while no
    server ran the job went unseen, its later trials trained on other data, and the new file
    became the one its summary vouched for (retraining and exports allowed)."""
    first: LiveServer = server_factory()
    data_dir = first.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data = data_dir / "kept.npz"
    x = np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32)
    np.savez(data, x=x, y=np.arange(60) % 3)
    key = first.create_key("a")
    spec = standalone_spec(trials=400, epochs=1, dataset={"name": "npz", "path": str(data)})
    with first.client(key) as client:
        job_id = client.submit(spec)["id"]
        wait_for(lambda: client.job(job_id)["n_trials"] >= 3, timeout=time_left(60))
    first.stop()  # released at a checkpoint, still RUNNING
    np.savez(data, x=x, y=np.arange(60) % 7)
    second: LiveServer = server_factory()
    with second.client(key) as client:
        job = client.wait(job_id, timeout=time_left(60))
        trials = list(client.all_trials(job_id))
    assert job["state"] == "FAILED", job["reason"]
    assert "dataset.path: the file changed while the job was stopped" in job["reason"]
    assert "its trials are kept" in job["reason"]
    assert trials and all(t["state"] != "RUNNING" for t in trials)  # (the checkpoint's)
    # Its trials are still not retrained or exported on the new file (the failed job had
    # no summary, so nothing was compared: the review of this check).
    with second.client(key) as client:
        assert "the file changed since the search" in client.job(job_id)["retrain_refused"]
        with pytest.raises(ApiError) as refused:
            client.retrain(job_id, 1)
        assert refused.value.status_code == 409
        with pytest.raises(ApiError) as refused:
            client.export(job_id, "pytorch", 1, second.settings.data_dir / "m.zip")
        assert refused.value.status_code == 409


def _enas_spec() -> dict[str, Any]:
    return {
        "name": "digits-enas",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "enas"},
        "evaluator": {
            "name": "shared-weights",
            "epochs": 6,
            "batch_size": 64,
            "rewards_per_epoch": 10,
        },
        "budget": {"minutes": 10},
        "seed": 0,
    }


def test_enas_job_resumes_after_a_server_restart(
    server_factory: Any, time_left: Callable[..., float]
) -> None:
    first: LiveServer = server_factory()
    key = first.create_key("a")
    with first.client(key) as client:
        job_id = client.submit(_enas_spec())["id"]
        wait_for(lambda: client.job(job_id)["n_trials"] >= 20, timeout=time_left(120))
        before = {t["number"]: t["id"] for t in client.all_trials(job_id)}
    first.stop()  # graceful: the job stops at a checkpoint and is released, still RUNNING
    second: LiveServer = server_factory()
    with second.client(key) as client:
        job = client.wait(job_id, timeout=time_left())
        assert job["state"] == "SUCCEEDED", job["reason"]
        assert job["resumes"] == 1
        trials = list(client.all_trials(job_id))
    assert [t["number"] for t in trials] == list(range(60))
    # Each supernet epoch has exactly its 10 rewards: none lost, none run twice.
    per_epoch = [sum(1 for t in trials if t["epoch"] == e) for e in range(6)]
    assert per_epoch == [10] * 6
    # Trials recorded before the restart were kept, not redone.
    kept = {t["number"]: t["id"] for t in trials if t["number"] in before}
    assert kept == before
    assert job["summary"]["ranked"], "the resumed search derives its architectures"


def test_a_server_without_the_checkpoints_file_says_the_artifacts_must_be_shared(
    server_factory: Any, database_url: str, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """A server on the same database with another NAS_DATA_DIR took the job over and
    failed it with "FileNotFoundError: [Errno 2] ... /its/own/path/supernet-....pt"."""
    first: LiveServer = server_factory()
    key = first.create_key("a")
    with first.client(key) as client:
        job_id = client.submit(_enas_spec())["id"]
        wait_for(lambda: client.job(job_id)["n_trials"] >= 20, timeout=time_left(120))
    first.stop()  # released at a checkpoint, with its supernet file in the first data dir
    second = LiveServer(make_settings(database_url, tmp_path / "elsewhere")).start()
    try:
        with second.client(key) as client:
            job = client.wait(job_id, timeout=time_left(60))
    finally:
        second.stop()
    assert job["state"] == "FAILED"
    assert "is not in this server's artifacts folder" in job["reason"], job["reason"]
    assert "NAS_ARTIFACTS_DIR" in job["reason"] and str(tmp_path) not in job["reason"]


def test_a_job_whose_lease_expired_is_taken_over(server_factory: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from api.db import session_scope
    from api.repositories import JobRepository

    held: LiveServer = server_factory(run_jobs=False)
    key = held.create_key("a")
    with held.client(key) as client:
        stale = client.submit(standalone_spec(trials=2, epochs=1))["id"]
        fresh = client.submit(standalone_spec(trials=2, epochs=1))["id"]
    now = datetime.now(UTC)
    with session_scope(held.app.state.nas.write) as session:
        jobs = JobRepository(session)
        # Both "run" on a machine we cannot see; one stopped renewing its lease 10 s ago.
        jobs.set_fields(
            stale, state="RUNNING", runner="elsewhere:1:x", heartbeat_at=now - timedelta(seconds=10)
        )
        jobs.set_fields(
            fresh, state="RUNNING", runner="elsewhere:1:y", heartbeat_at=now + timedelta(hours=1)
        )
    runner: LiveServer = server_factory(job_lease_s=2.0)
    with runner.client(key) as client:
        assert client.wait(stale, timeout=60)["state"] == "SUCCEEDED"
        job = client.job(fresh)
        assert job["state"] == "RUNNING" and job["n_trials"] == 0  # its lease still holds


def test_a_claim_clears_what_the_last_runners_search_waited_for(server_factory: Any) -> None:
    """A RUNNING job's reason is what its search waits for (Ray's room, its final
    retraining): a server that took it over kept the dead one's note while its trials ran
    again (the review of the Ray waiting note)."""
    from datetime import UTC, datetime, timedelta

    from api.db import session_scope
    from api.repositories import JobRepository

    held: LiveServer = server_factory(run_jobs=False)
    with held.client(held.create_key("a")) as client:
        job_id = client.submit(standalone_spec(trials=2, epochs=1))["id"]
    now = datetime.now(UTC)
    with session_scope(held.app.state.nas.write) as session:
        jobs = JobRepository(session)
        jobs.set_fields(
            job_id,
            state="RUNNING",
            runner="elsewhere:1:x",
            heartbeat_at=now - timedelta(seconds=10),
            reason="no trial of this search has run for 10 s: ...",
        )
    with session_scope(held.app.state.nas.write) as session:
        jobs = JobRepository(session)
        job = jobs.get(job_id)
        assert job is not None
        assert jobs.claim(job, "here:1:y", stale_before=now, force=False)
    with session_scope(held.app.state.nas.read) as session:
        job = JobRepository(session).get(job_id)
        assert job is not None and (job.runner, job.reason) == ("here:1:y", None)


def test_a_job_claimed_while_the_runner_stops_is_stopped_and_released(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``JobRunner.stop`` took its list of running jobs before it joined the supervisor: a job
    that the tick under way claimed meanwhile was never stopped, and ran on (or, in a server
    that then exited, stayed RUNNING under its lease until that expired)."""
    api = server_factory(run_jobs=False)  # submits; runs nothing
    with api.client(api.create_key("a")) as client:
        job_id = client.submit(standalone_spec(trials=200, epochs=4))["id"]
    claiming, go_on = threading.Event(), threading.Event()
    claim = JobRepository.claim

    def held_claim(self: JobRepository, *args: Any, **kwargs: Any) -> bool:
        claiming.set()
        go_on.wait(30)  # until stop() is under way
        return claim(self, *args, **kwargs)

    monkeypatch.setattr(JobRepository, "claim", held_claim)
    runner = JobRunner(api.settings, api.app.state.nas.engine)
    runner.start()
    assert claiming.wait(30)
    stopper = threading.Thread(target=runner.stop, kwargs={"timeout": 30})
    stopper.start()
    time.sleep(0.3)  # stop() has begun while the claim is in flight
    go_on.set()
    stopper.join(60)
    assert not stopper.is_alive()

    def row() -> JobModel:
        with session_scope(api.app.state.nas.read) as session:
            job = JobRepository(session).get(job_id)
            assert job is not None
            return job

    # Released as at any shutdown: RUNNING with no runner, which the next server takes at once.
    job = row()
    assert (job.state, job.runner, job.heartbeat_at) == ("RUNNING", None, None)
    trials = job.n_trials
    time.sleep(0.5)
    assert row().n_trials == trials  # nothing runs it any more


def test_a_released_job_shows_no_running_trial_and_a_cancel_ends_it_at_once(
    server_factory: Any, time_left: Callable[..., float]
) -> None:
    """The operator's probe: a job its server released at a shutdown kept a RUNNING trial on
    show while nothing ran it; cancelled, it stayed RUNNING (and could not be deleted) until
    a server had a free run slot, then ran a trial again before its cancel was seen."""
    first: LiveServer = server_factory(max_running_jobs=2)
    key = first.create_key("a")

    def under_way(client: NasClient, job_id: int) -> bool:
        states = client.job(job_id)["trial_states"]
        return states.get("COMPLETE", 0) >= 1 and states.get("RUNNING", 0) >= 1

    with first.client(key) as client:
        busy = client.submit(standalone_spec(trials=200, epochs=8))["id"]
        released = client.submit(standalone_spec(trials=200, epochs=8))["id"]
        wait_for(lambda: under_way(client, busy) and under_way(client, released), time_left(120))
    first.stop()  # both released at a checkpoint, still RUNNING
    second: LiveServer = server_factory(max_running_jobs=1)  # takes the older job only
    with second.client(key) as client:
        wait_for(lambda: client.job(busy)["resumes"] == 1, time_left(60))
        job = client.job(released)
        assert job["state"] == "RUNNING" and "released" in job["reason"], job
        assert set(job["trial_states"]) == {"COMPLETE"}, job["trial_states"]
        trials = list(client.all_trials(released))
        assert {t["state"] for t in trials} == {"COMPLETE"}
        assert len(trials) == job["n_trials"]

        client.cancel(released)
        job = client.wait(released, timeout=time_left(30))
        assert job["state"] == "CANCELLED", job
        assert job["n_trials"] == len(trials)  # no trial ran again to see the cancel
        assert client.job(busy)["state"] == "RUNNING"  # its slot was not needed
        client.delete(released)
        client.cancel(busy)
        client.wait(busy, timeout=time_left(60))


def test_a_cancelled_released_job_whose_resume_fails_ends_cancelled(
    server_factory: Any, time_left: Callable[..., float]
) -> None:
    """A released job taken only to be cancelled resumes first: when that failed (its file
    gone meanwhile) it ended FAILED, the user's cancel lost (the review)."""
    api_only, key, data, job_id = _npz_job_queued(server_factory)
    with session_scope(api_only.app.state.nas.write) as session:  # as a shutdown leaves it
        JobRepository(session).set_fields(
            job_id, state="RUNNING", runner=None, heartbeat_at=None, cancel_requested=True
        )
    data.unlink()
    runner: LiveServer = server_factory()
    with runner.client(key) as client:
        job = client.wait(job_id, timeout=time_left(60))
    assert job["state"] == "CANCELLED", job
    assert job["reason"].startswith("cancelled by user (as it stopped: "), job["reason"]
    assert "dataset.path" in job["reason"]

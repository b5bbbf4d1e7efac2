"""The service on a real multi-node Ray cluster (``ray.cluster_utils.Cluster`` on this
machine): per-trial resources decide placement, and a worker node killed mid-trial costs a
retry, not the job."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from api.client import ApiError
from api.services import check_runnable_here
from nas.errors import SpecError
from tests.api.conftest import (
    LiveServer,
    cluster_processes,
    kill_cluster_processes,
    make_settings,
    postgres_database,
    standalone_spec,
    wait_for,
)
from tests.conftest import FAST_NODE_DEATH
from workers.search import parse_spec


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head that runs no trials, a CPU node, and a node with one (declared) GPU."""
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "_system_config": FAST_NODE_DEATH,
        },
    )
    cluster.add_node(num_cpus=1)
    cluster.gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)  # type: ignore[attr-defined]
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _trial_task_running(cluster: Cluster) -> bool:
    """A Ray worker process of ``cluster`` is executing a trial (Ray titles it
    ``ray::_run_trials``)."""
    return bool(cluster_processes(cluster, b"ray::_run_trials"))


def _gpu_node_ids() -> set[str]:
    return {n["NodeID"][:8] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")}


@pytest.mark.slow
def test_a_cluster_joined_through_ray_address_may_grow_as_one_named_by_the_setting(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's own RAY_ADDRESS joins a cluster as --ray-address does: a trial larger than
    today's nodes was refused with it (and accepted with --ray-address)."""
    resolved = parse_spec(standalone_spec(resources={"cpus_per_trial": 2}))
    with pytest.raises(SpecError, match="the largest has 1"):
        check_runnable_here(resolved, "ray")  # the Ray this process started: all it has
    check_runnable_here(resolved, "ray", cluster.address)
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    check_runnable_here(resolved, "ray")


@pytest.mark.slow
@pytest.mark.timeout(600)  # a loaded machine; each wait is sized by time_left
def test_gpu_trials_run_only_on_gpu_nodes_and_survive_losing_the_node(
    cluster: Cluster,
    tmp_path: Path,
    time_left: Callable[..., float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with postgres_database() as url:
        server = LiveServer(make_settings(url, tmp_path / "data", backend="ray")).start()
        try:
            with server.client(server.create_key("a")) as client:
                # More GPUs than the cluster has: refused at submit, nothing created.
                with pytest.raises(ApiError) as err:
                    client.submit(standalone_spec(resources={"gpus_per_trial": 2}))
                assert err.value.status_code == 422
                assert "resources.gpus_per_trial" in str(err.value)
                # More CPUs than any one node has (1 each, 2 in all): it was accepted, then
                # waited in Ray's queue for good, its job RUNNING at 0 %
                with pytest.raises(ApiError) as err:
                    client.submit(standalone_spec(resources={"cpus_per_trial": 2}))
                assert err.value.status_code == 422
                assert "resources.cpus_per_trial" in str(err.value)
                assert "the largest has 1" in str(err.value)
                assert client.jobs()["count"] == 0  # nothing created

                gpu_nodes = _gpu_node_ids()
                spec = standalone_spec(
                    trials=3, epochs=25, resources={"gpus_per_trial": 0.5, "max_retries": 2}
                )
                job_id = client.submit(spec)["id"]
                # Kill the GPU node while trial 1 trains on it; a new GPU node joins.
                wait_for(
                    lambda: (
                        (j := client.job(job_id))["trial_states"].get("COMPLETE", 0) >= 1
                        and j["trial_states"].get("RUNNING", 0) == 1
                    ),
                    timeout=time_left(240),
                    interval=0.1,  # (a window: while trial 1 trains, seconds)
                )
                cluster.remove_node(cluster.gpu_node, allow_graceful=False)
                cluster.gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
                gpu_nodes |= _gpu_node_ids()
                job = client.wait(job_id, timeout=time_left())
                assert job["state"] == "SUCCEEDED", job["reason"]
                trials = list(client.all_trials(job_id))
                assert [t["number"] for t in trials] == list(range(3))  # no duplicate rows
                assert all(t["state"] == "COMPLETE" for t in trials), trials
                nodes = {t["worker"].split(":")[2] for t in trials}
                assert nodes <= gpu_nodes, (nodes, gpu_nodes)  # never on the CPU-only node
                assert len(nodes) == 2  # the retried trial finished on the new node
                # the retry is said (it went unlogged), naming the worker that runs it
                (again,) = [
                    r.getMessage() for r in caplog.records if "started again" in r.getMessage()
                ]
                assert again.startswith(f"job {job_id}: trial ")
                (retried,) = [t for t in trials if f"trial {t['number']} started" in again]
                assert f"on {retried['worker']}: its worker was lost" in again
        finally:
            server.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)  # a loaded machine; each wait is sized by time_left
def test_a_trial_waiting_for_a_worker_shows_waiting_and_a_running_ones_epochs_show_live(
    cluster: Cluster,
    tmp_path: Path,
    time_left: Callable[..., float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two CPUs, three trials at once: the third waits for a CPU and shows WAITING, with no
    worker nor start (it showed RUNNING on a "ray" lane from its batch's start); a running
    trial's epochs show while it trains (they came once its task had ended). A second job,
    none of whose trials can run, says so in its reason (it sat RUNNING with no word) until
    one starts. A cancel then says which trials it ended running and which waiting."""
    from workers.ray_backend import RayTaskExecutor

    monkeypatch.setattr(RayTaskExecutor, "WAITING_NOTE_S", 0.5)
    server = LiveServer(
        make_settings(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "data", backend="ray")
    ).start()
    try:
        with server.client(server.create_key("a")) as client:
            spec = standalone_spec(trials=3, epochs=200, resources={"workers": 3})
            job_id = client.submit(spec)["id"]
            wait_for(
                lambda: client.job(job_id)["trial_states"] == {"RUNNING": 2, "WAITING": 1},
                timeout=time_left(240),
            )
            trials = client.trials(job_id)["data"]
            (waiting,) = [t for t in trials if t["state"] == "WAITING"]
            assert waiting["worker"] is None and waiting["started_at"] is None
            running = [t for t in trials if t["state"] == "RUNNING"]
            assert all(t["worker"].startswith("ray:") and t["started_at"] for t in running)
            live = wait_for(
                lambda: next(
                    (
                        d
                        for t in running
                        if (d := client.trial(t["id"]))["state"] == "RUNNING"
                        and d["intermediate_values"]
                    ),
                    None,
                ),
                timeout=time_left(240),
            )
            assert live["intermediate_values"][0]["step"] == 1
            other = client.submit(standalone_spec(trials=1, epochs=200))["id"]
            # (a QUEUED job has a reason of its own: a free run slot)
            wait_for(
                lambda: (client.job(other).get("reason") or "").startswith("no trial of this"),
                timeout=time_left(60),
            )
            job = client.job(other)
            assert job["state"] == "RUNNING" and job["trial_states"] == {"WAITING": 1}, job
            assert job["reason"] == (
                "no trial of this search has run for 0.5 s: each asks for 1 CPU on one node "
                "and waits until the Ray cluster has them free (another job may hold them)"
            )
            client.cancel(job_id)
            job = client.wait(job_id, timeout=time_left())
            assert job["state"] == "CANCELLED", job["reason"]
            wait_for(
                lambda: client.job(other)["trial_states"] == {"RUNNING": 1}, timeout=time_left(120)
            )
            wait_for(lambda: client.job(other)["reason"] is None, timeout=time_left(30))
            client.cancel(other)
            assert client.wait(other, timeout=time_left())["state"] == "CANCELLED"
            wait_for(lambda: not _trial_task_running(cluster), timeout=time_left(60))
            assert job["reason"].endswith("(2 running, 1 waiting, now FAIL)"), job["reason"]
            trials = list(client.all_trials(job_id))
            assert [t["state"] for t in trials] == ["FAIL"] * 3
            (waited,) = [t for t in trials if t["number"] == waiting["number"]]
            assert waited["error"] == "the job was cancelled before this trial started"
            assert waited["started_at"] is None and waited["cost_s"] == 0
            ran = [t for t in trials if t["number"] != waiting["number"]]
            assert all(t["error"] == "the job was cancelled while this trial ran" for t in ran)
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)  # a loaded machine; each wait is sized by time_left
def test_a_trial_shows_its_result_when_its_task_ends_not_when_its_batch_does(
    cluster: Cluster, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """A batch's trials stayed RUNNING until its last one ended: a trial done while another
    trained (its worker already on the batch's next trial) still showed RUNNING, two of them
    on one worker. Three trials on two CPUs: the first to end is COMPLETE while the third
    trains; each trial is recorded once."""
    server = LiveServer(
        make_settings(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "data", backend="ray")
    ).start()
    try:
        with server.client(server.create_key("a")) as client:
            spec = standalone_spec(trials=3, epochs=12, resources={"workers": 3})
            job_id = client.submit(spec)["id"]

            def ended_beside_running() -> dict[str, Any] | None:
                job = client.job(job_id)
                states = job["trial_states"]
                ended = states.get("COMPLETE") and states.get("RUNNING")
                over = job["state"] not in ("QUEUED", "RUNNING")  # a loaded machine: QUEUED a while
                return job if ended or over else None

            job = wait_for(ended_beside_running, timeout=time_left(240), interval=0.02)
            trials = client.trials(job_id)["data"]
            assert job["state"] == "RUNNING", ("no trial showed ended before its batch", trials)
            done = [t for t in trials if t["state"] == "COMPLETE"]
            assert all(t["finished_at"] and "val_accuracy" in t["metrics"] for t in done)
            on = [t["worker"] for t in trials if t["state"] == "RUNNING"]
            assert len(set(on)) == len(on), trials  # one running trial per worker
            job = client.wait(job_id, timeout=time_left())
            assert job["state"] == "SUCCEEDED", job["reason"]
            assert job["trial_states"] == {"COMPLETE": 3}
            again = list(client.all_trials(job_id))
            assert [t["number"] for t in again] == [0, 1, 2]
            assert {t["id"]: t["metrics"] for t in again if t["id"] in {d["id"] for d in done}} == {
                d["id"]: d["metrics"] for d in done
            }
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)  # a loaded machine; each wait is sized by time_left
def test_a_trial_whose_retries_are_spent_fails_with_the_cause(
    cluster: Cluster, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    server = LiveServer(
        make_settings(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "data", backend="ray")
    ).start()
    try:
        with server.client(server.create_key("a")) as client:
            spec = standalone_spec(
                trials=2, epochs=25, resources={"gpus_per_trial": 1, "max_retries": 0}
            )
            job_id = client.submit(spec)["id"]
            wait_for(
                lambda: (
                    client.job(job_id)["trial_states"].get("RUNNING", 0) == 1
                    and _trial_task_running(cluster)
                ),
                timeout=time_left(240),
                interval=0.05,
            )
            cluster.remove_node(cluster.gpu_node, allow_graceful=False)
            cluster.gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
            job = client.wait(job_id, timeout=time_left())
            assert job["state"] == "SUCCEEDED", job["reason"]
            trials = list(client.all_trials(job_id))
            assert [t["number"] for t in trials] == list(range(2))
            failed = [t for t in trials if t["state"] == "FAIL"]
            assert len(failed) == 1 and "worker lost after 0 retries" in failed[0]["error"]
            assert sum(t["state"] == "COMPLETE" for t in trials) == 1  # the job went on
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)  # a loaded machine; each wait is sized by time_left
def test_enas_runs_as_one_actor_and_restarts_from_its_last_epoch(
    cluster: Cluster, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    server = LiveServer(
        make_settings(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "data", backend="ray")
    ).start()
    try:
        with server.client(server.create_key("a")) as client:
            spec = {
                "name": "digits-enas",
                "dataset": {"name": "digits"},
                "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
                "controller": {"name": "enas"},
                "evaluator": {
                    "name": "shared-weights",
                    "epochs": 4,
                    "batch_size": 64,
                    "rewards_per_epoch": 10,
                },
                # one loss is the kill below; the retry to spare is for a loaded machine,
                # where a CI run once lost the restarted actor too (with no trace of why)
                "resources": {"gpus_per_trial": 1, "max_retries": 2},
                "budget": {"minutes": 10},
                "seed": 0,
            }
            job_id = client.submit(spec)["id"]
            wait_for(lambda: client.job(job_id)["n_trials"] >= 10, timeout=time_left(240))
            assert kill_cluster_processes(cluster, b"ray::SearchActor") >= 1
            job = client.wait(job_id, timeout=time_left())
            assert job["state"] == "SUCCEEDED", job["reason"]
            trials = list(client.all_trials(job_id))
            curves = client.curves(job_id)
        assert [p["epoch"] for p in curves["epochs"]["supernet"]] == [0, 1, 2, 3]
        assert all(p["rewards"] == 10 for p in curves["epochs"]["supernet"])
        assert [t["number"] for t in trials] == list(range(40))
        assert [sum(t["epoch"] == e for t in trials) for e in range(4)] == [10] * 4
        nodes = {t["worker"].split(":")[2] for t in trials}
        assert nodes <= _gpu_node_ids(), nodes  # the supernet lived on the GPU node
        assert job["summary"]["ranked"]
    finally:
        server.stop()

"""A shared-weight job whose supernet 2 Ray workers train (``resources.workers: 2``) through
the service on a 2-node ``ray.cluster_utils.Cluster``: it succeeds with each trial recorded
once even when a worker's node is lost mid-epoch (the group restarts from the last epoch),
and more workers than the cluster holds is a 422."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from api.client import ApiError
from tests.api.conftest import LiveServer, cluster_processes, make_settings, wait_for
from tests.conftest import FAST_NODE_DEATH

EPOCHS, REWARDS = 4, 6


def _spec(epochs: int = EPOCHS, **resources: Any) -> dict[str, Any]:
    return {
        "name": "digits-enas-group",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "enas", "num_aggregate": 3},
        "evaluator": {
            "name": "shared-weights",
            "epochs": epochs,
            "batch_size": 64,
            "rewards_per_epoch": REWARDS,
            "derive_samples": 4,
        },
        "resources": {"workers": 2, **resources},
        "budget": {"minutes": 10},
        "seed": 0,
    }


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head that runs nothing and two one-CPU nodes: a group of 2 spans both."""
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            "_system_config": FAST_NODE_DEATH,
        },
    )
    cluster.worker_nodes_list = [  # type: ignore[attr-defined]
        cluster.add_node(num_cpus=1),
        cluster.add_node(num_cpus=1),
    ]
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "data", backend="ray")
    server = LiveServer(settings).start()
    yield server
    server.stop()


def _node(trial: dict[str, Any]) -> str:
    return str(trial["worker"].split(":")[2])


def _check_trials(
    trials: list[dict[str, Any]], curves: dict[str, Any], epochs: int = EPOCHS
) -> None:
    assert [t["number"] for t in trials] == list(range(epochs * REWARDS))  # each once
    assert [sum(t["epoch"] == e for t in trials) for e in range(epochs)] == [REWARDS] * epochs
    assert all(t["state"] == "COMPLETE" for t in trials)
    points = curves["epochs"]["supernet"]
    assert [p["epoch"] for p in points] == list(range(epochs))
    assert all(p["rewards"] == REWARDS for p in points)


def test_more_workers_than_the_cluster_holds_are_refused_at_submit(
    cluster: Cluster, server: LiveServer
) -> None:
    with server.client(server.create_key("a")) as client:
        with pytest.raises(ApiError) as err:  # two one-CPU nodes hold 2 workers, not 3
            client.submit(_spec(workers=3))
        assert err.value.status_code == 422
        assert "resources.workers" in str(err.value) and "hold 2 workers" in str(err.value)
        assert client.jobs()["count"] == 0  # nothing created
        with pytest.raises(ApiError) as err:  # each worker on one node: 2 CPUs fit none
            client.submit(_spec(cpus_per_trial=2))
        assert err.value.status_code == 422 and "resources.cpus_per_trial" in str(err.value)
        assert client.jobs()["count"] == 0


@pytest.mark.slow
@pytest.mark.timeout(300)  # a loaded machine; each wait is sized by time_left
def test_losing_a_workers_node_mid_epoch_restarts_the_group_from_the_last_epoch(
    cluster: Cluster, server: LiveServer, time_left: Callable[..., float]
) -> None:
    with server.client(server.create_key("a")) as client:
        epochs = 6  # epochs 1-5 leave time to lose the node before the job ends
        job_id = client.submit(_spec(epochs, max_retries=1))["id"]
        # Epoch 0 is checkpointed; epoch 1 trains: kill one worker's node, a new one joins.
        wait_for(
            lambda: client.job(job_id)["n_trials"] >= REWARDS,
            timeout=time_left(120),
            interval=0.02,
        )
        before = {_node(t) for t in client.all_trials(job_id)}
        assert len(before) == 2  # epoch 0's rewards were scored by both workers, one per node
        lost = cluster.worker_nodes_list.pop(0)  # type: ignore[attr-defined]
        cluster.remove_node(lost, allow_graceful=False)
        cluster.worker_nodes_list.append(cluster.add_node(num_cpus=1))  # type: ignore[attr-defined]
        job = client.wait(job_id, timeout=time_left())
        assert job["state"] == "SUCCEEDED", job["reason"]
        trials = list(client.all_trials(job_id))
        _check_trials(trials, client.curves(job_id), epochs)  # each trial once
        assert job["summary"]["ranked"]  # derived from the group's shared weights
        # The last epoch's rewards came from the restarted group, on the new node too.
        last = {_node(t) for t in trials if t["epoch"] == epochs - 1}
        assert last - before, (before, last)
        # The restart is said (it used up max_retries without a word but Ray's log line)
        assert (
            "the group of 2 workers was lost 1 time and started again from the last "
            "checkpoint each time (resources.max_retries: 1)"
        ) in job["warnings"], job["warnings"]


def _group_processes(cluster: Cluster) -> int:
    """Ray worker processes of a supernet group in ``cluster`` (Ray titles them
    ``ray::<class>...``)."""
    return len(cluster_processes(cluster, b"ray::SearchActor", b"ray::FollowerActor"))


@pytest.mark.slow
@pytest.mark.timeout(300)  # a loaded machine; each wait is sized by time_left
def test_a_group_waiting_for_room_says_so_and_cancel_ends_every_worker(
    cluster: Cluster,
    server: LiveServer,
    monkeypatch: pytest.MonkeyPatch,
    time_left: Callable[..., float],
) -> None:
    """A second group while the first holds both nodes' CPUs sat RUNNING at 0 trials with
    no word (the Ray probe): its reason says what it waits for, until it starts. A cancel
    ends every worker of a group and its placement group."""
    from workers.ray_backend import ActorRun

    monkeypatch.setattr(ActorRun, "WAITING_NOTE_S", 0.5)
    with server.client(server.create_key("a")) as client:
        first = client.submit(_spec(epochs=1000))["id"]  # runs until cancelled
        wait_for(
            lambda: client.job(first)["n_trials"] >= REWARDS and _group_processes(cluster) == 2,
            timeout=time_left(120),
            interval=0.05,
        )
        second = client.submit(_spec(epochs=1000))["id"]
        # (not a QUEUED job's "waiting for a free run slot": Ray's room, once it started)
        wait_for(
            lambda: (client.job(second).get("reason") or "").startswith("waiting for the Ray"),
            timeout=time_left(60),
        )
        job = client.job(second)
        assert job["state"] == "RUNNING" and job["n_trials"] == 0
        assert job["reason"] == (
            "waiting for the Ray cluster to place the 2 workers together, 1 CPU each: it has "
            "not the room free (another job may hold it); the search starts once it has"
        )
        client.cancel(first)
        assert client.wait(first, timeout=time_left(60))["state"] == "CANCELLED"
        wait_for(lambda: client.job(second)["n_trials"] > 0, timeout=time_left(120))
        assert client.job(second)["reason"] is None  # (unsaid once it started)
        client.cancel(second)
        job = client.wait(second, timeout=time_left(60))
        assert job["state"] == "CANCELLED", job
        # Both workers end and their placement group is gone: the nodes' CPUs are free.
        wait_for(
            lambda: _group_processes(cluster) == 0 and ray.available_resources().get("CPU") == 2,
            timeout=time_left(60),
        )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_search_actor_that_cannot_be_built_fails_the_job_at_once_with_its_error(
    cluster: Cluster, tmp_path: Path, time_left: Callable[..., float]
) -> None:
    """An error building the search in its actor (data broken since the submit) recurs on
    every restart: the job was retried max_retries times and failed with Ray's coloured
    "the search actor was lost 3 times: The actor died because of an error raised in its
    creation task, ray::SearchActor.__init__() ...". It fails at once, with the error."""
    import numpy as np

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    data = tmp_path / "data" / "signals.npz"
    data.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.normal(size=(64, 1, 16)).astype(np.float32), y=np.arange(64) % 2)
    api_only = LiveServer(make_settings(url, tmp_path / "data", run_jobs=False)).start()
    try:
        key = api_only.create_key("a")
        with api_only.client(key) as client:
            spec = {**_spec(epochs=1, workers=1), "dataset": {"name": "npz", "path": str(data)}}
            job_id = client.submit(spec)["id"]
    finally:
        api_only.stop()
    np.savez(data, x=np.zeros((64, 1, 0), np.float32), y=np.arange(64) % 2)  # no features
    runner = LiveServer(make_settings(url, tmp_path / "data", backend="ray")).start()
    try:
        with runner.client(key) as client:
            job = client.wait(job_id, timeout=time_left(120))
    finally:
        runner.stop()
    assert job["state"] == "FAILED"
    assert "x examples must have every dimension at least 1" in job["reason"], job["reason"]
    assert "lost" not in job["reason"] and "\x1b" not in job["reason"], job["reason"]

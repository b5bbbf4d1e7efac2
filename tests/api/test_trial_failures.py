"""A job whose every trial failed is FAILED with the first error, inline and on Ray; the
joint (conditional hyperparameter) example runs on Ray as with ``nas search``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.api.conftest import LiveServer, make_settings, postgres_database, standalone_spec
from tests.conftest import REPO, local_ray


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Ray instance for the module; the servers below join it."""
    yield from local_ray(tmp_path_factory, num_cpus=2)


def _diverging_spec(data_dir: Path, trials: int = 3) -> dict[str, Any]:
    """Features near float32's largest value: every trial's loss is NaN in its first batch
    (``diverged``), whatever the architecture."""
    rng = np.random.default_rng(0)
    sign = rng.choice([-1.0, 1.0], size=(200, 16)).astype(np.float32)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "huge.npz"
    np.savez(path, x=np.float32(3e38) * sign, y=rng.integers(0, 3, 200))
    return standalone_spec(
        trials=trials, epochs=1, dataset={"name": "npz", "path": str(path)}, name="diverges"
    )


def _assert_failed_with_the_first_error(server: LiveServer) -> None:
    with server.client(server.create_key("a")) as client:
        job_id = client.submit(_diverging_spec(server.settings.data_dir))["id"]
        job = client.wait(job_id, timeout=120)
        trials = list(client.all_trials(job_id))
    assert [t["state"] for t in trials] == ["FAIL"] * 3
    assert job["state"] == "FAILED", job
    reason = job["reason"]
    first = "all 3 trials failed; first error: diverged: loss became nan in epoch 1 of 1"
    assert reason.startswith(first), reason  # epochs count from 1, as elsewhere
    assert len(reason) <= 400
    assert job["trial_states"] == {"FAIL": 3}
    assert job["best"] is None


@pytest.mark.slow
def test_a_job_whose_every_trial_fails_is_failed_inline(database_url: str, tmp_path: Path) -> None:
    server = LiveServer(make_settings(database_url, tmp_path / "data")).start()
    try:
        _assert_failed_with_the_first_error(server)
    finally:
        server.stop()


@pytest.mark.slow
def test_a_job_whose_every_trial_fails_is_failed_on_ray(ray_instance: None, tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path / "data", backend="ray")
    server = LiveServer(settings).start()
    try:
        _assert_failed_with_the_first_error(server)
    finally:
        server.stop()


@pytest.mark.slow
def test_the_joint_example_with_conditional_hyperparameters_runs_on_ray(
    ray_instance: None, tmp_path: Path
) -> None:
    """examples/mnist1d-joint.yaml as submitted: ``momentum`` depends on ``optimizer``,
    declared before it; on PostgreSQL, whose stored spec is read back by the runner."""
    doc = yaml.safe_load((REPO / "examples/mnist1d-joint.yaml").read_text())
    doc["dataset"]["num_samples"] = 600  # the example's search, on a smaller dataset
    doc["budget"] = {"trials": 4}
    with postgres_database() as url:
        server = LiveServer(make_settings(url, tmp_path / "data", backend="ray")).start()
        try:
            with server.client(server.create_key("a")) as client:
                job_id = client.submit(doc)["id"]
                job = client.wait(job_id, timeout=180)
                trials = list(client.all_trials(job_id))
        finally:
            server.stop()
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 4, [t["error"] for t in trials]
    assert all(t["worker"].startswith("ray:") for t in trials)
    for t in trials:
        hp = t["hparams"]
        assert ("momentum" in hp) == (hp["optimizer"] == "sgd")
        assert ("label_smoothing" in hp) == (hp["loss"] == "label_smoothing")
    assert list(job["spec"]["hparams"]) == list(doc["hparams"])  # stored in declared order

"""Ray tasks on a one-CPU instance: what a trial's error says (the worker's exception as
text, whatever its type; "worker lost" only when a worker was lost: tests/api/test_ray.py
kills one), and what a batch tells while its trials wait and run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from nas.evaluators import build_evaluator
from nas.trial import TrialState
from tests.conftest import local_ray
from tests.workers.hostile import HostileNumber, UnpicklableError
from workers.search import parse_spec


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from local_ray(tmp_path_factory, num_cpus=1)


def test_the_hostile_error_really_does_not_pickle() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(UnpicklableError(7, "x")))


@pytest.mark.slow
def _two_trials(space: dict[str, Any], epochs: int, batch_size: int) -> tuple[Any, Any, list[Any]]:
    """A standalone digits spec of ``space``, its evaluator and two of its architectures."""
    resolved = parse_spec(
        {
            "name": "digits-standalone",
            "dataset": {"name": "digits"},
            "space": space,
            "controller": {"name": "random"},
            "evaluator": {"name": "standalone", "epochs": epochs, "batch_size": batch_size},
            "budget": {"trials": 2},
            "seed": 0,
        }
    )
    built, evaluator = build_evaluator(resolved)
    return resolved, evaluator, [built.sample(np.random.default_rng(i)) for i in range(2)]


def test_a_worker_error_that_does_not_pickle_reaches_the_trial_as_text(
    ray_instance: None,
) -> None:
    from workers.ray_backend import RayTaskExecutor

    resolved, evaluator, archs = _two_trials(
        {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]}, 1, 64
    )
    executor = RayTaskExecutor(resolved, max_retries=2, poll_s=0.05)
    results = executor.evaluate(
        evaluator, archs, [{"lr": HostileNumber("the learning rate is cursed")}, {"lr": 0.01}]
    )
    hostile, plain = results
    assert hostile.state is TrialState.FAIL
    assert hostile.error is not None
    assert "UnpicklableError: error 7: the learning rate is cursed" in hostile.error
    assert "worker lost" not in hostile.error  # no worker was lost: the trial raised
    assert plain.state is TrialState.COMPLETE, plain.error  # the other trial is unaffected
    assert all(r.worker.startswith("ray:") for r in executor.last_runs)


def test_a_batch_tells_each_trials_start_and_values_while_the_others_wait(
    ray_instance: None,
) -> None:
    """One CPU, a batch of two trials: the second waits for the first. Each trial's start
    is told when its task starts (not when the batch was handed to Ray), and the first
    trial's epochs are told while the second has not started, not once the batch ends."""
    import time

    from workers.ray_backend import RayTaskExecutor

    resolved, evaluator, archs = _two_trials({"name": "mlp", "max_layers": 1}, 2, 128)
    told: list[tuple[Any, ...]] = []
    evaluator.report = lambda i, epoch, values: told.append(("epoch", i, epoch, time.time()))

    def on_start(indices: Any, worker: str, at: float) -> None:
        told.extend(("started", i, worker, at) for i in indices)

    executor = RayTaskExecutor(resolved, workers=2, poll_s=0.05)
    submitted = time.time()
    results = executor.evaluate(evaluator, archs, [{}, {}], on_start=on_start)
    assert [r.state for r in results] == [TrialState.COMPLETE] * 2, results
    assert [t[:3] if t[0] == "epoch" else t[:2] for t in told] == [
        ("started", 0),
        ("epoch", 0, 1),
        ("epoch", 0, 2),
        ("started", 1),
        ("epoch", 1, 1),
        ("epoch", 1, 2),
    ]
    first, second = executor.last_runs
    started_second = told[3][3]
    assert started_second >= first.finished > submitted  # it waited for the only CPU
    assert started_second == second.started  # the start told is the one recorded
    assert told[3][2] == second.worker and second.worker.startswith("ray:")

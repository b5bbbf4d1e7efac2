"""``workers.ray_backend`` pieces that need no Ray instance (the Ray runs themselves:
``test_backend_contract.py``, ``test_ray_errors.py``, ``tests/api/test_ray*.py``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from workers import ray_backend


def test_a_worker_process_keeps_each_runs_evaluator_while_others_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two jobs whose trials alternate in one worker process each keep their own evaluator
    (its loaded data; a job's own state); at most ``MAX_CACHED_SEARCHES`` are kept, the
    least recently used dropped first."""
    built: list[object] = []

    def build(resolved: Any) -> tuple[None, object]:
        built.append(object())
        return None, built[-1]

    monkeypatch.setattr(ray_backend, "build_evaluator", build)
    monkeypatch.setattr(ray_backend, "_CACHE", OrderedDict())
    spec: Any = "the same spec for every run"
    first = ray_backend._evaluator_for("run-a", spec)
    other = ray_backend._evaluator_for("run-b", spec)
    assert other is not first  # a run of the same spec has its own
    assert ray_backend._evaluator_for("run-a", spec) is first  # not lost to run-b
    assert ray_backend._evaluator_for("run-b", spec) is other
    for i in range(ray_backend.MAX_CACHED_SEARCHES - 1):
        ray_backend._evaluator_for(f"run-{i}", spec)
    assert len(built) == 2 + ray_backend.MAX_CACHED_SEARCHES - 1
    assert ray_backend._evaluator_for("run-b", spec) is other  # still among the latest
    assert ray_backend._evaluator_for("run-a", spec) is not first  # the oldest, dropped
    assert len(ray_backend._CACHE) == ray_backend.MAX_CACHED_SEARCHES


def test_a_task_judges_its_trial_by_its_place_in_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every task of a batch gets the memory as the batch began; the k-th trial of the batch
    was asked as the pruner's trial ``len(memory)`` (Hyperband's bracket follows the number)
    but merged back as ``len(memory) + k``: its rungs then counted in another bracket. It is
    asked as ``len(memory) + k``, the trials beside it standing in as told nothing."""
    import numpy as np

    from tests.workers.backend_contract import PRUNED_SPEC
    from workers.search import parse_spec

    monkeypatch.setattr(ray_backend, "_CACHE", OrderedDict())
    spec = {**PRUNED_SPEC, "evaluator": {**PRUNED_SPEC["evaluator"], "epochs": 2}}
    spec["evaluator"]["pruner"] = {"name": "hyperband", "reduction_factor": 2}
    resolved = parse_spec(spec)
    arch = resolved.build_space().sample(np.random.default_rng(0))
    earlier = [{"state": "COMPLETE", "value": 50.0, "marks": {}}] * 3
    results, _, added = ray_backend._evaluate_batch("run", resolved, [arch], [{}], earlier, 2)
    study = ray_backend._CACHE["run"].pruning.study  # type: ignore[attr-defined]
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4, 5]
    assert len(added) == 1 and added[0]["state"] == results[0].state.value


def test_a_training_task_tells_its_start_and_each_value_as_it_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The task body of trials that train (run here, outside Ray) yields its start before
    any training, each epoch's values as they are measured, its result last."""
    import numpy as np

    from tests.workers.backend_contract import PRUNED_SPEC
    from workers.search import parse_spec

    monkeypatch.setattr(ray_backend, "_CACHE", OrderedDict())
    spec = {**PRUNED_SPEC, "evaluator": {**PRUNED_SPEC["evaluator"], "epochs": 2}}
    spec["evaluator"].pop("pruner", None)
    resolved = parse_spec(spec)
    arch = resolved.build_space().sample(np.random.default_rng(0))
    stream = ray_backend._run_trials("run", resolved, [arch], [{}], None, 0)
    kind, attempt = next(stream)
    worker, started = attempt
    assert kind == "started" and worker and started > 0
    # nothing trained yet: the evaluator is built in the thread the next step starts
    assert "run" not in ray_backend._CACHE
    events = list(stream)
    assert [e[0] for e in events] == ["value", "value", "done"]
    assert all(e[1] == attempt for e in events)  # each item says which attempt it is of
    assert [(e[2], e[3]) for e in events[:2]] == [(0, 1), (0, 2)]  # trial 0, epochs 1 and 2
    results, ran, _ = events[-1][2]
    assert results[0].state.value == "COMPLETE"
    assert ran.started == started and ran.finished >= started

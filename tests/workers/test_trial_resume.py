"""A checkpoint inside a meta-learning trial (at the end of a meta-epoch) resumes that trial
where it was, not from scratch, and the resumed search ends exactly as the uninterrupted one
(the server-level ``kill -9`` test is ``tests/api/test_meta_crash.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from nas.metalearning import MetaWeights
from nas.trial import TrialState
from workers.backend import SafePoint, SearchEvents, SearchState
from workers.search import SearchLoop, parse_spec

SPEC: dict[str, Any] = {
    "name": "sine-resume",
    "dataset": {"name": "sinusoid"},
    "space": {"name": "mlp", "max_layers": 2, "widths": [20, 40]},
    "controller": {"name": "random"},
    "evaluator": {
        "name": "maml",
        "meta_iterations": 40,  # 10 meta-epochs of 4 meta-iterations
        "meta_batch": 5,
        "val_tasks": 20,
        "test_tasks": 40,
        "eval_points": 50,
    },
    "hparams": {"inner_lr": {"type": "float", "low": 0.003, "high": 0.03, "log": True}},
    "objective": {"metric": "meta_val_mse", "direction": "minimize"},
    "budget": {"trials": 1},
    "seed": 3,
}


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()  # the meta-learning evaluators use one
    yield
    torch.set_num_threads(threads)


def _stored(state: SearchState) -> SearchState:
    """The checkpoint as the service stores it: plain JSON, the evaluator state as bytes."""
    return SearchState(
        json.loads(json.dumps(state.controller)),
        json.loads(json.dumps(state.loop)),
        state.evaluator,
    )


@pytest.mark.parametrize("evaluator", ["maml", "metasgd"])
def test_a_checkpoint_inside_a_trial_resumes_it_where_it_was(evaluator: str) -> None:
    spec = {**SPEC, "evaluator": {**SPEC["evaluator"], "name": evaluator}}
    reference = SearchLoop(parse_spec(spec)).run()
    assert reference is not None and reference.trials[0].result.state is TrialState.COMPLETE

    checkpoints: list[SearchState] = []
    first = SearchLoop(parse_spec(spec))

    def on_safe_point(point: SafePoint) -> None:
        assert first.consistent
        if point.running:
            checkpoints.append(_stored(first.state()))

    first.events.on_safe_point = on_safe_point
    first.run()
    assert [c.loop["running"] for c in checkpoints] == [
        {"number": 0, "epoch": e}
        for e in range(1, 11)  # meta-epochs done
    ]
    assert all(c.trial_count == 0 and c.controller["pending"] for c in checkpoints)

    # A new process restored from the checkpoint after meta-epoch 4 (16 of 40 iterations).
    reports: list[tuple[int, int]] = []
    again = SearchLoop(
        parse_spec(spec),
        events=SearchEvents(on_intermediate=lambda n, e, v: reports.append((n, e))),
    )
    again.load_state(checkpoints[3], [])
    evaluator_ = again.components.evaluator
    draws = 0
    draw = evaluator_._draw  # type: ignore[attr-defined]

    def counting(*args: Any) -> Any:
        nonlocal draws
        draws += 1
        return draw(*args)

    evaluator_._draw = counting  # type: ignore[attr-defined]
    outcome = again.run()
    assert outcome is not None
    assert draws == 40 - 16  # the meta-batches after the checkpoint only
    assert reports == [(0, e) for e in range(1, 11)]  # every meta-epoch once, the lost ones too
    (trial,) = outcome.trials
    assert trial.candidate_id == reference.trials[0].candidate_id
    assert trial.hparams == reference.trials[0].hparams
    assert trial.result.metrics == reference.trials[0].result.metrics
    assert outcome.final_metrics == reference.final_metrics


def test_a_checkpoint_of_another_candidate_does_not_resume_a_trial() -> None:
    """Meta-training state is only taken up by the trial it belongs to (same architecture and
    settings); any other starts from scratch."""
    loop = SearchLoop(parse_spec(SPEC))
    states: list[bytes] = []

    def keep(point: SafePoint) -> None:
        if point.running:
            states.append(loop.components.evaluator.trial_checkpoint() or b"")

    loop.events.on_safe_point = keep
    loop.run()
    evaluator = loop.components.evaluator
    (trial,) = loop.trials
    other = {"inner_lr": trial.hparams["inner_lr"] * 2}
    fresh = evaluator.evaluate([trial.architecture], [other])[0]
    evaluator.resume_trial(states[5])
    resumed = evaluator.evaluate([trial.architecture], [other])[0]
    assert resumed.metrics == fresh.metrics


def test_a_best_trial_from_before_the_resume_is_tested_with_its_own_hparams() -> None:
    """The best trial finished in the process that was lost: the resumed search's meta-test
    figures and meta-learned weights are still that trial's (meta-trained again with its
    hparams from the same seeds), not those of the evaluator's default settings."""
    spec = {**SPEC, "budget": {"trials": 2}, "seed": 4}
    reference = SearchLoop(parse_spec(spec)).run()
    assert reference is not None and reference.best is not None
    assert reference.best.number == 0  # the premise: the best ran before the checkpoint
    first = SearchLoop(parse_spec(spec))
    checkpoints: list[SearchState] = []

    def keep(point: SafePoint) -> None:
        if point.running and len(first.trials) == 1:
            checkpoints.append(_stored(first.state()))

    first.events.on_safe_point = keep
    first.run()
    again = SearchLoop(parse_spec(spec))
    again.load_state(checkpoints[4], list(first.trials[:1]))
    outcome = again.run()
    assert outcome is not None and outcome.best is not None and outcome.best.number == 0
    if again.components.evaluator.device.type == "cpu":
        assert outcome.final_metrics == reference.final_metrics
        assert [f.data for f in outcome.files] == [f.data for f in reference.files]
    else:  # CUDA kernels do not add up in a fixed order: the same training, up to rounding
        assert outcome.final_metrics == pytest.approx(reference.final_metrics, rel=1e-5)
        for got, want in zip(outcome.files, reference.files, strict=True):
            a, b = MetaWeights.load(got.data), MetaWeights.load(want.data)
            assert a.weights.keys() == b.weights.keys()
            for key, value in a.weights.items():
                assert torch.allclose(value, b.weights[key], rtol=1e-4, atol=1e-6)

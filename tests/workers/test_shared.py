"""Shared-weight (ENAS) search end to end on a tiny budget, and its fault handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.architecture import Architecture
from nas.datasets import load_dataset
from nas.evaluators import SharedWeightEvaluator
from nas.evaluators.shared import SharedWeightConfig
from nas.spaces import MacroSpace
from nas.trial import TrialState
from workers.local import run_local_search
from workers.search import parse_spec

TINY = {
    "name": "tiny-enas",
    "dataset": {"name": "mnist1d", "num_samples": 800},
    "space": {"name": "enas-macro", "layers": 3, "channels": 4},
    "controller": {"name": "enas", "num_aggregate": 5},
    "evaluator": {
        "name": "shared-weights",
        "epochs": 2,
        "rewards_per_epoch": 10,
        "derive_samples": 6,
        "top_k": 2,
    },
    "budget": {"minutes": 2},
    "final": {"retrain_top_k": 2, "epochs": 1},
    "seed": 0,
}


@pytest.mark.slow
def test_enas_search_end_to_end_writes_trials_curve_and_retrained_weights(tmp_path: Path) -> None:
    summary = run_local_search(parse_spec(TINY), tmp_path, progress=False)
    trials = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == summary["trials"] == 20  # 2 epochs x 10 rewards
    assert [t["number"] for t in trials] == list(range(20))
    assert [(t["epoch"], t["step"]) for t in trials] == [(e, s) for e in (0, 1) for s in range(10)]
    for t in trials:
        assert t["state"] == "COMPLETE" and 0.0 <= t["objective"] <= 100.0
        assert t["finished_at"] >= t["started_at"]
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert [p["epoch"] for p in curve] == [0, 1]
    assert all(p["entropy"] > 0 and "baseline" in p and p["rewards"] == 10 for p in curve)
    ranked = json.loads((tmp_path / "architectures.json").read_text())
    assert len(ranked) == 2 and ranked[0]["score"] >= ranked[1]["score"]
    final = summary["final"]
    assert [f["rank"] for f in final] == [0, 1]
    for f in final:
        assert 0.0 <= f["test_accuracy"] <= 100.0 and f["params"] > 0 and f["flops"] > 0
        weights = torch.load(f["weights"])
        assert (
            sum(
                v.numel()
                for k, v in weights.items()
                if "running" not in k and "num_batches" not in k
            )
            == f["params"]
        )
    best = json.loads((tmp_path / "best_architecture.json").read_text())
    MacroSpace(layers=3, channels=4).validate(Architecture.from_dict(best["architecture"]))
    assert best["final"]["test_accuracy"] == final[0]["test_accuracy"]


def test_fewer_derived_architectures_than_final_asks_for_are_said(tmp_path: Path) -> None:
    """final.retrain_top_k above the architectures a shared-weight search derives
    (distinct draws of derive_samples) retrained fewer, without a word (the probe of
    retraining)."""
    spec = {**TINY, "evaluator": {**TINY["evaluator"], "top_k": 1, "derive_samples": 1}}
    summary = run_local_search(parse_spec(spec), tmp_path, progress=False)
    assert len(summary["final"]) == 1
    said = (
        "final.retrain_top_k is 2, but the search ranked 1 architecture(s), so 1 were "
        "retrained (a shared-weight search retrains the distinct architectures its "
        "evaluator.derive_samples draws from the policy: raise derive_samples)"
    )
    assert summary["warnings"] == [said]


def test_a_trial_count_that_cuts_the_supernets_epochs_is_said(tmp_path: Path) -> None:
    """Each reward is a trial: budget.trials, or the server's cap (budget.max_trials from
    NAS_MAX_TRIALS_PER_JOB), ended a shared-weight search epochs before its plan without a
    word (the probe of budgets)."""
    # without rewards_per_epoch, the controller's own count (train_steps x num_aggregate):
    # every such search failed as it ended (a TypeError: the setting's None multiplied)
    own = {
        "controller": {**TINY["controller"], "train_steps": 2},
        "evaluator": {k: v for k, v in TINY["evaluator"].items() if k != "rewards_per_epoch"},
    }
    for budget, which, more in (
        ({"trials": 12}, "budget.trials (12)", {}),
        ({"minutes": 2, "max_trials": 12}, "the server's trial limit (12, budget.max_trials", {}),
        ({"trials": 12}, "budget.trials (12)", own),
    ):
        spec = {**TINY, "budget": budget, "final": None, **more}
        summary = run_local_search(
            parse_spec(spec), tmp_path / f"{len(budget)}{len(more)}", progress=False
        )
        (warning,) = summary["warnings"]
        assert warning.startswith(which), warning
        assert "stopped the search after 12 of its 20 rewards (10 per epoch; supernet" in warning


@pytest.fixture(scope="module")
def evaluator() -> SharedWeightEvaluator:
    data = load_dataset("mnist1d", seed=0, num_samples=400)
    return SharedWeightEvaluator(
        space=MacroSpace(layers=3, channels=4),
        data=data,
        config=SharedWeightConfig(batch_size=64),
        seed=0,
    )


def test_non_finite_outputs_become_fail_trials_with_their_cause(
    evaluator: SharedWeightEvaluator,
) -> None:
    rng = np.random.default_rng(0)
    arch = evaluator.space.sample(rng)
    weight = evaluator.supernet.stem[0].weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.fill_(float("nan"))
    try:
        result = evaluator.evaluate([arch])[0]
        stats = evaluator.train_epoch(lambda: arch)
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert result.state is TrialState.FAIL and "diverged" in result.error
    assert stats["skipped_steps"] == -(-len(evaluator.data.y_train) // 64)  # all skipped
    assert torch.equal(weight, saved)  # the NaN steps changed nothing


def test_sgdr_learning_rate_restarts(evaluator: SharedWeightEvaluator) -> None:
    c = evaluator.config
    assert evaluator.learning_rate(0) == pytest.approx(c.lr_max)
    assert evaluator.learning_rate(9.999) == pytest.approx(c.lr_min, abs=1e-4)
    assert evaluator.learning_rate(10) == pytest.approx(c.lr_max)  # restart, next cycle 20 epochs
    assert evaluator.learning_rate(20) == pytest.approx((c.lr_max + c.lr_min) / 2)


def test_building_the_supernet_leaves_the_global_rng_as_it_was() -> None:
    data = load_dataset("mnist1d", seed=0, num_samples=400)
    before = torch.random.get_rng_state()
    built = [
        SharedWeightEvaluator(space=MacroSpace(layers=3, channels=4), data=data, seed=3)
        for _ in range(2)
    ]
    assert torch.equal(torch.random.get_rng_state(), before)
    for a, b in zip(*(e.supernet.state_dict().values() for e in built), strict=True):
        assert torch.equal(a, b)  # drawn from the seed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_building_the_supernet_on_a_gpu_leaves_the_global_cuda_rng_as_it_was() -> None:
    data = load_dataset("mnist1d", seed=0, num_samples=400)
    torch.manual_seed(1)
    before, before_cuda = torch.random.get_rng_state(), torch.cuda.get_rng_state_all()
    SharedWeightEvaluator(
        space=MacroSpace(layers=3, channels=4),
        data=data,
        config=SharedWeightConfig(device="cuda"),
        seed=3,
    )
    assert torch.equal(torch.random.get_rng_state(), before)
    after_cuda = torch.cuda.get_rng_state_all()
    assert all(torch.equal(a, b) for a, b in zip(after_cuda, before_cuda, strict=True))


def test_the_search_actor_restores_a_supernet_saved_on_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A GPU actor's checkpoint names cuda:0 as its tensors' home; an actor with no GPU (or
    another one) must still load it. Faked here by tagging CPU tensors cuda:0 when saving."""
    import io

    import torch.serialization

    from workers.ray_backend import SearchActor
    from workers.shared import SharedWeightSearch

    actor = SearchActor(parse_spec(TINY), None, [])
    assert isinstance(actor.loop, SharedWeightSearch)  # the inline path's loop class
    evaluator = actor.loop.evaluator
    saved = {k: v.clone() for k, v in evaluator.supernet.state_dict().items()}
    buffer = io.BytesIO()
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save({**evaluator.state_dict(), "epoch": 4}, buffer)
    with torch.no_grad():
        for p in evaluator.supernet.parameters():
            p.zero_()
    actor.loop.load_evaluator_state(buffer.getvalue())
    assert evaluator.epoch == 4
    for key, value in evaluator.supernet.state_dict().items():
        assert value.device.type == evaluator.device.type, key
        assert torch.equal(value.cpu(), saved[key].cpu()), key


def test_progress_counts_an_epochs_rewards_not_only_its_training() -> None:
    """The evaluator's epoch counts one as soon as the supernet's training ends, before the
    epoch's rewards: the job showed 100 % with the last epoch's rewards (and a quarter of
    its trials) still to come. Each epoch's training is half of it, its rewards the rest."""
    from workers.backend import InlineBackend, SearchEvents

    spec = {**TINY, "final": None, "budget": {"trials": 10_000}}  # (no clock: a loaded machine)
    seen: list[tuple[int, int, float]] = []
    holder: dict[str, object] = {}
    events = SearchEvents(
        on_trial=lambda t: seen.append((t.epoch, t.step, holder["search"].fraction_done()))
    )
    search = InlineBackend().open(parse_spec(spec), events)
    holder["search"] = search
    try:
        search.run()
        assert search.fraction_done() == 1.0
    finally:
        search.close()
    assert len(seen) == 20
    for epoch, step, progress in seen:
        # recorded as each reward's trial is: epoch e's training and `step` of its rewards
        assert progress == pytest.approx((epoch + 0.5 + 0.5 * step / 10) / 2), seen

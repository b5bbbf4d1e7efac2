"""Pruning of standalone trials by Optuna's pruners from each epoch's validation accuracy."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from nas.errors import SpecError
from nas.pruning import PrunerConfig, Pruning, TrialPruned
from nas.trial import TrialState
from workers.search import parse_spec


def run_curve(pruning: Pruning, curve: list[float]) -> int | None:
    """Feed one trial's curve; the epoch it was pruned at, or ``None`` when it completed."""
    trial = pruning.begin()
    try:
        for step, value in enumerate(curve, start=1):
            trial.report(step, value)
    except TrialPruned as exc:
        return exc.step
    trial.complete(curve[-1])
    return None


def good(epochs: int) -> list[float]:
    return [60.0 + 8.0 * e for e in range(epochs)]


def bad(epochs: int, k: int) -> list[float]:
    return [10.0 + 0.1 * k + 0.5 * e for e in range(epochs)]


def test_median_prunes_a_clearly_worse_curve_after_warmup() -> None:
    pruning = Pruning(
        PrunerConfig(name="median", n_startup_trials=2, n_warmup_steps=2), max_resource=6
    )
    for _ in range(2):
        assert run_curve(pruning, good(6)) is None
    assert run_curve(pruning, bad(6, 0)) == 3  # the first epoch past the 2 warm-up epochs
    assert run_curve(pruning, good(6)) is None
    states = [t.state.name for t in pruning.study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]


def test_median_waits_for_its_startup_trials() -> None:
    pruning = Pruning(PrunerConfig(name="median", n_startup_trials=3), max_resource=4)
    assert run_curve(pruning, good(4)) is None
    assert run_curve(pruning, bad(4, 0)) is None  # only one completed trial so far


@pytest.mark.parametrize("name", ["successive_halving", "hyperband"])
def test_resource_pruners_prune_bad_curves_never_a_good_one(name: str) -> None:
    pruning = Pruning(PrunerConfig(name=name, reduction_factor=2), max_resource=8)
    for _ in range(3):
        assert run_curve(pruning, good(8)) is None
    pruned = [run_curve(pruning, bad(8, k)) for k in range(12)]
    assert sum(p is not None for p in pruned) >= 4
    assert all(p is None or p < 8 for p in pruned)
    assert run_curve(pruning, [v + 5 for v in good(8)]) is None  # the best curve yet


@pytest.mark.parametrize(
    "config",
    [
        PrunerConfig(name="median", n_startup_trials=2),
        PrunerConfig(name="successive_halving", reduction_factor=2),
        PrunerConfig(name="hyperband", reduction_factor=2),
    ],
    ids=lambda c: c.name,
)
def test_a_pruning_restored_from_its_memory_judges_as_the_original(
    config: PrunerConfig,
) -> None:
    """A search resumed from a checkpoint (or a Ray task given the search's memory) judges
    each later trial as the uninterrupted pruner would: the memory, through JSON as a
    checkpoint stores it, carries the verdicts, intermediate values and the pruner's marks
    (successive halving's rungs)."""
    curves = [good(8)] * 2 + [bad(8, k) for k in range(6)] + [good(8)]
    later = [bad(8, k) for k in range(6, 14)] + [[v + 1 for v in good(8)]]
    original = Pruning(config, max_resource=8)
    for curve in curves:
        run_curve(original, curve)
    memory = json.loads(json.dumps(original.memory()))
    assert [m["state"] for m in memory].count("PRUNED") >= 2
    restored = Pruning(config, max_resource=8)
    restored.restore(memory)
    fresh = Pruning(config, max_resource=8)  # what a resumed search had before: no memory
    verdicts = [run_curve(original, c) for c in later]
    assert [run_curve(restored, c) for c in later] == verdicts
    assert any(v is not None for v in verdicts)
    assert [run_curve(fresh, c) for c in later] != verdicts
    assert restored.memory() == json.loads(json.dumps(original.memory()))


def test_pruner_none_builds_nothing() -> None:
    with pytest.raises(ValueError):
        Pruning(PrunerConfig(name="none"), max_resource=4)


def test_a_trials_final_epoch_is_reported_but_never_judged() -> None:
    """After its last epoch a trial has nothing left to save: it completes, even where the
    pruner would have stopped it there (a worse curve than the median at that step)."""
    pruning = Pruning(PrunerConfig(name="median", n_startup_trials=1), max_resource=2)
    assert run_curve(pruning, good(2)) is None
    trial = pruning.begin()
    with pytest.raises(TrialPruned):
        trial.report(1, bad(2, 0)[0])  # not its last epoch: judged
    trial = pruning.begin()
    trial.report(1, bad(1, 0)[0], final=True)  # a one-epoch trial's only epoch
    assert trial.last_step == 1
    trial.complete(bad(1, 0)[0])


def standalone_evaluator(epochs: int, pruner: Any) -> Any:
    from workers.search import build_components

    spec = with_pruner(pruner, epochs=epochs) if pruner else copy.deepcopy(SPEC)
    spec["evaluator"]["epochs"] = epochs
    components = build_components(parse_spec(spec))
    arch = components.space.sample(np.random.default_rng(0))
    return components.evaluator, arch


class _AlwaysPrune:
    """An Optuna pruner that stops every trial it is asked about."""

    def prune(self, study: Any, trial: Any) -> bool:
        return True


@pytest.mark.parametrize("epochs", [1, 3])
def test_a_standalone_trial_is_pruned_before_its_last_epoch_never_after_it(epochs: int) -> None:
    evaluator, arch = standalone_evaluator(epochs, {"name": "median", "n_startup_trials": 0})
    evaluator.pruning.study.pruner = _AlwaysPrune()
    steps: list[int] = []
    evaluator.report = lambda i, step, values: steps.append(step)
    (result,) = evaluator.evaluate([arch])
    if epochs == 1:  # its only epoch is its last: trained in full, so complete
        assert result.state is TrialState.COMPLETE, result.error
        assert result.objective == result.metrics["val_accuracy"]
    else:
        assert result.state is TrialState.PRUNED
        assert result.error == "pruned at epoch 1 by the median pruner"
        assert result.metrics["epochs_trained"] == 1
    assert steps == [1]  # intermediate values' steps are epochs trained, from 1


def test_standalone_intermediate_steps_are_epochs_trained_from_one() -> None:
    evaluator, arch = standalone_evaluator(3, None)
    steps: list[int] = []
    evaluator.report = lambda i, step, values: steps.append(step)
    (result,) = evaluator.evaluate([arch])
    assert result.state is TrialState.COMPLETE
    assert steps == [1, 2, 3]


# --- spec validation ---------------------------------------------------------------------
SPEC: dict[str, Any] = {
    "name": "pruned",
    "dataset": {"name": "digits"},
    "space": {"name": "enas-macro", "layers": 2, "channels": 8, "reductions": [1]},
    "controller": {"name": "random"},
    "evaluator": {"name": "standalone", "epochs": 4, "batch_size": 64},
    "budget": {"trials": 8},
    "seed": 0,
}


def with_pruner(pruner: Any, **evaluator: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["evaluator"].update(pruner=pruner, **evaluator)
    return spec


def spec_errors(spec: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return {tuple(e["loc"]): e["msg"] for e in info.value.errors}


def test_an_unknown_pruner_name_lists_the_valid_ones() -> None:
    errors = spec_errors(with_pruner({"name": "asha"}))
    msg = errors[("evaluator", "pruner", "name")]
    for name in ("median", "successive_halving", "hyperband", "none"):
        assert name in msg


def test_pruner_option_errors_have_paths() -> None:
    errors = spec_errors(with_pruner({"name": "median", "n_startup_trials": -1, "patience": 2}))
    assert ("evaluator", "pruner", "n_startup_trials") in errors
    assert errors[("evaluator", "pruner", "patience")].startswith("unknown field; valid: name, ")
    errors = spec_errors(with_pruner({"name": "median", "reduction_factor": 3}))
    assert "reduction_factor" in errors[("evaluator", "pruner")]
    errors = spec_errors(with_pruner({"name": "hyperband", "min_resource": 9}))
    assert "exceeds epochs (4)" in errors[("evaluator", "pruner", "min_resource")]


@pytest.mark.parametrize(
    ("pruner", "field", "message"),
    [
        ({"name": "hyperband", "max_resource": 5}, "max_resource", "at most 4"),
        ({"name": "median", "n_warmup_steps": 4}, "n_warmup_steps", "would never prune"),
        ({"name": "successive_halving", "min_resource": 5}, "min_resource", "at most 4"),
    ],
)
def test_pruner_epochs_past_the_trials_are_refused_unless_epochs_is_searched(
    pruner: dict[str, Any], field: str, message: str
) -> None:
    assert message in spec_errors(with_pruner(pruner))[("evaluator", "pruner", field)]
    searched = with_pruner(pruner)
    searched["hparams"] = {"epochs": {"type": "int", "low": 2, "high": 8}}
    parse_spec(searched)  # a trial may train long enough
    parse_spec(with_pruner({**pruner, field: 4 - (field == "n_warmup_steps")}))  # the bound
    # ... but not when no epochs the search takes reach it (accepted without a word)
    for epochs in (
        {"type": "int", "low": 1, "high": 3},
        {"type": "categorical", "choices": [2, 3]},
    ):
        searched["hparams"] = {"epochs": epochs}
        msg = spec_errors(searched)[("evaluator", "pruner", field)]
        assert "epochs (3, the most hparams.epochs takes)" in msg, msg
        assert f"at most {3 - (field == 'n_warmup_steps')}" in msg, msg


@pytest.mark.parametrize(
    ("objective", "sought"),
    [
        ({"metric": "val_accuracy", "direction": "minimize"}, "val_accuracy (minimize)"),
        ({"metric": "params", "direction": "minimize"}, "params (minimize)"),
        (
            {"metrics": ["val_accuracy", "params"], "directions": ["maximize", "minimize"]},
            "val_accuracy (maximize), params (minimize)",
        ),
    ],
)
def test_a_pruner_is_refused_for_an_objective_other_than_the_accuracy_it_judges(
    objective: dict[str, Any], sought: str
) -> None:
    """A pruner judges validation accuracy, higher better: with direction minimize or
    objective params it pruned the very trials the search was after, without a word."""
    spec = with_pruner({"name": "median"})
    spec["objective"] = objective
    if "metrics" in objective:
        spec["controller"] = {"name": "nsga2"}
    assert spec_errors(spec)[("evaluator", "pruner")] == (
        "a pruner stops trials whose validation accuracy lags, higher being better; this job "
        f"seeks {sought}: it would stop the trials sought. Use the pruner with objective "
        "val_accuracy, maximize, or leave it out"
    )
    spec["evaluator"]["pruner"] = {"name": "none"}
    parse_spec(spec)


def test_a_pruner_spec_round_trips() -> None:
    resolved = parse_spec(with_pruner({"name": "hyperband", "reduction_factor": 2}))
    assert resolved.evaluator_params["pruner"]["name"] == "hyperband"
    assert parse_spec(resolved.to_dict()).to_dict() == resolved.to_dict()
    assert parse_spec(SPEC).evaluator_params["pruner"] is None


# --- end to end ----------------------------------------------------------------------------
def test_a_standalone_search_prunes_trials() -> None:
    from workers.search import SearchLoop, build_components

    resolved = parse_spec(with_pruner({"name": "median", "n_startup_trials": 2}))
    components = build_components(resolved)
    reports: list[tuple[int, int, dict[str, float]]] = []
    components.evaluator.report = lambda i, epoch, values: reports.append((i, epoch, values))
    outcome = SearchLoop(resolved, components=components).run()

    states = [t.result.state for t in outcome.trials]
    assert len(states) == 8
    pruned = [t.result for t in outcome.trials if t.result.state is TrialState.PRUNED]
    assert pruned, states
    assert TrialState.COMPLETE in states and TrialState.FAIL not in states
    for result in pruned:
        assert result.objective is None
        assert result.metrics["epochs_trained"] < 4
        assert result.error is not None and "by the median pruner" in result.error
        assert {"val_accuracy", "train_loss", "params", "flops"} <= set(result.metrics)
    assert outcome.best is not None and outcome.best.result.state is TrialState.COMPLETE
    assert all(set(v) == {"val_accuracy", "train_loss"} for _, _, v in reports)
    # Fewer epochs were trained in all than 8 full trials would take.
    assert len(reports) < 8 * 4

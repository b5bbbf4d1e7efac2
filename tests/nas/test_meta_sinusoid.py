"""The ``sinusoid`` task distribution: MAML's few-shot regression tasks, reproducible streams
with disjoint seeds, and the evaluators that take it (and those that refuse it)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from nas.datasets import DATASETS, dataset_shape, load_dataset, load_tasks
from nas.datasets.sinusoid import SinusoidConfig, SinusoidTasks
from nas.errors import DatasetError, SpecError
from workers.search import parse_spec

TASKS = load_tasks("sinusoid")


def draw(split: str, seed: int, *extra: int, n: int = 50) -> Any:
    return TASKS.sample(TASKS.stream(split, seed, *extra), n_tasks=n, shots=10, queries=10)


def test_tasks_follow_the_maml_distribution() -> None:
    batch = draw("train", 0, n=2000)
    assert batch.support_x.shape == (2000, 10, 1) and batch.query_y.shape == (2000, 10, 1)
    x = torch.cat([batch.support_x, batch.query_x], dim=1)
    y = torch.cat([batch.support_y, batch.query_y], dim=1)
    assert -5.0 <= float(x.min()) and float(x.max()) <= 5.0
    # Each task is A sin(x - phi): fit A cos(phi), -A sin(phi) by least squares per task.
    basis = torch.stack([torch.sin(x), torch.cos(x)], dim=-1).squeeze(2).double()
    coef = torch.linalg.lstsq(basis, y.double()).solution.squeeze(-1)
    residual = (basis @ coef.unsqueeze(-1) - y.double()).abs().max()
    assert float(residual) < 1e-4
    amplitude = coef.norm(dim=1)
    phase = torch.atan2(-coef[:, 1], coef[:, 0])
    assert 0.1 - 1e-4 <= float(amplitude.min()) and float(amplitude.max()) <= 5.0 + 1e-4
    assert -1e-4 <= float(phase.min()) and float(phase.max()) <= math.pi + 1e-4
    # Uniform: the means are those of U[0.1, 5] and U[0, pi] (2000 tasks: within 0.15).
    assert float(amplitude.mean()) == pytest.approx(2.55, abs=0.15)
    assert float(phase.mean()) == pytest.approx(math.pi / 2, abs=0.15)


def test_streams_are_reproducible_and_their_seeds_disjoint() -> None:
    first, again = draw("train", 3), draw("train", 3)
    assert torch.equal(first.support_y, again.support_y)
    assert not torch.equal(first.support_y, draw("train", 4).support_y)
    assert not torch.equal(first.support_y, draw("train", 3, 1).support_y)
    splits = {s: draw(s, 3).support_y for s in ("train", "valid", "test")}
    assert not torch.equal(splits["train"], splits["valid"])
    assert not torch.equal(splits["valid"], splits["test"])
    assert not torch.equal(splits["train"], splits["test"])
    with pytest.raises(ValueError, match="unknown task split 'val'; valid: train, valid, test"):
        TASKS.stream("val", 0)


def test_fixed_sets_score_on_an_even_grid() -> None:
    fixed = TASKS.fixed("test", 0, n_tasks=3, shots=5, queries=100, grid=True)
    assert torch.equal(
        fixed.support_x,
        TASKS.fixed("test", 0, n_tasks=3, shots=5, queries=100, grid=True).support_x,
    )
    grid = fixed.query_x[1, :, 0].numpy()
    np.testing.assert_allclose(grid, np.linspace(-5, 5, 100), atol=1e-6)
    assert fixed.support_x.shape == (3, 5, 1)


def test_config_is_checked_and_changes_the_distribution() -> None:
    with pytest.raises(ValidationError, match="amplitude must be finite with low < high"):
        SinusoidConfig(amplitude=(5.0, 0.1))
    with pytest.raises(ValidationError, match="unknown|extra"):
        SinusoidConfig.model_validate({"shots": 5})
    narrow = load_tasks("sinusoid", amplitude=[1.0, 1.0 + 1e-9], x_range=[0.0, 1.0])
    assert isinstance(narrow, SinusoidTasks)
    batch = narrow.sample(np.random.default_rng(0), n_tasks=20, shots=10, queries=1)
    assert float(batch.support_x.min()) >= 0.0 and float(batch.support_x.max()) <= 1.0
    assert float(batch.support_y.abs().max()) <= 1.0 + 1e-6


def test_the_dataset_has_no_arrays_but_a_shape() -> None:
    entry = DATASETS.get("sinusoid")
    assert entry.load is None and entry.tasks is not None and entry.tabular is None
    assert dataset_shape("sinusoid") == ((1,), 1)
    with pytest.raises(DatasetError, match="'sinusoid' is a task distribution; it has no arrays"):
        load_dataset("sinusoid")
    with pytest.raises(DatasetError, match="'digits' is not a task distribution"):
        load_tasks("digits")


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "sine",
        "dataset": {"name": "sinusoid"},
        "space": {"name": "mlp"},
        "controller": {"name": "random"},
        "evaluator": {"name": "maml"},
        "objective": {"metric": "meta_val_mse", "direction": "minimize"},
        "budget": {"trials": 2},
    }
    return {**spec, **changes}


def _problems(spec: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return {tuple(e["loc"]): e["msg"] for e in info.value.errors}


@pytest.mark.parametrize("evaluator", ["standalone", "shared-weights"])
def test_evaluators_that_train_on_arrays_refuse_it(evaluator: str) -> None:
    spec = _spec(evaluator={"name": evaluator}, objective={"metric": "val_accuracy"})
    problems = _problems(spec)
    assert problems[("dataset", "name")] == (
        "'sinusoid' is a task distribution for few-shot meta-learning, not arrays to train on; "
        "use evaluator fomaml, maml, matching, metasgd, pretrain, protonet, reptile"
    )


@pytest.mark.parametrize("evaluator", ["maml", "fomaml", "reptile", "metasgd"])
def test_meta_learning_evaluators_take_it(evaluator: str) -> None:
    resolved = parse_spec(_spec(evaluator={"name": evaluator}))
    assert resolved.evaluator_params["eval_shots"] == 5
    assert resolved.evaluator_params["test_tasks"] == 600


def test_meta_learning_evaluators_say_what_they_need() -> None:
    problems = _problems(_spec(dataset={"name": "digits"}))
    assert problems[("dataset", "name")] == (
        "evaluator 'maml' meta-trains on a task distribution; 'digits' is not one "
        "(valid: episodes, glyphs, sinusoid)"
    )
    problems = _problems(_spec(space={"name": "enas-macro"}))
    assert "space 'enas-macro' cannot take the inputs of 'sinusoid'" in problems[("space", "name")]
    assert problems[("space", "name")].endswith("spaces that can: mlp")
    problems = _problems(_spec(objective={"metric": "meta_val_mse", "direction": "maximize"}))
    assert problems[("objective", "direction")] == (
        "meta_val_mse is an error: its direction is minimize"
    )
    problems = _problems(_spec(final={"retrain_top_k": 1}))
    assert "not supported yet" in problems[("final",)]


def test_final_steps_and_trial_resources_are_checked_at_their_field() -> None:
    """final_steps [5, 5] named one meta-test metric twice; cpus_per_trial had no bound."""
    problems = _problems(_spec(evaluator={"name": "maml", "final_steps": [5, 5]}))
    assert problems[("evaluator", "final_steps")] == "[5, 5] names a step count twice"
    problems = _problems(_spec(resources={"cpus_per_trial": 1e18}))
    assert "less than or equal to 1024" in problems[("resources", "cpus_per_trial")]


def test_sizes_that_cannot_fit_in_memory_are_refused_at_their_field() -> None:
    """A 100,000-task meta-validation set of 100,000 points each was accepted and failed the
    job at start (37 GiB); a meta-batch of 4,096 tasks of 20,000 points tried 6.5 GB
    allocations; an amplitude of 1e30 diverged to NaN in every trial."""
    problems = _problems(
        _spec(evaluator={"name": "maml", "val_tasks": 100_000, "eval_points": 100_000})
    )
    assert "100000 tasks x (5 + 100000) points" in problems[("evaluator", "val_tasks")]
    assert "GiB), held whole; at most 268,435,456" in problems[("evaluator", "val_tasks")]
    big_batch = {"name": "maml", "meta_batch": 4096, "shots": 10_000, "queries": 10_000}
    problems = _problems(_spec(evaluator=big_batch))
    assert "81,920,000 examples; at most 1,048,576" in problems[("evaluator", "meta_batch")]
    problems = _problems(_spec(dataset={"name": "sinusoid", "amplitude": [0, 1e30]}))
    assert "within [-10000, 10000]" in problems[("dataset", "amplitude")]
    # large but feasible: accepted
    parse_spec(_spec(evaluator={"name": "maml", "test_tasks": 100_000, "meta_batch": 4096}))
    parse_spec(_spec(dataset={"name": "sinusoid", "amplitude": [0, 1e4]}))


@pytest.mark.parametrize(
    "searched",
    [
        {"type": "int", "low": 4000, "high": 4096},
        {"type": "int", "low": 1, "high": 4096, "log": True},
        {"type": "int", "low": 1, "high": 4096, "step": 5},  # (its grid ends at 4096)
        {"type": "categorical", "choices": [1, 4096]},
    ],
)
def test_a_meta_batch_searched_in_hparams_is_held_to_the_size_limit(
    searched: dict[str, Any],
) -> None:
    """``meta_batch: 1`` with ``hparams: {meta_batch: {low: 4000, high: 4096}}`` was accepted
    and a trial started with 8,192,000 examples a meta-batch, which the value given directly
    is refused for: the limit holds for the largest value searched, at its hparam's field."""
    evaluator = {"name": "maml", "meta_batch": 1, "shots": 1000, "queries": 1000}
    problems = _problems(_spec(evaluator=evaluator, hparams={"meta_batch": searched}))
    assert list(problems) == [("hparams", "meta_batch")]
    assert problems[("hparams", "meta_batch")].startswith(
        "meta_batch up to 4096: a meta-batch of 4096 tasks x (1000 + 1000) points is "
        "8,192,000 examples; at most 1,048,576"
    )
    # Up to the limit: accepted (524 x 2000 = 1,048,000 examples).
    fits = {"meta_batch": {"type": "int", "low": 1, "high": 524}}
    assert parse_spec(_spec(evaluator=evaluator, hparams=fits)).hparams is not None


def test_a_spec_without_an_objective_takes_the_evaluators_reward() -> None:
    """It defaulted to val_accuracy, which no few-shot evaluator reports: a 422."""
    spec = _spec()
    del spec["objective"]
    resolved = parse_spec(spec)
    objective = resolved.spec.objective
    assert (objective.metric, objective.direction) == ("meta_val_mse", "minimize")
    assert parse_spec(resolved.to_dict()).to_dict() == resolved.to_dict()
    spec["objective"] = {"constraints": {"max_params": 5000}}  # no metric: the default one
    assert parse_spec(spec).spec.objective.metric == "meta_val_mse"
    spec["objective"] = {"direction": "maximize"}  # a direction given is kept, and checked
    assert "its direction is minimize" in _problems(spec)[("objective", "direction")]
    episodes = {
        "name": "ep",
        "dataset": {"name": "glyphs"},
        "space": {"name": "metaqnn", "input_size": 28},
        "controller": {"name": "random"},
        "evaluator": {"name": "protonet"},
        "budget": {"trials": 1},
    }
    assert parse_spec(episodes).spec.objective.metric == "meta_val_accuracy"


def test_a_metric_named_without_a_direction_takes_its_own() -> None:
    """``{metric: meta_val_mse}`` was refused as maximized (the direction's default), and a
    standalone job's ``{metric: train_loss}`` was stored maximized: a search for the worst."""
    spec = _spec(objective={"metric": "meta_val_mse"})
    assert parse_spec(spec).spec.objective.direction == "minimize"
    standalone = {
        "name": "loss",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone"},
        "objective": {"metric": "train_loss"},
        "budget": {"trials": 1},
    }
    assert parse_spec(standalone).spec.objective.direction == "minimize"

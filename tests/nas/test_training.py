from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from nas.datasets import DatasetSplits
from nas.evaluators.standalone import StandaloneEvaluator
from nas.spaces import MacroSpace
from nas.training import FocalLoss, TrainRecipe, focal_loss, make_loss


def test_focal_loss_with_gamma_zero_is_cross_entropy() -> None:
    logits = torch.randn(32, 10, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1))
    assert focal_loss(logits, target, 0.0) == pytest.approx(
        float(nn.functional.cross_entropy(logits, target)), rel=1e-6
    )


def test_focal_loss_matches_its_definition_and_down_weights_easy_examples() -> None:
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.2, 0.1, 0.0]])
    target = torch.tensor([0, 0])
    p = torch.softmax(logits, dim=1)[:, 0]
    expected = (-((1 - p) ** 2) * torch.log(p)).mean()
    assert float(focal_loss(logits, target, 2.0)) == pytest.approx(float(expected), rel=1e-6)
    ce = nn.functional.cross_entropy(logits, target, reduction="none")
    per_example = [float(focal_loss(logits[i : i + 1], target[i : i + 1], 2.0)) for i in (0, 1)]
    # The easy example (p ~ 0.96) loses far more of its weight than the hard one (p ~ 0.37).
    assert per_example[0] / float(ce[0]) < 0.01
    assert per_example[1] / float(ce[1]) > 0.3


def test_focal_loss_gradient_is_finite_for_a_certain_prediction() -> None:
    logits = torch.tensor([[100.0, 0.0]], requires_grad=True)
    focal_loss(logits, torch.tensor([0]), 0.5).backward()
    assert torch.isfinite(logits.grad).all()


def test_make_loss() -> None:
    assert isinstance(make_loss(TrainRecipe(loss="focal", focal_gamma=1.5)), FocalLoss)
    assert make_loss(TrainRecipe(loss="focal", focal_gamma=1.5)).gamma == 1.5
    assert make_loss(TrainRecipe()).label_smoothing == 0.0
    assert make_loss(TrainRecipe(label_smoothing=0.2)).label_smoothing == 0.2
    assert make_loss(TrainRecipe(loss="label_smoothing")).label_smoothing == 0.1
    assert (
        make_loss(TrainRecipe(loss="label_smoothing", label_smoothing=0.3)).label_smoothing == 0.3
    )


def test_recipe_with_hparams_sets_training_keys_and_ignores_the_users_own() -> None:
    base = TrainRecipe(epochs=5)
    recipe = base.with_hparams(
        {"optimizer": "sgd", "lr": 1, "batch_size": 32.0, "loss": "focal", "note": "x"},
        exclude=("epochs",),
    )
    assert recipe == dataclasses.replace(base, optimizer="sgd", lr=1.0, batch_size=32, loss="focal")
    assert isinstance(recipe.lr, float) and isinstance(recipe.batch_size, int)
    assert base.with_hparams({"epochs": 2}, exclude=("epochs",)) == base
    assert base.with_hparams({}) is base


def tiny_data() -> DatasetSplits:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 1, 16)).astype(np.float32)
    y = (x[:, 0, :8].sum(axis=1) > 0).astype(np.int64)
    return DatasetSplits(
        name="tiny",
        x_train=x[:64],
        y_train=y[:64],
        x_valid=x[64:],
        y_valid=y[64:],
        x_test=x[64:],
        y_test=y[64:],
        num_classes=2,
    )


def test_standalone_trains_each_trial_with_its_hparams(monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.evaluators import standalone

    space = MacroSpace(layers=2, channels=4)
    evaluator = StandaloneEvaluator(
        space=space, data=tiny_data(), recipe=TrainRecipe(epochs=1, batch_size=16), device="cpu"
    )
    used: list[tuple[TrainRecipe, int]] = []
    real = standalone.train_from_scratch

    def spy(*args, **kwargs):
        used.append((args[5], kwargs["seed"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(standalone, "train_from_scratch", spy)
    arch = space.sample(np.random.default_rng(0))
    hparams = [{}, {"optimizer": "sgd", "lr": 0.05, "momentum": 0.5, "loss": "focal", "mine": 3}]
    results = evaluator.evaluate([arch, arch], hparams)
    assert [r.state.value for r in results] == ["COMPLETE", "COMPLETE"]
    assert used[0][0] == evaluator.recipe
    assert used[1][0] == dataclasses.replace(
        evaluator.recipe, optimizer="sgd", lr=0.05, momentum=0.5, loss="focal"
    )
    assert used[0][1] == used[1][1]  # the per-trial seed depends on the architecture alone
    assert results[0].metrics["train_loss"] != results[1].metrics["train_loss"]
    with pytest.raises(ValueError, match="2 architectures but 1 hparams"):
        evaluator.evaluate([arch, arch], [{}])


def test_a_model_at_chance_after_epoch_one_restarts_with_a_smaller_lr() -> None:
    """MetaQNN's recipe: no better than chance after the first epoch -> lr x 0.4, restart."""
    from nas.architecture import Architecture
    from nas.datasets import load_dataset
    from nas.evaluators.standalone import StandaloneEvaluator
    from nas.spaces import MacroSpace
    from nas.training import TrainRecipe

    space = MacroSpace(layers=2, channels=4, reductions=[1])
    arch = Architecture(space.name, (0,) * len(space.decisions()))
    data = load_dataset("digits", seed=0)
    # An absurd learning rate keeps the first epoch at chance; each restart divides it by 2.5.
    recipe = TrainRecipe(epochs=1, batch_size=64, optimizer="sgd", lr=100.0, momentum=0.0)
    evaluator = StandaloneEvaluator(
        space=space, data=data, recipe=recipe, restart_below_chance=True, max_restarts=5
    )
    result = evaluator.evaluate([arch])[0]
    assert result.metrics["lr_restarts"] >= 1
    plain = StandaloneEvaluator(space=space, data=data, recipe=recipe)
    assert plain.evaluate([arch])[0].metrics["lr_restarts"] == 0

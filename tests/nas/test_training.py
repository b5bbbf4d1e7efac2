from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.datasets import DatasetSplits
from nas.evaluators.standalone import StandaloneEvaluator
from nas.models import build_model
from nas.spaces import MacroSpace, MetaQNNSpace, MicroSpace, MlpSpace, SearchSpace
from nas.training import FocalLoss, TrainRecipe, count_flops, focal_loss, make_loss


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


# --- the global RNG: trials seed their own and leave the caller's as it was --------------------
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def train_once(device: torch.device, global_seed: int) -> tuple[nn.Module, float]:
    """One ``train_from_scratch`` with dropout (which draws from torch's global RNG) after the
    caller seeded the global RNG with ``global_seed``."""
    from nas.training import train_from_scratch

    space = MacroSpace(layers=2, channels=4, dropout=0.5)
    data = tiny_data()
    arch = space.sample(np.random.default_rng(0))
    train = (torch.from_numpy(data.x_train).to(device), torch.from_numpy(data.y_train).to(device))
    torch.manual_seed(global_seed)
    recipe = TrainRecipe(epochs=2, batch_size=16)
    shape, classes = data.input_shape, data.num_classes
    return train_from_scratch(space, arch, shape, classes, train, recipe, seed=7, device=device)


def test_train_from_scratch_is_seeded_and_leaves_the_global_rng_as_it_was() -> None:
    cpu = torch.device("cpu")
    torch.manual_seed(1)
    before = torch.random.get_rng_state()
    model, loss = train_once(cpu, global_seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)  # dropout drew from its own RNG
    # Dropout follows the trial's seed, not whatever the caller seeded.
    again, loss_again = train_once(cpu, global_seed=2)
    assert loss == loss_again
    for (key, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_trials_training_beside_each_other_in_threads_train_as_when_alone(
    time_left: Callable[..., float],
) -> None:
    """The inline backend runs jobs in threads of one process, sharing torch's global RNG: a
    trial's weights and dropout must follow from its seed alone, whatever runs beside it (here
    the same trial twice, and a thread that keeps seeding and drawing from the global RNG)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    cpu = torch.device("cpu")
    alone, alone_loss = train_once(cpu, global_seed=1)
    stop = threading.Event()

    def hammer() -> None:
        i = 0
        while not stop.is_set():
            torch.manual_seed(i)
            torch.rand(64)
            nn.Linear(8, 8)  # module init draws from the global RNG too
            i += 1

    hammering = threading.Thread(target=hammer)
    hammering.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            runs = [pool.submit(train_once, cpu, 2) for _ in range(2)]
            results = [run.result(timeout=time_left()) for run in runs]
    finally:
        stop.set()
        hammering.join(timeout=time_left(10))
    for model, loss in results:
        assert loss == alone_loss
        for (key, a), b in zip(
            alone.state_dict().items(), model.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), key


def test_forked_rng_draws_are_immune_to_other_threads_and_equal_the_global_rngs(
    time_left: Callable[..., float],
) -> None:
    """Inside ``forked_rng(seed)`` this thread's draws (``nn.init``, ``torch.rand``, Tensor
    methods) give the seeded global RNG's numbers, even while another thread reseeds it."""
    import threading

    from nas.training import forked_rng

    def draws() -> tuple[torch.Tensor, ...]:
        return (torch.rand(3), nn.Linear(4, 2).weight.detach().clone(), torch.empty(5).normal_())

    torch.manual_seed(4)
    expected, expected_next = draws(), torch.rand(6)
    inside, other_done = threading.Event(), threading.Event()

    def reseed() -> None:
        inside.wait(timeout=time_left(10))
        torch.manual_seed(99)  # no lock: as third-party code would
        torch.rand(10)
        other_done.set()

    t = threading.Thread(target=reseed)
    t.start()
    with forked_rng(4) as generator:
        inside.set()
        assert other_done.wait(timeout=time_left(10))
        got = draws()
    t.join(timeout=time_left(10))
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b)
    # The yielded generator goes on where the global RNG would have.
    assert torch.equal(torch.rand(6, generator=generator), expected_next)


def test_forked_rng_seeds_inside_and_restores_outside_even_on_error() -> None:
    from nas.training import forked_rng

    before = torch.random.get_rng_state()
    with forked_rng(3):
        first = torch.rand(4)
    with pytest.raises(KeyError), forked_rng(3):
        assert torch.equal(torch.rand(4), first)
        raise KeyError
    assert torch.equal(torch.random.get_rng_state(), before)
    with forked_rng():  # not seeded: the caller's stream, then put back
        assert torch.equal(
            torch.rand(4), torch.rand(4, generator=torch.Generator().set_state(before))
        )
    assert torch.equal(torch.random.get_rng_state(), before)


def test_forked_rng_forks_and_seeds_every_cuda_device_only_where_cuda_is_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs without a GPU: which CUDA generators are forked and seeded, with CUDA faked."""
    import contextlib

    from nas.training import forked_rng

    forked: list[list[int]] = []
    seeded: list[int] = []

    def fake_fork(devices, device_type):
        assert device_type == "cuda"
        forked.append(list(devices))
        return contextlib.nullcontext()

    monkeypatch.setattr(torch.random, "fork_rng", fake_fork)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    with forked_rng(5, torch.device("cuda:1")):  # torch seeds every device, so all are forked
        pass
    with forked_rng(6, torch.device("cpu")):  # a CPU trial neither starts CUDA nor seeds it
        pass
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with forked_rng(7, torch.device("cpu")):  # CUDA already running: kept as it was too
        pass
    assert forked == [[0, 1], [], [0, 1]]
    assert seeded == [5, 7]


def test_standalone_constraint_figures_leave_the_global_rng_as_it_was() -> None:
    space = MacroSpace(layers=2, channels=4)
    evaluator = StandaloneEvaluator(
        space=space, data=tiny_data(), recipe=TrainRecipe(), device="cpu"
    )
    archs = [space.sample(np.random.default_rng(i)) for i in range(2)]
    before = torch.random.get_rng_state()
    figures = evaluator.constraint_figures(archs, ["params"])
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(f["params"] > 0 for f in figures)


@needs_cuda
def test_trials_on_a_gpu_leave_the_global_cuda_rng_as_it_was() -> None:
    from nas.training import forked_rng

    cuda = torch.device("cuda")
    torch.manual_seed(1)
    before, before_cuda = torch.random.get_rng_state(), torch.cuda.get_rng_state_all()
    train_once(cuda, global_seed=1)
    space = MacroSpace(layers=2, channels=4)
    evaluator = StandaloneEvaluator(
        space=space, data=tiny_data(), recipe=TrainRecipe(), device="cuda"
    )
    evaluator.constraint_figures([space.sample(np.random.default_rng(0))], ["params"])
    assert torch.equal(torch.random.get_rng_state(), before)
    after_cuda = torch.cuda.get_rng_state_all()
    assert len(after_cuda) == len(before_cuda)
    assert all(torch.equal(a, b) for a, b in zip(after_cuda, before_cuda, strict=True))
    # CUDA-side draws (dropout on the GPU) follow the trial's seed, whatever the caller's.
    draws = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        with forked_rng(7, cuda):
            draws.append(torch.rand(8, device=cuda).cpu())
    assert torch.equal(draws[0], draws[1])


@pytest.mark.parametrize(
    ("space", "input_shape"),
    [
        (MacroSpace(layers=3, channels=4), (1, 40)),
        (MicroSpace(cells=1, nodes=2, stages=2, channels=4), (1, 40)),
        (MlpSpace(max_layers=2), (64,)),
        (MetaQNNSpace(max_layers=3, input_size=40, channels=4), (1, 40)),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_count_flops_totals_as_torchs_flop_counter(
    space: SearchSpace, input_shape: tuple[int, ...]
) -> None:
    device = torch.device("cpu")
    for seed in range(3):
        model = build_model(space, space.sample(np.random.default_rng(seed)), input_shape, 10)
        with torch.no_grad(), FlopCounterMode(display=False) as reference:
            model.eval()(torch.zeros(1, *input_shape))
        assert count_flops(model, input_shape, device) == reference.get_total_flops() > 0


def test_count_flops_hooks_no_module_of_another_thread() -> None:
    """torch's ``FlopCounterMode`` registers forward hooks on every module of the process
    while it counts: a concurrent job's ENAS policy step ran them and its backward failed
    ("Expected gradient function to be set"). Counting must touch only this thread."""
    seen: list[int] = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(len(nn.modules.module._global_forward_pre_hooks))
            return self.linear(x)

    assert count_flops(Probe(), (4,), torch.device("cpu")) == 2 * 4 * 2
    assert seen == [0]

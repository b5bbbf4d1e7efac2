"""The shared-weight evaluator's ranking remedies: BatchNorm recalibration and the uniform
and strict-fair warm-ups (``nas.evaluators.shared``)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from nas.architecture import Architecture
from nas.datasets import DatasetSplits, load_dataset
from nas.errors import SpecError
from nas.evaluators.shared import SharedWeightConfig, SharedWeightEvaluator
from nas.spaces import MacroSpace
from nas.training import TooLargeError, accuracy
from workers.search import parse_spec

SPACE = MacroSpace(layers=3, channels=4)


@pytest.fixture(scope="module")
def data() -> DatasetSplits:
    return load_dataset("mnist1d", seed=0, num_samples=400)


def _evaluator(data: DatasetSplits, **config: Any) -> SharedWeightEvaluator:
    return SharedWeightEvaluator(
        space=SPACE, data=data, config=SharedWeightConfig(batch_size=32, **config), seed=0
    )


def _trained(data: DatasetSplits, **config: Any) -> SharedWeightEvaluator:
    ev = _evaluator(data, **config)
    rng = np.random.default_rng(1)
    ev.train_epoch(lambda: SPACE.sample(rng))
    return ev


def test_recalibrated_score_is_the_childs_accuracy_under_its_own_statistics(
    data: DatasetSplits,
) -> None:
    ev = _trained(data, bn_recalibration=3)
    arch = Architecture(SPACE.name, (0, 1, 0, 2, 1, 1), SPACE.version)  # convolutions
    # The reference: the child cut out of the supernet, its BN statistics the cumulative
    # average over the same three training minibatches, scored in eval mode.
    child = ev.supernet.extract_child(arch)
    for m in child.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    child.train()
    x, _ = ev._train
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for i in range(3):
            child(x[order[i * 32 : (i + 1) * 32]])
        child.eval()
        expected = accuracy(child, *ev._valid)
    assert ev.score_full([arch]) == [pytest.approx(expected)]
    plain = _trained(data).score_full([arch])
    assert plain != ev.score_full([arch])  # batch statistics score it differently


def test_recalibration_leaves_training_and_scores_of_other_children_alone(
    data: DatasetSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two trainings compared: on CUDA only deterministic cuDNN algorithms give equal losses.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    recal, plain = _trained(data, bn_recalibration=2), _trained(data)
    archs = [SPACE.sample(np.random.default_rng(s)) for s in range(3)]
    first = recal.score_full(archs)
    assert recal.score_full(archs[::-1]) == first[::-1]  # a child's score is its own
    assert all(m.training and m.momentum == 0.1 for m in recal._batch_norms)
    rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)
    a = recal.train_epoch(lambda: SPACE.sample(rng_a))
    b = plain.train_epoch(lambda: SPACE.sample(rng_b))
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)


def test_warmup_epochs_give_uniform_children_and_resume_exactly(data: DatasetSplits) -> None:
    ev = _evaluator(data, warmup_epochs=1)
    assert ev.in_warmup
    reference = np.random.default_rng(0)
    assert [ev.uniform_child() for _ in range(3)] == [SPACE.sample(reference) for _ in range(3)]
    buffer = io.BytesIO()
    torch.save(ev.state_dict(), buffer)
    expected = [ev.uniform_child() for _ in range(3)]
    resumed = _evaluator(data, warmup_epochs=1)
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu"))
    assert [resumed.uniform_child() for _ in range(3)] == expected
    rng = np.random.default_rng(0)
    ev.train_epoch(lambda: SPACE.sample(rng))
    assert not ev.in_warmup
    assert not _evaluator(data).in_warmup  # off by default


# --- strict-fair warm-up steps (FairNAS) ---------------------------------------------------
def test_a_fair_step_is_one_optimizer_step_from_the_childrens_summed_gradients(
    data: DatasetSplits,
) -> None:
    """One minibatch (the whole split): the fair step's weights are those of one clipped SGD
    step on the sum of the K children's gradients, not of K steps one after another."""
    config = SharedWeightConfig(batch_size=512, warmup_epochs=1, warmup_sampling="fair")
    ev = SharedWeightEvaluator(space=SPACE, data=data, config=config, seed=0)
    assert ev.fair_warmup
    children = ev.fair_children()
    assert len(children) == SPACE.fair_k == 6

    def fresh() -> SharedWeightEvaluator:
        return SharedWeightEvaluator(space=SPACE, data=data, config=config, seed=0)

    def reference(one_step: bool) -> dict[str, torch.Tensor]:
        ref = fresh()
        x, y = ref._train
        order = torch.randperm(len(y), generator=ref.generator)
        for group in ref.optimizer.param_groups:
            group["lr"] = ref.learning_rate(0.0)
        ref.supernet.train()
        ref.optimizer.zero_grad(set_to_none=True)
        for arch in children:
            ref.loss_fn(ref.supernet(x[order], arch), y[order]).backward()
            if not one_step:
                ref.optimizer.step()
                ref.optimizer.zero_grad(set_to_none=True)
        if one_step:
            params = [p for p in ref.supernet.parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, ref.config.grad_clip)
            ref.optimizer.step()
        return {k: v.detach() for k, v in ref.supernet.named_parameters()}

    stats = ev.train_epoch(lambda: children)
    assert stats["skipped_steps"] == 0
    trained = dict(ev.supernet.named_parameters())
    summed, sequential = reference(one_step=True), reference(one_step=False)
    for name, value in trained.items():
        assert torch.allclose(value, summed[name], atol=1e-6), name
    assert any(not torch.allclose(trained[n], sequential[n], atol=1e-4) for n in trained)
    assert fresh().train_epoch(list)["skipped_steps"] == 1  # no child: no step


def test_fair_warmup_resumes_exactly(data: DatasetSplits) -> None:
    config = SharedWeightConfig(batch_size=128, warmup_epochs=2, warmup_sampling="fair")
    ev = SharedWeightEvaluator(space=SPACE, data=data, config=config, seed=0)
    ev.train_epoch(ev.fair_children)
    buffer = io.BytesIO()
    torch.save(ev.state_dict(), buffer)
    expected_next = ev.fair_children()  # the draw the resumed evaluator must repeat
    ev.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu"))
    ev.train_epoch(ev.fair_children)
    resumed = SharedWeightEvaluator(space=SPACE, data=data, config=config, seed=5)
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu"))
    assert resumed.fair_children() == expected_next
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu"))
    resumed.train_epoch(resumed.fair_children)
    for (name, a), b in zip(
        ev.supernet.state_dict().items(), resumed.supernet.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not resumed.fair_warmup and resumed.epoch == 2


def test_warmup_sampling_is_uniform_by_default_and_checked() -> None:
    assert SharedWeightConfig().warmup_sampling == "uniform"
    with pytest.raises(ValidationError) as info:
        SharedWeightConfig(warmup_sampling="fiar")
    assert info.value.errors()[0]["loc"] == ("warmup_sampling",)


# --- few-shot split into sub-supernets -----------------------------------------------------
def test_after_the_split_a_child_trains_only_its_own_sub_supernet(data: DatasetSplits) -> None:
    ev = _evaluator(data, epochs=3, split_epoch=1)
    rng = np.random.default_rng(1)
    ev.train_epoch(lambda: SPACE.sample(rng))
    trained = {k: v.clone() for k, v in ev.supernet.state_dict().items()}
    ev.split()
    assert ev.is_split and len(ev.supernet.parts) == 6
    for part in ev.supernet.parts:  # each starts as the trained supernet
        for name, value in part.state_dict().items():
            assert torch.equal(value, trained[name]), name
    arch = Architecture(SPACE.name, (2, 1, 0, 2, 1, 1), SPACE.version)
    ev.train_epoch(lambda: arch)
    changed = [
        any(not torch.equal(v, trained[k]) for k, v in part.state_dict().items())
        for part in ev.supernet.parts
    ]
    assert changed == [False, False, True, False, False, False]
    # Scores run on the child's own sub-supernet: equal to its part's forward.
    x, _ = ev._valid
    with ev._scoring():
        assert torch.equal(ev.supernet(x, arch), ev.supernet.parts[2](x, arch))
    assert ev.score_full([arch])[0] == pytest.approx(
        accuracy(lambda v: ev.supernet.parts[2](v, arch), *ev._valid, batch_size=256)
    )


def test_a_split_supernet_resumes_exactly(data: DatasetSplits) -> None:
    def run(ev: SharedWeightEvaluator, epochs: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            ev.train_epoch(lambda: SPACE.sample(rng))

    ev = _evaluator(data, epochs=4, split_epoch=1)
    run(ev, 2, 1)
    assert ev.is_split
    buffer = io.BytesIO()
    torch.save(ev.state_dict(), buffer)
    run(ev, 1, 2)
    resumed = _evaluator(data, epochs=4, split_epoch=1)
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), map_location="cpu"))
    assert resumed.is_split
    run(resumed, 1, 2)
    for (name, a), b in zip(
        ev.supernet.state_dict().items(), resumed.supernet.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    # And an unsplit checkpoint loads into an unsplit evaluator, splitting when its epoch comes.
    fresh = _evaluator(data, epochs=4, split_epoch=3)
    run(fresh, 1, 1)
    again = _evaluator(data, epochs=4, split_epoch=3)
    again.load_state_dict(fresh.state_dict())
    assert not again.is_split


def test_split_epoch_is_off_by_default_and_checked() -> None:
    assert SharedWeightConfig().split_epoch == 0
    with pytest.raises(ValidationError) as info:
        SharedWeightConfig(split_epoch=-1)
    assert info.value.errors()[0]["loc"] == ("split_epoch",)


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        ({"lr_min": 1.0, "lr_max": 0.01}, "lr_min", "above lr_max"),
        ({"warmup_epochs": 5, "epochs": 2}, "warmup_epochs", "more than the search's epochs"),
        ({"top_k": 5, "derive_samples": 2}, "top_k", "at most derive_samples"),
        ({"warmup_sampling": "fair"}, "warmup_sampling", "warmup_epochs is 0"),
    ],
)
def test_settings_that_contradict_each_other_are_refused_at_the_field(
    settings: dict[str, Any], field: str, says: str
) -> None:
    """Each was accepted and one of the two silently won (a warm-up longer than the search,
    a schedule annealing upwards, fair sampling of no epochs)."""
    spec = {
        "name": "c",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4},
        "controller": {"name": "enas"},
        "evaluator": {"name": "shared-weights", **settings},
        "budget": {"minutes": 1},
    }
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    (problem,) = info.value.errors
    assert list(problem["loc"]) == ["evaluator", field] and says in problem["msg"], problem


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("lr_t0", 2**62, 10_000),
        ("lr_t_mul", 2**62, 16),
        ("rewards_per_epoch", 2**63 - 1, 1_000_000),
    ],
)
def test_schedule_and_reward_settings_are_bounded(field: str, value: int, limit: int) -> None:
    """They had no upper bound: 2**63 - 1 rewards per epoch was accepted."""
    with pytest.raises(ValidationError) as info:
        SharedWeightConfig(**{field: value})
    [error] = info.value.errors()
    assert error["loc"] == (field,) and error["ctx"]["le"] == limit
    SharedWeightConfig(**{field: limit})


def test_a_supernet_that_cannot_fit_in_free_memory_is_refused_before_it_is_built() -> None:
    """A 48 x 1024 supernet at batch 65,536 was built, taking the server's process to 5 GB
    and beyond. Measured on torch's meta device first: said at once, nothing allocated."""
    data = load_dataset("digits")
    with pytest.raises(TooLargeError, match=r"^the supernet needs about \d+\.\d GiB to train"):
        SharedWeightEvaluator(
            space=MacroSpace(layers=32, channels=1024),  # about 185 GiB
            data=data,
            config=SharedWeightConfig(batch_size=65_536),
        )

"""Few-shot classification: the metric-based learners' arithmetic (Prototypical and
Matching Networks), the gradient-based learners on episodes, Conv-4 in a conv space, the
spec checks and a search end to end."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from nas.datasets import load_tasks
from nas.datasets.tasks import TaskBatch, TaskDistribution
from nas.errors import SpecError
from nas.evaluators.matching import MatchingLearner
from nas.evaluators.protonet import PrototypicalLearner
from nas.metalearning import FunctionalNet, MetaLearner, maml_gradient, meta_loss
from nas.spaces import MetaQNNSpace
from nas.spec import load_spec_file
from nas.trial import TrialState
from tests.conftest import REPO
from workers.search import SearchLoop, parse_spec

GLYPHS: dict[str, Any] = {"name": "glyphs", "classes": 15, "samples": 6, "size": 10, "ways": 3}
SPACE: dict[str, Any] = {
    "name": "metaqnn",
    "max_layers": 3,
    "input_size": 10,
    "channels": 8,
    "kernels": [3],
    "pools": [2],
    "fc_units": [],
}


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()  # the meta-learning evaluators use one
    yield
    torch.set_num_threads(threads)


def _identity_net(width: int) -> FunctionalNet:
    layer = nn.Linear(width, width)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(width))
        layer.bias.zero_()
    return FunctionalNet(layer, "cross_entropy")


def test_prototypes_and_squared_distances() -> None:
    net = _identity_net(2)
    learner = PrototypicalLearner(net, ways=2)
    sx = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
    sy = torch.tensor([0, 0, 1, 1])
    qx = torch.tensor([[1.0, 1.0]])
    logp = learner.log_probs(learner.params, {}, sx, sy, qx)
    # prototypes (1, 0) and (0, 5): squared distances 1 and 17
    expected = torch.log_softmax(torch.tensor([[-1.0, -17.0]]), dim=-1)
    torch.testing.assert_close(logp, expected)


def test_matching_is_a_cosine_attention_vote_and_fce_reads_the_set() -> None:
    net = _identity_net(2)
    learner = MatchingLearner(net, ways=2, width=2, cosine_scale=2.0)
    sx = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    sy = torch.tensor([0, 1, 1])
    qx = torch.tensor([[2.0, 0.0]])
    cos = torch.tensor([1.0, 0.0, 1 / math.sqrt(2)])
    attention = torch.softmax(2.0 * cos, dim=0)
    expected = torch.log(torch.stack([attention[0], attention[1] + attention[2]]))[None]
    torch.testing.assert_close(learner.log_probs(learner.params, {}, sx, sy, qx), expected)
    fce = MatchingLearner(net, ways=2, width=2, fce=True, fce_steps=3)
    assert set(fce.extra) == {
        f"{cell}.{w}"
        for cell in ("support_fwd", "support_bwd", "query")
        for w in ("w_ih", "w_hh", "bias")
    }
    with_context = fce.log_probs(fce.params, fce.extra, sx, sy, qx)
    assert not torch.allclose(with_context, expected)
    # the support set's order reaches a query through the LSTMs (it does not without them)
    order = torch.tensor([2, 0, 1])
    shuffled = fce.log_probs(fce.params, fce.extra, sx[order], sy[order], qx)
    assert not torch.allclose(shuffled, with_context)


def test_conv4_of_the_maml_paper_is_a_metaqnn_architecture() -> None:
    space = MetaQNNSpace(max_layers=9, input_size=28, channels=64, kernels=[3], pools=[2])
    conv4 = space.from_labels(["C(3,64)", "P(2)"] * 4 + ["SM"])
    net = space.build_network((1, 28, 28), 5, conv4)
    kinds = [type(m).__name__ for m in net.body]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 4 + ["Flatten"]
    convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) and c.out_channels == 64 for c in convs)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 5)  # the N-way head
    assert net.drop_classifier() == 64 * 2 * 2  # 28 -> 14 -> 7 -> 4 -> 2
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 256)  # the embedding


@functools.cache
def _glyphs() -> TaskDistribution:
    return load_tasks("glyphs", **{k: v for k, v in GLYPHS.items() if k != "name"})


def _episodes(n: int, seed: int = 0, split: str = "train") -> TaskBatch:
    tasks = _glyphs()
    return tasks.sample(tasks.stream(split, seed), n_tasks=n, shots=1, queries=2, split=split)


def _conv_net(seed: int = 0) -> FunctionalNet:
    space = MetaQNNSpace(
        max_layers=3, input_size=10, channels=8, kernels=[3], pools=[2], size_bins=[5]
    )
    arch = space.from_labels(["C(3,8)", "P(2)", "SM"])
    torch.manual_seed(seed)
    return FunctionalNet(space.build_network((1, 10, 10), 3, arch), "cross_entropy")


def test_classification_maml_batches_tasks_with_vmap_and_batch_norm_per_task() -> None:
    net = _conv_net()
    assert not list(net.module.buffers())  # no running statistics: each call's batch
    params = net.initial_params()
    tasks = _episodes(3)
    for first_order in (False, True):
        fast = meta_loss(net, params, tasks, steps=1, lr=0.4, first_order=first_order)
        slow = meta_loss(
            net, params, tasks, steps=1, lr=0.4, first_order=first_order, vectorize=False
        )
        torch.testing.assert_close(fast, slow)
    learner = MetaLearner(net, algorithm="maml", inner_steps=1, inner_lr=0.4)
    scores = learner.scores(_episodes(6, split="valid"), [0, 3])
    assert scores.shape == (6, 2, 2)
    assert bool(((scores[..., 1] >= 0) & (scores[..., 1] <= 100)).all())


def test_meta_training_learns_new_classes() -> None:
    """ProtoNet on tiny glyphs: the query loss on meta-validation tasks (classes never
    trained on) falls well below the untrained embedding's, accuracy does not fall."""
    torch.manual_seed(0)
    net = _conv_net(1)
    net.module.drop_classifier()
    learner = PrototypicalLearner(net, ways=3, outer_lr=3e-3)
    valid = _episodes(30, seed=1, split="valid")
    before = learner.scores(valid, [0])[:, 0].mean(dim=0)
    for i in range(15):
        learner.step(_episodes(4, seed=100 + i))
    after = learner.scores(valid, [0])[:, 0].mean(dim=0)
    assert float(after[0]) < 0.7 * float(before[0]), (before, after)
    assert float(after[1]) >= float(before[1]), (before, after)


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "fewshot",
        "dataset": GLYPHS,
        "space": SPACE,
        "controller": {"name": "random"},
        "evaluator": {
            "name": "protonet",
            "meta_iterations": 4,
            "meta_batch": 2,
            "shots": 1,
            "queries": 2,
            "eval_shots": 1,
            "eval_points": 2,
            "val_tasks": 6,
            "test_tasks": 10,
        },
        "objective": {"metric": "meta_val_accuracy", "direction": "maximize"},
        "budget": {"trials": 3},
        "seed": 2,
    }
    return {**spec, **changes}


def _problems(spec: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return {tuple(e["loc"]): e["msg"] for e in info.value.errors}


def test_specs_say_what_classification_needs() -> None:
    sine = {
        "dataset": {"name": "sinusoid"},
        "space": {"name": "mlp"},
        "objective": {"metric": "meta_val_accuracy", "direction": "maximize"},
    }
    problems = _problems(_spec(**sine))
    assert problems[("dataset", "name")] == (
        "evaluator 'protonet' classifies: it needs N-way classification episodes "
        "(valid: episodes, glyphs); 'sinusoid' is a regression task distribution"
    )
    # Only the dataset: MAML's default objective on mnist1d (meta_val_accuracy, for a
    # classification dataset) was refused too, as not reported (valid: meta_val_mse...)
    mnist1d = _spec(dataset={"name": "mnist1d"}, objective=None)
    mnist1d["evaluator"] = {"name": "maml", "meta_iterations": 2}
    del mnist1d["objective"]
    assert list(_problems(mnist1d)) == [("dataset", "name")]
    problems = _problems(_spec(objective={"metric": "meta_val_mse", "direction": "minimize"}))
    assert (
        "does not report 'meta_val_mse'; valid: meta_val_accuracy"
        in problems[("objective", "metric")]
    )
    problems = _problems(_spec(objective={"metric": "meta_val_accuracy", "direction": "minimize"}))
    assert problems[("objective", "direction")] == (
        "meta_val_accuracy is an accuracy: its direction is maximize"
    )
    problems = _problems(_spec(space={**SPACE, "input_size": 28}))
    assert "cannot take the inputs of 'glyphs'" in problems[("space", "name")]
    # more support + query examples than a class has: every task failed at the job's start
    defaults = _problems(_spec(evaluator={"name": "maml"}))  # 10 + 10 and 5 + 15 of 6
    assert defaults[("evaluator", "shots")] == (
        "a task takes 10 support + 10 query examples of each class; 'glyphs' has 6 of each "
        "(its samples): lower them, or raise the dataset's samples"
    )
    # (eval_points at its default, the larger: named, as the field to lower)
    assert (
        "5 support + 15 query examples of each class (eval_points unset: 15); "
        in (defaults[("evaluator", "eval_points")])
    )
    # the query count named where it was given and is the larger (the probe: queries 10
    # with shots 1 named shots)
    many = _problems(_spec(evaluator={"name": "maml", "shots": 1, "queries": 10}))
    assert "1 support + 10 query" in many[("evaluator", "queries")]
    assert ("evaluator", "shots") not in many
    small = {"shots": 1, "queries": 2, "eval_shots": 1, "eval_points": 2}
    maml = _spec(evaluator={"name": "maml", "eval_steps": 3, **small})
    assert parse_spec(maml).spec.evaluator.name == "maml"


def test_a_fewshot_search_runs_end_to_end() -> None:
    outcome = SearchLoop(parse_spec(_spec())).run()
    assert outcome is not None and len(outcome.trials) == 3
    assert all(t.result.state is TrialState.COMPLETE for t in outcome.trials)
    for trial in outcome.trials:
        assert set(trial.result.metrics) == {"meta_val_accuracy", "meta_train_loss", "params"}
        assert 0 <= trial.result.objective <= 100  # type: ignore[operator]
    assert outcome.best is not None
    assert outcome.best.result.objective == max(t.result.objective for t in outcome.trials)  # type: ignore[type-var]
    final = outcome.final_metrics
    assert set(final) == {"meta_test_accuracy", "meta_test_accuracy_ci95"}
    assert 0 <= final["meta_test_accuracy"] <= 100 and final["meta_test_accuracy_ci95"] >= 0


def test_one_meta_test_task_gives_a_mean_and_no_interval() -> None:
    """One task's scores have no spread to tell: its 95% interval said +- 0 (a standard
    deviation over N, 0 for N = 1)."""
    spec = _spec(budget={"trials": 1})
    spec["evaluator"]["test_tasks"] = 1
    outcome = SearchLoop(parse_spec(spec)).run()
    assert outcome is not None
    assert set(outcome.final_metrics) == {"meta_test_accuracy"}


def test_the_example_spec_is_valid() -> None:
    resolved = parse_spec(load_spec_file(REPO / "examples/glyphs-protonet.yaml"))
    spec = resolved.spec
    assert (spec.dataset.name, spec.space.name, spec.evaluator.name) == (
        "glyphs",
        "metaqnn",
        "protonet",
    )
    assert resolved.hparams is not None and "outer_lr" in resolved.hparams


def test_second_order_gradients_through_batch_norm_match_finite_differences() -> None:
    """PyTorch's fused batch norm has wrong second derivatives under torch.func; the
    learners' batch norm (``BatchStatNorm``) is exact: MAML's meta-gradient through two
    inner steps of a conv -> BN -> pool network matches central differences, with ``vmap``
    and with a loop alike."""
    space = MetaQNNSpace(
        max_layers=3, input_size=6, channels=4, kernels=[3], pools=[2], size_bins=[3]
    )
    torch.manual_seed(0)
    module = space.build_network((1, 6, 6), 3, space.from_labels(["C(3,4)", "P(2)", "SM"]))
    net = FunctionalNet(module.double(), "cross_entropy")
    params = net.initial_params()
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([[0, 1, 2]] * 2)
    tasks = TaskBatch(
        torch.randn(2, 3, 1, 6, 6, generator=g, dtype=torch.float64),
        labels,
        torch.randn(2, 6, 1, 6, 6, generator=g, dtype=torch.float64),
        labels.repeat(1, 2),
    )
    _, grads = maml_gradient(net, params, tasks, steps=2, lr=0.4)
    _, looped = maml_gradient(net, params, tasks, steps=2, lr=0.4, vectorize=False)
    eps = 1e-6
    for name, value in params.items():
        torch.testing.assert_close(grads[name], looped[name])
        for i in range(min(value.numel(), 3)):
            plus = {k: v.clone() for k, v in params.items()}
            minus = {k: v.clone() for k, v in params.items()}
            plus[name].view(-1)[i] += eps
            minus[name].view(-1)[i] -= eps
            numeric = (
                meta_loss(net, plus, tasks, steps=2, lr=0.4)
                - meta_loss(net, minus, tasks, steps=2, lr=0.4)
            ) / (2 * eps)
            assert abs(float(numeric) - float(grads[name].view(-1)[i])) < 1e-6, name


@pytest.mark.parametrize(
    ("evaluator", "space", "loc", "message"),
    [
        ({"name": "matching", "fce_steps": 3}, {}, ("evaluator", "fce_steps"), "fce: true only"),
        ({"name": "metasgd", "eval_lr": 0.1}, {}, ("evaluator", "eval_lr"), "rates it learned"),
        (
            {"name": "protonet"},
            {"max_fc": 0, "fc_units": [16]},
            ("space", "fc_units"),
            "max_fc 0 allows no FC layers",
        ),
    ],
)
def test_a_setting_the_method_would_not_use_is_refused_at_its_field(
    evaluator: dict[str, Any], space: dict[str, Any], loc: tuple[str, ...], message: str
) -> None:
    from tests.nas.test_evaluator_contract import _fewshot_spec

    params = dict(evaluator)
    spec = _fewshot_spec(params.pop("name"), **params)
    spec["space"].update(space)
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    found = {tuple(e["loc"]): e["msg"] for e in info.value.errors}
    assert message in found.get(loc, ""), found
    for name in ("matching", "metasgd"):  # stored specs, every default filled in, pass
        stored = parse_spec(_fewshot_spec(name)).to_dict()
        assert parse_spec(stored).to_dict() == stored


def test_a_job_stored_before_those_checks_still_loads() -> None:
    """The checks of settings that would be ignored run at submit only: a job stored with
    one of those settings (accepted then) still builds when it resumes or exports."""
    from pydantic import ValidationError

    from controllers.metaqnn import MetaQNNControllerConfig
    from nas.errors import AT_SUBMIT
    from nas.evaluators.matching import MatchingConfig
    from nas.evaluators.meta import MetaSgdConfig
    from nas.evaluators.pretrain import PretrainConfig
    from nas.spaces.metaqnn import MetaQNNConfig

    for config, params in (
        (MatchingConfig, {"fce_steps": 3}),
        (PretrainConfig, {"shots": 5, "meta_batch": 8}),
        (MetaSgdConfig, {"eval_lr": 0.1}),
        (MetaQNNConfig, {"max_fc": 0, "fc_units": [16]}),
        (MetaQNNControllerConfig, {"schedule": [[1.0, 5]], "total_models": 40}),
    ):
        config.model_validate(params)  # loads
        with pytest.raises(ValidationError):
            config.model_validate(params, context=AT_SUBMIT)  # refused at submit
    assert MetaQNNSpace.from_config({"max_fc": 0, "fc_units": [16]}).max_fc == 0


@pytest.mark.parametrize(("key", "value"), [("meta_batch", 5), ("shots", 5), ("queries", 3)])
def test_pretrain_refuses_the_episode_settings_it_would_ignore(key: str, value: int) -> None:
    """They were accepted and did nothing; their defaults, which a stored spec writes out,
    still load."""
    from tests.nas.test_evaluator_contract import _fewshot_spec

    spec = _fewshot_spec("pretrain")
    spec["evaluator"][key] = value
    with pytest.raises(SpecError) as info:
        parse_spec(spec, strict=True)
    [error] = info.value.errors
    assert tuple(error["loc"]) == ("evaluator", key)
    assert f"not on episodes: {key} does not apply" in error["msg"]
    stored = parse_spec(_fewshot_spec("pretrain")).to_dict()
    assert stored["evaluator"]["meta_batch"] == 25  # (the default, written out)
    parse_spec(stored, strict=True)


def test_pretrain_is_not_held_to_the_episode_sizes_it_does_not_draw() -> None:
    """Its meta-training draws minibatches, not episodes: a class of 6 examples was refused
    for the default 5 + 5 examples of a meta-training episode (``shots``), which do not
    apply to it; protonet, which draws them, is still refused."""
    from tests.nas.test_evaluator_contract import _fewshot_spec

    def unset_shots(name: str) -> dict[str, Any]:
        spec = _fewshot_spec(name)  # (6 examples per class, 1 + 2 at evaluation)
        for key in ("shots", "queries"):
            spec["evaluator"].pop(key, None)
        return spec

    parse_spec(unset_shots("pretrain"))
    with pytest.raises(SpecError) as info:
        parse_spec(unset_shots("protonet"))
    assert [tuple(e["loc"]) for e in info.value.errors] == [("evaluator", "shots")]


def test_pretrain_does_not_list_the_episode_settings_among_its_valid_fields() -> None:
    """An unknown field's message listed meta_batch, shots and queries as valid, each of
    which it then refuses."""
    from tests.nas.test_evaluator_contract import _fewshot_spec

    spec = _fewshot_spec("pretrain")
    spec["evaluator"]["epochs"] = 1
    with pytest.raises(SpecError) as info:
        parse_spec(spec, strict=True)
    [error] = info.value.errors
    assert error["msg"].startswith("unknown field; valid: meta_iterations, ")
    assert "finetune_steps" in error["msg"]
    assert not {"meta_batch", "shots", "queries"} & set(
        error["msg"].split("; valid: ")[1].split(", ")
    )


def test_a_space_without_a_network_names_only_spaces_that_take_the_tasks_inputs() -> None:
    """MAML on sinusoid with nb201 listed every trainable space as valid; the next answer
    then refused enas-macro for sinusoid's inputs: only mlp takes them."""
    problems = _problems(
        {
            "name": "sine",
            "dataset": {"name": "sinusoid"},
            "space": {"name": "nb201"},
            "controller": {"name": "random"},
            "evaluator": {"name": "maml", "meta_iterations": 2},
            "objective": {"metric": "meta_val_mse", "direction": "minimize"},
            "budget": {"trials": 1},
        }
    )
    assert problems[("space", "name")] == (
        "evaluator 'maml' trains networks; space 'nb201' has no trainable network here (valid: mlp)"
    )


def test_pretrain_takes_at_least_one_fine_tuning_step() -> None:
    """With finetune_steps 0 the new head stayed at zero: every query was class 0, a job
    scored chance and said nothing."""
    from tests.nas.test_evaluator_contract import _fewshot_spec

    spec = _fewshot_spec("pretrain", finetune_steps=0)
    with pytest.raises(SpecError) as info:
        parse_spec(spec, strict=True)
    [error] = info.value.errors
    assert error["loc"] == ("evaluator", "finetune_steps")
    assert "greater than or equal to 1" in error["msg"]

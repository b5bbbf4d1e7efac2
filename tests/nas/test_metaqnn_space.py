"""The ``metaqnn`` space (Baker et al. 2017): legal layer sequences, exact size, uniform
sampling, mutation, readable labels, and its network for 1-D and 2-D inputs."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from nas.architecture import Architecture
from nas.errors import InvalidArchitectureError, SpecError
from nas.models import build_model, build_supernet, count_parameters
from nas.spaces import SPACES, MetaQNNSpace, SearchSpace, create_space
from nas.spaces.metaqnn import MetaQNNNetwork, default_size_bins
from workers.search import parse_spec

SPACES_UNDER_TEST: dict[str, MetaQNNSpace] = {
    "default-1d40": MetaQNNSpace(),
    "L4-c8": MetaQNNSpace(max_layers=4, channels=8),
    "digits-8": MetaQNNSpace(max_layers=6, input_size=8, channels=16),
    "L12-nofc": MetaQNNSpace(max_layers=12, fc_units=[], pools=[3]),
    "L1": MetaQNNSpace(max_layers=1, input_size=4, channels=4),
}
over_spaces = pytest.mark.parametrize(
    "space", list(SPACES_UNDER_TEST.values()), ids=list(SPACES_UNDER_TEST)
)
seeds = st.integers(0, 2**32 - 1)
few = settings(max_examples=40, deadline=None)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def brute_force(space: MetaQNNSpace) -> list[tuple[int, ...]]:
    """Every legal choice sequence, by filtering the whole product (small spaces only)."""
    n = len(space.actions)
    out = []
    for choices in itertools.product(range(n), repeat=space.max_layers + 1):
        try:
            space.validate(Architecture(space.name, choices))
        except InvalidArchitectureError:
            continue
        out.append(choices)
    return out


def arch(space: MetaQNNSpace, *labels: str) -> Architecture:
    """An architecture from labels, unvalidated, padded with PAD."""
    choices = [space.decisions()[0].choices.index(label) for label in labels]
    choices += [space.pad] * (space.max_layers + 1 - len(choices))
    return Architecture(space.name, tuple(choices))


# --- registration and config ------------------------------------------------------------------
def test_registered_with_a_network() -> None:
    assert SPACES.get("metaqnn") is MetaQNNSpace
    assert MetaQNNSpace.network_class is MetaQNNNetwork
    assert MetaQNNSpace.trainable and not MetaQNNSpace.has_supernet
    space = create_space("metaqnn", max_layers=5, input_size=8)
    assert isinstance(space, MetaQNNSpace)
    assert type(space).from_config(space.config).config == space.config


def test_defaults_follow_the_paper_scaled_to_the_input() -> None:
    space = MetaQNNSpace()
    assert space.max_layers == 8 and space.kernels == (1, 3, 5)
    assert space.filters == (16, 32, 64)
    assert space.fc_units == (128, 64, 32) and space.max_fc == 2
    assert default_size_bins(32) == [8, 4]  # the paper's CIFAR-10 bins
    assert space.size_bins == (10, 5)  # MNIST-1D: 40 / 4, 40 / 8
    assert MetaQNNSpace(input_size=8).size_bins == (2, 1)
    labels = space.decisions()[0].choices
    assert labels[:3] == ("C(1,16)", "C(1,32)", "C(1,64)")
    assert labels[-5:] == ("FC(64)", "FC(32)", "GAP", "SM", "PAD")
    assert [d.name for d in space.decisions()] == [f"step{i}" for i in range(9)]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"kernels": [2, 3]}, "odd"),
        ({"pools": [5]}, "2 or 3"),
        ({"fc_units": [64, 64]}, "repeat"),
        ({"size_bins": [4, 8]}, "descending"),
        ({"max_layers": 0}, "max_layers"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_config_is_rejected(params: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        MetaQNNSpace.Config.model_validate(params)
    with pytest.raises(ValidationError, match=match):
        MetaQNNSpace(**params)


# --- the contract -------------------------------------------------------------------------------
@over_spaces
@few
@given(seed=seeds)
def test_sample_is_valid_and_terminates_once(space: MetaQNNSpace, seed: int) -> None:
    a = space.sample(np.random.default_rng(seed))
    space.validate(a)
    assert len(a.choices) == space.max_layers + 1
    labels = space.labels(a)
    assert labels[-1] == "SM" and labels[0].startswith("C(")
    assert sum(label in ("GAP", "SM") for label in labels[:-1]) <= 1


@over_spaces
def test_sample_depends_only_on_the_generator(space: MetaQNNSpace) -> None:
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    assert len({space.sample(np.random.default_rng(7)) for _ in range(3)}) == 1
    assert np.array_equal(np.random.get_state()[1], before)


def test_size_is_the_number_of_legal_sequences() -> None:
    for space in (
        MetaQNNSpace(max_layers=2, input_size=4, channels=4),
        MetaQNNSpace(max_layers=3, input_size=2, channels=4, kernels=[1], fc_units=[8, 4]),
    ):
        legal = brute_force(space)
        assert space.size() == len(legal) > 10


def test_sample_is_uniform_over_legal_architectures() -> None:
    space = MetaQNNSpace(max_layers=2, input_size=4, channels=4, kernels=[1], fc_units=[8])
    size = space.size()
    rng = np.random.default_rng(0)
    n = 300 * size
    counts = Counter(space.sample(rng).choices for _ in range(n))
    assert len(counts) == size  # every legal architecture is reached
    freq = np.array(list(counts.values())) / n
    assert freq == pytest.approx(1 / size, abs=4 * np.sqrt(1 / size / n * (1 - 1 / size)))


@over_spaces
@few
@given(seed=seeds)
def test_encode_decode_and_json_round_trip(space: MetaQNNSpace, seed: int) -> None:
    a = space.sample(np.random.default_rng(seed))
    vector = space.encode(a)
    assert vector.dtype == np.int64 and vector.shape == (space.max_layers + 1,)
    assert space.decode(vector) == a
    assert Architecture.from_json(a.to_json()) == a
    hot = space.one_hot(a)
    assert hot.shape == (len(space.actions) * (space.max_layers + 1),) and hot.sum() == len(vector)


@over_spaces
@few
@given(seed=seeds)
def test_mutate_stays_legal_and_changes_exactly_one_step(space: MetaQNNSpace, seed: int) -> None:
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    child = space.mutate(parent, rng)
    space.validate(child)
    changed = [
        i for i, (a, b) in enumerate(zip(parent.choices, child.choices, strict=True)) if a != b
    ]
    assert len(changed) == 1
    assert space.mutate(parent, np.random.default_rng(seed + 1)) == space.mutate(
        parent, np.random.default_rng(seed + 1)
    )


def test_mutation_reaches_layer_changes_and_the_terminal_swap() -> None:
    space = MetaQNNSpace(max_layers=4)
    parent = space.from_labels(["C(3,32)", "P(2)", "C(3,16)", "P(2)", "GAP"])
    children = {space.mutate(parent, np.random.default_rng(s)) for s in range(300)}
    labels = [space.labels(c) for c in children]
    assert any(lab[-2:] == ["P(2)", "SM"] for lab in labels)  # GAP -> SM (R is 10: small)
    assert any(lab[1] == "P(3)" for lab in labels)
    assert any(lab[0] == "C(5,64)" for lab in labels)


# --- validation names the illegal step ----------------------------------------------------
@pytest.mark.parametrize(
    "labels, step, match",
    [
        (["FC(64)", "SM"], "step0", "before the first convolution"),
        (["P(2)", "GAP"], "step0", "before the first convolution"),
        (["GAP"], "step0", "before the first convolution"),
        (["C(3,16)", "P(2)", "P(3)", "GAP"], "step2", "right after pooling"),
        (["C(3,16)", "FC(64)", "SM"], "step1", "FC needs <= 10"),
        (["C(3,16)", "SM"], "step1", "SM needs an FC layer or size <= 10"),
        (["C(3,16)", "P(2)", "P(2)"], "step2", "right after pooling"),
        (
            ["C(3,16)", "P(2)", "C(1,16)", "P(2)", "FC(64)", "C(3,16)", "SM"],
            "step5",
            "after a fully connected",
        ),
        (["C(3,16)", "P(2)", "C(1,16)", "P(2)", "FC(64)", "FC(128)", "SM"], "step5", "wider than"),
        (
            ["C(3,16)", "P(2)", "C(1,16)", "P(2)", "FC(64)", "GAP"],
            "step5",
            "GAP follows a conv or pool",
        ),
        (["C(3,16)", "GAP", "C(3,16)"], "step2", "after termination"),
        (["C(3,16)", "C(3,16)", "PAD", "GAP"], "step2", "PAD before a terminal"),
    ],
)
def test_validate_rejects_illegal_sequences(labels: list[str], step: str, match: str) -> None:
    space = MetaQNNSpace(max_layers=8)
    with pytest.raises(InvalidArchitectureError, match=match) as error:
        space.validate(arch(space, *labels))
    assert error.value.decision == step
    assert str(error.value).startswith(f"{step}: ")


def test_validate_rejects_pooling_at_size_one_kernels_above_r_and_too_many_fc() -> None:
    space = MetaQNNSpace(max_layers=8, input_size=4, channels=16)  # R: 4 -> 2 -> 1
    with pytest.raises(InvalidArchitectureError, match="representation size 1") as error:
        space.validate(arch(space, "C(3,4)", "P(2)", "C(1,4)", "P(2)", "C(1,4)", "P(2)", "GAP"))
    assert error.value.decision == "step5"
    with pytest.raises(InvalidArchitectureError, match="receptive field 3 exceeds") as error:
        space.validate(arch(space, "C(3,4)", "P(2)", "C(3,4)", "GAP"))
    assert error.value.decision == "step2"
    small = MetaQNNSpace(max_layers=6, input_size=4, fc_units=[16, 8], size_bins=[4])
    with pytest.raises(InvalidArchitectureError, match="max_fc=2") as error:
        small.validate(arch(small, "C(1,16)", "FC(16)", "FC(8)", "FC(8)", "SM"))
    assert error.value.decision == "step3"


def test_validate_enforces_the_depth_limit_and_the_length() -> None:
    space = MetaQNNSpace(max_layers=2)
    with pytest.raises(InvalidArchitectureError, match="beyond max_layers=2") as error:
        space.validate(arch(space, "C(3,16)", "C(3,16)", "C(3,16)"))
    assert error.value.decision == "step2"
    with pytest.raises(InvalidArchitectureError, match="expected 3 choices"):
        space.validate(Architecture("metaqnn", (0, 14)))
    with pytest.raises(InvalidArchitectureError, match="out of range") as error:
        space.validate(Architecture("metaqnn", (0, 99, 16)))
    assert error.value.decision == "step1"
    with pytest.raises(InvalidArchitectureError, match="space 'nb201'"):
        space.validate(Architecture("nb201", (0, 14, 16)))


def test_labels_describe_and_from_labels() -> None:
    space = MetaQNNSpace(max_layers=6)
    a = space.from_labels(["C(3,32)", "P(2)", "C(5,64)", "GAP"])
    assert space.labels(a) == ["C(3,32)", "P(2)", "C(5,64)", "GAP", "SM"]
    assert space.describe(a) == {"layers": ["C(3,32)", "P(2)", "C(5,64)", "GAP", "SM"]}
    assert space.from_labels(space.labels(a)) == a
    b = space.from_labels(["C(1,16)", "P(3)", "C(3,16)", "P(2)", "FC(128)", "FC(64)", "SM"])
    assert space.labels(b)[-3:] == ["FC(128)", "FC(64)", "SM"]
    with pytest.raises(InvalidArchitectureError, match="unknown layer 'C\\(7,16\\)'"):
        space.from_labels(["C(7,16)", "GAP"])


# --- the network ----------------------------------------------------------------------------
NETWORK_CASES = {
    "1d-40": (MetaQNNSpace(max_layers=6, channels=16, dropout=0.2), (1, 40)),
    "1d-23x2": (MetaQNNSpace(max_layers=5, input_size=23, channels=8), (2, 23)),
    "2d-8x8": (MetaQNNSpace(max_layers=6, input_size=8, channels=16), (1, 8, 8)),
    "2d-7x5": (MetaQNNSpace(max_layers=5, input_size=7, channels=8), (3, 7, 5)),
}


@pytest.mark.parametrize("case", list(NETWORK_CASES), ids=list(NETWORK_CASES))
def test_sampled_networks_build_and_run_forward(case: str) -> None:
    space, shape = NETWORK_CASES[case]
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(25)]
    archs += [space.mutate(a, rng) for a in archs[:10]]
    for a in archs:
        net = build_model(space, a, shape, 7)
        out = net(torch.randn(3, *shape))
        assert out.shape == (3, 7)
        assert count_parameters(net) > 0


def test_a_network_has_the_layers_of_its_labels() -> None:
    space = MetaQNNSpace(max_layers=6, channels=32)
    a = space.from_labels(["C(3,16)", "P(2)", "C(5,32)", "P(3)", "FC(64)", "SM"])
    net = build_model(space, a, (1, 40), 10)
    kinds = [type(m).__name__ for m in net.body]
    assert kinds == [
        "Conv1d",
        "BatchNorm1d",
        "ReLU",
        "MaxPool1d",
        "Conv1d",
        "BatchNorm1d",
        "ReLU",
        "MaxPool1d",
        "Flatten",
        "Linear",
        "ReLU",
    ]
    assert net.body[9].in_features == 32 * 10  # 40 -> 20 -> 10
    assert net.classifier.in_features == 64
    gap = build_model(space, space.from_labels(["C(3,16)", "GAP"]), (1, 40), 10)
    assert type(gap.body[-2]).__name__ == "AdaptiveAvgPool1d"
    assert gap.classifier.in_features == 16


def test_network_trains() -> None:
    space = MetaQNNSpace(max_layers=4, input_size=8, channels=16)
    a = space.from_labels(["C(3,16)", "P(2)", "C(3,16)", "GAP"])
    torch.manual_seed(0)
    net = build_model(space, a, (1, 8, 8), 2)
    x = torch.randn(64, 1, 8, 8)
    y = (x[:, 0, :4].mean(dim=(1, 2)) > x[:, 0, 4:].mean(dim=(1, 2))).long()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_the_space_says_which_input_shapes_fit_before_building() -> None:
    space = MetaQNNSpace(max_layers=4)  # input_size 40
    assert space.input_shape_problem((1, 40)) is None
    assert space.input_shape_problem((3, 40, 12)) is None  # the larger side counts
    problem = space.input_shape_problem((1, 8, 8))
    assert problem is not None and "set the space's input_size to 8" in problem
    assert "(C, L) for signals" in (space.input_shape_problem((40,)) or "")


def test_network_checks_the_input_size_and_has_no_supernet() -> None:
    space = MetaQNNSpace(max_layers=4)  # input_size 40
    a = space.from_labels(["C(3,16)", "GAP"])
    with pytest.raises(ValueError, match="set the space's input_size to 8"):
        build_model(space, a, (1, 8, 8), 10)
    with pytest.raises(ValueError, match="no shared-weight supernet"):
        build_supernet(space, (1, 40), 10)


def test_final_retraining_width_override_applies() -> None:
    from workers.final import final_space

    spec = parse_spec(
        {
            "name": "m",
            "dataset": {"name": "mnist1d"},
            "space": {"name": "metaqnn", "max_layers": 4, "channels": 16},
            "controller": {"name": "metaqnn", "total_models": 10},
            "evaluator": {"name": "standalone", "epochs": 1},
            "budget": {"trials": 10},
            "final": {"channels": 64},
        }
    )
    space: SearchSpace = create_space("metaqnn", **spec.space_params)
    wide = final_space(spec, space)
    assert isinstance(wide, MetaQNNSpace) and wide.filters == (16, 32, 64)
    a = space.from_labels(["C(3,16)", "GAP"])
    assert wide.labels(a) == ["C(3,64)", "GAP", "SM"]


@pytest.mark.parametrize(
    ("space", "match"),
    [
        # every first layer illegal: accepted, then the job failed on an IndexError
        ({"kernels": [41]}, "space.kernels: 41 exceeds input_size 40.*at most 40"),
        ({"kernels": [1, 3, 1_000_001]}, "space.kernels: 1000001 exceeds input_size 40"),
        # 100,000 kernels took minutes per sample, deaf to a cancel
        ({"kernels": list(range(1, 260, 2))}, "space.kernels: List should have at most 64"),
        ({"fc_units": list(range(1, 100))}, "space.fc_units: List should have at most 64"),
    ],
)
def test_a_space_no_walk_could_use_or_too_long_to_walk_is_refused_at_submit(
    space: dict, match: str
) -> None:
    spec = {
        "name": "q",
        "dataset": {"name": "mnist1d"},
        "space": {"name": "metaqnn", **space},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1},
        "budget": {"trials": 1},
    }
    with pytest.raises(SpecError, match=match):
        parse_spec(spec)

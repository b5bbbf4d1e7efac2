"""Supernets and standalone children of the ENAS spaces, and the shared op vocabulary."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas.architecture import Architecture
from nas.errors import ExportError, InvalidArchitectureError, UnknownNameError
from nas.models import SpaceNetwork, build_model, build_supernet, count_parameters
from nas.ops import OPS
from nas.spaces import MacroSpace, MicroSpace, Nb201Space, SearchSpace

NUM_CLASSES = 5
SPACES: dict[str, SearchSpace] = {
    "macro-L4": MacroSpace(layers=4, channels=4),  # reductions before layers 1 and 2
    "macro-L5": MacroSpace(layers=5, channels=4, channel_growth=1, dropout=0.5),
    "micro-B2": MicroSpace(nodes=2, cells=1, stages=2, channels=4),
    "micro-B3": MicroSpace(nodes=3, cells=1, stages=2, channels=4, dropout=0.5),
}
SHAPES: dict[str, tuple[int, ...]] = {"1d-40": (1, 40), "1d-23": (2, 23), "2d-8x8": (3, 8, 8)}
over_spaces = pytest.mark.parametrize("space", list(SPACES.values()), ids=list(SPACES))
over_shapes = pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """These networks are tiny: a second intra-op thread only adds synchronisation, and on a
    busy 2-core machine it makes each step 100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sample_archs(space: SearchSpace, n: int, seed: int = 0) -> list[Architecture]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def train_a_little(net: SpaceNetwork, archs: Sequence[Architecture], shape: Sequence[int]) -> None:
    """Two SGD steps per architecture, so weights and BN statistics leave their init values."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    net.train()
    for _ in range(2):
        for arch in archs:
            x = torch.randn(8, *shape)
            y = torch.randint(0, NUM_CLASSES, (8,))
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(x, arch), y).backward()
            optimizer.step()


# --- supernet / child equivalence ------------------------------------------------------------
@over_spaces
@over_shapes
def test_supernet_and_extracted_child_agree(space: SearchSpace, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    supernet = build_supernet(space, shape, NUM_CLASSES)
    trained = sample_archs(space, 3, seed=1)
    train_a_little(supernet, trained, shape)
    supernet.eval()
    x = torch.randn(4, *shape)
    for arch in trained + sample_archs(space, 2, seed=2):  # trained and untrained choices
        child = supernet.extract_child(arch).eval()
        assert not child.is_supernet
        with torch.no_grad():
            expected, got = supernet(x, arch), child(x)
        assert got.shape == (4, NUM_CLASSES)
        assert (expected - got).abs().max().item() <= 1e-5
    # The comparison above ran on trained statistics, not on BN's initial zeros and ones.
    child = supernet.extract_child(trained[0])
    running_means = [b for k, b in child.state_dict().items() if k.endswith("running_mean")]
    assert any(b.abs().sum() > 0 for b in running_means)


@over_spaces
def test_build_model_has_the_parameters_of_the_extracted_child(space: SearchSpace) -> None:
    supernet = build_supernet(space, (1, 40), NUM_CLASSES)
    for arch in sample_archs(space, 3):
        model = build_model(space, arch, (1, 40), NUM_CLASSES)
        child = supernet.extract_child(arch)
        assert [n for n, _ in model.named_parameters()] == [n for n, _ in child.named_parameters()]
        assert list(model.state_dict()) == list(child.state_dict())
        assert count_parameters(model) == count_parameters(child) < count_parameters(supernet)
        # Every child key exists in the supernet under the same name and shape.
        own = supernet.state_dict()
        assert all(own[k].shape == v.shape for k, v in child.state_dict().items())


@over_spaces
def test_extracted_child_does_not_share_storage_with_the_supernet(space: SearchSpace) -> None:
    torch.manual_seed(0)
    supernet = build_supernet(space, (1, 40), NUM_CLASSES).eval()
    arch = sample_archs(space, 1)[0]
    x = torch.randn(2, 1, 40)
    with torch.no_grad():
        before = supernet(x, arch)
        child = supernet.extract_child(arch)
        for p in child.parameters():
            p.add_(1.0)
        assert torch.equal(supernet(x, arch), before)


@over_spaces
@over_shapes
def test_output_shape(space: SearchSpace, shape: tuple[int, ...]) -> None:
    supernet = build_supernet(space, shape, NUM_CLASSES)
    arch = sample_archs(space, 1)[0]
    assert supernet(torch.randn(3, *shape), arch).shape == (3, NUM_CLASSES)
    model = build_model(space, arch, shape, 7)
    assert model(torch.randn(3, *shape)).shape == (3, 7)


@over_spaces
def test_gradients_reach_only_the_chosen_ops(space: SearchSpace) -> None:
    torch.manual_seed(0)
    supernet = build_supernet(space, (3, 8, 8), NUM_CLASSES).train()
    for arch in sample_archs(space, 3, seed=3):
        supernet.zero_grad(set_to_none=True)
        x, y = torch.randn(4, 3, 8, 8), torch.randint(0, NUM_CLASSES, (4,))
        F.cross_entropy(supernet(x, arch), y).backward()
        with_grad = {n for n, p in supernet.named_parameters() if p.grad is not None}
        chosen = {n for n, _ in supernet.extract_child(arch).named_parameters()}
        unchosen = {n for n, _ in supernet.named_parameters()} - chosen
        assert unchosen
        assert not with_grad & unchosen
        # The head and the chosen ops of the last cell or layer always sit on the loss path.
        # (A micro cell input that no node reads is dead, so earlier cells may get no grad.)
        assert {"head.linear.weight", "head.linear.bias"} <= with_grad
        if isinstance(space, MicroSpace):
            last = f"cells.{len(supernet.cells) - 1}.edges."
        else:
            last = f"layers.{len(supernet.layers) - 1}."
        assert {n for n in chosen if n.startswith(last)} <= with_grad
        if isinstance(space, MacroSpace):
            # Every macro layer feeds the next one, so no chosen op is dead.
            assert with_grad == chosen


def flipped(arch: Architecture, space: SearchSpace, index: int) -> Architecture:
    choices = list(arch.choices)
    choices[index] = (choices[index] + 1) % space.decisions()[index].num_choices
    return space.make(choices)


def test_every_macro_decision_changes_the_function() -> None:
    # Equivalence alone cannot see a decision that both roles ignore in the same way.
    torch.manual_seed(0)
    space = MacroSpace(layers=4, channels=4)
    supernet = build_supernet(space, (1, 40), NUM_CLASSES).eval()
    x = torch.randn(4, 1, 40)
    ops = sample_archs(space, 1)[0].choices
    all_skips = space.make(
        [c if d.kind == "op" else 1 for d, c in zip(space.decisions(), ops, strict=True)]
    )
    for base in (all_skips, sample_archs(space, 1, seed=5)[0]):
        with torch.no_grad():
            reference = supernet(x, base)
            for index, decision in enumerate(space.decisions()):
                other = supernet(x, flipped(base, space, index))
                assert (other - reference).abs().max() > 1e-6, decision.name


@pytest.mark.parametrize("cell", ["normal", "reduce"])
def test_micro_decisions_of_the_last_node_change_the_function(cell: str) -> None:
    torch.manual_seed(0)
    space = MicroSpace(nodes=2, cells=1, stages=2, channels=4)
    supernet = build_supernet(space, (3, 8, 8), NUM_CLASSES).eval()
    x = torch.randn(4, 3, 8, 8)
    names = [d.name for d in space.decisions()]
    base = sample_archs(space, 1, seed=6)[0]
    if cell == "reduce":
        # Make the last normal cell read the reduction cell's output (its input 1) so the
        # reduction cell sits on the path to the head.
        choices = list(base.choices)
        choices[names.index("normal.node0.input0")] = 1
        base = space.make(choices)
    with torch.no_grad():
        reference = supernet(x, base)
        for slot in ("input0", "input1", "op0", "op1"):
            index = names.index(f"{cell}.node1.{slot}")
            other = supernet(x, flipped(base, space, index))
            assert (other - reference).abs().max() > 1e-6, names[index]


# --- misuse ----------------------------------------------------------------------------------
@over_spaces
def test_child_runs_only_its_own_architecture(space: SearchSpace) -> None:
    arch, other = sample_archs(space, 2, seed=4)
    assert arch != other
    model = build_model(space, arch, (1, 40), NUM_CLASSES).eval()
    x = torch.randn(2, 1, 40)
    with torch.no_grad():
        assert torch.equal(model(x), model(x, arch))
    with pytest.raises(ValueError, match="built for another architecture"):
        model(x, other)


@over_spaces
def test_supernet_needs_an_architecture(space: SearchSpace) -> None:
    supernet = build_supernet(space, (1, 40), NUM_CLASSES)
    assert supernet.is_supernet
    with pytest.raises(ValueError, match=r"forward\(x, arch\)"):
        supernet(torch.randn(2, 1, 40))


@over_spaces
def test_extract_child_is_for_supernets_only(space: SearchSpace) -> None:
    arch = sample_archs(space, 1)[0]
    model = build_model(space, arch, (1, 40), NUM_CLASSES)
    with pytest.raises(ValueError, match="for supernets"):
        model.extract_child(arch)


@over_spaces
def test_architectures_are_validated(space: SearchSpace) -> None:
    n = len(space.decisions())
    bad = Architecture(space.name, (0,) * (n + 1), space.version)
    with pytest.raises(InvalidArchitectureError):
        build_model(space, bad, (1, 40), NUM_CLASSES)
    with pytest.raises(InvalidArchitectureError):
        build_supernet(space, (1, 40), NUM_CLASSES)(torch.randn(2, 1, 40), bad)
    foreign = Nb201Space().sample(np.random.default_rng(0))
    with pytest.raises(InvalidArchitectureError, match="belongs to space 'nb201'"):
        build_model(space, foreign, (1, 40), NUM_CLASSES)


@pytest.mark.parametrize(
    ("shape", "classes", "match"),
    [((40,), 10, "input_shape"), ((1, 4, 4, 4), 10, "input_shape"), ((1, 40), 1, "num_classes")],
)
def test_bad_network_arguments(shape: tuple[int, ...], classes: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_supernet(MacroSpace(layers=2, channels=4), shape, classes)


def test_a_space_without_a_network_is_named() -> None:
    with pytest.raises(
        UnknownNameError, match="unknown trainable space 'nb201'; valid: enas-macro, enas-micro"
    ):
        build_supernet(Nb201Space(), (3, 8, 8), 10)


def test_a_space_builds_its_own_network() -> None:
    space = MacroSpace(layers=2, channels=4)
    supernet = space.build_network((1, 40), NUM_CLASSES)
    assert type(supernet) is MacroSpace.network_class and supernet.is_supernet
    arch = sample_archs(space, 1)[0]
    child = space.build_network((1, 40), NUM_CLASSES, arch)
    assert child.fixed_arch == arch
    assert (
        child.state_dict().keys()
        == build_model(space, arch, (1, 40), NUM_CLASSES).state_dict().keys()
    )
    with pytest.raises(ExportError, match="takes no network options"):
        space.build_network((1, 40), NUM_CLASSES, arch, options={"cells": 2})
    nb201 = Nb201Space()
    with pytest.raises(ValueError, match="nb201 has no shared-weight supernet"):
        nb201.build_network((3, 8, 8), NUM_CLASSES)
    net = nb201.build_network((3, 8, 8), NUM_CLASSES, nb201.make([3] * 6), options={"cells": 1})
    assert len(net.cells) == 5  # 3 stages of one cell, 2 residual blocks between them


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_macro_with_a_single_channel_runs() -> None:
    space = MacroSpace.from_config({"layers": 3, "channels": 1, "channel_growth": 1})
    arch = space.sample(np.random.default_rng(0))
    out = build_supernet(space, (1, 40), NUM_CLASSES)(torch.randn(2, 1, 40), arch)
    assert out.shape == (2, NUM_CLASSES)


# --- ops ---------------------------------------------------------------------------------------
POOLS = {"max_pool3", "avg_pool3", "avg_pool_3x3"}


def expected_shape(n: int, c: int, size: int, dim: int, stride: int) -> tuple[int, ...]:
    side = size if stride == 1 else -(-size // 2)  # halve, rounding up
    return (n, c, *([side] * dim))


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("stride", [1, 2])
def test_op_keeps_or_halves_the_spatial_shape(name: str, dim: int, size: int, stride: int) -> None:
    torch.manual_seed(0)
    op = OPS[name](4, 4, stride, dim)
    x = torch.randn(2, 4, *([size] * dim), requires_grad=True)
    out = op(x)
    assert out.shape == expected_shape(2, 4, size, dim, stride)
    out.sum().backward()  # every op is differentiable end to end
    if name == "none":
        assert torch.count_nonzero(out) == 0


def _channel_change_cases() -> list[object]:
    cases: list[object] = []
    for name in sorted(OPS):
        marks: list[object] = []
        for dim in (1, 2):
            for stride in (1, 2):
                cases.append(
                    pytest.param(name, dim, stride, marks=marks, id=f"{name}-{dim}d-s{stride}")
                )
    return cases


@pytest.mark.parametrize(("name", "dim", "stride"), _channel_change_cases())
def test_op_changes_channels_or_refuses(name: str, dim: int, stride: int) -> None:
    if name in POOLS:
        with pytest.raises(ValueError, match="keeps channels; got 4 -> 6"):
            OPS[name](4, 6, stride, dim)
        return
    out = OPS[name](4, 6, stride, dim)(torch.randn(2, 4, *([7] * dim)))
    assert out.shape == expected_shape(2, 6, 7, dim, stride)


def test_ops_reject_other_dimensions() -> None:
    with pytest.raises(ValueError, match="dim must be 1"):
        OPS["conv3"](4, 4, 1, 3)

"""Search spaces: one contract that every space and configuration must keep, then the
space-specific parts (closed-form sizes, macro config checks, NAS-Bench-201 strings)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from nas.architecture import Architecture
from nas.errors import InvalidArchitectureError, UnknownNameError
from nas.spaces import (
    MACRO_OPS,
    MICRO_OPS,
    NB201_OPS,
    SPACES,
    MacroSpace,
    MicroSpace,
    MlpSpace,
    Nb201Space,
    SearchSpace,
    TableSpace,
    create_space,
)
from nas.spaces.macro import default_reductions
from tests.conftest import NB201_TABLE

SPACES_UNDER_TEST: dict[str, SearchSpace] = {
    "macro-L1": MacroSpace(layers=1),
    "macro-L4": MacroSpace(layers=4, channels=8),
    "macro-L12-red": MacroSpace(layers=12, reductions=[3, 7, 10]),
    "micro-B1": MicroSpace(nodes=1),
    "micro-B3": MicroSpace(nodes=3, cells=1, stages=2),
    "micro-B5": MicroSpace(),
    "nb201": Nb201Space(),
    "mlp": MlpSpace(),
    # NAS-Bench-201 as a plain CSV (read when first used), choices sorted as text.
    "table-nb201": TableSpace(path=str(NB201_TABLE), decisions=[f"edge{i}" for i in range(6)]),
}
over_spaces = pytest.mark.parametrize(
    "space", list(SPACES_UNDER_TEST.values()), ids=list(SPACES_UNDER_TEST)
)
seeds = st.integers(0, 2**32 - 1)
few = settings(max_examples=50, deadline=None)


def cardinalities(space: SearchSpace) -> list[int]:
    return [d.num_choices for d in space.decisions()]


# --- the contract, for every space ---------------------------------------------------------
@over_spaces
@few
@given(seed=seeds)
def test_sample_is_valid(space: SearchSpace, seed: int) -> None:
    arch = space.sample(np.random.default_rng(seed))
    space.validate(arch)  # raises if not
    assert (arch.space, arch.version) == (space.name, space.version)
    assert len(arch.choices) == len(space.decisions())
    assert all(0 <= c < n for c, n in zip(arch.choices, cardinalities(space), strict=True))


@over_spaces
def test_sample_depends_only_on_the_generator(space: SearchSpace) -> None:
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert np.array_equal(np.random.get_state()[1], before)  # global RNG untouched


@over_spaces
def test_sample_reaches_every_choice_of_every_decision(space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    seen = np.array([space.sample(rng).choices for _ in range(400)])
    for column, n in enumerate(cardinalities(space)):
        assert set(seen[:, column]) == set(range(n))


@over_spaces
def test_decision_names_are_unique(space: SearchSpace) -> None:
    names = [d.name for d in space.decisions()]
    assert len(names) == len(set(names))


@over_spaces
@few
@given(seed=seeds)
def test_json_round_trip(space: SearchSpace, seed: int) -> None:
    arch = space.sample(np.random.default_rng(seed))
    back = Architecture.from_json(arch.to_json())
    assert back == arch
    space.validate(back)


@over_spaces
@few
@given(seed=seeds)
def test_encode_decode_round_trip(space: SearchSpace, seed: int) -> None:
    arch = space.sample(np.random.default_rng(seed))
    vector = space.encode(arch)
    assert vector.dtype == np.int64
    assert vector.shape == (len(space.decisions()),)
    assert space.decode(vector) == arch
    assert space.decode(list(vector)) == arch


@over_spaces
@few
@given(seed=seeds)
def test_one_hot_has_one_hot_block_per_decision(space: SearchSpace, seed: int) -> None:
    arch = space.sample(np.random.default_rng(seed))
    vec = space.one_hot(arch)
    sizes = cardinalities(space)
    assert vec.dtype == np.float32
    assert vec.shape == (sum(sizes),)
    assert set(np.unique(vec)) <= {0.0, 1.0}
    blocks = np.split(vec, np.cumsum(sizes)[:-1])
    assert len(blocks) == len(sizes)
    for block, choice in zip(blocks, arch.choices, strict=True):
        assert block.sum() == 1.0
        assert int(np.argmax(block)) == choice


@over_spaces
@few
@given(seed=seeds)
def test_mutate_stays_valid_and_changes_exactly_one_decision(space: SearchSpace, seed: int) -> None:
    rng = np.random.default_rng(seed)
    parent = space.sample(rng)
    child = space.mutate(parent, rng)
    space.validate(child)
    changed = [
        i for i, (a, b) in enumerate(zip(parent.choices, child.choices, strict=True)) if a != b
    ]
    assert len(changed) == 1
    assert space.decisions()[changed[0]].num_choices > 1


@over_spaces
@few
@given(seed=seeds)
def test_mutate_is_reproducible_from_the_generator(space: SearchSpace, seed: int) -> None:
    parent = space.sample(np.random.default_rng(seed))
    a = space.mutate(parent, np.random.default_rng(seed + 1))
    b = space.mutate(parent, np.random.default_rng(seed + 1))
    assert a == b


@over_spaces
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fair_children_use_every_op_of_every_decision_once(space: SearchSpace, seed: int) -> None:
    """FairNAS's strict fairness: across one step's children each operation decision takes
    every choice once (twice at most where it has fewer choices than the step has children);
    the other decisions are uniform draws, every child valid."""
    children = space.fair_children(np.random.default_rng(seed))
    k = space.fair_k
    assert len(children) == k
    for child in children:
        space.validate(child)
    for index, decision in enumerate(space.decisions()):
        if decision.kind not in space.fair_kinds:
            continue
        used = sorted(child.choices[index] for child in children)
        n = decision.num_choices
        if n == k:
            assert used == list(range(n)), decision.name
        else:
            counts = np.bincount(used, minlength=n)
            assert counts.min() >= k // n and counts.max() <= -(-k // n), decision.name


def test_fair_children_depend_only_on_the_generator_and_vary() -> None:
    space = MacroSpace(layers=4, channels=8)
    a = space.fair_children(np.random.default_rng(7))
    assert a == space.fair_children(np.random.default_rng(7))
    rng = np.random.default_rng(7)
    steps = [space.fair_children(rng) for _ in range(2)]
    assert steps[0] == a and steps[1] != a  # each step draws new permutations
    assert space.fair_k == len(MACRO_OPS) and MicroSpace(nodes=2).fair_k == len(MICRO_OPS)


@over_spaces
@few
@given(seed=seeds, data=st.data())
def test_out_of_range_choice_names_the_decision(
    space: SearchSpace, seed: int, data: st.DataObject
) -> None:
    arch = space.sample(np.random.default_rng(seed))
    decisions = space.decisions()
    index = data.draw(st.integers(0, len(decisions) - 1), label="index")
    n = decisions[index].num_choices
    bad = data.draw(st.one_of(st.integers(n, n + 100), st.integers(-100, -1)), label="bad")
    choices = list(arch.choices)
    choices[index] = bad
    with pytest.raises(InvalidArchitectureError) as info:
        space.validate(Architecture(space.name, tuple(choices), space.version))
    assert info.value.decision == decisions[index].name
    assert str(info.value).startswith(f"{decisions[index].name}: ")
    assert f"choice {bad} out of range" in str(info.value)


@over_spaces
def test_the_first_bad_decision_is_named(space: SearchSpace) -> None:
    decisions = space.decisions()
    choices = [d.num_choices for d in decisions]  # every choice one past the end
    with pytest.raises(InvalidArchitectureError) as info:
        space.validate(Architecture(space.name, tuple(choices), space.version))
    assert info.value.decision == decisions[0].name


@over_spaces
@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_length_is_rejected(space: SearchSpace, delta: int) -> None:
    n = len(space.decisions())
    with pytest.raises(InvalidArchitectureError, match=rf"expected {n} choices .* got {n + delta}"):
        space.validate(Architecture(space.name, (0,) * (n + delta), space.version))


@over_spaces
def test_wrong_space_name_or_version_is_rejected(space: SearchSpace) -> None:
    arch = space.sample(np.random.default_rng(0))
    with pytest.raises(InvalidArchitectureError, match="belongs to space 'elsewhere'"):
        space.validate(Architecture("elsewhere", arch.choices, arch.version))
    with pytest.raises(InvalidArchitectureError, match="space version 99"):
        space.validate(Architecture(space.name, arch.choices, 99))
    with pytest.raises(InvalidArchitectureError, match="expected an Architecture, got tuple"):
        space.validate(arch.choices)  # type: ignore[arg-type]


@over_spaces
def test_every_method_that_takes_an_architecture_validates_it(space: SearchSpace) -> None:
    bad = Architecture(space.name, (0,) * (len(space.decisions()) + 1), space.version)
    for method in (space.encode, space.one_hot, space.describe):
        with pytest.raises(InvalidArchitectureError):
            method(bad)
    with pytest.raises(InvalidArchitectureError):
        space.mutate(bad, np.random.default_rng(0))
    with pytest.raises(InvalidArchitectureError):
        space.decode([10**6] * len(space.decisions()))


@over_spaces
def test_make_validates_and_builds(space: SearchSpace) -> None:
    arch = space.make([0] * len(space.decisions()))
    assert arch == Architecture(space.name, (0,) * len(space.decisions()), space.version)
    with pytest.raises(InvalidArchitectureError):
        space.make([0] * (len(space.decisions()) + 1))


@over_spaces
def test_config_rebuilds_the_space(space: SearchSpace) -> None:
    rebuilt = type(space).from_config(space.config)
    assert rebuilt.config == space.config
    assert [d.name for d in rebuilt.decisions()] == [d.name for d in space.decisions()]


# --- sizes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("layers", [1, 2, 3, 8, 12])
def test_macro_size_closed_form(layers: int) -> None:
    assert MacroSpace(layers=layers).size() == 6**layers * 2 ** (layers * (layers - 1) // 2)


@pytest.mark.parametrize("nodes", [1, 2, 3, 5, 7])
def test_micro_size_closed_form(nodes: int) -> None:
    per_cell = math.prod(((i + 2) * 5) ** 2 for i in range(nodes))
    assert MicroSpace(nodes=nodes).size() == per_cell**2


def test_nb201_size() -> None:
    assert Nb201Space().size() == 15625


# --- space-specific structure --------------------------------------------------------------
@few
@given(seed=seeds)
def test_macro_layer_choices_decode_ops_and_skips(seed: int) -> None:
    space = MacroSpace(layers=6)
    arch = space.sample(np.random.default_rng(seed))
    layers = space.layer_choices(arch)
    assert len(layers) == 6
    for index, (op, skips) in enumerate(layers):
        assert op in MACRO_OPS
        assert all(0 <= j < index for j in skips)
    # Rebuild the flat choice sequence from the decoded form.
    rebuilt: list[int] = []
    for index, (op, skips) in enumerate(layers):
        rebuilt.append(MACRO_OPS.index(op))
        rebuilt.extend(int(j in skips) for j in range(index))
    assert tuple(rebuilt) == arch.choices
    assert space.describe(arch)["layers"][2] == {"op": layers[2][0], "skips": list(layers[2][1])}


@few
@given(seed=seeds)
def test_micro_cell_choices_index_earlier_states_only(seed: int) -> None:
    space = MicroSpace(nodes=4)
    arch = space.sample(np.random.default_rng(seed))
    cells = space.cell_choices(arch)
    assert sorted(cells) == ["normal", "reduce"]
    for nodes in cells.values():
        assert len(nodes) == 4
        for node, (in0, in1, op0, op1) in enumerate(nodes):
            assert 0 <= in0 < node + 2 and 0 <= in1 < node + 2
            assert op0 in MICRO_OPS and op1 in MICRO_OPS
    described = space.describe(arch)
    in0, in1, op0, op1 = cells["reduce"][1]
    labels = ["cell_in0", "cell_in1", "node0"]
    assert described["reduce"][1] == {"inputs": [labels[in0], labels[in1]], "ops": [op0, op1]}


def test_macro_default_reductions_at_thirds() -> None:
    assert default_reductions(9) == [3, 6]
    assert default_reductions(12) == [4, 8]
    assert default_reductions(1) == []
    assert MacroSpace(layers=12).reductions == [4, 8]
    assert MacroSpace(layers=12, reductions=[7, 3]).reductions == [3, 7]


@pytest.mark.parametrize("bad", [[0], [8], [3, 12], [-1]])
def test_macro_config_rejects_reductions_out_of_range(bad: list[int]) -> None:
    with pytest.raises(ValidationError, match=r"each must be in 1\.\.7"):
        MacroSpace.from_config({"layers": 8, "reductions": bad})


def test_macro_config_rejects_repeated_reductions() -> None:
    with pytest.raises(ValidationError, match="repeat"):
        MacroSpace.from_config({"layers": 8, "reductions": [2, 2]})


@pytest.mark.parametrize(
    ("name", "config", "field"),
    [
        ("enas-macro", {"layers": 0}, "layers"),
        ("enas-macro", {"channel_growth": 5}, "channel_growth"),
        ("enas-macro", {"widht": 3}, "widht"),
        ("enas-micro", {"nodes": 11}, "nodes"),
        ("enas-micro", {"dropout": 1.0}, "dropout"),
        ("nb201", {"nodes": 4}, "nodes"),
    ],
)
def test_create_space_validates_parameters(
    name: str, config: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        create_space(name, **config)
    assert any(err["loc"] == (field,) for err in info.value.errors())


def test_create_space_builds_by_name() -> None:
    space = create_space("enas-micro", nodes=3, channels=8)
    assert isinstance(space, MicroSpace)
    assert (space.nodes, space.channels) == (3, 8)
    with pytest.raises(
        UnknownNameError, match="valid: enas-macro, enas-micro, metaqnn, mlp, nb201, table"
    ):
        create_space("darts")


def test_each_space_says_what_its_network_can_do() -> None:
    abilities = {
        name: (cls.trainable, cls.has_supernet, cls.network_class is not None)
        for name in SPACES
        for cls in [SPACES.get(name)]
    }
    assert abilities == {
        "enas-macro": (True, True, True),
        "enas-micro": (True, True, True),
        "metaqnn": (True, False, True),
        "mlp": (True, False, True),
        # The table holds its accuracies: its network is built for exports only.
        "nb201": (False, False, True),
        # The user's own table: searched, never trained or exported as a network.
        "table": (False, False, False),
    }


# --- NAS-Bench-201 strings -----------------------------------------------------------------
def test_nb201_known_arch_str() -> None:
    space = Nb201Space()
    text = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    arch = space.from_arch_str(text)
    assert arch.choices == (3, 3, 4, 1, 3, 1)
    assert space.arch_str(arch) == text
    assert space.ops_code(arch) == "334131"
    assert space.describe(arch) == {"arch_str": text}


def test_nb201_arch_str_round_trip_over_the_whole_space() -> None:
    space = Nb201Space()
    strings = set()
    for choices in itertools.product(range(len(NB201_OPS)), repeat=6):
        arch = space.make(choices)
        text = space.arch_str(arch)
        assert space.from_arch_str(text) == arch
        strings.add(text)
    assert len(strings) == 15625


GOOD_GROUPS = ["|none~0|", "|none~0|none~1|", "|none~0|none~1|none~2|"]


@pytest.mark.parametrize(
    ("text", "message", "decision"),
    [
        ("+".join(GOOD_GROUPS[:2]), "must have 3 '+'-separated node groups, got 2", None),
        ("+".join(GOOD_GROUPS + ["|none~0|"]), "got 4", None),
        (
            "|none~0|+|none~0|+|none~0|none~1|none~2|",
            "node 2 in arch_str must have 2 edges, got 1",
            None,
        ),
        ("|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1", None),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must read OP~0", "edge1<-0"),
        ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "must read OP~1", "edge2<-1"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none2|", "must read OP~2", "edge3<-2"),
        (
            "|none~0|+|conv_9x9~0|none~1|+|none~0|none~1|none~2|",
            "unknown op 'conv_9x9'",
            "edge2<-0",
        ),
    ],
)
def test_nb201_bad_arch_str(text: str, message: str, decision: str | None) -> None:
    with pytest.raises(InvalidArchitectureError) as info:
        Nb201Space().from_arch_str(text)
    assert message in str(info.value)
    assert info.value.decision == decision
    if decision is not None:
        assert str(info.value).startswith(decision)


def test_nb201_unknown_op_error_lists_the_valid_ops() -> None:
    with pytest.raises(InvalidArchitectureError) as info:
        Nb201Space().from_arch_str("|sep_conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    for op in NB201_OPS:
        assert op in str(info.value)

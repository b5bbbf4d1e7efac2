"""``Architecture``: frozen, hashable, JSON round trip, strict ``from_dict``, stable ``key``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.architecture import Architecture

space_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
choice_lists = st.lists(st.integers(0, 50), max_size=20)
versions = st.integers(1, 5)
architectures = st.builds(Architecture, space_names, choice_lists.map(tuple), versions)


def test_is_frozen() -> None:
    arch = Architecture("nb201", (3, 3, 1, 0, 2, 4))
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.choices = (0, 0, 0, 0, 0, 0)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.space = "other"  # type: ignore[misc]
    assert arch.choices == (3, 3, 1, 0, 2, 4)


def test_choices_are_normalised_to_a_tuple_of_plain_ints() -> None:
    from_list = Architecture("nb201", [3, 3, 1, 0, 2, 4])  # type: ignore[arg-type]
    from_numpy = Architecture("nb201", np.array([3, 3, 1, 0, 2, 4], dtype=np.int64))  # type: ignore[arg-type]
    assert isinstance(from_list.choices, tuple)
    assert all(type(c) is int for c in from_numpy.choices)
    assert from_list == from_numpy == Architecture("nb201", (3, 3, 1, 0, 2, 4))


def test_hashable_and_equal_archs_collapse_in_a_set() -> None:
    a = Architecture("nb201", (3, 3, 1, 0, 2, 4))
    b = Architecture("nb201", np.array([3, 3, 1, 0, 2, 4]))  # type: ignore[arg-type]
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert {a: "x"}[b] == "x"


@pytest.mark.parametrize(
    "other",
    [
        Architecture("nb201", (3, 3, 1, 0, 2, 3)),
        Architecture("enas-macro", (3, 3, 1, 0, 2, 4)),
        Architecture("nb201", (3, 3, 1, 0, 2, 4), version=2),
    ],
    ids=["choices", "space", "version"],
)
def test_differs_when_any_field_differs(other: Architecture) -> None:
    assert Architecture("nb201", (3, 3, 1, 0, 2, 4)) != other


@settings(max_examples=50, deadline=None)
@given(architectures)
def test_json_round_trip(arch: Architecture) -> None:
    text = arch.to_json()
    assert json.loads(text) == {
        "space": arch.space,
        "version": arch.version,
        "choices": list(arch.choices),
    }
    back = Architecture.from_json(text)
    assert back == arch
    assert hash(back) == hash(arch)
    assert Architecture.from_dict(arch.to_dict()) == arch


def test_from_dict_defaults_version_to_1() -> None:
    assert Architecture.from_dict({"space": "nb201", "choices": [1, 2]}).version == 1


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"choices": [1]}, ["space"]),
        ({"space": "nb201"}, ["choices"]),
        ({}, ["space", "choices"]),
    ],
)
def test_from_dict_missing_keys_are_named(data: dict[str, object], named: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        Architecture.from_dict(data)
    for key in named:
        assert repr(key) in str(info.value)


@pytest.mark.parametrize("choices", ["312", 3, None, {"a": 1}, 1.5])
def test_from_dict_rejects_non_list_choices(choices: object) -> None:
    with pytest.raises(ValueError, match="choices"):
        Architecture.from_dict({"space": "nb201", "choices": choices})


def test_from_json_rejects_fractional_choices() -> None:
    with pytest.raises(ValueError):
        Architecture.from_json('{"space": "nb201", "choices": [1.7, 0, 0, 0, 0, 0]}')


def test_key_format() -> None:
    assert Architecture("nb201", (3, 3, 1, 0, 2, 4)).key == "nb201/v1/3.3.1.0.2.4"
    assert Architecture("enas-micro", (10, 2), version=3).key == "enas-micro/v3/10.2"


@settings(max_examples=50, deadline=None)
@given(architectures, architectures)
def test_key_is_injective_and_stable(a: Architecture, b: Architecture) -> None:
    assert (a.key == b.key) == (a == b)
    assert Architecture.from_json(a.to_json()).key == a.key

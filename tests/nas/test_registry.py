"""``Registry``: register, get, names, and the errors for unknown and duplicate names."""

from __future__ import annotations

import pytest

from nas.datasets import DATASETS
from nas.errors import NasError, UnknownNameError
from nas.registry import Registry
from nas.spaces import SPACES, MacroSpace, MicroSpace, Nb201Space


class Alpha:
    pass


class Beta:
    pass


@pytest.fixture
def widgets() -> Registry[type]:
    registry: Registry[type] = Registry("widget")
    registry.register("beta")(Beta)
    registry.register("alpha")(Alpha)
    return registry


def test_register_returns_the_object_unchanged() -> None:
    registry: Registry[type] = Registry("widget")
    decorated = registry.register("alpha")(Alpha)
    assert decorated is Alpha


def test_get_names_contains_iter(widgets: Registry[type]) -> None:
    assert widgets.get("alpha") is Alpha
    assert widgets.get("beta") is Beta
    assert widgets.names() == ["alpha", "beta"]  # sorted, not insertion order
    assert list(widgets) == ["alpha", "beta"]
    assert "alpha" in widgets
    assert "gamma" not in widgets


def test_unknown_name_lists_the_valid_names(widgets: Registry[type]) -> None:
    with pytest.raises(UnknownNameError) as info:
        widgets.get("gamma")
    err = info.value
    assert (err.kind, err.name, err.valid) == ("widget", "gamma", ["alpha", "beta"])
    assert str(err) == "unknown widget 'gamma'; valid: alpha, beta"
    # Callers may catch it as a KeyError or as the package's base error.
    assert isinstance(err, KeyError)
    assert isinstance(err, NasError)


def test_duplicate_registration_of_another_object_fails(widgets: Registry[type]) -> None:
    class Impostor:
        pass

    with pytest.raises(ValueError, match=r"widget 'alpha' is already registered"):
        widgets.register("alpha")(Impostor)
    assert widgets.get("alpha") is Alpha


def test_registering_the_same_object_again_is_idempotent(widgets: Registry[type]) -> None:
    widgets.register("alpha")(Alpha)  # e.g. a module imported twice
    assert widgets.get("alpha") is Alpha
    assert widgets.names() == ["alpha", "beta"]


def test_the_space_registry_maps_spec_names_to_classes() -> None:
    assert SPACES.names() == ["enas-macro", "enas-micro", "metaqnn", "mlp", "nb201", "table"]
    assert SPACES.get("enas-macro") is MacroSpace
    assert SPACES.get("enas-micro") is MicroSpace
    assert SPACES.get("nb201") is Nb201Space


def test_the_dataset_registry_holds_the_builtin_datasets() -> None:
    for name in (
        "mnist1d",
        "digits",
        "npz",
        "nb201-cifar10",
        "nb201-cifar100",
        "nb201-imagenet16-120",
        "table",
        "sinusoid",
    ):
        assert name in DATASETS

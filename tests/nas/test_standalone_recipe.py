"""The standalone evaluator refuses recipe settings that the rest of its recipe would ignore,
unless the job's ``hparams:`` section searches what they depend on; a stored spec (every
default filled in) submits again."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nas.errors import SpecError
from workers.search import parse_spec

SPEC: dict[str, Any] = {
    "name": "recipe",
    "dataset": {"name": "digits"},
    "space": {"name": "enas-macro", "layers": 2, "channels": 8, "reductions": [1]},
    "controller": {"name": "random"},
    "evaluator": {"name": "standalone", "epochs": 2},
    "budget": {"trials": 2},
}


def spec_with(hparams: dict[str, Any] | None = None, **evaluator: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    spec["evaluator"].update(evaluator)
    if hparams:
        spec["hparams"] = hparams
    return spec


@pytest.mark.parametrize(
    ("evaluator", "field", "message", "searched"),
    [
        ({"focal_gamma": 3.0}, "focal_gamma", "only loss focal uses focal_gamma", "loss"),
        (
            {"loss": "focal", "label_smoothing": 0.1},
            "label_smoothing",
            "loss focal does not smooth labels",
            "loss",
        ),
        ({"momentum": 0.5}, "momentum", "only optimizer sgd uses momentum", "optimizer"),
        ({"optimizer": "adamw", "momentum": 0.0}, "momentum", "adamw does not", "optimizer"),
        ({"restart_factor": 0.2}, "restart_factor", "restart_below_chance: true only", None),
        ({"max_restarts": 2}, "max_restarts", "restart_below_chance: true only", None),
    ],
)
def test_a_setting_the_recipe_ignores_is_refused_at_its_field(
    evaluator: dict[str, Any], field: str, message: str, searched: str | None
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(**evaluator))
    found = {tuple(e["loc"]): e["msg"] for e in info.value.errors}
    assert message in found[("evaluator", field)], found
    if searched is not None:  # a trial's hyperparameters may make it count
        choices = {"loss": ["cross_entropy", "focal"], "optimizer": ["adam", "sgd"]}[searched]
        parse_spec(spec_with({searched: {"type": "categorical", "choices": choices}}, **evaluator))


@pytest.mark.parametrize(
    "evaluator",
    [
        {"loss": "focal", "focal_gamma": 3.0},
        {"loss": "label_smoothing", "label_smoothing": 0.2},
        {"optimizer": "sgd", "momentum": 0.5},
        {"restart_below_chance": True, "restart_factor": 0.2, "max_restarts": 2},
    ],
)
def test_settings_that_count_and_stored_specs_pass(evaluator: dict[str, Any]) -> None:
    resolved = parse_spec(spec_with(**evaluator))
    assert parse_spec(resolved.to_dict()).to_dict() == resolved.to_dict()
    assert parse_spec(parse_spec(SPEC).to_dict()).evaluator_params["momentum"] == 0.9


FLOAT = {"type": "float", "low": 0.1, "high": 0.9}


@pytest.mark.parametrize(
    ("evaluator", "hparams", "field", "message"),
    [
        ({}, {"momentum": FLOAT}, "momentum", "only optimizer sgd uses momentum"),
        (
            {},
            {"optimizer": {"type": "categorical", "choices": ["adam", "adamw"]}, "momentum": FLOAT},
            "momentum",
            "the trials' optimizer is adam, adamw",
        ),
        ({}, {"focal_gamma": FLOAT}, "focal_gamma", "only loss focal uses focal_gamma"),
        ({"loss": "focal"}, {"label_smoothing": FLOAT}, "label_smoothing", "does not smooth"),
        (
            {},
            {
                "loss": {"type": "categorical", "choices": ["cross_entropy", "focal"]},
                "focal_gamma": {**FLOAT, "condition": {"param": "loss", "equals": "cross_entropy"}},
            },
            "focal_gamma",
            "the trials' loss is cross_entropy",
        ),
    ],
)
def test_a_searched_setting_no_trial_would_use_is_refused_at_its_field(
    evaluator: dict[str, Any], hparams: dict[str, Any], field: str, message: str
) -> None:
    """hparams.momentum with every trial on adam was accepted, recorded per trial and never
    used: each value trained alike (the probe of the evaluators)."""
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(hparams, **evaluator))
    found = {tuple(e["loc"]): e["msg"] for e in info.value.errors}
    assert message in found[("hparams", field)], found
    assert "every trial would ignore" in found[("hparams", field)]


@pytest.mark.parametrize(
    ("evaluator", "hparams"),
    [
        ({"optimizer": "sgd"}, {"momentum": FLOAT}),
        ({}, {"optimizer": {"type": "categorical", "choices": ["adam", "sgd"]}, "momentum": FLOAT}),
        (
            {},
            {
                "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
                "momentum": {**FLOAT, "condition": {"param": "optimizer", "equals": "sgd"}},
            },
        ),
        ({"loss": "focal"}, {"focal_gamma": FLOAT}),
        ({}, {"label_smoothing": FLOAT}),
        (  # where the searched optimizer is inactive, the evaluator's sgd trains
            {"optimizer": "sgd"},
            {
                "lr_schedule": {"type": "categorical", "choices": ["constant", "cosine"]},
                "optimizer": {
                    "type": "categorical",
                    "choices": ["adam", "adamw"],
                    "condition": {"param": "lr_schedule", "equals": "cosine"},
                },
                "momentum": FLOAT,
            },
        ),
    ],
)
def test_a_searched_setting_some_trials_use_passes(
    evaluator: dict[str, Any], hparams: dict[str, Any]
) -> None:
    parse_spec(spec_with(hparams, **evaluator))

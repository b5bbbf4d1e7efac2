"""``final.channels: fit`` (issue 17): each architecture retrained at the widest width that
``objective.constraints`` allow, measured as the search measures its candidates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from nas.architecture import Architecture
from nas.constraints import measure_architectures
from nas.spaces import SPACES, SearchSpace
from workers.final import fit_width, retrain, width_bounds, with_channels
from workers.search import parse_spec

CPU = torch.device("cpu")
SHAPE, CLASSES = (1, 8, 8), 10  # digits
SPACE = SPACES.get("enas-macro").from_config({"layers": 3, "channels": 4})


def _figures(space: SearchSpace, arch: Architecture, channels: int) -> dict[str, float]:
    (figures,) = measure_architectures(
        with_channels(space, channels), [arch], SHAPE, CLASSES, CPU, ["params", "flops"]
    )
    return figures


def _archs(n: int) -> list[Architecture]:
    rng = np.random.default_rng(0)
    return [SPACE.sample(rng) for _ in range(n)]


@pytest.mark.parametrize(
    "limits",
    [{"max_params": 3000}, {"max_params": 50_000, "max_flops": 400_000}, {"max_flops": 90_000}],
)
def test_fit_width_is_the_widest_width_within_every_limit(limits: dict[str, float]) -> None:
    for arch in _archs(4):
        width = fit_width(SPACE, arch, SHAPE, CLASSES, limits, CPU).config["channels"]
        at, wider = _figures(SPACE, arch, width), _figures(SPACE, arch, width + 1)
        assert all(at[key.removeprefix("max_")] <= limit for key, limit in limits.items())
        assert any(wider[key.removeprefix("max_")] > limit for key, limit in limits.items())


def test_fit_width_narrows_an_architecture_too_wide_at_the_searched_width() -> None:
    arch = _archs(1)[0]
    wide = with_channels(SPACE, 64)
    limit = _figures(SPACE, arch, 10)["params"]
    assert _figures(SPACE, arch, 64)["params"] > limit
    assert (
        fit_width(wide, arch, SHAPE, CLASSES, {"max_params": limit}, CPU).config["channels"] == 10
    )


def test_fit_width_refuses_an_architecture_no_width_fits() -> None:
    arch = _archs(1)[0]
    with pytest.raises(ValueError, match="even at 1 channel"):
        fit_width(SPACE, arch, SHAPE, CLASSES, {"max_params": 10}, CPU)


def test_retrain_with_channels_fit_keeps_to_the_limit_and_widens_what_is_below_it() -> None:
    limit = 12_000
    spec: dict[str, Any] = {
        "name": "fit",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 3, "channels": 4},
        "controller": {"name": "enas"},
        "evaluator": {"name": "shared-weights"},
        "objective": {"constraints": {"max_params": limit}},
        "budget": {"trials": 2},
        "final": {"epochs": 1, "channels": "fit"},
    }
    resolved = parse_spec(spec)
    archs = _archs(3)
    searched = [_figures(SPACE, a, 4)["params"] for a in archs]
    assert max(searched) < limit  # all inside the limit at the searched width
    final = retrain(resolved, resolved.build_space(), archs)
    for result, arch, before in zip(final, archs, searched, strict=True):
        channels = result["space_config"]["channels"]
        assert channels > 4 and result["params"] > before
        assert result["params"] <= limit < _figures(SPACE, arch, channels + 1)["params"]
        assert result["genotype"] == SPACE.describe(arch)


def test_fit_width_stays_within_the_widths_the_space_accepts() -> None:
    assert width_bounds(SPACE) == (1, 1024)
    assert width_bounds(SPACES.get("enas-micro").from_config({})) == (1, 512)
    metaqnn = SPACES.get("metaqnn").from_config({"max_layers": 2, "input_size": 8, "channels": 8})
    assert width_bounds(metaqnn) == (4, 1024)
    arch = metaqnn.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="even at 4 channel"):
        fit_width(metaqnn, arch, SHAPE, CLASSES, {"max_params": 10}, CPU)


def test_the_summary_names_the_trial_whose_hyperparameters_final_retrains_with() -> None:
    """A ranked architecture earned its score twice with other hyperparameters (a repeat):
    the summary's best trial and hparams are those the ``final:`` retraining uses."""
    from nas.trial import TrialRecord, TrialResult, TrialState
    from workers.backend import SearchOutcome
    from workers.final import ranked_hparams
    from workers.summary import summarize

    resolved = parse_spec(
        {
            "name": "repeat",
            "dataset": {"name": "digits"},
            "space": {"name": "enas-macro", "layers": 3, "channels": 4},
            "controller": {"name": "random"},
            "evaluator": {"name": "standalone"},
            "hparams": {"lr": {"type": "float", "low": 0.001, "high": 0.1}},
            "budget": {"trials": 3},
        }
    )
    space = resolved.build_space()
    best, other = _archs(2)
    result = TrialResult(TrialState.COMPLETE, objective=90.0, metrics={"val_accuracy": 90.0})
    trials = [
        TrialRecord(
            0, 0, other, {"lr": 0.05}, TrialResult(TrialState.COMPLETE, objective=50.0), 0, 1
        ),
        TrialRecord(1, 1, best, {"lr": 0.01}, result, 1, 2),
        TrialRecord(2, 2, best, {"lr": 0.02}, result, 2, 3),
    ]
    outcome = SearchOutcome(trials, trials[1], "trial budget reached (3)", 3.0, 0.0)
    outcome.ranked = [(best, 90.0), (other, 50.0)]
    summary = summarize(resolved, outcome, space)
    assert summary["best"]["trial"] == 1
    assert summary["best"]["hparams"] == ranked_hparams(trials, outcome.ranked)[0] == {"lr": 0.01}


def _final_spec(**final: Any) -> dict[str, Any]:
    return {
        "name": "final-recipe",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1},
        "budget": {"trials": 1},
        "final": {"epochs": 1, **final},
    }


def test_final_retrains_with_its_loss_focal_gamma_and_momentum() -> None:
    """final: could not set them: an evaluator on the focal loss was retrained on plain
    cross-entropy, final: {optimizer: sgd} always with momentum 0.9 (the probe of the
    evaluators)."""
    from workers.final import retraining_recipe

    resolved = parse_spec(_final_spec(loss="focal", focal_gamma=3.0))
    recipe = retraining_recipe(resolved.spec.final)
    assert (recipe.loss, recipe.focal_gamma) == ("focal", 3.0)
    recipe = retraining_recipe(parse_spec(_final_spec(optimizer="sgd", momentum=0.5)).spec.final)
    assert (recipe.optimizer, recipe.momentum) == ("sgd", 0.5)
    # a joint search's trial hyperparameters still set them over final's
    assert retraining_recipe(resolved.spec.final, {"loss": "cross_entropy"}).loss == "cross_entropy"


@pytest.mark.parametrize(
    ("final", "field", "message"),
    [
        ({"focal_gamma": 3.0}, "focal_gamma", "only loss focal uses focal_gamma"),
        ({"loss": "focal", "label_smoothing": 0.1}, "label_smoothing", "does not smooth"),
        ({"momentum": 0.5}, "momentum", "only optimizer sgd uses momentum"),
    ],
)
def test_a_final_setting_the_recipe_would_ignore_is_refused_at_its_field(
    final: dict[str, Any], field: str, message: str
) -> None:
    from nas.errors import SpecError

    with pytest.raises(SpecError) as info:
        parse_spec(_final_spec(**final))
    found = {tuple(e["loc"]): e["msg"] for e in info.value.errors}
    assert message in found[("final", field)], found

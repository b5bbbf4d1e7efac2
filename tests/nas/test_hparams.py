from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from nas.errors import SpecError
from nas.hparams import TRAINING_HPARAMS, HparamSpace, InvalidHparamsError
from nas.training import TrainRecipe
from workers.search import parse_spec

REPO = Path(__file__).resolve().parents[2]
JOINT = yaml.safe_load(
    """
optimizer: {type: categorical, choices: [adam, sgd]}
lr: {type: float, low: 1e-4, high: 1.0e-1, log: true}
momentum: {type: float, low: 0.5, high: 0.99, condition: {param: optimizer, equals: sgd}}
loss: {type: categorical, choices: [cross_entropy, label_smoothing, focal]}
label_smoothing:
  {type: float, low: 0.05, high: 0.3, condition: {param: loss, equals: label_smoothing}}
focal_gamma: {type: float, low: 0.5, high: 5, step: 0.5, condition: {param: loss, in: [focal]}}
batch_size: {type: int, low: 16, high: 128, step: 16}
depth: {type: int, low: 1, high: 64, log: true}
dropout_on: {type: categorical, choices: [true, false]}
dropout: {type: float, low: 0.0, high: 0.5, condition: {param: dropout_on, equals: true}}
"""
)


def errors_of(raw: dict[str, Any]) -> dict[tuple, str]:
    with pytest.raises(SpecError) as info:
        HparamSpace.from_spec(raw)
    return {e["loc"]: e["msg"] for e in info.value.errors}


def f(**kw: Any) -> dict[str, Any]:
    return {"type": "float", "low": 0.0, "high": 1.0, **kw}


CASES = [
    ("low-above-high", {"x": f(low=0.1, high=0.01)}, ("x", "high"), "high (0.01) must be greater"),
    ("equal-ends", {"x": {"type": "int", "low": 3, "high": 3}}, ("x", "high"), "greater than low"),
    ("log-needs-positive", {"x": f(log=True)}, ("x", "low"), "a log scale needs low > 0"),
    (
        "int-log-needs-positive",
        {"x": {"type": "int", "low": 0, "high": 9, "log": True}},
        ("x", "low"),
        "low > 0",
    ),
    ("log-with-step", {"x": f(low=0.1, log=True, step=0.1)}, ("x", "step"), "cannot be combined"),
    (
        "step-not-a-multiple",
        {"x": {"type": "int", "low": 1, "high": 10, "step": 4}},
        ("x", "step"),
        "must be a multiple of step (4)",
    ),
    ("float-step-not-a-multiple", {"x": f(step=0.3)}, ("x", "step"), "multiple of step (0.3)"),
    ("negative-step", {"x": f(step=-1)}, ("x", "step"), "greater than 0"),
    # a step too fine for the sampler's integer grid was a decimal.InvalidOperation (1e-300)
    # or a job that failed at start ("high is out of bounds for int64", 1e-20)
    ("tiny-step", {"x": f(step=1e-300)}, ("x", "step"), "at most 1e+15 steps, got 1e+300"),
    ("fine-step", {"x": f(step=1e-20)}, ("x", "step"), "at most 1e+15 steps, got 1e+20"),
    ("wide-stepped", {"x": f(high=1e30, step=1e-3)}, ("x", "step"), "got 1e+33"),
    (
        "unknown-type",
        {"x": {"type": "loguniform"}},
        ("x", "type"),
        "unknown type 'loguniform'; valid: categorical, float, int",
    ),
    ("missing-type", {"x": {"low": 1}}, ("x", "type"), "field required; valid: categorical"),
    # unhashable: a TypeError, a traceback from nas search and a 500 from the service
    ("list-type", {"x": {"type": ["int"]}}, ("x", "type"), "unknown type ['int']; valid:"),
    ("mapping-type", {"x": {"type": {"a": 1}}}, ("x", "type"), "unknown type {'a': 1}; valid:"),
    ("not-a-mapping", {"x": [1, 2]}, ("x",), "must be a mapping with a type"),
    ("missing-field", {"x": {"type": "float", "low": 1}}, ("x", "high"), "field required"),
    ("unknown-field", {"x": f(lower=0)}, ("x", "lower"), "valid: low, high, log, step, condition"),
    ("infinite", {"x": f(high=float("inf"))}, ("x", "high"), "finite"),
    (
        "empty-choices",
        {"x": {"type": "categorical", "choices": []}},
        ("x", "choices"),
        "at least 1",
    ),
    (
        "duplicate-choice",
        {"x": {"type": "categorical", "choices": ["a", "b", "a"]}},
        ("x", "choices", 2),
        "duplicate choice 'a'",
    ),
    (  # one number twice (sampled and stored as two choices); true stays no 1
        "duplicate-number",
        {"x": {"type": "categorical", "choices": [1, True, 1.0]}},
        ("x", "choices", 2),
        "duplicate choice 1.0",
    ),
    ("bad-name", {"my lr": f()}, ("my lr",), "parameter names are"),
    (
        "condition-unknown",
        {"a": f(condition={"param": "nope", "equals": 1})},
        ("a", "condition", "param"),
        "unknown parameter 'nope'",
    ),
    (
        "condition-later",
        {
            "a": f(condition={"param": "b", "equals": "x"}),
            "b": {"type": "categorical", "choices": ["x"]},
        },
        ("a", "condition", "param"),
        "'b' is declared after 'a'",
    ),
    (
        "condition-self",
        {"a": f(condition={"param": "a", "equals": 1})},
        ("a", "condition", "param"),
        "conditional on itself",
    ),
    (
        "condition-not-categorical",
        {"a": f(), "b": f(condition={"param": "a", "equals": 1})},
        ("b", "condition", "param"),
        "'a' is a float parameter; conditions refer to categorical",
    ),
    (
        "condition-equals-not-a-choice",
        {
            "o": {"type": "categorical", "choices": ["adam", "sgd"]},
            "m": f(condition={"param": "o", "equals": "rmsprop"}),
        },
        ("m", "condition", "equals"),
        "'rmsprop' is not a choice of 'o'; choices: 'adam', 'sgd'",
    ),
    (
        "condition-in-not-a-choice",
        {
            "o": {"type": "categorical", "choices": ["adam", "sgd"]},
            "m": f(condition={"param": "o", "in": ["sgd", "lion"]}),
        },
        ("m", "condition", "in", 1),
        "'lion' is not a choice of 'o'",
    ),
    (
        "condition-both",
        {
            "o": {"type": "categorical", "choices": [1]},
            "m": f(condition={"param": "o", "equals": 1, "in": [1]}),
        },
        ("m", "condition"),
        "set exactly one of equals, in",
    ),
    (
        "condition-neither",
        {"o": {"type": "categorical", "choices": [1]}, "m": f(condition={"param": "o"})},
        ("m", "condition"),
        "set exactly one of equals, in",
    ),
    (
        "training-lr-range",
        {"lr": f(low=0.1, high=20)},
        ("lr", "high"),
        "20.0 is not valid for lr: 0 < lr <= 10",
    ),
    ("training-lr-zero", {"lr": f(low=0.0, high=0.1)}, ("lr", "low"), "0 < lr <= 10"),
    (
        "training-optimizer-choice",
        {"optimizer": {"type": "categorical", "choices": ["adam", "lion"]}},
        ("optimizer", "choices", 1),
        "'lion' is not valid for optimizer: adam, adamw, sgd",
    ),
    ("training-optimizer-type", {"optimizer": f()}, ("optimizer", "type"), "use type categorical"),
    (  # (it said "2.5 is not valid for batch_size: 1 <= batch_size <= 65536")
        "training-integer-choice-not-whole",
        {"batch_size": {"type": "categorical", "choices": [32, 2.5]}},
        ("batch_size", "choices", 1),
        "2.5 is not valid for batch_size: a whole number",
    ),
    (
        "training-loss-choice",
        {"loss": {"type": "categorical", "choices": ["mse"]}},
        ("loss", "choices", 0),
        "cross_entropy, label_smoothing, focal",
    ),
    (
        "training-batch-size-float",
        {"batch_size": f(low=16, high=64)},
        ("batch_size", "type"),
        "use type int",
    ),
    (
        "training-yaml-string",
        {"lr": {"type": "categorical", "choices": ["1e-3", 0.1]}},
        ("lr", "choices", 0),
        "YAML reads 1e-3 as text, write 1.0e-3",
    ),
    (
        "training-smoothing-range",
        {"label_smoothing": f(high=1.0)},
        ("label_smoothing", "high"),
        "0 <= label_smoothing < 1",
    ),
]


@pytest.mark.parametrize(
    ("raw", "loc", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_problem_is_reported_at_its_path(raw: dict, loc: tuple, message: str) -> None:
    errors = errors_of(raw)
    assert ("hparams", *loc) in errors, errors
    assert message in errors[("hparams", *loc)]


def test_every_problem_is_reported_together() -> None:
    errors = errors_of({"a": f(low=2), "b": {"type": "x"}, "c": f(log=True)})
    assert set(errors) == {
        ("hparams", "a", "high"),
        ("hparams", "b", "type"),
        ("hparams", "c", "low"),
    }


def test_a_choice_that_is_no_scalar_is_one_problem_at_its_index() -> None:
    """A mapping or a list as a choice (or a condition's value) was four problems, one per
    member of the scalar union ("choices.0.str: Input should be a valid string", then .int,
    .float, .bool): the probe of an Optuna user."""
    errors = errors_of(
        {
            "x": {"type": "categorical", "choices": [{"a": 1}, [1], "ok"]},
            "y": f(condition={"param": "x", "equals": {"q": 1}}),
        }
    )
    scalar = "must be a string, a number, true, false or null"
    assert errors == {
        ("hparams", "x", "choices", 0): f"{scalar}, not a mapping",
        ("hparams", "x", "choices", 1): f"{scalar}, not a list",
        ("hparams", "y", "condition", "equals"): f"{scalar}, not a mapping",
    }
    # numpy's scalars (an in-process caller's) are Python's: np.int64(3) was the float 3.0
    space = HparamSpace.from_spec(
        {"x": {"type": "categorical", "choices": [np.int64(3), np.bool_(True), np.str_("a")]}}
    )
    assert [(type(c), c) for c in space.params["x"].choices] == [(int, 3), (bool, True), (str, "a")]


def test_a_choice_with_control_characters_is_refused_at_its_index() -> None:
    """An escape sequence as a choice cleared the terminal of whoever listed the trials (an
    admin's too), and a newline forged a row of ``nas trials`` (the security probe)."""
    errors = errors_of(
        {
            "x": {"type": "categorical", "choices": ["ok", "\x1b[2J\x1b[Hforged", "a\nrow"]},
            "y": f(condition={"param": "x", "equals": "\t"}),
        }
    )
    said = "must not contain control characters (newlines, tabs, escapes), got"
    assert errors == {
        ("hparams", "x", "choices", 1): f"{said} '\\x1b'",
        ("hparams", "x", "choices", 2): f"{said} '\\n'",
        ("hparams", "y", "condition", "equals"): f"{said} '\\t'",
    }
    # a job stored before the rule still loads (its listings answered 500 else)
    stored, problems = HparamSpace.parse({"x": {"type": "categorical", "choices": ["a\nb"]}})
    assert not problems and list(stored.params["x"].choices) == ["a\nb"]


def test_yaml_exponents_without_a_dot_are_read_as_numbers_for_ranges() -> None:
    space = HparamSpace.from_spec(JOINT)
    assert space.params["lr"].low == 1e-4  # YAML gives the string "1e-4": read as a number


def test_spec_errors_have_paths_under_hparams() -> None:
    doc = yaml.safe_load((REPO / "examples/mnist1d-joint.yaml").read_text())
    doc["hparams"]["lr"]["high"] = 1e-5
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert "hparams.lr.high: high (1e-05) must be greater than low (0.0001)" in str(info.value)


def test_a_valid_section_resolves_to_a_space() -> None:
    doc = yaml.safe_load((REPO / "examples/mnist1d-joint.yaml").read_text())
    resolved = parse_spec(doc)
    assert isinstance(resolved.hparams, HparamSpace)
    assert list(resolved.hparams) == list(doc["hparams"])
    assert resolved.to_dict()["hparams"] == doc["hparams"]
    doc["hparams"] = {}
    assert parse_spec(doc).hparams is None


def test_user_defined_names_are_allowed_with_any_evaluator_training_names_are_not(
    nb201_table: Any,
) -> None:
    doc = yaml.safe_load((REPO / "examples/nb201-random.yaml").read_text())
    doc["evaluator"]["table"] = str(nb201_table)
    doc["hparams"] = {"note": {"type": "categorical", "choices": ["a", "b"]}}
    assert list(parse_spec(doc).hparams) == ["note"]
    doc["hparams"]["lr"] = f(low=0.01)
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    [error] = info.value.errors
    assert error["loc"] == ("hparams", "lr")
    assert "evaluator 'tabular' does not set per trial" in error["msg"]


def test_a_name_of_the_evaluators_own_parameter_it_does_not_take_per_trial_is_refused() -> None:
    """MAML's ``eval_lr`` searched under ``hparams:`` was recorded and exported as each
    trial's hyperparameter while every trial ran the evaluator's own value."""
    doc = {
        "name": "hpe",
        "dataset": {"name": "sinusoid"},
        "space": {"name": "mlp", "max_layers": 1, "widths": [20]},
        "controller": {"name": "random"},
        "evaluator": {"name": "maml", "meta_iterations": 2},
        "objective": {"metric": "meta_val_mse", "direction": "minimize"},
        "hparams": {
            "eval_lr": {"type": "categorical", "choices": [0.00001, 0.5]},
            "inner_lr": f(low=0.01),  # one it takes per trial
            "note": {"type": "categorical", "choices": ["a", "b"]},  # the user's own
        },
        "budget": {"trials": 1},
    }
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    [error] = info.value.errors
    assert error["loc"] == ("hparams", "eval_lr")
    assert error["msg"] == (
        "'eval_lr' is a parameter of evaluator 'maml' that it does not take per trial: set "
        "evaluator.eval_lr instead (what it takes per trial: first_order, inner_lr, "
        "inner_steps, meta_batch, outer_lr)"
    )
    del doc["hparams"]["eval_lr"]
    assert list(parse_spec(doc).hparams) == ["inner_lr", "note"]


def test_a_name_of_the_users_own_spelled_like_a_per_trial_one_is_a_warning() -> None:
    """``learning_rate`` for ``lr``: searched and recorded while every trial trained with the
    evaluator's own lr, without a word."""
    from nas.spec import spec_warnings

    doc = {
        "name": "hpw",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1},
        "hparams": {
            "learning_rate": f(low=0.01),
            "momentun": f(low=0.5),
            "width": {"type": "int", "low": 8, "high": 16},  # the user's own, meant so
        },
        "budget": {"trials": 1},
    }
    assert spec_warnings(parse_spec(doc).spec) == [
        (
            "hparams.learning_rate is a name of your own: searched and recorded, but evaluator "
            "'standalone' trains every trial with its own 'lr'; name it 'lr' to search it"
        ),
        (
            "hparams.momentun is a name of your own: searched and recorded, but evaluator "
            "'standalone' trains every trial with its own 'momentum'; name it 'momentum' to "
            "search it"
        ),
    ]
    doc["hparams"]["lr"] = f(low=0.01)  # both: the user knows lr, learning_rate is meant
    assert [w.split()[0] for w in spec_warnings(parse_spec(doc).spec)] == ["hparams.momentun"]
    # an evaluator that takes none per trial: a procedure name is refused, a near one is moot
    doc["evaluator"] = {"name": "shared-weights", "epochs": 1}
    del doc["hparams"]["lr"]
    assert spec_warnings(parse_spec(doc).spec) == []


def test_to_dict_round_trips() -> None:
    space = HparamSpace.from_spec(JOINT)
    again = HparamSpace.from_spec(json.loads(json.dumps(space.to_dict())))
    assert again.to_dict() == space.to_dict()
    assert again.params == space.params


# --- sampling ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def samples() -> list[dict[str, Any]]:
    space = HparamSpace.from_spec(JOINT)
    rng = np.random.default_rng(0)
    return [space.sample(rng) for _ in range(4000)]


def test_samples_are_valid_and_only_active_parameters_are_set(samples) -> None:
    space = HparamSpace.from_spec(JOINT)
    for values in samples:
        assert space.validate(values) == values
        assert list(values) == [n for n in space if n in values]  # declaration order
        assert ("momentum" in values) == (values["optimizer"] == "sgd")
        assert ("label_smoothing" in values) == (values["loss"] == "label_smoothing")
        assert ("focal_gamma" in values) == (values["loss"] == "focal")
        assert ("dropout" in values) == (values["dropout_on"] is True)


def test_log_scale_is_log_uniform_and_linear_is_uniform(samples) -> None:
    lr = np.log10([v["lr"] for v in samples])
    assert lr.min() >= -4 and lr.max() <= -1
    counts = np.histogram(lr, bins=3, range=(-4, -1))[0] / len(lr)
    assert counts == pytest.approx([1 / 3] * 3, abs=0.03)
    momentum = np.array([v["momentum"] for v in samples if "momentum" in v])
    assert momentum.min() >= 0.5 and momentum.max() <= 0.99
    assert momentum.mean() == pytest.approx(0.745, abs=0.02)


def test_steps_and_integers(samples) -> None:
    assert {v["batch_size"] for v in samples} == set(range(16, 129, 16))
    gammas = {v["focal_gamma"] for v in samples if "focal_gamma" in v}
    assert gammas == {0.5 * k for k in range(1, 11)}
    depth = np.array([v["depth"] for v in samples])
    assert all(isinstance(d, int) for d in depth.tolist())
    assert depth.min() == 1 and depth.max() == 64
    assert np.mean(depth <= 8) == pytest.approx(
        math.log(8.5 / 0.5) / math.log(64.5 / 0.5), abs=0.03
    )


def test_categoricals_are_uniform(samples) -> None:
    losses = [v["loss"] for v in samples]
    for loss in ("cross_entropy", "label_smoothing", "focal"):
        assert losses.count(loss) / len(losses) == pytest.approx(1 / 3, abs=0.03)


def test_same_generator_same_samples() -> None:
    space = HparamSpace.from_spec(JOINT)
    a = [space.sample(np.random.default_rng(3)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(3)) for _ in range(3)]
    assert a == b


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"optimizer": "adam", "lr": 0.01, "momentum": 0.9}, "momentum: set although"),
        ({"optimizer": "sgd", "lr": 0.01}, "momentum: missing"),
        ({"optimizer": "adam", "lr": 0.5}, "lr: 0.5 is outside [0.0001, 0.1] (log)"),
        ({"optimizer": "adamw", "lr": 0.01}, "optimizer: 'adamw' is outside"),
        ({"optimizer": "adam", "lr": 0.01, "extra": 1}, "unknown hyperparameters: extra"),
    ],
)
def test_validate_rejects(values: dict[str, Any], message: str) -> None:
    space = HparamSpace.from_spec({k: JOINT[k] for k in ("optimizer", "lr", "momentum")})
    with pytest.raises(InvalidHparamsError, match=re.escape(message)):
        space.validate(values)


# --- mutation ------------------------------------------------------------------------------------
def test_mutate_changes_one_parameter_and_keeps_conditions() -> None:
    space = HparamSpace.from_spec(JOINT)
    rng = np.random.default_rng(1)
    parent = space.sample(rng)
    changes = []
    for _ in range(500):
        child = space.mutate(parent, rng)
        assert space.validate(child) == child
        changed = {k for k in set(parent) & set(child) if parent[k] != child[k]}
        # One parameter changes; conditionals it switches on or off come and go with it.
        assert len(changed) <= 1
        changes.append(bool(changed or set(parent) ^ set(child)))
        parent = child
    assert np.mean(changes) > 0.9  # (a number at the end of its range may stay there)


def test_numeric_mutation_is_a_local_step() -> None:
    space = HparamSpace.from_spec({"lr": JOINT["lr"]})
    rng = np.random.default_rng(0)
    steps = [abs(math.log10(space.mutate({"lr": 1e-2}, rng)["lr"]) + 2) for _ in range(500)]
    assert 0.1 < float(np.mean(steps)) < 0.5  # a tenth of three decades, on the log scale
    ints = HparamSpace.from_spec({"b": {"type": "int", "low": 1, "high": 3}})
    assert all(ints.mutate({"b": 2}, rng)["b"] in (1, 3) for _ in range(50))


# --- Optuna ------------------------------------------------------------------------------------
def test_optuna_distributions() -> None:
    dists = HparamSpace.from_spec(JOINT).distributions()
    assert dists["lr"] == FloatDistribution(1e-4, 0.1, log=True)
    assert dists["focal_gamma"] == FloatDistribution(0.5, 5.0, step=0.5)
    assert dists["batch_size"] == IntDistribution(16, 128, step=16)
    assert dists["depth"] == IntDistribution(1, 64, log=True)
    assert dists["loss"] == CategoricalDistribution(("cross_entropy", "label_smoothing", "focal"))


def test_optuna_suggests_only_active_parameters() -> None:
    space = HparamSpace.from_spec(JOINT)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    for _ in range(20):
        trial = study.ask()
        values = space.suggest(trial, prefix="hp:")
        assert space.validate(values) == values
        assert set(trial.params) == {"hp:" + k for k in values}
        study.tell(trial, values["lr"])


def test_training_keys_are_the_recipe_fields_they_override() -> None:
    fields = set(TrainRecipe.__dataclass_fields__)
    assert set(TRAINING_HPARAMS) <= fields


@pytest.mark.parametrize(
    ("evaluator", "hparam", "message"),
    [
        ("reptile", {"type": "int", "low": 0, "high": 3}, "0 is outside what evaluator 'reptile'"),
        ("reptile", {"type": "categorical", "choices": [2, 0]}, "takes for inner_steps"),
    ],
)
def test_a_procedure_range_is_checked_against_the_evaluators_own_field(
    evaluator: str, hparam: dict[str, Any], message: str
) -> None:
    """Reptile refuses ``inner_steps: 0`` as a setting; a range reaching 0 ran trials at 0
    (a degenerate search, no error)."""
    spec = {
        "name": "steps",
        "dataset": {"name": "sinusoid"},
        "space": {"name": "mlp", "max_layers": 2, "widths": [20]},
        "controller": {"name": "random"},
        "evaluator": {"name": evaluator},
        "hparams": {"inner_steps": hparam},
        "objective": {"metric": "meta_val_mse", "direction": "minimize"},
        "budget": {"trials": 2},
    }
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    found = {tuple(e["loc"]): e["msg"] for e in info.value.errors}
    assert message in found.get(("hparams", "inner_steps"), ""), found
    spec["hparams"] = {"inner_steps": {"type": "int", "low": 1, "high": 3}}
    assert parse_spec(spec).hparams is not None
    spec["evaluator"]["name"], spec["hparams"]["inner_steps"]["low"] = "maml", 0
    assert parse_spec(spec).hparams is not None  # MAML takes 0 steps (its field does)


def test_a_name_of_the_users_own_meant_as_a_procedure_name_is_recognised() -> None:
    from nas.hparams import TRAINING_HPARAMS, meant_name

    taken = list(TRAINING_HPARAMS)
    assert meant_name("learning_rate", taken) == "lr"  # another tool's name
    assert meant_name("LR", taken) == "lr"
    assert meant_name("momentun", taken) == "momentum"  # a typo
    assert meant_name("Weight-Decay", taken) == "weight_decay"
    assert meant_name("num_epochs", taken) == "epochs"
    # names of the user's own that mean something else
    assert meant_name("width", taken) is None
    assert meant_name("lr_decay", taken) is None
    assert meant_name("dropout", taken) is None
    # only among what the evaluator takes per trial
    assert meant_name("learning_rate", ["inner_lr", "outer_lr"]) is None
    assert meant_name("meta_lr", ["inner_lr", "outer_lr"]) == "outer_lr"


def test_more_than_a_hundred_hyperparameters_are_refused_at_the_section() -> None:
    """20,000 were accepted (an 850 KB spec): each importance chart of the job then cost the
    server seconds to minutes of CPU."""
    from nas.hparams import MAX_HPARAMS

    many = {f"p{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(MAX_HPARAMS + 1)}
    _, problems = HparamSpace.parse(many)
    assert [(p["loc"], p["msg"]) for p in problems] == [
        (("hparams",), "at most 100 hyperparameters, got 101")
    ]
    del many[f"p{MAX_HPARAMS}"]
    assert len(HparamSpace.from_spec(many).params) == MAX_HPARAMS

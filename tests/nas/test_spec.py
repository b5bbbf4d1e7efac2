"""Job spec validation: every problem reported at once, each with its exact field path."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from nas.errors import SpecError
from nas.evaluators import EVALUATORS
from nas.registry import Registry
from nas.spec import ResolvedSpec, load_spec_file, parse_document
from workers.search import parse_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nb201-random.yaml"


@pytest.fixture
def doc() -> dict[str, Any]:
    return load_spec_file(EXAMPLE)


def errors_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert info.value.errors, "a SpecError must list at least one problem"
    return info.value.errors


def error_at(data: dict[str, Any], loc: tuple[object, ...]) -> dict[str, Any]:
    errors = errors_of(data)
    matching = [e for e in errors if e["loc"] == loc]
    assert matching, f"no error at {loc}; got {[e['loc'] for e in errors]}"
    return matching[0]


def test_the_example_parses(doc: dict[str, Any]) -> None:
    resolved = parse_spec(doc)
    spec = resolved.spec
    assert spec.name == "nb201-random"
    assert (spec.dataset.name, spec.space.name, spec.controller.name, spec.evaluator.name) == (
        "nb201-cifar10",
        "nb201",
        "random",
        "tabular",
    )
    assert spec.budget.simulated_seconds == 12000
    assert resolved.controller_params == {"unique": False}  # defaults filled in
    assert resolved.evaluator_params["epochs"] == 12
    assert parse_spec(resolved.to_dict()).to_dict() == resolved.to_dict()


def test_a_json_document_parses_the_same(doc: dict[str, Any]) -> None:
    data = parse_document(json.dumps(doc), source="job.json")
    assert data == doc
    assert parse_spec(data).to_dict() == parse_spec(doc).to_dict()


def test_a_json_spec_file(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(doc, indent=2))
    assert load_spec_file(path) == doc


Mutation = Callable[[dict[str, Any]], object]
CASES: list[tuple[str, Mutation, tuple[object, ...], str]] = [
    ("unknown-top-level-key", lambda d: d.update(searcher="x"), ("searcher",), "unknown field"),
    (
        "unknown-dataset-param",
        lambda d: d["dataset"].update(foo=1),
        ("dataset", "foo"),
        "unknown field",
    ),
    (
        "unknown-space",
        lambda d: d["space"].update(name="darts"),
        ("space", "name"),
        "unknown space 'darts'; valid: enas-macro, enas-micro, metaqnn, mlp, nb201",
    ),
    (
        "unknown-controller",
        lambda d: d["controller"].update(name="x"),
        ("controller", "name"),
        "random",
    ),
    (
        "unknown-evaluator",
        lambda d: d["evaluator"].update(name="x"),
        ("evaluator", "name"),
        "tabular",
    ),
    ("wrong-type", lambda d: d.update(budget={"trials": "ten"}), ("budget", "trials"), "integer"),
    ("empty-budget", lambda d: d.update(budget={}), ("budget",), "set at least one of trials"),
    (  # (it said only the line above: why a cap is not enough was not said)
        "cap-only-budget",
        lambda d: d.update(budget={"max_trials": 7}),
        ("budget",),
        "simulated_seconds (max_trials: 7 is a cap on them, not a plan: for exactly that many, trials: 7)",
    ),
    ("no-budget", lambda d: d.pop("budget"), ("budget",), "field required"),
    (
        "controller-param-type",
        lambda d: d["controller"].update(unique="maybe"),
        ("controller", "unique"),
        "boolean",
    ),
    ("space-param", lambda d: d["space"].update(nodes=3), ("space", "nodes"), "unknown field"),
    (  # an unknown field says which ones are valid (it said "unknown field" alone)
        "unknown-constraint",
        lambda d: d.update(objective={"constraints": {"max_memory": 1}}),
        ("objective", "constraints", "max_memory"),
        "unknown field; valid: max_params, max_flops, max_latency_ms",
    ),
    (
        "unknown-budget-field",
        lambda d: d["budget"].update(trails=3),
        ("budget", "trails"),
        "unknown field; valid: trials, max_trials, minutes",
    ),
    (
        "evaluator-param",
        lambda d: d["evaluator"].update(epochs="x"),
        ("evaluator", "epochs"),
        "12 or 200",
    ),
    (  # accepted, then the job failed at its start
        "tabular-epochs-not-in-the-table",
        lambda d: d["evaluator"].update(epochs=13),
        ("evaluator", "epochs"),
        "Input should be 12 or 200",
    ),
    (
        "tabular-with-macro",
        lambda d: d.update(space={"name": "enas-macro"}),
        ("space", "name"),
        "the tabular evaluator needs space nb201",
    ),
    (
        "tabular-with-mnist1d",
        lambda d: d.update(dataset={"name": "mnist1d"}),
        ("dataset", "name"),
        "needs a NAS-Bench-201 dataset",
    ),
    (
        "metric-not-reported",
        lambda d: d["objective"].update(metric="test_accuracy"),
        ("objective", "metric"),
        "does not report 'test_accuracy'; valid: val_accuracy",
    ),
    (
        "bad-direction",
        lambda d: d["objective"].update(direction="up"),
        ("objective", "direction"),
        "maximize",
    ),
    (
        "hparams-range",
        lambda d: d.update(hparams={"width": {"type": "int", "low": 8, "high": 4}}),
        ("hparams", "width", "high"),
        "high (4) must be greater than low (8)",
    ),
    (
        "hparams-not-a-mapping",
        lambda d: d.update(hparams={"width": [8, 16]}),
        ("hparams", "width"),
        "must be a mapping with a type",
    ),
    (
        "hparams-training-key-with-a-table",
        lambda d: d.update(hparams={"lr": {"type": "float", "low": 0.001, "high": 0.1}}),
        ("hparams", "lr"),
        "evaluator 'tabular' does not set per trial; evaluators that do: standalone",
    ),
    ("bad-job-name", lambda d: d.update(name="my job!"), ("name",), "pattern"),
    ("negative-seed", lambda d: d.update(seed=-1), ("seed",), "greater than or equal to 0"),
    ("space-not-a-mapping", lambda d: d.update(space=["nb201"]), ("space",), "dictionary"),
    ("space-without-name", lambda d: d.update(space={}), ("space", "name"), "field required"),
    # a misspelt name is said (it was "field required" alone: the probe of the Python client)
    (
        "controller-name-misspelt",
        lambda d: d.update(controller={"nmae": "random"}),
        ("controller", "name"),
        "field required ('nmae' given: misspelt?)",
    ),
]


def test_channels_fit_with_a_size_objective_is_said() -> None:
    """fit widens each retrained architecture up to the constraints: with an objective
    that minimises size, the front's small model was exported at the limit (the probe of
    multi-objective search)."""
    from nas.spec import spec_warnings

    doc = load_spec_file(EXAMPLE.parent / "mnist1d-random.yaml")
    doc["objective"] = {
        "metrics": ["val_accuracy", "params"],
        "directions": ["maximize", "minimize"],
        "constraints": {"max_params": 12000},
    }
    doc["controller"] = {"name": "random"}
    doc["final"] = {"epochs": 1, "channels": "fit"}
    (warning,) = spec_warnings(parse_spec(doc).spec)
    assert warning.startswith("final.channels: fit widens each retrained architecture")
    assert "minimises 'params'" in warning
    doc["final"] = {"epochs": 1, "channels": 16}  # as found: nothing to say
    assert spec_warnings(parse_spec(doc).spec) == []


def test_a_missing_field_is_not_said_misspelt_as_another_field(doc: dict[str, Any]) -> None:
    """The hint names a key no field takes: a prior's ``source`` is its own field, not a
    misspelt ``score`` (the review of the hint)."""
    prior = {"architecture": {"space": "nb201", "choices": [0] * 6}, "source": 3}
    doc["warm_start"] = {"priors": [prior]}
    assert error_at(doc, ("warm_start", "priors", 0, "score"))["msg"] == "field required"


@pytest.mark.parametrize(
    ("mutate", "loc", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_problem_is_reported_at_its_field(
    doc: dict[str, Any], mutate: Mutation, loc: tuple[object, ...], message: str
) -> None:
    mutate(doc)
    assert message in error_at(doc, loc)["msg"]


def test_the_stored_spec_has_every_default_and_reads_back_as_it_was(
    doc: dict[str, Any],
) -> None:
    resolved = parse_spec(doc)
    stored = resolved.to_dict()
    assert stored["controller"] == {"name": "random", "unique": False}
    assert stored["evaluator"]["epochs"] == 12 and "table" in stored["evaluator"]
    assert json.loads(json.dumps(stored)) == stored  # plain JSON, as the database keeps it
    again = ResolvedSpec.from_stored(stored)
    assert again == resolved
    assert again.to_dict() == stored


def test_a_stored_spec_is_not_validated_against_the_registries_again(
    doc: dict[str, Any],
) -> None:
    stored = parse_spec(doc).to_dict()
    stored["controller"] = {"name": "not-registered-here", "anything": 1}
    assert ResolvedSpec.from_stored(stored).controller_params == {"anything": 1}


def test_the_controller_section_is_checked_against_the_registry_passed_in(
    doc: dict[str, Any],
) -> None:
    from nas.spec import parse_spec as parse_with

    only_other: Registry[Any] = Registry("controller")

    class OtherConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")

    class Other:
        Config = OtherConfig
        multi_objective = False

    only_other.register("other")(Other)
    with pytest.raises(SpecError) as info:
        parse_with(doc, controllers=only_other)
    (error,) = info.value.errors
    assert tuple(error["loc"]) == ("controller", "name")
    assert "unknown controller 'random'; valid: other" in error["msg"]
    doc["controller"] = {"name": "other"}
    assert parse_with(doc, controllers=only_other).spec.controller.name == "other"


def test_final_is_rejected_for_the_nb201_table(doc: dict[str, Any]) -> None:
    # Either "not supported yet" or "no trainable network to retrain": never silently ignored.
    doc["final"] = {"retrain_top_k": 2}
    error_at(doc, ("final",))


def test_simulated_time_needs_a_tabular_evaluator(doc: dict[str, Any]) -> None:
    trainers = [name for name in EVALUATORS.names() if not EVALUATORS.get(name).simulates_cost]
    if not trainers:
        pytest.skip("no non-tabular evaluator is registered yet")
    evaluator = EVALUATORS.get(trainers[0])
    doc.update(
        dataset={"name": "mnist1d"},
        space={"name": "enas-micro"},
        evaluator={"name": trainers[0]},
        objective={"metric": evaluator.metrics[0]},
        budget={"trials": 2, "simulated_seconds": 100},
    )
    msg = error_at(doc, ("budget", "simulated_seconds"))["msg"]
    assert msg == "only table and tabular evaluators simulate training time"


def test_several_problems_are_reported_together(doc: dict[str, Any]) -> None:
    doc["searcher"] = "x"
    doc["dataset"]["foo"] = 1
    doc["space"]["name"] = "darts"
    doc["controller"]["unique"] = "maybe"
    doc["budget"] = {"trials": "ten"}
    locs = {e["loc"] for e in errors_of(doc)}
    assert {
        ("searcher",),
        ("dataset", "foo"),
        ("space", "name"),
        ("controller", "unique"),
        ("budget", "trials"),
    } <= locs


def test_combination_and_support_problems_are_reported_together(doc: dict[str, Any]) -> None:
    doc["space"] = {"name": "enas-macro"}
    doc["dataset"] = {"name": "digits"}
    doc["objective"]["metric"] = "loss"
    doc["hparams"] = {"width": 0.1}
    locs = [e["loc"] for e in errors_of(doc)]
    assert sorted(locs) == sorted(
        [("space", "name"), ("dataset", "name"), ("objective", "metric"), ("hparams", "width")]
    )


def test_the_message_lists_every_problem(doc: dict[str, Any]) -> None:
    doc["dataset"]["foo"] = 1
    doc["hparams"] = {"width": 0.1}
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    text = str(info.value)
    assert text.startswith("invalid job spec:")
    assert "dataset.foo: unknown field" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed", "is not valid YAML"),
        ('{"name": "x",', "is not valid JSON"),
        ("- a\n- b\n", "must be a mapping of spec sections"),
        ("", "must be a mapping of spec sections"),
        ("just words", "must be a mapping of spec sections"),
    ],
)
def test_malformed_documents(text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_document(text, source="job.yaml")
    [error] = info.value.errors
    assert error["loc"] == ("<document>",)
    assert "job.yaml" in error["msg"] and message in error["msg"]


def test_a_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_file(tmp_path / "missing.yaml")
    [error] = info.value.errors
    assert error["loc"] == ("<file>",)
    assert "missing.yaml" in error["msg"]


def test_the_input_document_is_not_modified(doc: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    parse_spec(doc)
    assert doc == before


@pytest.mark.parametrize("section", ["dataset", "space", "controller", "evaluator"])
def test_an_empty_component_name_is_a_field_error(doc: dict[str, Any], section: str) -> None:
    doc[section] = {**doc[section], "name": ""}
    assert "at least 1 character" in error_at(doc, (section, "name"))["msg"]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("cpus_per_trial", 0.00001, "at least 0.0001"),
        ("gpus_per_trial", 0.00002, "at least 0.0001"),
        ("gpus_per_trial", 1.5, "GPUs are whole"),
    ],
)
def test_resources_ray_cannot_schedule_are_refused_at_their_field(
    doc: dict[str, Any], field: str, value: float, fragment: str
) -> None:
    """They were accepted and the job failed when it started, with Ray's ValueError."""
    doc["resources"] = {field: value}
    assert fragment in error_at(doc, ("resources", field))["msg"]


def test_resources_ray_can_schedule_pass(doc: dict[str, Any]) -> None:
    for resources in ({"cpus_per_trial": 0.1, "gpus_per_trial": 0.25}, {"gpus_per_trial": 2.0}):
        doc["resources"] = resources
        assert parse_spec(doc).spec.resources.gpus_per_trial == resources["gpus_per_trial"]


def test_more_predicted_priors_than_top_k_is_an_error_at_predicted(doc: dict[str, Any]) -> None:
    """It was an error of the whole warm_start section."""
    doc["warm_start"] = {"priors": [], "top_k": 3, "predicted": 5}
    assert "must not exceed top_k" in error_at(doc, ("warm_start", "predicted"))["msg"]


def test_a_limit_without_a_query_is_refused_at_limit(doc: dict[str, Any]) -> None:
    """It capped nothing: jobs and runs are used as listed."""
    doc["warm_start"] = {"jobs": [1, 2, 3], "limit": 2}
    assert "limit caps the jobs of a query" in error_at(doc, ("warm_start", "limit"))["msg"]
    # It is stored only with a query (every stored spec showed limit: 5 beside its jobs);
    # a spec stored with that old default submits again, stored without it.
    for written in ({"jobs": [1]}, {"jobs": [1], "limit": 5}, {"runs": ["r"]}):
        doc["warm_start"] = written
        assert parse_spec(doc).to_dict()["warm_start"].get("limit") is None, written
    doc["warm_start"] = {"query": "same-space"}
    assert parse_spec(doc).to_dict()["warm_start"]["limit"] == 5


def test_a_spec_stored_before_the_submit_rules_still_loads(doc: dict[str, Any]) -> None:
    """The rules added at submit (Ray's resource precision, limit without a query) must not
    make a job accepted before them unreadable: every listing of it answered 500."""
    stored = parse_spec(doc).to_dict()
    stored["resources"] = {**stored["resources"], "cpus_per_trial": 0.00001}
    stored["warm_start"] = {"jobs": [1, 2], "limit": 3, "priors": []}
    resolved = ResolvedSpec.from_stored(stored)
    assert resolved.spec.resources.cpus_per_trial == 0.00001
    # (the limit it ignored is dropped: stored again, the spec holds none)
    assert resolved.spec.warm_start is not None and resolved.spec.warm_start.limit is None
    micro = {**stored, "space": {"name": "enas-micro", "nodes": 2, "stages": 1}}
    assert ResolvedSpec.from_stored(micro).spec.space.params["stages"] == 1


def test_a_one_stage_micro_space_is_refused_at_stages(doc: dict[str, Any]) -> None:
    """One stage builds no reduction cell: its 4 x nodes reduce.* decisions changed nothing
    (two architectures differing there built the same network; the probe of the spaces)."""
    doc["space"] = {"name": "enas-micro", "nodes": 2, "stages": 1, "channels": 4}
    doc["dataset"], doc["evaluator"] = {"name": "digits"}, {"name": "standalone"}
    doc["budget"] = {"trials": 2}
    assert "builds no reduction cell" in error_at(doc, ("space", "stages"))["msg"]
    doc["space"]["stages"] = 2
    parse_spec(doc)


def test_on_time_limit_fail_without_minutes_is_refused(doc: dict[str, Any]) -> None:
    """``fail`` was accepted with no minutes, where it could never apply (the probe of
    budgets); a stored job's spec (read back, not submitted) still loads."""
    doc["budget"] = {"simulated_seconds": 12000, "on_time_limit": "fail"}
    error = error_at(doc, ("budget", "on_time_limit"))
    assert "there are no minutes here: set budget.minutes" in error["msg"]
    doc["budget"] = {"simulated_seconds": 12000, "minutes": 5, "on_time_limit": "fail"}
    assert parse_spec(doc).spec.budget.on_time_limit == "fail"
    doc["budget"] = {"minutes": 0, "on_time_limit": "fail"}  # said at minutes alone
    assert [e["loc"] for e in errors_of(doc)] == [("budget", "minutes")]
    from nas.spec import BudgetSpec

    stored = BudgetSpec.model_validate({"trials": 3, "on_time_limit": "fail"})  # no context
    assert stored.on_time_limit == "fail"


def test_a_priors_architecture_is_checked_field_by_field_and_loads_as_stored_before(
    doc: dict[str, Any],
) -> None:
    """A prior's architecture was a plain mapping: a version of true, "1" or 1.9 was
    taken (as int() took it) and an unknown key kept in the stored spec (the spec fuzz
    probe). A job stored so before still loads."""
    arch = {"space": "nb201", "version": 1, "choices": [0] * 6}
    doc["warm_start"] = {"priors": [{"architecture": arch, "score": 1.0}]}
    assert parse_spec(doc, strict=True).spec.warm_start.priors[0].architecture.choices == [0] * 6
    for bad, loc in (
        ({**arch, "version": True}, ("version",)),
        ({**arch, "version": "1"}, ("version",)),
        ({**arch, "version": 1.9}, ("version",)),
        ({**arch, "zz_unknown": 1}, ("zz_unknown",)),
        ({**arch, "choices": ["0", *arch["choices"][1:]]}, ("choices", 0)),
    ):
        doc["warm_start"] = {"priors": [{"architecture": bad, "score": 1.0}]}
        with pytest.raises(SpecError) as info:
            parse_spec(doc, strict=True)  # (as the service and nas search read documents)
        where = [e["loc"] for e in info.value.errors]
        assert where == [("warm_start", "priors", 0, "architecture", *loc)], (bad, where)
    stored = parse_spec({k: v for k, v in doc.items() if k != "warm_start"}).to_dict()
    stored["warm_start"] = {
        "priors": [{"architecture": {**arch, "version": 1.9, "zz": 1}, "score": 1.0}]
    }
    (prior,) = ResolvedSpec.from_stored(stored).spec.warm_start.priors
    assert prior.model_dump()["architecture"] == {**arch, "version": 1}
    # a row edited by hand: it loads (it answered every listing of the user's jobs 500)
    for version in ("abc", None):
        stored["warm_start"]["priors"][0]["architecture"] = {**arch, "version": version}
        (prior,) = ResolvedSpec.from_stored(stored).spec.warm_start.priors
        assert prior.architecture.version == version

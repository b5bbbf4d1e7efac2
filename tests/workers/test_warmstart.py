"""The controller's part of a ``nas search`` warm start (``workers.warmstart``): a source run
folder's ``controller.json``, damaged, is a spec error at that folder's ``warm_start.runs.I``;
the sources' observations are kept only for the controllers that learn from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas.errors import SpecError
from nas.warmstart import resolve_runs
from tests.nas.test_warmstart import NB201_RUN_SPEC, write_run
from workers.warmstart import (
    CONTROLLER_FILE,
    _controller_section,
    models_observations,
    resolve_run_controller,
)

ENAS = {"name": "enas", "num_aggregate": 4, "lstm_size": 8}


@pytest.mark.parametrize(
    ("controller_json", "message"),
    [
        ("{bad", "controller.json cannot be read as JSON"),
        ("[]", "controller.json holds a list; expected a JSON object"),
        # The same controller and parameters, but no policy in its state.
        (json.dumps({"name": "enas"}), "controller.json is not a state of its controller"),
    ],
)
def test_a_damaged_controller_file_is_a_field_error_at_its_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    nb201_table: Path,
    controller_json: str,
    message: str,
) -> None:
    monkeypatch.setenv("NAS_NB201_TABLE", str(nb201_table))
    target = {**NB201_RUN_SPEC, "name": "tgt", "controller": ENAS}
    # (the source ran this controller as its spec.yaml stores it: every default written out)
    source_spec = {**NB201_RUN_SPEC, "controller": _controller_section(target)}
    good = write_run(tmp_path / "good", spec=source_spec)
    bad = write_run(tmp_path / "bad", spec=source_spec)
    (bad / CONTROLLER_FILE).write_text(controller_json)
    document = {**target, "warm_start": {"runs": [str(good), str(bad)]}}
    with pytest.raises(SpecError) as info:
        resolve_run_controller(document)
    [error] = info.value.errors
    assert error["loc"] == ("warm_start", "runs", 1)
    assert repr(str(bad)) in error["msg"] and message in error["msg"], error["msg"]


def test_the_first_run_with_a_state_gives_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nb201_table: Path
) -> None:
    """Transferred one folder at a time, the first folder whose state this controller takes
    gives it, as all at once; a folder without the file gives none."""
    monkeypatch.setenv("NAS_NB201_TABLE", str(nb201_table))
    target = {**NB201_RUN_SPEC, "name": "tgt", "controller": ENAS}
    source_spec = {**NB201_RUN_SPEC, "controller": _controller_section(target)}
    none = write_run(tmp_path / "none", spec=source_spec)
    first, second = (write_run(tmp_path / n, spec=source_spec) for n in ("first", "second"))
    for folder in (first, second):
        state = {"name": "enas", "enas": {"policy": folder.name}}
        (folder / CONTROLLER_FILE).write_text(json.dumps(state))
    document = {**target, "warm_start": {"runs": [str(none), str(first), str(second)]}}
    warm = resolve_run_controller(document)["warm_start"]
    assert warm["controller_state"] == {"source": str(first), "state": {"policy": "first"}}


@pytest.mark.parametrize(
    ("controller", "kept"),
    [
        ({"name": "tpe"}, True),
        ({"name": "gp"}, True),
        ({"name": "random"}, False),
        ({"name": "evolution"}, False),
        (ENAS, False),
    ],
)
def test_observations_are_kept_only_for_controllers_that_learn_from_them(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    nb201_table: Path,
    controller: dict[str, object],
    kept: bool,
) -> None:
    """A random or evolution job stored every source trial it never read, up to the body
    limit a stored spec submitted again must fit."""
    monkeypatch.setenv("NAS_NB201_TABLE", str(nb201_table))
    run = write_run(tmp_path / "run")
    target = {
        **NB201_RUN_SPEC,
        "name": "tgt",
        "controller": controller,
        "warm_start": {"runs": [str(run)]},
    }
    warm = resolve_run_controller(resolve_runs(target))["warm_start"]
    assert warm["priors"]  # (the priors are every controller's)
    assert len(warm["observations"]) == (1 if kept else 0)
    assert models_observations(target) is kept


@pytest.mark.parametrize("controller", ["random", "evolution", "tpe"])
def test_priors_over_the_jobs_constraints_are_not_proposed(
    nb201_table: Path, controller: str
) -> None:
    """A prior (a source's, or predicted by its model) over this job's
    ``objective.constraints`` was proposed and PRUNED, a trial of the budget spent on
    nothing (the probe of combined features): it is left out."""
    from nas.architecture import Architecture
    from nas.trial import TrialState
    from workers.search import SearchLoop, parse_spec

    spec = {
        "name": "t",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": controller},
        "evaluator": {"name": "tabular", "table": str(nb201_table)},
        "objective": {"metric": "val_accuracy", "constraints": {"max_params": 4e5}},
        "budget": {"trials": 4},
        "seed": 0,
    }
    archs = [[3, 3, 3, 3, 3, 3], [1, 2, 1, 2, 1, 2], [3, 1, 3, 1, 3, 1], [2, 2, 2, 2, 2, 2]]
    priors = [
        {"architecture": {"space": "nb201", "version": 1, "choices": a}, "score": 1 - i / 10}
        for i, a in enumerate(archs)
    ]
    loop = SearchLoop(parse_spec({**spec, "warm_start": {"priors": priors}}))
    verdicts = loop.components.evaluator.check_constraints(
        [Architecture("nb201", tuple(a), 1) for a in archs], {"max_params": 4e5}
    )
    feasible = [a for a, (why, _) in zip(archs, verdicts, strict=True) if why is None]
    assert 0 < len(feasible) < len(archs), verdicts  # (the test's own premise)
    outcome = loop.run()
    first = outcome.trials[: len(feasible)]
    assert [list(t.architecture.choices) for t in first] == feasible
    assert all(t.result.state is TrialState.COMPLETE for t in first)

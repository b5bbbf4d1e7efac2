"""``check_startable``: what a job would meet only when it starts, found before it exists,
as a ``SpecError`` at the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nas.errors import DatasetError, SpecError, spec_error_at_field
from workers.loops import check_startable
from workers.search import parse_spec


def _table_spec(path: Path, **evaluator: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "dataset": {"name": "table"},
        "space": {"name": "table", "path": str(path), "decisions": ["a", "b"]},
        "controller": {"name": "random"},
        "evaluator": {"name": "table", "fitness": "acc", **evaluator},
        "objective": {"metric": "acc", "direction": "maximize"},
        "budget": {"trials": 3},
    }


def _problem(spec: dict[str, Any]) -> tuple[list[Any], str]:
    with pytest.raises(SpecError) as info:
        check_startable(parse_spec(spec))
    (problem,) = info.value.errors
    return list(problem["loc"]), problem["msg"]


def test_a_tables_columns_are_checked_at_their_fields(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a,b,acc,note\nx,1,0.5,hello\ny,1,0.7,hi\n")
    check_startable(parse_spec(_table_spec(table)))  # a good one passes
    assert _problem(_table_spec(table, metrics=["note"])) == (
        ["evaluator", "metrics", 0],
        (
            "column 'note' must be numeric (a finite number, or an empty cell for a missing "
            "value, in every row); data row 1 is not a finite number"
        ),
    )
    assert _problem(_table_spec(table, cost=[{"column": "secs"}])) == (
        ["evaluator", "cost", 0],
        "the table has no column 'secs'",
    )
    renamed = _table_spec(table)
    renamed["space"]["decisions"] = ["a", "c"]
    assert _problem(renamed) == (["space", "decisions", 1], "the table has no column 'c'")


def test_a_controller_that_cannot_be_built_is_a_problem_at_its_field() -> None:
    spec = {
        "name": "n",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "metaqnn"},
        "evaluator": {"name": "tabular"},
        "budget": {"trials": 3},
        "warm_start": {
            "priors": [{"architecture": {"space": "nb201", "choices": [1] * 6}, "score": 1.0}],
            "controller_state": {"source": 7, "state": {"q": "not a table"}},
        },
    }
    loc, _ = _problem(spec)
    assert loc == ["warm_start", "controller_state"]
    spec["warm_start"]["controller_state"] = {"junk": 1}  # was the bare message "'state'"
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    (problem,) = info.value.errors
    assert problem["loc"] == ("warm_start", "controller_state")
    assert "expected {source, state}, state a mapping" in problem["msg"]
    del spec["warm_start"]["controller_state"]
    check_startable(parse_spec(spec))


def test_a_meta_training_job_builds_no_controller() -> None:
    """An rl2-meta job trains the policy its rl2 controller would need: nothing to load."""
    check_startable(
        parse_spec(
            {
                "name": "meta",
                "dataset": {"name": "nb201-cifar10"},
                "space": {"name": "nb201"},
                "controller": {"name": "rl2"},
                "evaluator": {
                    "name": "rl2-meta",
                    "tasks": ["nb201-cifar10"],
                    "iterations": 1,
                },
                "budget": {"minutes": 1},
            }
        )
    )


@pytest.mark.parametrize(
    ("message", "loc", "msg"),
    [
        (
            "space.decisions.1: the table has no column 'c'",
            ["space", "decisions", 1],
            "the table has no column 'c'",
        ),
        (
            "dataset.path: expected an .npz file: x: y",
            ["dataset", "path"],
            "expected an .npz file: x: y",
        ),
        ("dataset 'x' is a task distribution", ["dataset"], "dataset 'x' is a task distribution"),
    ],
)
def test_an_error_message_that_starts_with_a_field_is_placed_there(
    message: str, loc: list[Any], msg: str
) -> None:
    (problem,) = spec_error_at_field(DatasetError(message), ["dataset"]).errors
    assert list(problem["loc"]) == loc
    assert problem["msg"] == msg


def test_a_grid_too_large_is_a_problem_at_the_controller() -> None:
    spec = {
        "name": "g",
        "dataset": {"name": "mnist1d"},
        "space": {"name": "enas-macro", "layers": 12, "channels": 4},
        "controller": {"name": "grid"},
        "evaluator": {"name": "standalone", "epochs": 1},
        "budget": {"trials": 2},
    }
    loc, msg = _problem(spec)
    assert loc == ["controller", "max_size"]  # (was the whole section)
    assert msg.startswith("grid search over space") and "more than max_size=100,000" in msg


def test_a_metaqnn_space_sized_for_other_data_is_refused_at_the_space() -> None:
    """It was accepted, then every trial failed at the job's start ('nas search': a
    traceback)."""
    spec = {
        "name": "m",
        "dataset": {"name": "digits"},
        "space": {"name": "metaqnn"},  # input_size 40: MNIST-1D's length, not digits' 8 x 8
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1},
        "budget": {"trials": 1},
    }
    assert _problem(spec) == (
        ["space"],
        (
            "space metaqnn has input_size 40 but the data's spatial size is (8, 8); set the "
            "space's input_size to 8"
        ),
    )
    spec["space"] = {"name": "metaqnn", "input_size": 8}
    check_startable(parse_spec(spec))


def test_episodes_over_a_file_need_enough_examples_in_its_smallest_class(tmp_path: Path) -> None:
    """Tasks take support + query examples of each class: a file whose smallest class has
    fewer failed the job at its first task; now the submit names the field and the class."""
    labels = np.concatenate([np.repeat(np.arange(9), 8), np.full(3, 9)])  # class 9: 3
    path = tmp_path / "few.npz"
    np.savez(path, x=np.zeros((len(labels), 1, 4, 4), np.float32), y=labels)
    spec = {
        "name": "e",
        "dataset": {"name": "episodes", "source": "npz", "path": str(path), "ways": 2},
        "space": {"name": "enas-macro", "layers": 1, "channels": 4, "reductions": []},
        "controller": {"name": "random"},
        "evaluator": {"name": "protonet", "shots": 1, "queries": 2, "eval_shots": 1,
                      "eval_points": 2},
        "objective": {"metric": "meta_val_accuracy", "direction": "maximize"},
        "budget": {"trials": 1},
    }  # fmt: skip
    check_startable(parse_spec(spec))  # 1 + 2 of 3: enough
    spec["evaluator"]["eval_points"] = 3
    assert _problem(spec) == (
        ["evaluator", "eval_points"],  # (the larger of the two, the one given)
        (
            "a task takes 1 support + 3 query examples of each class; class 9 of dataset.path has "
            "only 3 (its smallest): lower them, or leave that class out of the file"
        ),
    )
    # a built-in source too (the README said so; only glyphs and npz files were checked)
    spec["dataset"] = {"name": "episodes", "source": "digits", "ways": 2}
    spec["evaluator"].update(shots=170, queries=5, eval_points=2)
    assert _problem(spec) == (
        ["evaluator", "shots"],
        (
            "a task takes 170 support + 5 query examples of each class; class 8 of digits has only "
            "174 (its smallest): lower them"
        ),
    )


def _parallel_spec(controller: dict[str, Any], workers: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "name": "side-by-side",
        "dataset": {"name": "digits"},
        "space": {"name": "mlp", "max_layers": 2},
        "controller": controller,
        "evaluator": {"name": "standalone", "epochs": 1},
        "budget": {"trials": 4},
        "resources": {"workers": workers},
        **spec,
    }


@pytest.mark.parametrize(
    ("controller", "setting"),
    [
        ({"name": "tpe"}, "max_pending"),
        ({"name": "gp"}, "max_pending"),
        ({"name": "cmaes"}, "max_pending"),
        ({"name": "nsga2"}, "max_pending"),
        ({"name": "evolution"}, "max_pending"),
        ({"name": "grid", "max_pending": 1}, "max_pending"),  # unbounded unless set
        ({"name": "enas", "num_aggregate": 1}, "num_aggregate"),
    ],
)
def test_workers_a_controller_cannot_keep_busy_are_refused(
    controller: dict[str, Any], setting: str
) -> None:
    """A controller that has fewer candidates out at once than ``resources.workers`` ran the
    trials one at a time, silently: refused at the field, naming what to set."""
    loc, msg = _problem(_parallel_spec(controller))
    assert loc == ["resources", "workers"]
    assert f"controller.{setting}: 1)" in msg, msg
    assert "would run 1 trial at a time" in msg, msg
    assert "set resources.workers: 1" in msg and f"controller.{setting}: 2 or more" in msg, msg


@pytest.mark.parametrize(
    "controller",
    [
        {"name": "random"},
        {"name": "metaqnn"},
        {"name": "qmc"},
        {"name": "grid"},
        {"name": "enas"},  # num_aggregate 20
        {"name": "tpe", "max_pending": 2},
        {"name": "evolution", "max_pending": None},
    ],
)
def test_workers_a_controller_keeps_busy_are_accepted(controller: dict[str, Any]) -> None:
    check_startable(parse_spec(_parallel_spec(controller)))


def test_workers_that_are_not_trials_side_by_side_are_not_checked(nb201_table: Path) -> None:
    """Table lookups are answered in batches, and a supernet's workers train it together:
    their workers are not trials side by side."""
    spec = _parallel_spec(
        {"name": "tpe"},
        dataset={"name": "nb201-cifar10"},
        space={"name": "nb201"},
        evaluator={"name": "tabular", "table": str(nb201_table)},
    )
    check_startable(parse_spec(spec))
    supernet = _parallel_spec(
        {"name": "enas", "num_aggregate": 1},
        space={"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        evaluator={"name": "shared-weights", "epochs": 1, "rewards_per_epoch": 2},
    )
    check_startable(parse_spec(supernet))
    check_startable(parse_spec(_parallel_spec({"name": "tpe"}, workers=1)))


@pytest.mark.parametrize(
    ("x", "fits", "size"),
    [
        (np.zeros((40, 3, 16, 16), np.float32), 16, "(16, 16)"),
        (np.zeros((40, 64)), 64, "(64,)"),  # 1-D examples get a channel axis: (1, 64)
    ],
)
def test_metaqnns_input_size_is_checked_against_an_npz_files_headers(
    tmp_path: Path, x: np.ndarray, fits: int, size: str
) -> None:
    """A user's npz file of another spatial size than the space's input_size was accepted and
    failed the job at its start (``nas search``: a traceback); generated data was checked."""
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=np.arange(40) % 2)
    spec = {
        "name": "m",
        "dataset": {"name": "npz", "path": str(path)},
        "space": {"name": "metaqnn", "max_layers": 3, "channels": 8},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1},
        "budget": {"trials": 1},
    }
    assert _problem(spec) == (
        ["space"],
        (
            f"space metaqnn has input_size 40 but the data's spatial size is {size}; set the "
            f"space's input_size to {fits}"
        ),
    )
    spec["space"]["input_size"] = fits
    check_startable(parse_spec(spec))

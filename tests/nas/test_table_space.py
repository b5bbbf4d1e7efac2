"""Bring your own benchmark table (issue 14 item 2): the ``table`` space, evaluator and
dataset on small CSV files written here; NAS-Bench-201 as a plain CSV for the protocol."""

from __future__ import annotations

import gzip
import itertools
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nas.architecture import Architecture
from nas.datasets import DATASETS, load_dataset
from nas.datasets.table import read_table
from nas.errors import DatasetError, SpecError
from nas.evaluators import TableEvaluator, build_evaluator
from nas.spaces import TableSpace, create_space
from nas.trial import TrialState
from workers.search import SearchLoop, parse_spec
from workers.summary import summarize

REPO = Path(__file__).resolve().parents[2]
#: A cell value that no error message may repeat.
SECRET = "s3cr3t-cell"


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    lines = [",".join(header)] + [",".join(str(c) for c in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """opt x width (2 x 3 = 6 combinations), one of them missing: (sgd, 64)."""
    rows = [
        ["adam", 8, 70.0, 69.0, 10, 1000],
        ["adam", 16, 80.0, 79.0, 20, 2000],
        ["adam", 64, 90.0, 88.0, 40, 4000],
        ["sgd", 8, 60.0, 61.0, 10, 1000],
        ["sgd", 16, 75.0, 74.0, 20, 2000],
    ]
    return write_csv(
        tmp_path / "bench.csv", ["opt", "width", "val", "test", "seconds", "params"], rows
    )


def spec(path: Path, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "table-test",
        "dataset": {"name": "table"},
        "space": {"name": "table", "path": str(path), "decisions": ["opt", "width"]},
        "controller": {"name": "random"},
        "evaluator": {
            "name": "table",
            "fitness": "val",
            "heldout": "test",
            "cost": [{"column": "seconds"}],
        },
        "objective": {"metric": "val"},
        "budget": {"trials": 20},
        "seed": 0,
    }
    doc.update(overrides)
    return doc


def arch(space: TableSpace, **values: str) -> Architecture:
    decisions = space.decisions()
    return space.make([d.choices.index(values[d.name]) for d in decisions])


# --- the space -----------------------------------------------------------------------------
def test_choices_are_the_distinct_values_sorted_by_number_or_text(bench: Path) -> None:
    space = TableSpace(path=str(bench), decisions=["width", "opt"])
    width, opt = space.decisions()
    assert (width.name, width.choices) == ("width", ("8", "16", "64"))  # 8 < 16 as numbers
    assert (opt.name, opt.choices) == ("opt", ("adam", "sgd"))
    assert space.size() == 6 and space.rows == 5
    found = arch(space, width="16", opt="sgd")
    assert space.describe(found) == {"width": "16", "opt": "sgd"}
    assert space.row_of(found) == 4
    assert space.row_of(arch(space, width="64", opt="sgd")) is None


def test_explicit_choices_set_the_order(bench: Path) -> None:
    space = create_space(
        "table",
        path=str(bench),
        decisions=[{"column": "opt", "choices": ["sgd", "adam"]}, "width"],
    )
    assert space.decisions()[0].choices == ("sgd", "adam")
    assert space.row_of(space.make([0, 0])) == 3  # sgd, 8
    # numbers in a YAML spec name their cells
    numeric = create_space(
        "table", path=str(bench), decisions=["opt", {"column": "width", "choices": [64, 8, 16]}]
    )
    assert numeric.decisions()[1].choices == ("64", "8", "16")


@pytest.mark.parametrize(
    "choices", [["adam"], ["adam", "sgd", "rmsprop"], ["adam", "SGD"]], ids=str
)
def test_explicit_choices_must_be_exactly_the_columns_values(
    bench: Path, choices: list[str]
) -> None:
    space = TableSpace(path=str(bench), decisions=["width", {"column": "opt", "choices": choices}])
    with pytest.raises(DatasetError) as info:
        space.decisions()
    assert str(info.value).startswith("space.decisions.1.choices: must be exactly the distinct")


def test_a_refused_table_names_the_choice_the_rows_and_the_separator(tmp_path: Path) -> None:
    """What the probe of users' tables met, each refused without naming what to fix: a
    YAML number (1e-05) against the file's text (0.00001), two rows of one combination, a
    NaN decision cell (it was a choice 'nan' that sorted the numbers as text), a file
    separated by semicolons."""
    lrs = write_csv(tmp_path / "lrs.csv", ["lr", "v"], [["0.00001", 1], ["0.001", 2]])
    space = TableSpace(path=str(lrs), decisions=[{"column": "lr", "choices": ["1e-05", "0.001"]}])
    with pytest.raises(DatasetError) as info:
        space.decisions()
    assert "not in the column: '1e-05'; 1 of its values not given" in str(info.value)
    assert "0.00001" not in str(info.value).split("(write")[0]  # (no cell repeated)
    assert "quoted, where YAML would change it" in str(info.value)
    dup = write_csv(tmp_path / "dup.csv", ["w", "v"], [[8, 1], [16, 2], [8, 3]])
    with pytest.raises(DatasetError, match="data rows 1 and 3 have the same values"):
        TableSpace(path=str(dup), decisions=["w"]).decisions()
    nan = write_csv(tmp_path / "nan.csv", ["w", "v"], [[8, 1], ["nan", 2], [16, 3]])
    with pytest.raises(DatasetError, match="no empty or not-a-number cells: data row 2"):
        TableSpace(path=str(nan), decisions=["w"]).decisions()
    semi = tmp_path / "semi.csv"
    semi.write_text("w;v\n8;1\n16;2\n")
    with pytest.raises(DatasetError, match="a CSV file here is separated by commas"):
        TableSpace(path=str(semi), decisions=["w"]).decisions()
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("w,v\n8,1\n16,2,3\n")
    with pytest.raises(DatasetError, match="data row 2 has 3 cells, the header 2 columns"):
        TableSpace(path=str(ragged), decisions=["w"]).decisions()


def test_the_config_rebuilds_the_space_and_is_validated(bench: Path) -> None:
    space = create_space(
        "table", path=str(bench), decisions=["opt", {"column": "width", "choices": [8, 16, 64]}]
    )
    again = TableSpace.from_config(space.config)
    assert again.config == space.config and again.decisions() == space.decisions()
    for decisions in ([], ["opt", "opt"], [{"column": "opt", "choices": ["a", "a"]}]):
        with pytest.raises(ValueError):
            create_space("table", path=str(bench), decisions=decisions)


def test_the_table_dataset_has_no_arrays() -> None:
    assert DATASETS.get("table").tabular is not None
    with pytest.raises(DatasetError, match="'table' is a tabular benchmark"):
        load_dataset("table")


# --- file problems: the field named, nothing of the file repeated ------------------------------
def _message(path: Path, decisions: list[Any] | None = None, **evaluator: Any) -> str:
    doc = spec(path)
    if decisions is not None:
        doc["space"]["decisions"] = decisions
    doc["evaluator"].update(evaluator)
    doc["objective"] = {"metric": doc["evaluator"]["fitness"]}
    try:
        build_evaluator(parse_spec(doc))
    except SpecError as exc:  # a column or file problem found as the spec is checked
        (first, *_) = exc.errors
        return ".".join(str(part) for part in first["loc"]) + ": " + first["msg"]
    except DatasetError as exc:  # found as the space and evaluator are built
        return str(exc)
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("header", "rows", "decisions", "evaluator", "starts"),
    [
        # no such column
        (["opt", "val", "test", "seconds"], [["a", 1, 1, 1]], ["nope"], {},
         "space.decisions.0: the table has no column 'nope'"),
        (["opt", "val", "test", "seconds"], [["a", 1, 1, 1]], ["opt"], {"fitness": "acc"},
         "evaluator.fitness: the table has no column 'acc'"),
        # a metric column that is not numeric
        (["opt", "val", "test", "seconds"], [["a", SECRET, 1, 1]], ["opt"], {},
         "evaluator.fitness: column 'val' must be numeric"),
        (["opt", "val", "test", "seconds", "m"], [["a", 1, 1, 1, SECRET]], ["opt"],
         {"metrics": ["m"]}, "evaluator.metrics.0: column 'm' must be numeric"),
        # a cell that is not a finite number: an infinite one is a result no JSON answer could
        # carry (the trial listing answered "objective": -Infinity); nan is refused alike (it
        # was taken as an empty cell, a missing value, which is written one way: empty). The
        # row is named, the cell not repeated.
        (["opt", "val", "test", "seconds"], [["a", 1, 1, 1], ["b", "-inf", 1, 1]], ["opt"], {},
         ("evaluator.fitness: column 'val' must be numeric (a finite number, or an empty cell "
          "for a missing value, in every row); data row 2 is not a finite number")),
        (["opt", "val", "test", "seconds"], [["a", 1, 1, 1], ["b", "nan", 1, 1]], ["opt"], {},
         "evaluator.fitness: column 'val' must be numeric"),
        (["opt", "val", "test", "seconds", "m"], [["a", 1, 1, 1, 2], ["b", 1, 1, 1, "NaN"]],
         ["opt"], {"metrics": ["m"]}, "evaluator.metrics.0: column 'm' must be numeric"),
        (["opt", "val", "test", "seconds"], [["a", 1, "inf", 1]], ["opt"], {"heldout": "test"},
         "evaluator.heldout: column 'test' must be numeric"),
        # a cost that is missing or negative
        # (the README says these name the data row; they did not)
        (["opt", "val", "test", "seconds"], [["a", 1, 1, ""]], ["opt"], {},
         ("evaluator.cost.0: column 'seconds' must hold a non-negative number in every row; "
          "data row 1 is empty")),
        (["opt", "val", "test", "seconds"], [["a", 1, 1, 3], ["b", 1, 1, -5]], ["opt"], {},
         ("evaluator.cost.0: column 'seconds' must hold a non-negative number in every row; "
          "data row 2 is negative")),
        # a scale that overflows a column's values to infinity (the listing answered
        # Infinity; a simulated-time budget was spent by the first query, with no trial)
        (["opt", "val", "test", "seconds"], [["a", 1, 1, 1], ["b", 1, 1, 10]], ["opt"],
         {"cost": [{"column": "seconds", "scale": 1e308}]},
         ("evaluator.cost.0.scale: 1e+308 * column 'seconds' is not a finite number in data "
          "row 2; use a smaller scale")),
        (["opt", "val", "test", "seconds"], [["a", 1, 1, 1]], ["opt"],
         {"cost": [{"column": "seconds", "scale": 1e308}, {"column": "val", "scale": 1e308}]},
         "evaluator.cost: the sum of scale * column is not a finite number in data row 1"),
        (["opt", "val", "test", "seconds", "p"], [["a", 1, 1, 1, ""], ["b", 1, 1, 1, 5]],
         ["opt"], {"figures": {"params": {"column": "p", "scale": 1e308}}},
         ("evaluator.figures.params.scale: 1e+308 * column 'p' is not a finite number in data "
          "row 2")),
        # a decision cell that is empty, a combination on two rows
        (["opt", "val", "test", "seconds"], [["", 1, 1, 1], ["b", 1, 1, 1]], ["opt"], {},
         "space.decisions.0: column 'opt' must hold a value in every row"),
        (["opt", "val", "test", "seconds"], [[SECRET, 1, 1, 1], [SECRET, 2, 2, 2]], ["opt"], {},
         "space.decisions: expected one row per combination"),
        # not a table
        (["opt", "val", "opt"], [["a", 1, 2]], ["opt"], {}, "space.path: expected a CSV file"),
        (["opt", "val"], [[SECRET, 1, 2]], ["opt"], {}, "space.path: expected a CSV file"),
        (["opt", "val"], [], ["opt"], {}, "space.path: expected a CSV file"),
    ],
)  # fmt: skip
def test_a_bad_table_is_a_clear_error_at_its_field(
    tmp_path: Path,
    header: list[str],
    rows: list[list[Any]],
    decisions: list[Any],
    evaluator: dict[str, Any],
    starts: str,
) -> None:
    path = write_csv(tmp_path / "bad.csv", header, rows)
    message = _message(path, decisions, **evaluator)
    assert message.startswith(starts), message
    assert SECRET not in message
    assert str(len(rows)) + " rows" not in message
    assert " holds " not in message and "nan" not in message.lower()


def test_a_file_that_is_not_text_or_not_there_says_what_was_expected(tmp_path: Path) -> None:
    binary = tmp_path / "weights.bin"
    binary.write_bytes(bytes(range(256)) * 8)
    message = _message(binary)
    assert message.startswith("space.path: expected a CSV file") and "\\x" not in message
    broken_gz = tmp_path / "broken.csv.gz"
    broken_gz.write_bytes(gzip.compress(b"opt,val\n" + SECRET.encode())[:20])
    assert _message(broken_gz).startswith("space.path: expected a CSV file")
    assert _message(tmp_path / "absent.csv").startswith("space.path: no such file")


def test_a_table_over_the_size_limits_is_refused_at_its_path_before_it_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An 18 MB .csv.gz of 8 million rows took 34 s and 2.9 GB of a server's memory to
    refuse: the size on disk is checked first, the text and cells as they are read."""
    import nas.datasets.table as table_module

    monkeypatch.setattr(table_module, "MAX_TABLE_CELLS", 1_000)
    monkeypatch.setattr(table_module, "MAX_TABLE_BYTES", 20_000)
    monkeypatch.setattr(table_module, "MAX_LINE_CHARS", 1_000)
    refused = "space.path: the table is larger than a table may be: at most"
    # cells: 600 rows of 2 columns is 1,200 cells (gzip: read up to the limit, not on)
    many = tmp_path / "many.csv.gz"
    many.write_bytes(gzip.compress(b"opt,val\n" + b"".join(b"o%d,1\n" % i for i in range(600))))
    # text: blank lines hold no cells, but are read (40,000 characters)
    blank = tmp_path / "blank.csv.gz"
    blank.write_bytes(gzip.compress(b"opt,val\na,1\n" + b"\n" * 40_000))
    # a line longer than MAX_LINE_CHARS (its row is parsed whole before it is counted)
    wide = write_csv(tmp_path / "wide.csv", ["opt", "val"], [["a" + "," * 2_000, 1]])
    # a file larger than MAX_TABLE_BYTES on disk: refused unread (not even a CSV)
    huge = tmp_path / "huge.csv"
    huge.write_bytes(bytes(range(256)) * 100)
    # text held at its column's widest cell: 10 rows of one 2,500-character cell are 25,000
    padded = write_csv(
        tmp_path / "padded.csv",
        ["opt", "val"],
        [["x" * 2_500 if i == 0 else i, 1] for i in range(10)],
    )
    for path in (many, blank, wide, huge, padded):
        with pytest.raises(DatasetError) as info:
            read_table(path, where="space.path")
        assert str(info.value).startswith(refused), (path.name, str(info.value))
        assert _message(path).startswith(refused), path.name  # as the spec is checked
    parquet = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    cells = tmp_path / "cells.parquet"
    parquet.write_table(pa.table({"opt": [f"o{i}" for i in range(600)], "val": [1.0] * 600}), cells)
    with pytest.raises(DatasetError, match="the table is larger than a table may be"):
        read_table(cells, where="space.path")
    # within the limits: read
    write_csv(tmp_path / "ok.csv", ["opt", "val"], [[f"o{i}", 1] for i in range(400)])
    assert read_table(tmp_path / "ok.csv", where="space.path").rows == 400


def test_a_gzip_table_reads_like_the_plain_one(bench: Path, tmp_path: Path) -> None:
    packed = tmp_path / "bench.csv.gz"
    packed.write_bytes(gzip.compress(bench.read_bytes()))
    plain = TableSpace(path=str(bench), decisions=["opt", "width"])
    zipped = TableSpace(path=str(packed), decisions=["opt", "width"])
    assert plain.decisions() == zipped.decisions()
    archs = [plain.make(list(c)) for c in itertools.product(range(2), range(3))]
    assert plain.rows_of(archs) == zipped.rows_of(archs)


def test_the_table_is_read_once_until_the_file_changes(bench: Path) -> None:
    first = read_table(bench, where="space.path")
    assert read_table(str(bench), where="space.path") is first
    assert TableSpace(path=str(bench), decisions=["opt"]).table is first
    write_csv(bench, ["opt", "width", "val"], [["adam", 8, 1.0], ["lamb", 8, 2.0]])
    stat = bench.stat()
    os.utime(bench, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later mtime
    changed = read_table(bench, where="space.path")
    assert changed is not first and changed.rows == 2
    assert TableSpace(path=str(bench), decisions=["opt"]).decisions()[0].choices == (
        "adam",
        "lamb",
    )


# --- the evaluator -------------------------------------------------------------------------
def test_a_row_answers_with_its_columns_and_a_missing_one_is_pruned_at_no_cost(
    bench: Path,
) -> None:
    space, evaluator = build_evaluator(
        parse_spec(spec(bench, evaluator={**spec(bench)["evaluator"], "metrics": ["params"]}))
    )
    assert isinstance(evaluator, TableEvaluator) and evaluator.metrics == ("val", "params")
    hit, miss = arch(space, opt="adam", width="64"), arch(space, opt="sgd", width="64")
    done, pruned = evaluator.evaluate([hit, miss])
    assert done.state is TrialState.COMPLETE and done.objective == 90.0
    assert dict(done.metrics) == {"val": 90.0, "params": 4000.0}
    assert (done.cost_s, done.simulated) == (40.0, True)
    assert "test" not in done.metrics  # the held-out figure is never shown to the search
    assert (pruned.state, pruned.cost_s, pruned.error) == (
        TrialState.PRUNED,
        0.0,
        "not in the table",
    )
    assert evaluator.final_metrics(hit) == {"test": 88.0, "table_row": 2}
    assert evaluator.final_metrics(miss) == {}


def test_cost_is_the_scaled_sum_and_an_empty_fitness_is_a_failed_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv",
        ["opt", "val", "test", "seconds", "eval_s"],
        [["a", 1.0, 1.0, 100, 3], ["b", "", "", 200, 5]],
    )
    doc = spec(path, space={"name": "table", "path": str(path), "decisions": ["opt"]})
    doc["evaluator"]["cost"] = [{"column": "seconds", "scale": 0.5}, {"column": "eval_s"}]
    space, evaluator = build_evaluator(parse_spec(doc))
    ok, failed = evaluator.evaluate([space.make([0]), space.make([1])])
    assert ok.cost_s == pytest.approx(53.0)
    assert failed.state is TrialState.FAIL and failed.cost_s == pytest.approx(105.0)
    assert evaluator.final_metrics(space.make([1])) == {"table_row": 1}  # no held-out value


def test_an_empty_cell_of_the_objective_metric_fails_its_row(tmp_path: Path) -> None:
    """An objective on a reported column other than the fitness, its cell empty: the row's
    trial kept the fitness as that metric's value (an accuracy of 0.01 ranked first as 0.01
    parameters: the probe of multi-objective search), in one objective or the first of
    several; it fails, as an empty fitness cell does."""
    path = write_csv(tmp_path / "t.csv", ["a", "acc", "p"], [[0, 0.01, ""], [1, 95, 1], [2, 90, 2]])
    for objective in (
        {"metric": "p", "direction": "minimize"},
        {"metrics": ["p", "acc"], "directions": ["minimize", "maximize"]},
    ):
        doc = spec(path, space={"name": "table", "path": str(path), "decisions": ["a"]})
        doc["evaluator"] = {"name": "table", "fitness": "acc", "metrics": ["p"]}
        doc["objective"] = objective
        doc["budget"] = {"trials": 12}  # (random: the three rows, some again)
        outcome = SearchLoop(parse_spec(doc)).run()
        assert outcome is not None
        empty = [t.result for t in outcome.trials if t.result.metrics["acc"] == 0.01]
        assert empty and all(r.state is TrialState.FAIL and r.objective is None for r in empty)
        assert "no 'p' for this trial" in empty[0].error
        assert outcome.best is not None and outcome.best.result.metrics["p"] == 1.0


def test_a_search_that_met_only_missing_rows_says_so_not_constraints(tmp_path: Path) -> None:
    """'no trial completed ...: with objective.constraints, no candidate may have met
    them' was said of a table job without constraints (the probe of users' tables)."""
    path = write_csv(tmp_path / "t.csv", ["a", "b", "v"], [[0, 0, ""], [1, 1, ""]])
    doc = spec(path, space={"name": "table", "path": str(path), "decisions": ["a", "b"]})
    doc["evaluator"] = {"name": "table", "fitness": "v"}
    doc["objective"] = {"metric": "v"}
    doc["budget"] = {"trials": 12}
    resolved = parse_spec(doc)
    loop = SearchLoop(resolved)
    outcome = loop.run()
    missing = sum(t.result.state is TrialState.PRUNED for t in outcome.trials)
    (warning,) = summarize(resolved, outcome, space_of(loop))["warnings"]
    assert warning.endswith(f"; {missing} proposed combinations the table does not hold")
    assert "constraints" not in warning and missing > 0


def test_a_search_spends_simulated_time_on_rows_only(bench: Path) -> None:
    doc = spec(bench, controller={"name": "grid"}, budget={"simulated_seconds": 1000, "trials": 6})
    loop = SearchLoop(parse_spec(doc))
    outcome = loop.run()
    assert outcome is not None
    states = [t.result.state for t in outcome.trials]
    assert sorted(s.value for s in states) == ["COMPLETE"] * 5 + ["PRUNED"]
    pruned = next(t for t in outcome.trials if t.result.state is TrialState.PRUNED)
    assert pruned.result.cost_s == 0 and pruned.result.error == "not in the table"
    assert space_of(loop).describe(pruned.architecture) == {"opt": "sgd", "width": "64"}
    # the miss is no query: the simulated time is that of the five rows
    assert outcome.simulated_s == pytest.approx(10 + 20 + 40 + 10 + 20)
    assert outcome.best is not None and outcome.best.result.objective == 90.0
    assert outcome.final_metrics == {"test": 88.0, "table_row": 2}


def space_of(loop: SearchLoop) -> Any:
    return loop.components.space


def test_misses_do_not_spend_the_simulated_budget(bench: Path) -> None:
    """Random search on a table whose rows are half missing: the budget buys as many rows
    as it pays for, whatever the misses."""
    doc = spec(bench, budget={"simulated_seconds": 200})
    outcome = SearchLoop(parse_spec(doc)).run()
    assert outcome is not None
    complete = [t for t in outcome.trials if t.result.state is TrialState.COMPLETE]
    pruned = [t for t in outcome.trials if t.result.state is TrialState.PRUNED]
    assert pruned, "seed 0 draws the missing combination"
    assert outcome.simulated_s == pytest.approx(sum(t.result.cost_s for t in complete))
    assert outcome.simulated_s <= 200 < outcome.simulated_s + 40
    assert outcome.stop_reason.startswith("simulated time budget reached")


def test_a_table_that_holds_almost_nothing_stops_after_many_misses_in_a_row(
    tmp_path: Path,
) -> None:
    header = [f"d{i}" for i in range(8)] + ["val", "test", "seconds"]
    rows = [[*(["a"] * 8), 1.0, 1.0, 1.0], [*(["b"] * 8), 2.0, 2.0, 1.0]]
    path = write_csv(tmp_path / "sparse.csv", header, rows)
    doc = spec(
        path,
        space={"name": "table", "path": str(path), "decisions": header[:8]},
        budget={"simulated_seconds": 10},
    )
    loop = SearchLoop(parse_spec(doc))
    loop.max_infeasible_in_a_row = 300
    outcome = loop.run()
    assert outcome is not None
    match = re.fullmatch(
        r"no feasible candidate in the last (\d+) proposals \(not in the table\)",
        outcome.stop_reason,
    )
    assert match is not None, outcome.stop_reason
    assert 300 <= int(match.group(1)) < 300 + TableEvaluator.batch_size  # at the batch's end


@pytest.mark.parametrize("controller", ["random", "evolution", "tpe", "grid", "metaqnn", "enas"])
def test_every_controller_searches_a_table(bench: Path, controller: str) -> None:
    outcome = SearchLoop(
        parse_spec(spec(bench, controller={"name": controller}, budget={"trials": 12}))
    ).run()
    assert outcome is not None
    # 12 trials, or fewer when the controller ran out of combinations (6) first
    assert len(outcome.trials) == 12 or outcome.stop_reason == "search space exhausted"
    assert len(outcome.trials) >= 6
    assert {t.result.state for t in outcome.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert outcome.best is not None
    assert outcome.final_metrics["test"] == {70.0: 69.0, 80.0: 79.0, 90.0: 88.0, 60.0: 61.0,
                                              75.0: 74.0}[outcome.best.result.objective]  # fmt: skip


def test_constraints_read_the_figures_columns(bench: Path) -> None:
    doc = spec(bench, objective={"metric": "val", "constraints": {"max_params": 2500}})
    doc["evaluator"]["figures"] = {"params": {"column": "params"}}
    doc["controller"] = {"name": "grid"}
    doc["budget"] = {"trials": 6}
    outcome = SearchLoop(parse_spec(doc)).run()
    assert outcome is not None and outcome.best is not None
    assert outcome.best.result.objective == 80.0  # (adam, 64) has 4000 params
    errors = sorted(t.result.error or "" for t in outcome.trials if t.result.error)
    assert errors == ["infeasible: params 4000 > max_params 2500", "not in the table"]
    # what a trial listing sorts by: the pruned trials' figure of the column given, no other
    params = {k: v for k, v in doc["evaluator"].items() if k != "name"}
    assert TableEvaluator.listed_metrics(params)[-1:] == ("params",)
    assert "params" not in TableEvaluator.listed_metrics({**params, "figures": {}})


# --- the spec ------------------------------------------------------------------------------
def _problems(doc: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    return {tuple(e["loc"]): e["msg"] for e in info.value.errors}


def test_the_spec_is_checked_against_the_columns_it_names(bench: Path) -> None:
    problems = _problems(spec(bench, objective={"metric": "val_accuracy"}))
    assert problems == {
        ("objective", "metric"): "evaluator 'table' does not report 'val_accuracy'; valid: val"
    }
    doc = spec(bench, budget={"simulated_seconds": 100})
    doc["evaluator"]["cost"] = []
    assert list(_problems(doc)) == [("budget", "simulated_seconds")]
    # (scale 0 everywhere: 100,000 free queries of a 9-row table ran to budget.max_trials)
    doc["evaluator"]["cost"] = [{"column": "seconds", "scale": 0}]
    assert "never reached" in _problems(doc)[("evaluator", "cost")]
    doc = spec(bench, objective={"metric": "val", "constraints": {"max_flops": 1}})
    assert "evaluator.figures.flops" in _problems(doc)[("objective", "constraints", "max_flops")]
    doc = spec(bench)
    doc["evaluator"]["metrics"] = ["test"]
    assert "never shown to the search" in _problems(doc)[("evaluator", "metrics", 0)]
    # a decision column is no result: not the fitness, not the held-out figure
    doc = spec(bench, objective={"metric": "width"})
    doc["evaluator"].update(fitness="width", heldout="opt")
    doc["space"]["decisions"] = ["opt", {"column": "width", "choices": ["8", "16", "64"]}]
    problems = _problems(doc)
    assert set(problems) == {("evaluator", "fitness"), ("evaluator", "heldout")}
    assert "'width' is a decision column" in problems[("evaluator", "fitness")]
    # nor is the objective.metric named elsewhere refused with that column as "valid"
    doc["objective"]["metric"] = "val_acc"
    assert set(_problems(doc)) == {("evaluator", "fitness"), ("evaluator", "heldout")}
    # a column named as the row number the evaluator reports (table_row) overwrote it
    for field, value in (("heldout", "table_row"), ("metrics", ["table_row"])):
        doc = spec(bench)
        doc["evaluator"][field] = value
        loc = ("evaluator", field) if field == "heldout" else ("evaluator", field, 0)
        assert "rename that column" in _problems(doc)[loc]
    doc = spec(bench, objective={"metric": "table_row"})
    doc["evaluator"]["fitness"] = "table_row"
    assert "rename that column" in _problems(doc)[("evaluator", "fitness")]


def test_columns_the_table_lacks_are_reported_at_their_fields_with_the_objective(
    bench: Path,
) -> None:
    """A fitness column the table lacks was reported only as objective.metric's 'does not
    report val; valid: nope', and only once that was fixed as evaluator.fitness."""
    doc = spec(bench)
    doc["evaluator"].update(
        fitness="nope",
        heldout="gone",
        metrics=["params", "absent"],
        cost=[{"column": "seconds"}, {"column": "minutes"}],
        figures={"flops": {"column": "flop_count"}},
    )
    problems = _problems(doc)
    assert list(problems)[:5] == [
        ("evaluator", "fitness"),
        ("evaluator", "heldout"),
        ("evaluator", "metrics", 1),
        ("evaluator", "cost", 1),
        ("evaluator", "figures", "flops"),
    ]
    assert problems[("evaluator", "fitness")] == "the table has no column 'nope'"
    assert problems[("evaluator", "figures", "flops")] == "the table has no column 'flop_count'"
    # 'val', a column of the table, is not the (misspelt) fitness: said with where to name
    # it, and the valid list holds only reported columns the table has (it was "valid:
    # nope, absent", the misspellings)
    assert problems[("objective", "metric")] == (
        "evaluator 'table' does not report 'val', a column of the table: name it as "
        "evaluator.fitness or in evaluator.metrics; valid: params"
    )
    doc["objective"] = {"metric": "nope"}
    assert ("objective", "metric") not in _problems(doc)
    doc["objective"] = {"metric": "vall"}  # a column of neither: said with the rest
    assert _problems(doc)[("objective", "metric")] == (
        "evaluator 'table' does not report 'vall'; valid: params"
    )
    # the held-out or a decision column: no advice to report it (found by a review: these
    # were hidden until the missing columns were fixed)
    for metric in ("test", "width"):
        doc["evaluator"]["heldout"] = "test"
        doc["objective"] = {"metric": metric}
        assert _problems(doc)[("objective", "metric")] == (
            f"evaluator 'table' does not report {metric!r}; valid: params"
        )


def test_a_missing_decision_column_is_said_with_the_evaluators_in_one_answer(
    bench: Path,
) -> None:
    """A decision column the table lacks was said only once the evaluator's missing columns
    were fixed: two rounds of corrections for one typo each."""
    doc = spec(bench)
    doc["space"]["decisions"] = ["opt", {"column": "depth"}, "widht"]
    doc["evaluator"]["fitness"] = doc["objective"]["metric"] = "accuracy"
    problems = _problems(doc)
    assert problems == {
        ("space", "decisions", 1): "the table has no column 'depth'",
        ("space", "decisions", 2): "the table has no column 'widht'",
        ("evaluator", "fitness"): "the table has no column 'accuracy'",
    }


def test_column_conflicts_and_bad_decisions_are_reported_at_the_field_written(
    bench: Path,
) -> None:
    """Not at ``evaluator`` as a whole, nor under pydantic's union member names
    (``decisions.1.TableDecision.choices`` beside a spurious ``decisions.1.str``)."""
    doc = spec(bench)
    doc["evaluator"].update(heldout="val")
    assert list(_problems(doc)) == [("evaluator", "heldout")]
    doc = spec(bench)
    doc["evaluator"].update(metrics=["params", "val"])
    problems = _problems(doc)
    assert list(problems) == [("evaluator", "metrics", 1)]
    assert problems[("evaluator", "metrics", 1)].startswith("'val' is the fitness")
    for decision, loc, msg in [
        ({"column": "width", "choices": 5}, ("choices",), "Input should be a valid"),
        ({"column": "width", "choices": ["8", "8"]}, ("choices",), "each choice may appear once"),
        # (a YAML true names no one cell: it said only 'Input should be a valid string')
        ({"column": "width", "choices": [True, False]}, ("choices",), "quoted (e.g. 'True')"),
        ({"column": "width", "colour": 1}, ("colour",), "unknown field; valid: column, choices"),
        (7, (), "a decision is a column name or {column, choices}"),
    ]:
        doc = spec(bench)
        doc["space"]["decisions"] = ["opt", decision]
        for strict in (False, True):
            with pytest.raises(SpecError) as info:
                parse_spec(doc, strict=strict)
            errors = [(tuple(e["loc"]), e["msg"]) for e in info.value.errors]
            assert len(errors) == 1, errors
            assert errors[0][0] == ("space", "decisions", 1, *loc), errors
            assert msg in errors[0][1], errors


def test_the_table_space_evaluator_and_dataset_go_together(bench: Path) -> None:
    assert set(_problems(spec(bench, dataset={"name": "nb201-cifar10"}))) == {("dataset", "name")}
    # The NAS-Bench-201 evaluator refuses the user's table (it is not one of its datasets).
    tabular = spec(bench, evaluator={"name": "tabular"}, objective={"metric": "val_accuracy"})
    assert set(_problems(tabular)) == {("space", "name"), ("dataset", "name")}
    trainer = spec(bench, evaluator={"name": "standalone"}, objective={"metric": "val_accuracy"})
    assert set(_problems(trainer)) == {("space", "name"), ("dataset", "name")}


def test_priors_of_a_table_search_are_checked_against_its_rows_choices(bench: Path) -> None:
    doc = spec(bench)
    doc["warm_start"] = {
        "priors": [{"architecture": {"space": "table", "choices": [1, 5]}, "score": 1.0}]
    }
    problems = _problems(doc)
    assert "width: choice 5 out of range" in problems[("warm_start", "priors", 0, "architecture")]


# --- NAS-Bench-201 as a plain CSV ------------------------------------------------------------
def test_the_nb201_example_draws_what_the_nb201_space_draws(nb201_table: Path) -> None:
    """The example's explicit choice order is NB201's op numbering: the same seed proposes
    the same architectures and reports the same figure as the NB201 evaluator."""
    doc = yaml.safe_load((REPO / "examples" / "table-nb201-cifar10.yaml").read_text())
    doc["space"]["path"] = str(nb201_table)
    doc["seed"] = 3
    ours = SearchLoop(parse_spec(doc)).run()
    theirs = SearchLoop(
        parse_spec(
            {
                "name": "nb201",
                "dataset": {"name": "nb201-cifar10"},
                "space": {"name": "nb201"},
                "controller": {"name": "random"},
                "evaluator": {"name": "tabular", "table": str(nb201_table)},
                "budget": {"simulated_seconds": 12000},
                "seed": 3,
            }
        )
    ).run()
    assert ours is not None and theirs is not None
    assert [t.architecture.choices for t in ours.trials] == [
        t.architecture.choices for t in theirs.trials
    ]
    assert [t.result.objective for t in ours.trials] == [t.result.objective for t in theirs.trials]
    assert ours.final_metrics["c10_test200"] == theirs.final_metrics["test_accuracy"]
    assert math.isclose(ours.simulated_s, theirs.simulated_s, rel_tol=1e-9)
    assert np.all(np.isfinite([t.result.cost_s for t in ours.trials]))


def test_the_warm_start_model_predicts_only_combinations_the_table_holds(bench: Path) -> None:
    """(sgd, 64) is no row: the model may rank it high, it is never a prior."""
    from nas.warmstart import Source, SourceTrial, predicted_priors

    space = TableSpace(path=str(bench), decisions=["opt", "width"])
    assert not space.holds(Architecture("table", (1, 2))) and space.holds(
        Architecture("table", (0, 2))
    )
    trials = [
        SourceTrial(Architecture("table", c).to_dict(), {}, v)
        for c, v in [((0, 0), 70.0), ((0, 1), 80.0), ((1, 0), 60.0)]
    ]
    predicted = predicted_priors([Source(1, trials, True)], space, count=3)
    # Untried: (0, 2) and (1, 1) are rows; (1, 2) is not.
    assert sorted(tuple(p["architecture"]["choices"]) for p in predicted) == [(0, 2), (1, 1)]

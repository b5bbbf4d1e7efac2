"""The ``table`` space and evaluator read Parquet files as they read CSV: the NAS-Bench-201
table converted to Parquet gives the same search, and a broken Parquet file is an error at
the field naming what was expected, never what the file holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from nas.datasets.table import read_table
from nas.errors import DatasetError
from nas.spec import load_spec_file
from tests.conftest import REPO
from workers.search import SearchLoop, parse_spec


def _search(table: Path) -> Any:
    spec = load_spec_file(REPO / "examples" / "table-nb201-cifar10.yaml")
    spec["space"]["path"] = str(table)
    spec["budget"] = {"trials": 150}
    spec["controller"] = {"name": "evolution"}
    return SearchLoop(parse_spec(spec)).run()


def test_the_nb201_table_as_parquet_answers_as_the_csv(nb201_table: Path, tmp_path: Path) -> None:
    parquet = tmp_path / "nb201.parquet"
    pq.write_table(pacsv.read_csv(nb201_table), parquet)
    from_csv, from_parquet = _search(nb201_table), _search(parquet)
    assert [(t.architecture, t.result.objective, t.result.cost_s) for t in from_csv.trials] == [
        (t.architecture, t.result.objective, t.result.cost_s) for t in from_parquet.trials
    ]
    assert from_csv.final_metrics == from_parquet.final_metrics
    assert from_csv.final_metrics["c10_test200"] > 0


def test_cells_are_text_as_they_print_and_nulls_are_empty(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"width": [16, 8, 16], "opt": ["adam", "sgd", None], "acc": [0.5, None, 1.25]}),
        path,
    )
    table = read_table(path, where="space.path")
    assert table.text("width").tolist() == ["16", "8", "16"]
    assert table.text("opt").tolist() == ["adam", "sgd", ""]
    assert table.numbers("acc")[0] == 0.5 and table.numbers("acc")[2] == 1.25


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"PAR1 secret-cell-value truncated", "unreadable Parquet file"),
        ("nested", "lists or records"),
        ("empty", "no data row"),
    ],
)
def test_a_broken_parquet_file_is_an_error_at_the_field(
    tmp_path: Path, content: bytes | str, says: str
) -> None:
    path = tmp_path / "bad.parquet"
    if content == "nested":
        pq.write_table(pa.table({"a": [[1, 2], [3]], "acc": [1.0, 2.0]}), path)
    elif content == "empty":
        pq.write_table(pa.table({"a": pa.array([], pa.string())}), path)
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(DatasetError) as info:
        read_table(path, where="space.path")
    message = str(info.value)
    assert message.startswith("space.path: expected a CSV file") and says in message
    assert "secret" not in message

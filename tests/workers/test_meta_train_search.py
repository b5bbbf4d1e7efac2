"""``nas search`` of an ``rl2-meta`` spec: the run folder holds the policy and the curve, and
the tables' problems are errors at their fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from controllers.rl2 import load_policy
from nas.errors import DatasetError
from workers.local import run_local_search
from workers.search import parse_spec


def table_meta_spec(folder: Path) -> dict[str, Any]:
    """Meta-training on two small tables of known results (125 architectures, a few missing),
    written under ``folder`` (the server's data roots)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for task, weight in (("t0", 2.0), ("t1", 1.0)):
        rows = [
            f"{a},{b},{c},{weight * (a == 4) + rng.normal(0, 0.3):.4f}"
            for a in range(5)
            for b in range(5)
            for c in range(5)
            if (a, b, c) != (0, 0, 1) or task == "t0"
        ]
        path = folder / f"{task}.csv"
        path.write_text("a,b,c,acc\n" + "\n".join(rows) + "\n")
        paths.append(str(path))
    return {
        "name": "rl2-meta-tables",
        "dataset": {"name": "table"},
        "space": {"name": "table", "path": paths[0], "decisions": ["a", "b", "c"]},
        "controller": {"name": "rl2"},
        "evaluator": {
            "name": "rl2-meta",
            "tables": paths,
            "fitness": "acc",
            "iterations": 16,
            "steps": 10,
            "batch": 8,
            "hidden": 8,
            "record_every": 1,
        },
        "objective": {"metric": "acc"},
        "budget": {"minutes": 10},
        "seed": 1,
    }


def test_nas_search_writes_the_policy_and_the_curve(tmp_path: Path) -> None:
    spec = table_meta_spec(tmp_path / "tables")
    spec["evaluator"].update(iterations=4, record_every=2)
    spec["objective"]["direction"] = "minimize"  # an error to minimise: negated, same loop
    summary = run_local_search(parse_spec(spec), tmp_path / "run", progress=False)
    assert summary["meta_training"]["iterations"] == 4
    policy, meta = load_policy(tmp_path / "run" / "rl2-policy.pt")
    assert policy.cardinalities == [5, 5, 5] and meta["direction"] == "minimize"
    assert meta["space"]["decisions"][0] == ["a", ["0", "1", "2", "3", "4"]]
    curve = json.loads((tmp_path / "run" / "curve.json").read_text())
    assert [p["iteration"] for p in curve] == [2, 4]


def test_a_table_without_a_decision_column_is_an_error_at_its_field(tmp_path: Path) -> None:
    spec = table_meta_spec(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text("a,b,acc\n0,0,1.0\n")
    spec["evaluator"]["tables"] = [spec["evaluator"]["tables"][0], str(other)]
    with pytest.raises(DatasetError, match=r"^evaluator\.tables\.1: the table has no column 'c'"):
        run_local_search(parse_spec(spec), tmp_path / "run", progress=False)

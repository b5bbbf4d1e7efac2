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


@pytest.mark.parametrize("on_time_limit", ["stop", "fail"])
def test_meta_training_cut_short_by_its_time_budget_says_so(
    tmp_path: Path, on_time_limit: str
) -> None:
    """budget.on_time_limit was ignored by meta-training: `fail` SUCCEEDED with a policy of
    130 of 100,000 iterations, and `stop` gave no warning."""
    from workers.meta_train import MetaTrainSearch

    spec = table_meta_spec(tmp_path / "tables")
    spec["evaluator"].update(iterations=100_000, record_every=1000)
    spec["budget"] = {"minutes": 0.01, "on_time_limit": on_time_limit}
    outcome = MetaTrainSearch(parse_spec(spec)).run()
    assert outcome is not None and outcome.stop_reason.startswith("time budget reached")
    [warning] = outcome.warnings
    assert "stopped meta-training after" in warning and "of its 100000 iterations" in warning
    if on_time_limit == "fail":
        assert outcome.failure() == f"{warning} (budget.on_time_limit: fail)"
        assert outcome.files == []  # no policy for later jobs to name
    else:
        assert outcome.failure() is None and [f.name for f in outcome.files] == ["rl2-policy.pt"]
    # nas search: 1 for a failed search (it said 0 whatever happened)
    from api.cli import main

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    code = main(["search", str(spec_file), "--out", str(tmp_path / "run"), "--quiet"])
    assert code == (1 if on_time_limit == "fail" else 0)

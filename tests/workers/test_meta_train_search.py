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
    last = summary["meta_training"]["last"]  # (its iteration was 4.0, as the curve had 4)
    assert last["iteration"] == 4 and isinstance(last["iteration"], int)
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


def _first_choice_probabilities(spec: dict[str, Any]) -> tuple[str, np.ndarray]:
    """Meta-train on ``spec``; its objective's direction and the trained policy's
    probabilities of the first decision's choices at an episode's first step."""
    import torch

    from workers.meta_train import MetaTrainSearch

    resolved = parse_spec(spec)
    search = MetaTrainSearch(resolved)
    search.run()
    policy = search.trainer.policy
    with torch.no_grad():
        logits, _ = policy.step(policy.encode(None, torch.zeros(1), 1), torch.zeros(1, 16))
    return resolved.spec.objective.direction, torch.softmax(logits[0], 1)[0].numpy()


def test_a_policy_meta_trained_on_an_error_learns_to_find_low_values(tmp_path: Path) -> None:
    """A fitness that is an error (``val_err``: its name says so; ``meta_val_mse`` of
    earlier few-shot jobs, as the evaluators know it) with no objective given was maximised:
    the policy learnt to propose the worst architectures. Defaulted, it is minimised;
    given, the spec's direction is the one meta-training follows."""
    folder = tmp_path / "tables"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for task in ("t0", "t1"):  # the error grows with decision a: a = 0 is the best
        rows = [
            f"{a},{b},{c},{a + rng.normal(0, 0.3):.4f}"
            for a in range(5)
            for b in range(5)
            for c in range(5)
        ]
        path = folder / f"{task}.csv"
        path.write_text("a,b,c,val_err\n" + "\n".join(rows) + "\n")
        paths.append(str(path))
    spec = table_meta_spec(tmp_path / "unused")
    spec["space"]["path"] = paths[0]
    spec["evaluator"].update(
        tables=paths, fitness="val_err", iterations=30, steps=5, batch=16, hidden=16, lr=0.01
    )
    del spec["objective"]
    direction, minimised = _first_choice_probabilities(spec)
    assert direction == "minimize"
    assert minimised.argmax() == 0 and minimised[0] > 0.5, minimised
    spec["objective"] = {"metric": "val_err", "direction": "maximize"}  # given: followed
    direction, maximised = _first_choice_probabilities(spec)
    assert direction == "maximize"
    assert maximised.argmax() == 4 and maximised[4] > 0.5, maximised
    meta_mse = {**spec["evaluator"], "fitness": "meta_val_mse"}
    assert parse_spec(
        {**spec, "evaluator": meta_mse, "objective": {}}
    ).spec.objective.direction == ("minimize")


def test_a_cancel_stops_meta_training_within_an_iteration(tmp_path: Path) -> None:
    """``should_stop`` was asked only between iterations, so a cancel waited for a whole
    iteration (minutes for a large one): it is asked between the steps of the episodes,
    and the iteration it stops is abandoned, not counted nor recorded."""
    from workers.backend import SearchEvents
    from workers.meta_train import MetaTrainSearch

    spec = table_meta_spec(tmp_path / "tables")
    spec["evaluator"].update(iterations=3, steps=50, record_every=1)
    asked: list[int] = []

    def cancel_at_the_tenth_question() -> str | None:
        asked.append(1)
        return "cancelled" if len(asked) >= 10 else None

    search = MetaTrainSearch(
        parse_spec(spec), events=SearchEvents(should_stop=cancel_at_the_tenth_question)
    )
    outcome = search.run()
    assert outcome is not None and search.interrupted and outcome.stop_reason == "cancelled"
    assert search.trainer.iterations == 0 and outcome.curve == [] and outcome.files == []
    assert len(asked) == 10


def test_a_stop_inside_an_iteration_records_the_iterations_before_it(tmp_path: Path) -> None:
    """A shutdown between two curve points: the iterations done since the last one are
    recorded (and checkpointed) as a stop between iterations recorded them."""
    from workers.backend import SafePoint, SearchEvents
    from workers.meta_train import MetaTrainSearch

    spec = table_meta_spec(tmp_path / "tables")
    spec["evaluator"].update(iterations=10, steps=10, record_every=5)
    points: list[SafePoint] = []
    search: MetaTrainSearch | None = None
    inside: list[bool] = []  # per question after iteration 2: asked from inside step()
    returned: list[object] = []

    def stop_in_the_third_iteration() -> str | None:
        assert search is not None
        if search.trainer.iterations != 2:
            return None
        inside.append(stepping[0])
        # (the questions between iterations would stop it there: only one from inside the
        # third iteration's episodes does, after some of its steps)
        return "shutdown" if inside.count(True) >= 3 else None

    search = MetaTrainSearch(
        parse_spec(spec),
        events=SearchEvents(should_stop=stop_in_the_third_iteration, on_safe_point=points.append),
    )
    step, stepping = search.trainer.step, [False]

    def recorded_step(**kwargs: object) -> object:
        stepping[0] = True
        try:
            result = step(**kwargs)  # type: ignore[arg-type]
        finally:
            stepping[0] = False
        returned.append(result)
        return result

    search.trainer.step = recorded_step  # type: ignore[method-assign]
    search.run()
    assert returned[-1] is None and len(returned) == 3  # the third iteration was abandoned
    assert search.trainer.iterations == 2 and search.consistent
    assert [p.curve["iteration"] for p in points if p.curve is not None] == [2]

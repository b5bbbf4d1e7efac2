"""A time budget that cuts a search short says so loudly, or fails the job when the spec
asks (``budget.on_time_limit``; issue 17 item 5a)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import main
from workers.local import run_local_search
from workers.search import parse_spec

#: A shared-weight search that cannot train 200 supernet epochs in 0.3 s.
SHARED: dict[str, Any] = {
    "name": "cut-short",
    "dataset": {"name": "digits"},
    "space": {"name": "enas-macro", "layers": 2, "channels": 4},
    "controller": {"name": "enas", "num_aggregate": 2},
    "evaluator": {
        "name": "shared-weights",
        "epochs": 200,
        "rewards_per_epoch": 2,
        "derive_samples": 2,
    },
    "budget": {"minutes": 0.005},
    "final": {"retrain_top_k": 1, "epochs": 1},
    "seed": 0,
}


def _spec(**budget: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SHARED)
    spec["budget"].update(budget)
    return spec


def test_a_supernet_cut_short_is_said_loudly_and_still_retrained(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec()))
    assert main(["search", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    out, err = capfd.readouterr()
    summary = yaml.safe_load((tmp_path / "run" / "summary.json").read_text())
    (warning,) = summary["warnings"]
    done = int(re.search(r"after (\d+) of its 200 epochs", warning).group(1))  # type: ignore[union-attr]
    assert 1 <= done < 200 and "undertrained" in warning
    assert f"after {done} of 200 supernet epochs" in summary["stop_reason"]
    # at most once on each stream (without --quiet, stderr had it twice)
    assert out.count(f"WARNING: {warning}") == 1 and err.count(f"WARNING: {warning}") <= 1
    assert "or set budget.on_time_limit: fail" in warning
    assert summary["final"] and "failure" not in summary  # stop (the default): retrained


def test_on_time_limit_fail_fails_the_search_without_retraining(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(_spec(on_time_limit="fail")))
    assert main(["search", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 1
    said = capsys.readouterr()
    summary = yaml.safe_load((tmp_path / "run" / "summary.json").read_text())
    assert "budget.on_time_limit: fail" in summary["failure"]
    assert "stopped the supernet's training" in summary["failure"]
    assert "or set budget.on_time_limit: fail" not in summary["failure"]  # it is set
    assert summary["final"] == [] and summary["ranked"] == []
    assert "error: search failed:" in said.err and "search failed" not in said.out


def test_a_search_that_trains_all_its_epochs_has_no_warning(tmp_path: Path) -> None:
    spec = _spec(minutes=5, on_time_limit="fail")
    spec["evaluator"]["epochs"] = 1
    summary = run_local_search(parse_spec(spec), tmp_path, progress=False)
    assert summary["warnings"] == [] and "failure" not in summary and summary["final"]


def test_trial_searches_are_cut_short_only_against_a_trial_budget(tmp_path: Path) -> None:
    spec: dict[str, Any] = {
        "name": "trials-cut-short",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 256},
        "budget": {"minutes": 0.002, "trials": 10_000},
    }
    summary = run_local_search(parse_spec(spec), tmp_path / "a", progress=False)
    (warning,) = [w for w in summary["warnings"] if not w.startswith("the search took")]
    assert f"after {summary['trials']} of its 10000 trials" in warning
    del spec["budget"]["trials"]  # the time is then the plan
    summary = run_local_search(parse_spec(spec), tmp_path / "b", progress=False)
    # (no cut short; a loaded machine's first trial may run past the 0.12 s: said, not cut)
    said = [w for w in summary["warnings"] if not w.startswith("the search took")]
    assert said == [] and summary["trials"] >= 1


def test_on_time_limit_is_checked() -> None:
    with pytest.raises(Exception, match=r"budget\.on_time_limit"):
        parse_spec(_spec(on_time_limit="later"))


#: Standalone trials much longer than the time budget (0.6 s against seconds per trial).
LONG_TRIALS: dict[str, Any] = {
    "name": "long-trials",
    "dataset": {"name": "digits"},
    "space": {"name": "enas-macro", "layers": 2, "channels": 4},
    "controller": {"name": "random"},
    "evaluator": {"name": "standalone", "epochs": 300, "batch_size": 64},
    "budget": {"minutes": 0.01, "trials": 5, "on_time_limit": "fail"},
    "seed": 0,
}


def test_on_time_limit_fail_stops_the_running_trial_at_once(tmp_path: Path) -> None:
    """The running trial went on to its end (35 s of a 15 s budget) only for the job to
    fail: with fail, the time budget stops it at its next epoch, and it is not recorded."""
    summary = run_local_search(parse_spec(LONG_TRIALS), tmp_path, progress=False)
    assert summary["trials"] == 0 and summary["wall_time_s"] < 60, summary
    assert (
        summary["stop_reason"] == "time budget reached (0.01 min); the trial running then stopped"
    )
    assert "after 0 of its 5 trials (budget.on_time_limit: fail)" in summary["failure"]
    assert (tmp_path / "trials.jsonl").read_text() == ""
    # (an overrun said the running trials "ended first", where they were stopped)
    for warning in summary["warnings"]:
        assert "ended first" not in warning, warning


def test_a_search_far_past_its_time_budget_says_so(tmp_path: Path) -> None:
    """With stop (the default) the running trial ends first: a 15 s budget took 50 s with
    nothing said but the wall time."""
    spec = copy.deepcopy(LONG_TRIALS)
    spec["budget"] = {"minutes": 0.01, "trials": 5}
    spec["evaluator"]["epochs"] = 60
    summary = run_local_search(parse_spec(spec), tmp_path, progress=False)
    assert summary["trials"] == 1 and summary["wall_time_s"] > 2.6, summary  # (else: no warning)
    overran = [w for w in summary["warnings"] if w.startswith("the search took")]
    assert overran == [
        (
            f"the search took {summary['wall_time_s'] / 60:.2f} min of its 0.01 min time "
            "budget: the time is checked between trials, and those running when it ran out "
            "ended first (shorten the trials, e.g. evaluator.epochs, or set "
            "budget.on_time_limit: fail to stop them at once and fail the job)"
        )
    ]

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
    out = capsys.readouterr().out
    summary = yaml.safe_load((tmp_path / "run" / "summary.json").read_text())
    assert "budget.on_time_limit: fail" in summary["failure"]
    assert "stopped the supernet's training" in summary["failure"]
    assert "or set budget.on_time_limit: fail" not in summary["failure"]  # it is set
    assert summary["final"] == [] and summary["ranked"] == []
    assert "search failed:" in out


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
    (warning,) = summary["warnings"]
    assert f"after {summary['trials']} of its 10000 trials" in warning
    del spec["budget"]["trials"]  # the time is then the plan
    summary = run_local_search(parse_spec(spec), tmp_path / "b", progress=False)
    assert summary["warnings"] == [] and summary["trials"] >= 1


def test_on_time_limit_is_checked() -> None:
    with pytest.raises(Exception, match=r"budget\.on_time_limit"):
        parse_spec(_spec(on_time_limit="later"))

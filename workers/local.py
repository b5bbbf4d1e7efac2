"""``nas search``: one search in this process, with a progress bar and a run directory.

The run directory holds ``spec.yaml`` (the resolved spec), ``trials.jsonl`` (one line per
trial, written as trials finish), ``best_architecture.json`` and ``summary.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import yaml
from tqdm import tqdm

from nas.errors import SpecError
from nas.spec import ResolvedSpec
from workers.search import SearchLoop, SearchOutcome, TrialRecord, build_components


def check_runnable_inline(resolved: ResolvedSpec) -> None:
    """Reject spec settings that only the service can honour, instead of ignoring them."""
    if resolved.spec.resources.workers != 1:
        raise SpecError.at(
            ["resources", "workers"],
            "nas search runs one trial at a time in this process; set workers: 1, or submit "
            "the spec to the service (nas serve / nas submit) for parallel workers",
        )


def default_run_dir(resolved: ResolvedSpec) -> Path:
    return Path("runs") / f"{resolved.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_local_search(
    resolved: ResolvedSpec, out_dir: Path, *, progress: bool = True, stream: TextIO = sys.stderr
) -> dict[str, Any]:
    """Run the search and write the run directory; returns the summary."""
    check_runnable_inline(resolved)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spec.yaml").write_text(yaml.safe_dump(resolved.to_dict(), sort_keys=False))
    components = build_components(resolved)
    bar = tqdm(
        total=100,
        unit="%",
        desc=resolved.spec.name,
        disable=not progress,
        file=stream,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
        mininterval=0.5,
    )
    with (out_dir / "trials.jsonl").open("w") as log:
        loop: SearchLoop

        def on_trial(record: TrialRecord) -> None:
            log.write(json.dumps(record.to_dict()) + "\n")
            best = loop.best.result.objective if loop.best is not None else None
            bar.set_postfix_str(
                f"trials={record.number + 1} best={best if best is None else round(best, 4)}",
                refresh=False,
            )
            bar.update(round(100 * loop.budget.fraction_used(), 1) - bar.n)  # rate-limited

        loop = SearchLoop(resolved, components=components, on_trial=on_trial)
        try:
            outcome = loop.run()
        finally:
            bar.n = round(100 * loop.budget.fraction_used(), 1)
            bar.close()
    summary = summarize(resolved, outcome, components.space)
    if outcome.best is not None:
        (out_dir / "best_architecture.json").write_text(
            json.dumps(summary["best"], indent=2) + "\n"
        )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summarize(resolved: ResolvedSpec, outcome: SearchOutcome, space: Any) -> dict[str, Any]:
    spec = resolved.spec
    states: dict[str, int] = {}
    for trial in outcome.trials:
        states[trial.result.state.value] = states.get(trial.result.state.value, 0) + 1
    best = None
    if outcome.best is not None:
        arch = outcome.best.architecture
        best = {
            "architecture": arch.to_dict(),
            "genotype": space.describe(arch),
            "trial": outcome.best.number,
            "objective": {spec.objective.metric: outcome.best.result.objective},
            "metrics": dict(outcome.best.result.metrics),
            "final_metrics": outcome.final_metrics,
        }
    return {
        "name": spec.name,
        "space": spec.space.name,
        "controller": spec.controller.name,
        "evaluator": spec.evaluator.name,
        "dataset": spec.dataset.name,
        "seed": spec.seed,
        "trials": len(outcome.trials),
        "trial_states": states,
        "stop_reason": outcome.stop_reason,
        "wall_time_s": round(outcome.wall_s, 3),
        "simulated_time_s": round(outcome.simulated_s, 3),
        "best": best,
    }

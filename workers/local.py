"""``nas search``: one search in this process, with a progress bar and a run directory.

The run directory holds ``spec.yaml`` (the resolved spec), ``trials.jsonl`` (one line per
trial, written as trials finish), ``best_architecture.json``, ``architectures.json`` (the
top-K), ``curve.json`` (shared-weight search: the controller's reward, entropy and baseline
per epoch), ``final/rank*.pt`` (retrained weights, with a ``final:`` section), the files a search
produced (a meta-training job's ``rl2-policy.pt``, a meta-learning search's
``meta-weights.pt``) and ``summary.json``.
``controller.json`` holds the controller's final ``state_dict`` (a later search's warm start
reads it: ``workers.warmstart``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import yaml
from tqdm import tqdm

from nas.errors import SpecError
from nas.spaces.base import SearchSpace
from nas.spec import ResolvedSpec
from nas.training import cuda_index
from nas.trial import TrialRecord
from workers.backend import InlineBackend, LocalRun, SafePoint, SearchEvents, SearchOutcome
from workers.final import ranked_hparams, retrain
from workers.summary import summarize
from workers.warmstart import CONTROLLER_FILE


def check_runnable_inline(resolved: ResolvedSpec) -> None:
    """Reject spec settings that only the service can honour, instead of ignoring them."""
    params = resolved.controller_params
    if params.get("policy_job") is not None and params.get("policy") is None:
        raise SpecError.at(
            ["controller", "policy_job"],
            "nas search has no jobs to take a policy from; name the policy file: "
            "controller.policy (a meta-training run folder's rl2-policy.pt)",
        )
    if resolved.spec.resources.workers != 1:
        raise SpecError.at(
            ["resources", "workers"],
            "nas search runs one trial at a time in this process; set workers: 1, or submit "
            "the spec to the service (nas serve / nas submit) for parallel workers",
        )
    import torch

    here = torch.cuda.device_count()
    gpus = resolved.spec.resources.gpus_per_trial
    if gpus > here:
        raise SpecError.at(
            ["resources", "gpus_per_trial"],
            f"nas search trains in this process, which sees {here} CUDA devices, fewer than "
            f"gpus_per_trial={gpus:g}; set gpus_per_trial: 0 (device: auto uses a GPU when "
            "there is one)",
        )
    final = resolved.spec.final
    for field, device in (
        (["evaluator", "device"], resolved.evaluator_params.get("device")),
        (["final", "device"], None if final is None else final.device),
    ):
        index = cuda_index(device)
        if index is not None and index >= here:
            raise SpecError.at(
                field,
                f"nas search trains in this process, which sees {here} CUDA devices, so "
                f"{device!r} would find none: set device: auto or cpu",
            )


def default_run_dir(resolved: ResolvedSpec) -> Path:
    """A new folder ``runs/NAME-TIMESTAMP``, made here (``-2``, ``-3``, ... when another run
    of the same name took it in the same second: runs started together, a seed sweep in
    the background, wrote into one folder, each over the others' files)."""
    base = Path("runs") / f"{resolved.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()  # (atomic: only one process makes a folder)
        except FileExistsError:
            continue
        return folder
    raise AssertionError("unreachable")


def run_local_search(
    resolved: ResolvedSpec,
    out_dir: Path,
    *,
    progress: bool = True,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Run the search (and the final retraining) and write the run directory; returns the
    summary. Progress and notices go to ``stream`` (standard error by default)."""
    stream = sys.stderr if stream is None else stream  # (the one at the call, not at import)
    check_runnable_inline(resolved)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_earlier_run(out_dir, stream)
    (out_dir / "spec.yaml").write_text(yaml.safe_dump(resolved.to_dict(), sort_keys=False))
    bar = tqdm(
        total=100,
        unit="%",
        desc=resolved.spec.name,
        disable=not progress,
        file=stream,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
        mininterval=0.5,
    )
    status: dict[str, str] = {}

    def show(**fields: str) -> None:
        status.update(fields)
        bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in status.items()), refresh=False)
        bar.update(round(100 * search.fraction_done(), 1) - bar.n)  # rate-limited by mininterval

    with (out_dir / "trials.jsonl").open("w") as log:

        def on_trial(record: TrialRecord) -> None:
            log.write(json.dumps(record.to_dict()) + "\n")
            log.flush()  # (on disk as it ends: a kill -9 or an OOM kill lost every trial)
            best = search.best.result.objective if search.best is not None else None
            show(trials=str(record.number + 1), best=_fmt(best))

        def on_safe_point(point: SafePoint) -> None:
            if point.curve is not None and "iteration" in point.curve:  # meta-training
                show(
                    iteration=str(point.curve["iteration"]),
                    auc=_fmt(point.curve.get("auc_z")),
                )
            elif point.curve is not None:
                show(
                    epoch=str(point.curve["epoch"] + 1),
                    reward=_fmt(point.curve.get("mean_reward")),
                    entropy=_fmt(point.curve.get("entropy")),
                )

        def on_waiting(text: str | None) -> None:
            if text is not None:  # (what the search does after its trials: the bar is full)
                bar.clear()
                print(f"{text} ...", file=stream)

        events = SearchEvents(on_trial=on_trial, on_safe_point=on_safe_point, on_waiting=on_waiting)
        search = InlineBackend().open(resolved, events)
        try:
            try:
                outcome = search.run()
            except KeyboardInterrupt:
                assert isinstance(search, LocalRun)
                stopped = search.loop.stopped_outcome
                if stopped is not None:  # during the meta-test, after the search
                    summary = _write_results(resolved, stopped, search.space, [], out_dir)
                    _write_controller(search, out_dir)  # (a warm start's, as a whole run's)
                    for warning in summary["warnings"]:
                        print(f"WARNING: {warning}", file=stream)
                    raise KeyboardInterrupt(
                        f"after the search; its result is in {out_dir} (summary.json, "
                        "best_architecture.json), without the figures of the work after it"
                    ) from None
                if type(search.loop).keeps_files_when_stopped:  # meta-training: its policy
                    # (it said the trials were in trials.jsonl, empty: a meta-training runs
                    # none, and the policy trained for minutes was lost)
                    kept = search.loop.files_so_far()
                    for file in kept:
                        (out_dir / file.name).write_bytes(file.data)
                    raise KeyboardInterrupt(
                        "the policy as trained so far is in "
                        + ", ".join(str(out_dir / f.name) for f in kept)
                        if kept
                        else "before the first meta-training iteration ended: nothing to keep"
                    ) from None
                raise KeyboardInterrupt(
                    f"the trials completed so far are in {out_dir / 'trials.jsonl'}"
                ) from None
            _write_controller(search, out_dir)
        finally:
            bar.close()
            search.close()
    for warning in outcome.warnings:  # at once: a retraining may take minutes
        print(f"WARNING: {warning}", file=stream)
    # The search's result first, kept whatever becomes of the retraining (an interrupt
    # there lost it all: for ENAS, the architectures derived from the supernet)
    summary = _write_results(resolved, outcome, search.space, [], out_dir)
    if resolved.spec.final is not None and outcome.ranked:
        top = outcome.ranked[: resolved.spec.final.retrain_top_k]
        archs = [arch for arch, _ in top]
        hparams = ranked_hparams(outcome.trials, top, resolved.spec.objective.objectives[1:])
        finished: list[dict[str, Any]] = []  # (what an interrupt leaves of the retraining)
        try:  # (from the notice on: an interrupt as soon as it shows keeps the result)
            print(f"retraining {len(archs)} architecture(s) from scratch ...", file=stream)
            # (weights paths absolute: relative ones were the working directory's)
            final = retrain(
                resolved, search.space, archs, out_dir=out_dir.resolve(), hparams=hparams,
                done=finished,
            )  # fmt: skip
        except KeyboardInterrupt:
            # The retrainings that finished stand (the first of two was dropped, its
            # weights left under final/ with nothing to say whose they were).
            summary = _write_results(resolved, outcome, search.space, finished, out_dir)
            summary["warnings"].append(
                f"the final retraining was interrupted after {len(finished)} of its "
                f"{len(archs)} architectures: the search's result stands, with the "
                f"retrainings that finished ({len(finished)} in summary.final)"
            )
            (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            raise KeyboardInterrupt(
                f"during the final retraining; the search's result is in {out_dir} "
                f"(summary.json, best_architecture.json), with {len(finished)} of "
                f"{len(archs)} retrainings"
            ) from None
        summary = _write_results(resolved, outcome, search.space, final, out_dir)
    return summary


def _write_controller(search: Any, out_dir: Path) -> None:
    """The controller's final state: what a later search's warm start may take
    (``workers.warmstart``: ENAS's policy, MetaQNN's Q-table). (Not ``search.state()``:
    that would also serialise a supernet.)"""
    assert isinstance(search, LocalRun)
    controller = search.loop.components.controller.state_dict()
    (out_dir / CONTROLLER_FILE).write_text(json.dumps(controller) + "\n")


#: What a run writes in its folder (``final/`` too: the retrained weights).
RUN_FILES = (
    "spec.yaml",
    "trials.jsonl",
    "best_architecture.json",
    "architectures.json",
    "curve.json",
    CONTROLLER_FILE,
    "rl2-policy.pt",
    "meta-weights.pt",
    "summary.json",
)


def _run_files(out_dir: Path) -> list[Path]:
    """The files of ``out_dir`` that a run writes: ``RUN_FILES`` and ``final/rank*.pt``."""
    found = [out_dir / name for name in RUN_FILES if (out_dir / name).is_file()]
    final = out_dir / "final"
    if final.is_dir():
        found += sorted(p for p in final.glob("rank*.pt") if p.is_file())
    return found


def _holds_a_run(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a run of ``nas search``: its ``trials.jsonl`` beside the
    ``spec.yaml`` it writes (a stored spec, every section there)."""
    if not (out_dir / "trials.jsonl").is_file():
        return False
    try:
        spec = yaml.safe_load((out_dir / "spec.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(spec, dict) and {
        "name", "dataset", "space", "controller", "evaluator", "budget"
    } <= set(spec)  # fmt: skip


def out_dir_problem(out_dir: Path) -> str | None:
    """Why ``nas search --out out_dir`` must not run there, or ``None``: a folder that holds
    files a run writes (a spec.yaml of the user's, a summary.json of another tool) but no
    earlier run, which this run would overwrite. (They were deleted, a final/ folder of the
    user's whole, with 'held an earlier run' said of a folder that never held one.)"""
    if not out_dir.is_dir() or _holds_a_run(out_dir):
        return None
    mine = _run_files(out_dir)
    if not mine:
        return None
    names = ", ".join(str(p.relative_to(out_dir)) for p in mine[:5])
    return (
        f"{out_dir} holds {names}, files a run writes, but no earlier run of nas search (its "
        "spec.yaml and trials.jsonl): they would be overwritten; name another folder"
    )


def _clear_earlier_run(out_dir: Path, stream: TextIO) -> None:
    """Remove what an earlier run left in ``out_dir`` (its files, nothing else: other files
    of final/ too): a run into a folder used before left the other's summary.json (40
    trials beside an empty trials.jsonl), weights under final/ of another architecture, a
    controller.json a warm start would read as this run's. ``ValueError`` (``out_dir_problem``)
    when the folder holds files of those names but no run."""
    problem = out_dir_problem(out_dir)
    if problem is not None:
        raise ValueError(problem)
    earlier = _run_files(out_dir)
    if not earlier:
        return
    print(f"{out_dir} held an earlier run: its files are replaced by this one's", file=stream)
    for path in earlier:
        path.unlink()
    with contextlib.suppress(OSError):  # (kept when the user's own files are there)
        (out_dir / "final").rmdir()


def _write_results(
    resolved: ResolvedSpec,
    outcome: SearchOutcome,
    space: SearchSpace,
    final: list[dict[str, Any]],
    out_dir: Path,
) -> dict[str, Any]:
    """Write the run's results beside its trials (with ``final``: the retrained
    architectures); the summary."""
    summary = summarize(resolved, outcome, space, final)
    if summary["best"] is not None:
        (out_dir / "best_architecture.json").write_text(
            json.dumps(summary["best"], indent=2) + "\n"
        )
    (out_dir / "architectures.json").write_text(json.dumps(summary["ranked"], indent=2) + "\n")
    if outcome.curve:
        (out_dir / "curve.json").write_text(json.dumps(outcome.curve, indent=2) + "\n")
    for file in outcome.files:  # a meta-trained policy: rl2-policy.pt
        (out_dir / file.name).write_bytes(file.data)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"

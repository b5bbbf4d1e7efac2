"""Warm starts: what a new search takes from earlier ones.

A source search's completed trials are ranked by its own objective and turned into *priors*:
configurations (architecture and hyperparameters) with a score in [0, 1] that is their rank
in the source (1 = its best), not their raw objective. Ranks transfer across datasets where
raw values do not (72 % is a poor CIFAR-10 accuracy and a good CIFAR-100 one). The target's
controller proposes the best priors first (``Controller.warm_start``), learns from what they
score on the target like from any proposal, then goes on as it would have.

The priors are stored in the job's spec (``warm_start.priors``), so a job does not depend on
its sources after submit (a source deleted later changes nothing) and resumes exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.architecture import Architecture
from nas.errors import SpecError
from nas.trial import TrialRecord, TrialState

__all__ = [
    "Source",
    "SourceTrial",
    "check_priors",
    "observations_from_trials",
    "priors_from_trials",
    "resolve_runs",
    "source_from_run",
    "source_trials",
]


@dataclass(frozen=True)
class SourceTrial:
    """One trial of a source search, as far as a warm start needs it."""

    architecture: Mapping[str, Any]
    hparams: Mapping[str, Any]
    objective: float | None
    complete: bool = True


@dataclass(frozen=True)
class Source:
    """A source search: its id (job id or run folder), its trials, its objective's direction,
    and how many trials it completed when ``trials`` holds only its best (``None``: all of
    them are given)."""

    id: int | str | None
    trials: Sequence[SourceTrial]
    maximize: bool
    completed: int | None = None


def priors_from_trials(sources: Sequence[Source], *, top_k: int) -> list[dict[str, Any]]:
    """The ``top_k`` best distinct configurations over ``sources``. Each completed trial
    scores ``1 - rank / n`` in its own source (``n`` completed trials, rank 0 the best), so
    sources of different scales mix; ties go to the earlier source, then the better rank.
    Returns ``warm_start.priors`` entries: ``{architecture, hparams, score, source}``."""
    scored: list[tuple[float, int, int, dict[str, Any]]] = []
    for order, source in enumerate(sources):
        done = _ranked(source)
        n = max(source.completed or 0, len(done))
        for rank, trial in enumerate(done):
            entry = {
                "architecture": dict(trial.architecture),
                "hparams": dict(trial.hparams),
                "score": 1.0 - rank / n,
                "source": source.id,
            }
            scored.append((-entry["score"], order, rank, entry))
    scored.sort(key=lambda item: item[:3])
    priors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _, _, _, entry in scored:
        key = json.dumps([entry["architecture"], entry["hparams"]], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        priors.append(entry)
        if len(priors) == top_k:
            break
    return priors


def observations_from_trials(sources: Sequence[Source], *, per_source: int) -> list[dict[str, Any]]:
    """Each source's completed trials as *observations* for model-based controllers
    (``warm_start.observations``): ``{architecture, hparams, score, source}`` with the same
    rank score as ``priors_from_trials`` (1 = the source's best), so the controller can put
    them on this job's scale by rank. At most ``per_source`` of each source, evenly spaced
    in rank (the best and the worst included) when it has more, so a model sees the bad
    region as well as the good one. Best first within a source."""
    out: list[dict[str, Any]] = []
    for source in sources:
        done = _ranked(source)
        n = max(source.completed or 0, len(done))
        ranks = list(range(len(done)))
        if per_source <= 0:
            ranks = []
        elif len(done) > per_source:
            step = (len(done) - 1) / max(1, per_source - 1)
            ranks = sorted({round(i * step) for i in range(per_source)})
        for rank in ranks:
            trial = done[rank]
            out.append(
                {
                    "architecture": dict(trial.architecture),
                    "hparams": dict(trial.hparams),
                    "score": 1.0 - rank / n,
                    "source": source.id,
                }
            )
    return out


def _ranked(source: Source) -> list[SourceTrial]:
    """A source's completed trials with a finite objective, best first."""
    done = [
        t
        for t in source.trials
        if t.complete and t.objective is not None and math.isfinite(t.objective)
    ]
    done.sort(key=lambda t: -t.objective if source.maximize else t.objective)  # type: ignore[operator]
    return done


def source_from_run(run: str | Path, *, space: Mapping[str, Any]) -> Source:
    """A ``nas search`` output folder (its ``spec.yaml`` and ``trials.jsonl``) as a source.
    Its space section must equal ``space`` (the target's as stored, parameters included)."""
    import yaml

    folder = Path(run).expanduser()
    try:
        spec = yaml.safe_load((folder / "spec.yaml").read_text())
        lines = (folder / "trials.jsonl").read_text().splitlines()
    except (OSError, yaml.YAMLError):
        raise SpecError.at(
            ["warm_start", "runs"], f"{str(folder)!r} is not a nas search output folder"
        ) from None
    if spec.get("space") != dict(space):
        raise SpecError.at(
            ["warm_start", "runs"],
            f"{str(folder)!r} searched space {spec.get('space')}; this job searches {dict(space)}",
        )
    maximize = spec.get("objective", {}).get("direction", "maximize") == "maximize"
    trials = [_run_trial(json.loads(line)) for line in lines if line.strip()]
    return Source(str(folder), trials, maximize)


def resolve_runs(document: Mapping[str, Any]) -> dict[str, Any]:
    """A spec document with ``warm_start.runs`` (``nas search`` output folders) resolved to
    ``priors`` and ``sources``; other documents unchanged."""
    doc = dict(document)
    warm = doc.get("warm_start")
    space = doc.get("space")
    if not isinstance(warm, Mapping) or not warm.get("runs") or not isinstance(space, Mapping):
        return doc  # (a malformed section is reported by the spec's own validation)
    from nas.spaces import SPACES
    from nas.spec import Component

    component = Component.model_validate(dict(space))
    if component.name not in SPACES:
        return doc
    config = SPACES.get(component.name).Config.model_validate(component.params)
    stored_space = {"name": component.name, **config.model_dump(mode="json")}
    sources = [source_from_run(run, space=stored_space) for run in warm["runs"]]
    priors = priors_from_trials(sources, top_k=int(warm.get("top_k", 20)))
    observations = observations_from_trials(
        sources, per_source=int(warm.get("observations_per_source", 200))
    )
    doc["warm_start"] = {
        **warm,
        "priors": priors,
        "observations": observations,
        "sources": [
            {"run": s.id, "priors": sum(p["source"] == s.id for p in priors)} for s in sources
        ],
    }
    return doc


def source_trials(records: Iterable[TrialRecord]) -> list[SourceTrial]:
    """A finished search's trial records (``SearchLoop.trials``) as source trials."""
    return [
        SourceTrial(
            r.architecture.to_dict(),
            dict(r.hparams),
            r.result.objective,
            r.result.state is TrialState.COMPLETE,
        )
        for r in records
    ]


def _run_trial(row: Mapping[str, Any]) -> SourceTrial:
    return SourceTrial(
        row["architecture"],
        row.get("hparams") or {},
        row.get("objective"),
        row.get("state") == "COMPLETE",
    )


def check_priors(
    priors: Iterable[Mapping[str, Any]], space: Any, hparams: Any
) -> list[tuple[tuple[Any, ...], str]]:
    """Problems of ``priors`` for a job's space (``SearchSpace``) and hyperparameter space
    (``HparamSpace`` or ``None``): each architecture must be one of the space (same space
    and version), each set of hyperparameters one of the job's."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    for i, prior in enumerate(priors):
        loc = ("warm_start", "priors", i)
        try:
            space.validate(Architecture.from_dict(prior["architecture"]))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(((*loc, "architecture"), f"not an architecture of this space: {exc}"))
        values = dict(prior.get("hparams") or {})
        if not values:
            continue  # an architecture alone: the job samples its hyperparameters
        if hparams is None:
            problems.append(((*loc, "hparams"), "this job has no hparams section"))
            continue
        try:
            hparams.validate(values)
        except ValueError as exc:
            problems.append(((*loc, "hparams"), f"not a point of this job's hparams: {exc}"))
    return problems

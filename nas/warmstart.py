"""Warm starts: what a new search takes from earlier ones.

A source search's completed trials are ranked by its own objective and turned into *priors*:
configurations (architecture and hyperparameters) with a score in [0, 1] that is their rank
in the source (1 = its best), not their raw objective. Ranks transfer across datasets where
raw values do not (72 % is a poor CIFAR-10 accuracy and a good CIFAR-100 one). The target's
controller proposes the best priors first (``Controller.warm_start``), learns from what they
score on the target like from any proposal, then goes on as it would have.

Beyond what the sources evaluated, a model of their trials (``predicted_priors``: kernel
ridge regression of the rank score on the architecture's choices, with a second-degree
kernel so that pairs of choices count, not each alone) predicts which architectures *none of
them tried* are best; ``warm_start.predicted`` of the priors are such predictions. A source
of a hundred trials rarely holds its own dataset's best architectures, but its trials say
which choices and pairs of choices do well, and the model extrapolates to combinations it
never saw (measured on NAS-Bench-201 in BENCHMARKS.md).

The priors are stored in the job's spec (``warm_start.priors``), so a job does not depend on
its sources after submit (a source deleted later changes nothing) and resumes exactly.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.architecture import Architecture
from nas.errors import SpecError
from nas.pareto import tie_break_key
from nas.trial import TrialRecord, TrialState

if TYPE_CHECKING:
    from nas.spaces.base import SearchSpace

__all__ = [
    "Source",
    "SourceTrial",
    "check_priors",
    "observations_from_trials",
    "other_hparams",
    "predicted_priors",
    "priors_for",
    "priors_from_trials",
    "read_run_spec",
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
        for rank, (trial, score) in enumerate(_ranked(source)):
            entry = {
                "architecture": dict(trial.architecture),
                "hparams": dict(trial.hparams),
                "score": score,
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


def priors_for(
    sources: Sequence[Source], space: SearchSpace, *, top_k: int, predicted: int
) -> list[dict[str, Any]]:
    """A warm start's priors: the ``top_k - predicted`` best distinct configurations the
    sources evaluated (``priors_from_trials``) and ``predicted`` architectures none of them
    tried, predicted best by a model of their trials (``predicted_priors``), best score first
    (the order a controller proposes them in; the sources' own first among equal scores)."""
    observed = priors_from_trials(sources, top_k=top_k - predicted) if top_k > predicted else []
    model = predicted_priors(sources, space, count=predicted) if predicted else []
    return sorted(observed + model, key=lambda p: -p["score"])


#: Candidates the model scores: every architecture of a space with at most this many,
#: else this many uniform samples plus the one-decision neighbours of the sources' best.
MAX_CANDIDATES = 20_000
#: Source trials the model is fitted to (evenly spaced in rank when there are more).
MAX_MODEL_TRIALS = 1_000
#: Ridge of the kernel regression (on rank scores in [0, 1]); measured in BENCHMARKS.md.
RIDGE = 0.1


def predicted_priors(
    sources: Sequence[Source], space: SearchSpace, *, count: int, seed: int = 0
) -> list[dict[str, Any]]:
    """``count`` architectures of ``space`` that no source evaluated, best first as
    predicted by kernel ridge regression of the sources' rank scores (``1 - rank / n`` in
    each source, as ``priors_from_trials`` scores them) on the architecture's choices.

    The kernel of two architectures is ``((1 + m) / (1 + d)) ** 2``, ``m`` of their ``d``
    decisions chosen alike: a regression on each choice and each pair of choices, fitted in
    the trials' dual so its cost grows with the trials, not with the pairs. Candidates: the
    whole space when it has at most ``MAX_CANDIDATES`` architectures, else that many uniform
    samples (from ``seed``) and the one-decision neighbours of the sources' ten best; only
    architectures the space ``holds``. Entries are ``warm_start.priors`` entries with
    ``score`` the predicted rank score (clipped to [0, 1]), ``source`` ``None`` and
    ``predicted`` true. Empty when the sources have fewer than two scored trials."""
    if count <= 0:
        return []
    fitted: list[tuple[tuple[int, ...], float]] = []
    seen: set[tuple[int, ...]] = set()
    for source in sources:
        for trial, score in _ranked(source):
            choices = tuple(int(c) for c in trial.architecture["choices"])
            seen.add(choices)
            fitted.append((choices, score))
    if len(fitted) < 2:
        return []
    if len(fitted) > MAX_MODEL_TRIALS:
        fitted.sort(key=lambda item: -item[1])
        step = (len(fitted) - 1) / (MAX_MODEL_TRIALS - 1)
        fitted = [fitted[round(i * step)] for i in range(MAX_MODEL_TRIALS)]
    cards = [d.num_choices for d in space.decisions()]
    offsets = np.concatenate([[0], np.cumsum(cards)[:-1]]).astype(np.int64)

    def one_hot(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), int(sum(cards))), dtype=np.float32)
        out[np.arange(len(rows))[:, None], rows + offsets] = 1.0
        return out

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ((1.0 + a @ b.T) / (1.0 + len(cards))) ** 2

    train = one_hot(np.asarray([c for c, _ in fitted], dtype=np.int64))
    y = np.asarray([v for _, v in fitted], dtype=np.float64)
    mean = float(y.mean())
    gram = kernel(train, train).astype(np.float64)
    alpha = np.linalg.solve(gram + RIDGE * np.eye(len(y)), y - mean)

    candidates = [
        c for c in _candidates(space, cards, fitted, seed) if c not in seen and _held(space, c)
    ]
    if not candidates:
        return []
    scores = np.concatenate(
        [
            kernel(one_hot(np.asarray(candidates[i : i + 4096], dtype=np.int64)), train) @ alpha
            for i in range(0, len(candidates), 4096)
        ]
    )
    out: list[dict[str, Any]] = []
    for index in np.argsort(-scores, kind="stable")[:count]:
        out.append(
            {
                "architecture": Architecture(
                    space.name, candidates[int(index)], space.version
                ).to_dict(),
                "hparams": {},
                "score": min(1.0, max(0.0, float(scores[index]) + mean)),
                "source": None,
                "predicted": True,
            }
        )
    return out


def _held(space: SearchSpace, choices: tuple[int, ...]) -> bool:
    """Whether ``choices`` make an architecture of ``space`` that it can evaluate."""
    arch = Architecture(space.name, choices, space.version)
    try:
        space.validate(arch)
    except ValueError:
        return False
    return space.holds(arch)


def _candidates(
    space: SearchSpace,
    cards: Sequence[int],
    fitted: Sequence[tuple[tuple[int, ...], float]],
    seed: int,
) -> list[tuple[int, ...]]:
    """The choice sequences ``predicted_priors`` scores, without repeats, in a fixed order."""
    if math.prod(cards) <= MAX_CANDIDATES:
        return list(itertools.product(*(range(c) for c in cards)))
    rng = np.random.default_rng(seed)
    found: dict[tuple[int, ...], None] = {}
    for _ in range(MAX_CANDIDATES):
        found.setdefault(tuple(int(c) for c in space.sample(rng).choices), None)
    for choices, _ in sorted(fitted, key=lambda item: -item[1])[:10]:
        for i, card in enumerate(cards):
            for alternative in range(card):
                if alternative != choices[i]:
                    found.setdefault((*choices[:i], alternative, *choices[i + 1 :]), None)
    return list(found)


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
        ranks = list(range(len(done)))
        if per_source <= 0:
            ranks = []
        elif len(done) > per_source:
            step = (len(done) - 1) / max(1, per_source - 1)
            ranks = sorted({round(i * step) for i in range(per_source)})
        for rank in ranks:
            trial, score = done[rank]
            out.append(
                {
                    "architecture": dict(trial.architecture),
                    "hparams": dict(trial.hparams),
                    "score": score,
                    "source": source.id,
                }
            )
    return out


def _ranked(source: Source) -> list[tuple[SourceTrial, float]]:
    """A source's completed trials with a finite objective, best first, each with its rank
    score ``1 - rank / n`` (``n`` the source's completed trials, rank 0 its best); repeats of
    one configuration with one objective share the best rank among them (a table's three
    runs of one architecture were scored 0.625, 0.5 and 0.375: a model-based controller saw
    one result as good and bad). Other configurations of an equal objective keep their
    ranks: a run of several objectives broke those ties by its next objectives."""
    done = [
        t
        for t in source.trials
        if t.complete and t.objective is not None and math.isfinite(t.objective)
    ]
    done.sort(key=lambda t: -t.objective if source.maximize else t.objective)  # type: ignore[operator]
    n = max(source.completed or 0, len(done))
    first: dict[str, int] = {}  # the best rank of each (configuration, objective)
    ranked: list[tuple[SourceTrial, float]] = []
    for rank, trial in enumerate(done):
        key = json.dumps([trial.architecture, trial.hparams, trial.objective], sort_keys=True)
        ranked.append((trial, 1.0 - first.setdefault(key, rank) / n))
    return ranked


def other_direction(source: str, metric: str, theirs: str, ours: str, kind: str) -> str | None:
    """Why ``source`` (a job, a run folder) cannot lend its best to a search of ``metric``
    in the direction ``ours`` when it searched it the other way, ``theirs`` (its best are
    that search's worst); ``None`` when the two go the same way. One of the two is wrong,
    and only the user knows which (as for RL²'s meta-training jobs). ``kind``: what the
    user would warm-start from instead (``jobs``, ``runs``)."""
    if theirs == ours:
        return None
    return (
        f"{source} {theirs}d {metric!r}; this job would {ours} it: set objective.direction: "
        f"{theirs}, or warm-start from {kind} that {ours}d it"
    )


def objectives_of(objective: Any) -> list[tuple[str, str]]:
    """A search's objectives, ``(metric, direction)``, from its spec's objective section,
    the first the one it ranked its trials by; none for a section that names none."""
    if not isinstance(objective, Mapping):
        return []
    metrics, directions = objective.get("metrics"), objective.get("directions")
    if isinstance(metrics, list) and isinstance(directions, list):
        pairs = zip(metrics, directions, strict=False)
        return [(str(m), str(d)) for m, d in pairs if d in ("maximize", "minimize")]
    metric = objective.get("metric")
    if metric is None:
        return []
    return [(str(metric), str(objective.get("direction", "maximize")))]


def lent_by(
    source: str, theirs: Sequence[tuple[str, str]], ours: tuple[str, str], kind: str
) -> tuple[str | None, str | None]:
    """How a source that searched the objectives ``theirs`` lends to a search of ``ours``
    (metric, direction): ``(why it cannot, the metric to rank its trials by)``. It cannot
    where it searched our metric the other way, as any of its objectives (its best by it are
    our worst; ``other_direction``). Where our metric is one of its later objectives (a
    Pareto search of size and accuracy lending to an accuracy search), its trials are ranked
    by that metric: ranked by its first, its smallest networks were lent as the most
    accurate. Otherwise ``None``: by its own first objective."""
    for place, (metric, direction) in enumerate(theirs):
        if metric == ours[0]:
            problem = other_direction(source, metric, direction, ours[1], kind)
            return problem, metric if place > 0 and problem is None else None
    return None, None


def source_from_run(
    run: str | Path,
    *,
    space: Mapping[str, Any],
    loc: Sequence[str | int] = ("warm_start", "runs"),
    objective: tuple[str, str] | None = None,
    hparams: Mapping[str, Any] | None | bool = False,
) -> Source:
    """A ``nas search`` output folder (its ``spec.yaml`` and ``trials.jsonl``) as a source.
    Its space section must equal ``space`` (the target's as stored, parameters included),
    it must have completed a trial (as a service source job must), and, given the target's
    ``objective`` (metric, direction), it must not have searched that metric the other way
    (its best would be the target's worst). Given the target's ``hparams`` section as stored
    (``None``: it has none; ``False``, the default: not checked), the run must have searched
    the same one, or none, as a service source job must. A folder that is not one, or is
    damaged, is a ``SpecError`` at ``loc`` (``warm_start.runs.I``)."""
    folder = Path(run).expanduser()
    spec = read_run_spec(folder, loc=loc)
    try:
        lines = (folder / "trials.jsonl").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        raise SpecError.at(loc, f"{str(folder)!r} is not a nas search output folder") from None
    problem = other_space(repr(str(folder)), spec.get("space"), space)
    if problem is not None:
        raise SpecError.at(loc, problem)
    if hparams is not False:
        problem = other_hparams(repr(str(folder)), spec.get("hparams") or None, hparams or None)
        if problem is not None:
            raise SpecError.at(loc, problem)
    objective_of_run = spec.get("objective") or {}
    direction = (
        objective_of_run.get("direction", "maximize")
        if isinstance(objective_of_run, Mapping)
        else None
    )
    if direction not in ("maximize", "minimize"):
        raise SpecError.at(
            loc, f"{str(folder)!r}: its spec.yaml has no objective direction (maximize or minimize)"
        )
    rank_by = None
    if objective is not None:
        ran = objectives_of(objective_of_run) or [(objective[0], direction)]
        problem, rank_by = lent_by(repr(str(folder)), ran, objective, "runs")
        if problem is not None:
            raise SpecError.at(loc, problem)
    trials: list[tuple[SourceTrial, tuple[float, ...]]] = []
    then = [] if rank_by is not None else _tie_breaks(objective_of_run)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            trial = _run_trial(row)
        except (ValueError, TypeError) as exc:  # (json.JSONDecodeError is a ValueError)
            raise SpecError.at(
                loc, f"{str(folder)!r}: line {number} of trials.jsonl is not a trial: {exc}"
            ) from None
        metrics = row.get("metrics")
        metrics = metrics if isinstance(metrics, Mapping) else {}
        if rank_by is not None:  # (ranked by this job's metric, one of the run's later ones)
            value = metrics.get(rank_by)
            number_given = isinstance(value, int | float) and not isinstance(value, bool)
            trial = replace(trial, objective=float(value) if number_given else None)
        trials.append((trial, tie_break_key(metrics, then)))
    # Ties of the first objective broken by the next ones, as the run ranked its trials (a
    # run of several objectives lent, of two cells of one size, the first tried): the rank
    # below sorts by the objective alone and keeps this order among equal values.
    trials.sort(key=lambda pair: tuple(-v for v in pair[1]))
    maximize = (objective[1] if rank_by is not None else direction) == "maximize"  # type: ignore[index]
    source = Source(str(folder), [t for t, _ in trials], maximize)
    problem = other_version(repr(str(folder)), source.trials, space)
    if problem is not None:
        raise SpecError.at(loc, problem)
    if not _ranked(source):
        # (the service's 422 for a source job with none: priors from nothing are no start)
        raise SpecError.at(loc, f"{str(folder)!r} has no completed trial to start from")
    return source


def other_version(
    source: str, trials: Sequence[SourceTrial], space: Mapping[str, Any]
) -> str | None:
    """Why a source whose trials searched another version of the space (``space``: the
    target's section as stored) cannot lend them, or ``None``. Said once, at the source: it
    was one error per prior and per observation (up to 200 a source), and the model still
    predicted this version's architectures from the other version's trials."""
    from nas.spaces import SPACES

    name = space.get("name")
    if name not in SPACES:
        return None
    ours = SPACES.get(name).version
    theirs = sorted(
        {t.architecture.get("version") for t in trials if isinstance(t.architecture, Mapping)}
        - {ours},
        key=str,
    )
    if not theirs:
        return None
    return (
        f"{source} searched version {', '.join(map(str, theirs))} of space {name!r}; this "
        f"job's {name!r} is version {ours}: the spaces must match"
    )


def space_with_defaults(section: Any) -> Any:
    """A stored space section with the parameters it leaves out at their defaults, as a
    stored spec is read back (``ResolvedSpec.from_stored``): the first versions stored only
    the parameters a spec gave, so their jobs' sections never equalled a new job's. A
    section of no known space, or one its space no longer accepts, is returned as it is."""
    from pydantic import ValidationError

    from nas.datasets import is_file_param
    from nas.paths import spec_path
    from nas.spaces import SPACES

    if not isinstance(section, Mapping) or section.get("name") not in SPACES:
        return section
    params = {k: v for k, v in section.items() if k != "name"}
    try:
        config = SPACES.get(section["name"]).Config.model_validate(params)
    except ValidationError:
        return section
    dumped = config.as_built()
    # A file as every reader opens it (``spec_path``): a table written relative in one
    # spec and absolute in the other is the same space (a nas search run's spec.yaml kept
    # the path as written).
    for name, field in type(config).model_fields.items():
        if is_file_param(field) and isinstance(dumped.get(name), str):
            dumped[name] = str(spec_path(dumped[name]))
    return {"name": section["name"], **dumped}


def other_space(source: str, theirs: Any, ours: Mapping[str, Any]) -> str | None:
    """Why a source that searched space section ``theirs`` cannot lend its trials to a job
    that searches ``ours`` (sections as stored, parameters included; those left out at their
    defaults), or ``None``: the same section. The fields that differ are named with both
    values (the whole sections, several hundred characters for a table space, left the
    reader to find them)."""
    theirs, ours = space_with_defaults(theirs), space_with_defaults(dict(ours))
    if theirs == ours or _same_table_decisions(theirs, ours):
        return None
    if not isinstance(theirs, Mapping):
        return f"{source} has no space section; the spaces must match"
    if theirs.get("name") != ours.get("name"):
        return f"{source} searched space {theirs.get('name')!r}; this job searches {ours.get('name')!r}"

    def shown(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 60 else text[:59] + "…"

    table = theirs.get("name") == "table"
    differ = [
        f"{key}: {shown(theirs.get(key, '(unset)'))} there, {shown(ours.get(key, '(unset)'))} here"
        for key in dict.fromkeys((*theirs, *ours))
        # (two tables' paths may differ, and their decisions are named one by one below:
        # the path was named, and the decisions cut inside the first, the same on both)
        if theirs.get(key) != ours.get(key) and not (table and key in ("path", "decisions"))
    ]
    if table and (theirs.get("decisions") != ours.get("decisions") or not differ):
        differ += _table_decisions_differ(theirs.get("decisions"), ours.get("decisions"), shown)
    return f"{source} searched another space ({'; '.join(differ)}); the spaces must match"


def _table_decisions_differ(theirs: Any, ours: Any, shown: Callable[[Any], str]) -> list[str]:
    """The decisions of two table spaces that differ, each named (its column, its choices
    there and here; a decision given without choices takes its column's values)."""
    if not isinstance(theirs, list) or not isinstance(ours, list):
        return [f"decisions: {shown(theirs)} there, {shown(ours)} here"]

    def column(d: Any) -> Any:
        return d.get("column") if isinstance(d, Mapping) else d

    def choices(d: Any) -> Any:
        given = d.get("choices") if isinstance(d, Mapping) else None
        return given if given is not None else "(the column's values)"

    if [column(d) for d in theirs] != [column(d) for d in ours]:
        there, here = [column(d) for d in theirs], [column(d) for d in ours]
        return [f"decision columns: {there} there, {here} here"]
    pairs = [(a, b) for a, b in zip(theirs, ours, strict=True) if choices(a) != choices(b)]
    differ = [
        f"decision {column(a)!r}: choices {shown(choices(a))} there, {shown(choices(b))} here"
        for a, b in pairs
    ]
    # (a decision of those that differ first: it named one the same on both sides)
    candidates = [d for pair in pairs for d in pair] or [*theirs, *ours]
    unpinned = [column(d) for d in candidates if not isinstance(choices(d), list)]
    if unpinned:  # (their files' values, which may differ: not one space as given)
        differ.append(
            f"decision {unpinned[0]!r} gives no choices (its file's values); two tables are one "
            "space where every decision gives its choices, {column: C, choices: [...]}, the "
            "same in both"
        )
    return differ


def _same_table_decisions(theirs: Any, ours: Mapping[str, Any]) -> bool:
    """Two of a user's tables whose decisions are the same columns with the same choices,
    each given (as a job stores them), are one search space over other data: a CIFAR-10
    table lends its trials to a CIFAR-100 one as NAS-Bench-201's datasets do (the file's
    path made them other spaces). Their architectures, indices into those choices, name
    the same cells in both; a combination the target's table lacks is pruned there."""
    if not isinstance(theirs, Mapping) or not theirs.get("name") == ours.get("name") == "table":
        return False

    def pinned(section: Mapping[str, Any]) -> Any:
        decisions = section.get("decisions")
        explicit = isinstance(decisions, list) and all(
            isinstance(d, Mapping) and isinstance(d.get("choices"), list) for d in decisions
        )
        return {k: v for k, v in section.items() if k != "path"} if explicit else None

    return pinned(theirs) is not None and pinned(theirs) == pinned(ours)


def other_hparams(
    source: str, theirs: Mapping[str, Any] | None, ours: Mapping[str, Any] | None
) -> str | None:
    """Why a source that searched ``theirs`` cannot lend hyperparameters to a job that
    searches ``ours`` (``hparams`` sections as stored), or ``None``: the same section, or
    none (its architectures then come with sampled hyperparameters). Said once, at the
    source: each of its configurations was refused on its own, at warm_start.priors.N."""
    if theirs is None or theirs == ours:
        return None
    # (the same section written with or without its defaults: a nas search run's spec.yaml
    # stores it as written, the job's as parsed, log: false and an int's step: 1 filled in)
    theirs, ours = _normal_hparams(theirs), _normal_hparams(ours)
    if theirs == ours:
        return None
    if ours is None:
        return (
            f"{source} searched hyperparameters too (an hparams section) and this job "
            "searches none: give it the same hparams section, or warm-start from a source "
            "without one"
        )
    if not isinstance(theirs, Mapping) or not isinstance(ours, Mapping):
        # (a hand-edited run folder's spec.yaml: it raised AttributeError)
        return f"{source} has an hparams section that is not a mapping; the hparams sections must match"
    differ = [str(n) for n in dict.fromkeys((*theirs, *ours)) if theirs.get(n) != ours.get(n)]
    return (
        f"{source} searched other hyperparameters (not the same: {', '.join(differ)}); the hparams "
        "sections must match"
    )


def _normal_hparams(section: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """An ``hparams`` section with its defaults filled in (``HparamSpace.to_dict``); as
    given when it does not parse (compared as it is)."""
    from nas.hparams import HparamSpace

    if not isinstance(section, Mapping):
        return section
    parsed, problems = HparamSpace.parse(section)
    if problems:
        return section
    out = parsed.to_dict()
    for name, param in parsed.params.items():
        if param.condition is not None:
            # (``equals: b``, ``in: [b]`` and ``in: [b, b]`` make the same condition, and the
            # order of ``in``'s values means nothing: compared as the set they are)
            values = sorted({repr(v): v for v in param.condition.values}.items())
            out[name]["condition"] = {
                "param": param.condition.param,
                "in": [v for _, v in values],
            }
    return out


def read_run_spec(folder: Path, *, loc: Sequence[str | int]) -> dict[str, Any]:
    """The ``spec.yaml`` of the ``nas search`` output folder ``folder``, or a ``SpecError``
    at ``loc`` saying it is none (missing, unreadable, or not a mapping)."""
    import yaml

    try:
        spec = yaml.safe_load((folder / "spec.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise SpecError.at(loc, f"{str(folder)!r} is not a nas search output folder") from None
    if not isinstance(spec, dict):
        raise SpecError.at(
            loc, f"{str(folder)!r}: its spec.yaml holds a {type(spec).__name__}, not a job spec"
        )
    return spec


def resolve_runs(document: Mapping[str, Any]) -> dict[str, Any]:
    """A spec document with ``warm_start.runs`` (``nas search`` output folders) resolved to
    ``priors`` and ``sources``; other documents unchanged."""
    doc = dict(document)
    warm = doc.get("warm_start")
    space = doc.get("space")
    if not isinstance(warm, Mapping) or not warm.get("runs") or not isinstance(space, Mapping):
        return doc  # (a malformed section is reported by the spec's own validation)
    recorded = warm.get("sources")
    if (
        warm.get("priors") is not None
        and isinstance(recorded, list)
        and [s.get("run") if isinstance(s, Mapping) else None for s in recorded]
        == list(warm["runs"])
    ):
        # A run's own spec.yaml run again: its sources were resolved when it ran and are in
        # it, so it needs none of them (a folder moved or replaced since, or a relative path
        # read from another folder, made it an error or silently another start).
        return doc
    from pydantic import ValidationError

    from nas.spaces import SPACES
    from nas.spec import Component, ObjectiveSpec, WarmStartSpec

    try:
        component = Component.model_validate(dict(space))
        section = WarmStartSpec.model_validate(dict(warm))
        objective = ObjectiveSpec.model_validate(doc.get("objective") or {})
    except ValidationError:
        return doc  # reported at its field by the spec's own validation
    if component.name not in SPACES:
        return doc
    space_class = SPACES.get(component.name)
    config = space_class.Config.model_validate(component.params)
    stored_space = {"name": component.name, **config.model_dump(mode="json")}
    target_space = space_class.from_config(config)
    pinned = target_space.pinned_config()
    if pinned != target_space.config:
        # as the run's spec.yaml stored it (workers.loops.with_pinned_space): a table's
        # choices as read from the table
        stored_space = {"name": component.name, **pinned}
    hparams: dict[str, Any] | None | bool = None
    if doc.get("hparams"):
        from nas.hparams import HparamSpace

        # (a section with problems of its own is reported at its fields, not checked here)
        hparams = False
        if isinstance(doc["hparams"], Mapping):
            parsed, problems = HparamSpace.parse(doc["hparams"])
            hparams = False if problems else parsed.to_dict()
    sources = [
        source_from_run(
            run,
            space=stored_space,
            loc=["warm_start", "runs", i],
            objective=(objective.metric, objective.direction),
            hparams=hparams,
        )
        for i, run in enumerate(warm["runs"])
    ]
    predicted = section.predicted_count(joint=bool(doc.get("hparams")))
    priors = priors_for(
        sources, space_class.from_config(config), top_k=section.top_k, predicted=predicted
    )
    observations = observations_from_trials(sources, per_source=section.observations_per_source)
    doc["warm_start"] = {
        **warm,
        "predicted": predicted,
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


def _tie_breaks(objective: Any) -> list[tuple[str, str]]:
    """A run's objectives after its first (``(metric, direction)``), from its spec's
    objective section; none for one objective."""
    return objectives_of(objective)[1:]


def _run_trial(row: Any) -> SourceTrial:
    """A ``trials.jsonl`` row as a source trial; ``ValueError`` or ``TypeError`` saying what
    is wrong with a row that is none (a damaged or hand-edited file)."""
    if not isinstance(row, Mapping):
        raise TypeError(f"expected a JSON object, got {type(row).__name__}")
    if "architecture" not in row:
        raise ValueError("it has no architecture")
    try:
        architecture = Architecture.from_dict(row["architecture"]).to_dict()
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"architecture: {exc}") from None
    hparams = row.get("hparams") or {}
    if not isinstance(hparams, Mapping):
        raise TypeError(f"hparams: expected a JSON object, got {hparams!r}")
    objective = row.get("objective")
    if objective is not None and (
        isinstance(objective, bool) or not isinstance(objective, int | float)
    ):
        raise TypeError(f"objective: expected a number or null, got {objective!r}")
    return SourceTrial(architecture, hparams, objective, row.get("state") == "COMPLETE")


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

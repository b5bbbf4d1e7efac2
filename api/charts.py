"""What the dashboard's charts show, computed on the server at a bounded size.

A job may hold 100k trials; the browser never receives them. The objective history is one
``GROUP BY`` over buckets of trial numbers (each bucket's lowest and highest objective) plus
every best-so-far step (``TrialRepository.best_so_far``); parallel coordinates and the
hyperparameter importance read the top trials and an evenly spaced sample; a trial's drawing
is its space's own ``SpaceNetwork.draw`` (what the model card prints), laid out as SVG.
"""

from __future__ import annotations

import json
import math
import re
from html import escape
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from api.models import JobModel, TrialModel
from api.ranking import configuration_ranks
from api.repositories import TrialRepository, iso_utc
from api.retraining import RETRAIN_WORKER
from nas.architecture import Architecture
from nas.pareto import non_dominated, objective_values
from nas.spec import ResolvedSpec
from nas.trial import TrialState

__all__ = [
    "drawing_svg",
    "history",
    "parallel_coordinates",
    "param_importance",
    "pareto",
    "spec_overview",
    "timeline",
    "trial_drawing",
]

_COMPLETE = TrialState.COMPLETE.value


def _search_trials(session: Session, job: JobModel) -> int:
    """The job's trials less the retrainings recorded after its search (``nas retrain``:
    numbered after the search's last trial), which have no objective and stretched the
    history's trial axis past the search. Read from the highest number down: as many rows
    as there are retrainings."""
    n = int(job.n_trials or 0)
    last = session.scalar(
        select(TrialModel.number)
        .where(
            TrialModel.job_id == job.id,
            or_(TrialModel.worker.is_(None), TrialModel.worker.not_like(f"%{RETRAIN_WORKER}")),
        )
        .order_by(TrialModel.number.desc())
        .limit(1)
    )
    return n if last is None else min(n, int(last) + 1)


def history(session: Session, job: JobModel, buckets: int) -> dict[str, Any]:
    """The objective over trial numbers at most ``buckets`` points: each bucket of
    consecutive numbers as its lowest and highest completed objective, plus every
    best-so-far step (exact, however many trials)."""
    n = _search_trials(session, job)
    width = max(1, math.ceil(n / buckets)) if n else 1
    bucket = (TrialModel.number // width).label("bucket")
    rows = session.execute(
        select(
            bucket,
            func.min(TrialModel.objective),
            func.max(TrialModel.objective),
            func.count(),
        )
        .where(
            TrialModel.job_id == job.id,
            TrialModel.state == _COMPLETE,
            TrialModel.objective.is_not(None),
        )
        .group_by(bucket)
        .order_by(bucket)
    ).all()
    points = [
        {
            "start": int(b) * width,
            "end": min(n, (int(b) + 1) * width) - 1,
            "min": float(lo),
            "max": float(hi),
            "count": int(count),
        }
        for b, lo, hi, count in rows
    ]
    best = TrialRepository(session).best_so_far(job.id, maximize=job.maximize)
    return {
        "job_id": job.id,
        "direction": job.direction,
        "n_trials": n,
        "bucket_width": width,
        "buckets": points,
        "best_so_far": [{"trial": t, "value": v} for t, v in best],
    }


def spec_overview(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The stored spec's component names, objective metric(s) and warm-start sources."""
    spec = spec or {}

    def name(section: str) -> str | None:
        value = spec.get(section)
        return str(value.get("name")) if isinstance(value, dict) and value.get("name") else None

    objective = spec.get("objective") or {}
    metrics = objective.get("metrics") or objective.get("metric") or []
    if isinstance(metrics, str):
        metrics = [metrics]
    elif isinstance(metrics, list):
        metrics = [m if isinstance(m, str) else str(m.get("metric", m)) for m in metrics]
    warm = spec.get("warm_start") or {}
    sources: list[str] = []
    for source in warm.get("sources") or []:
        if isinstance(source, dict):
            if source.get("job_id") is not None:
                sources.append(f"job {source['job_id']} ({source.get('name', '')})")
            elif source.get("run"):
                sources.append(f"run {source['run']}")
    if not sources:
        sources += [f"job {j}" for j in warm.get("jobs") or []]
        sources += [f"run {r}" for r in warm.get("runs") or []]
        if warm.get("query"):
            sources.append(f"query {warm['query']} (limit {warm.get('limit', 5)})")
    return {
        "controller": name("controller"),
        "space": name("space"),
        "dataset": name("dataset"),
        "evaluator": name("evaluator"),
        "objectives": [str(m) for m in metrics],
        "warm_start": sources,
    }


def _sample(session: Session, job: JobModel, top: int, sample: int) -> list[TrialModel]:
    """The ``top`` best completed trials and up to ``sample`` others evenly spaced by number."""
    order = TrialModel.objective.desc() if job.maximize else TrialModel.objective.asc()
    done = (
        TrialModel.job_id == job.id,
        TrialModel.state == _COMPLETE,
        TrialModel.objective.is_not(None),
    )
    best = list(
        session.scalars(
            select(TrialModel).where(*done).order_by(order, TrialModel.number).limit(top)
        )
    )
    n = int(job.n_trials or 0)
    step = max(1, n // max(1, sample))
    seen = {t.number for t in best}
    rest = session.scalars(
        select(TrialModel)
        .where(*done, TrialModel.number % step == 0)
        .order_by(TrialModel.number)
        .limit(sample)
    )
    return best + [t for t in rest if t.number not in seen]


def _columns(job: JobModel, trials: list[TrialModel]) -> list[dict[str, Any]]:
    """One column per architecture decision (categorical) and per hyperparameter."""
    space = ResolvedSpec.from_stored(job.spec).build_space()
    columns: list[dict[str, Any]] = []
    decisions = space.decisions()
    lengths = {len((t.architecture or {}).get("choices") or []) for t in trials}
    if lengths == {len(decisions)}:  # a fixed-length space (MetaQNN's are not)
        for index, d in enumerate(decisions):
            columns.append(
                {"name": d.name, "kind": "choice", "labels": list(d.choices), "index": index}
            )
    names = sorted({k for t in trials for k in (t.hparams or {})})
    for name in names:
        values = [(t.hparams or {}).get(name) for t in trials]
        numeric = all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
            if v is not None
        )
        if numeric:
            present = [float(v) for v in values if v is not None]
            if present:
                columns.append(
                    {"name": f"hp.{name}", "kind": "float", "min": min(present),
                     "max": max(present), "hparam": name}
                )  # fmt: skip
        else:
            labels = sorted({str(v) for v in values if v is not None})
            columns.append(
                {"name": f"hp.{name}", "kind": "choice", "labels": labels, "hparam": name}
            )
    return columns


def _value(column: dict[str, Any], trial: TrialModel) -> float | None:
    if "index" in column:
        return float(trial.architecture["choices"][column["index"]])
    raw = (trial.hparams or {}).get(column["hparam"])
    if raw is None:
        return None
    if column["kind"] == "float":
        return float(raw)
    return float(column["labels"].index(str(raw)))


def parallel_coordinates(session: Session, job: JobModel, top: int, sample: int) -> dict[str, Any]:
    """Decisions and hyperparameters of the top trials and a sample: one row per trial
    (choices as label indices), the objective last."""
    trials = _sample(session, job, top, sample)
    columns = _columns(job, trials) if trials else []
    rows = [
        {
            "trial": t.number,
            "top": i < top,
            "values": [_value(c, t) for c in columns],
            "objective": float(t.objective),
        }
        for i, t in enumerate(trials)
    ]
    return {
        "job_id": job.id,
        "direction": job.direction,
        "metric": ResolvedSpec.from_stored(job.spec).spec.objective.metric,
        "columns": columns,
        "rows": rows,
    }


#: Optuna's importance evaluators the API offers: PED-ANOVA (fast: 0.05 s over 500 trials
#: on one core) and fANOVA with a small forest (16 trees of depth 8: about 2 s; Optuna's
#: default 64 trees took 17 s).
IMPORTANCE_EVALUATORS = ("ped-anova", "fanova")


def param_importance(
    session: Session, job: JobModel, top: int, sample: int, evaluator: str = "ped-anova"
) -> dict[str, Any]:
    """Each decision's and hyperparameter's importance for the objective, by one of Optuna's
    importance evaluators over the top trials and a sample (at most ``top + sample``)."""

    trials = _sample(session, job, top, sample)
    columns = [c for c in (_columns(job, trials) if trials else [])]
    distributions: dict[str, Any] = {}
    for c in columns:
        if c["kind"] == "choice" and len(c["labels"]) > 1:
            distributions[c["name"]] = CategoricalDistribution(list(range(len(c["labels"]))))
        elif c["kind"] == "float" and c["max"] > c["min"]:
            distributions[c["name"]] = FloatDistribution(c["min"], c["max"])
    result: dict[str, Any] = {
        "job_id": job.id,
        "evaluator": evaluator,
        "trials": len(trials),
        "importances": [],
    }
    if len(trials) < 2 or not distributions:
        return result
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=job.direction)
    for t in trials:
        params: dict[str, Any] = {}
        for c in columns:
            if c["name"] in distributions:
                v = _value(c, t)
                if v is None:
                    break
                params[c["name"]] = int(v) if c["kind"] == "choice" else v
        else:
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions={k: distributions[k] for k in params},
                    value=float(t.objective),
                )
            )
    if len(study.trials) < 2 or len({t.value for t in study.trials}) < 2:
        return result  # one objective value for all: nothing explains a variance of zero
    # Imported here: optuna.importance pulls in scikit-learn and SciPy (2.9 s), which every
    # server start would pay for a chart few requests ask for.
    from optuna.importance import (
        FanovaImportanceEvaluator,
        PedAnovaImportanceEvaluator,
        get_param_importances,
    )

    chosen = (
        FanovaImportanceEvaluator(seed=0, n_trees=16, max_depth=8)
        if evaluator == "fanova"
        else PedAnovaImportanceEvaluator()
    )
    # (normalized here: optuna's own divided by the sum, zero when nothing explains the
    # objective, a ZeroDivisionError and a 500)
    found = get_param_importances(study, evaluator=chosen, normalize=False)
    total = sum(float(v) for v in found.values())
    if total > 0:
        result["importances"] = [
            {"name": k, "importance": float(v) / total} for k, v in found.items()
        ]
    return result


def timeline(session: Session, job: JobModel, limit: int) -> dict[str, Any]:
    """The search's latest ``limit`` trials with a start and end time, by worker: not the
    retrainings asked for after it (``nas retrain``, minutes or days later), whose lane
    squeezed the search into a sliver of the time axis."""
    rows = session.execute(
        select(
            TrialModel.number,
            TrialModel.worker,
            TrialModel.state,
            TrialModel.started_at,
            TrialModel.finished_at,
        )
        .where(
            TrialModel.job_id == job.id,
            TrialModel.started_at.is_not(None),
            or_(TrialModel.worker.is_(None), TrialModel.worker.not_like(f"%{RETRAIN_WORKER}")),
        )
        .order_by(TrialModel.number.desc())
        .limit(limit)
    ).all()
    lanes: dict[str, list[dict[str, Any]]] = {}
    for number, worker, state, started, finished in reversed(rows):
        lanes.setdefault(worker or "?", []).append(
            {
                "trial": number,
                "state": state,
                # (as the job and trial reads write them: ``Z``, where these said +00:00)
                "start": iso_utc(started),
                "end": None if finished is None else iso_utc(finished),
            }
        )
    return {
        "job_id": job.id,
        "workers": [{"worker": w, "trials": ts} for w, ts in sorted(lanes.items())],
    }


# --- a trial's architecture drawing ------------------------------------------------------------
def trial_drawing(job: JobModel, trial: TrialModel) -> dict[str, Any]:
    """The trial's architecture as its space draws it (text), its genotype, and an SVG;
    a space with no network to draw (a user's table) gives its genotype alone. A
    retraining is drawn as it was retrained (``final.channels``: its width), as the model
    card draws it."""
    from api.exports import network_space
    from nas.datasets import dataset_shape
    from nas.export.card import draw_network
    from nas.export.network import build_network

    resolved = ResolvedSpec.from_stored(job.spec)
    retrained = next(
        (
            entry
            for entry in (job.summary or {}).get("final") or ()
            if trial.worker is not None
            and trial.worker.endswith(RETRAIN_WORKER)
            and entry.get("trial") == trial.number
        ),
        None,
    )
    space = resolved.build_space() if retrained is None else network_space(resolved, retrained)
    arch = Architecture.from_dict(trial.architecture)
    genotype = space.describe(arch)
    if space.network_class is None:
        return {
            "trial_id": trial.id,
            "trial": trial.number,
            "space": space.name,
            "genotype": genotype,
            "text": None,
            "svg": None,
        }
    shape, classes = dataset_shape(
        resolved.spec.dataset.name, resolved.dataset_params, resolved.spec.seed
    )
    model = build_network(space, arch, shape, classes)
    text = draw_network(model, arch, shape)
    return {
        "trial_id": trial.id,
        "trial": trial.number,
        "space": space.name,
        "genotype": genotype,
        "text": text,
        "svg": drawing_svg(text, title=f"trial {trial.number}: {space.name} architecture"),
    }


_NODE = re.compile(r"^\s+(\w+)\s*=\s*(.+)$")
_TERM = re.compile(r"([\w.]+)\(([\w]+)\)")


def drawing_svg(text: str, *, title: str) -> str:
    """Lay out a ``SpaceNetwork.draw`` text as SVG: its layer or cell stack as a column of
    boxes, and each cell's wiring (``nodeK = op(src) + ...``) as a graph of nodes and labelled
    edges. Every label is the drawing's own text."""
    stack: list[tuple[str, str, str]] = []
    cells: list[tuple[str, list[tuple[str, list[tuple[str, str]]]]]] = []
    section = None
    for line in text.splitlines():
        if not line.strip() or line.strip() == "|":
            continue
        node = _NODE.match(line)
        if node and section is not None:
            terms = _TERM.findall(node.group(2))
            if terms:
                cells[-1][1].append((node.group(1), [(op, src) for op, src in terms]))
            continue
        if line.rstrip().endswith(":") and not line.startswith(" "):
            section = line.rstrip()[:-1]
            cells.append((section, []))
            continue
        if section is None and not line.startswith(" "):
            name = line[:10].strip()
            rest = line[10:].strip()
            shape = ""
            m = re.search(r"\(\s*\d[\d, ]*\)$", rest)
            if m:
                shape, rest = m.group(0), rest[: m.start()].strip()
            stack.append((name, rest, shape))
    box_w, box_h, gap = 340, 34, 16
    parts: list[str] = []
    y = 10
    for i, (name, what, shape) in enumerate(stack):
        if i:
            parts.append(
                f'<line x1="180" y1="{y - gap}" x2="180" y2="{y}" class="edge" '
                'marker-end="url(#arrow)"/>'
            )
        parts.append(
            f'<g class="layer"><rect x="10" y="{y}" width="{box_w}" height="{box_h}" rx="5"/>'
            f'<text x="20" y="{y + 21}"><tspan class="name">{escape(name)}</tspan> '
            f"{escape(what[:40])}</text>"
            f'<text x="{box_w}" y="{y + 21}" text-anchor="end" class="shape">{escape(shape)}'
            "</text></g>"
        )
        y += box_h + gap
    width = 380
    for title_text, nodes in cells:
        cell_parts, h, w = _cell_graph(nodes, 10, y + 24)
        if not cell_parts:
            continue
        parts.append(f'<text x="10" y="{y + 14}" class="title">{escape(title_text[:70])}</text>')
        parts.extend(cell_parts)
        y += h + 40
        width = max(width, w + 20)
    height = y + 10
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" class="arch">'
        f"<title>{escape(title)}</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/>'
        "</marker></defs>" + "".join(parts) + "</svg>"
    )


def _cell_graph(
    nodes: list[tuple[str, list[tuple[str, str]]]], x0: int, y0: int
) -> tuple[list[str], int, int]:
    """A cell's DAG: inputs and nodes in a row (left to right, in definition order), each
    edge an arc labelled with its op."""
    order: list[str] = []
    for target, terms in nodes:
        for _, src in terms:
            if src not in order and src not in {t for t, _ in nodes}:
                order.append(src)
    order += [t for t, _ in nodes]
    if not nodes:
        return [], 0, 0
    step, r = 120, 18
    xs = {name: x0 + 30 + i * step for i, name in enumerate(order)}
    span = max((abs(order.index(t) - order.index(src)) for t, terms in nodes for _, src in terms
                if src in order), default=1)  # fmt: skip
    base = y0 + r + 24 + int(span * step * 0.35) + 12
    parts: list[str] = []
    for target, terms in nodes:
        for op, src in terms:
            if src not in xs:
                continue
            a, b = xs[src], xs[target]
            lift = 24 + abs(b - a) * 0.35
            mid = (a + b) / 2
            dashed = ' stroke-dasharray="4 3"' if op == "none" else ""
            parts.append(
                f'<g class="op"><path d="M {a} {base - r} Q {mid} {base - r - 2 * lift} '
                f'{b} {base - r}" class="edge"{dashed} marker-end="url(#arrow)"/>'
                f'<text x="{mid}" y="{base - r - lift - 3}" text-anchor="middle">'
                f"{escape(op)}</text></g>"
            )
    for name, x in xs.items():
        parts.append(
            f'<g class="node"><circle cx="{x}" cy="{base}" r="{r}"/>'
            f'<text x="{x}" y="{base + 4}" text-anchor="middle">{escape(name[:8])}</text></g>'
        )
    width = x0 + 60 + (len(order) - 1) * step
    return parts, base + r - y0 + 10, width


def pareto(session: Session, job: JobModel, sample: int) -> dict[str, Any]:
    """A job's completed trials on its objectives: every trial on the non-dominated front
    over all of them (``nas.pareto.non_dominated``, as the job's summary has it) and up to
    ``sample`` others evenly spaced by number. A single-objective job has no front
    (``objectives`` then names one metric and the lists are empty)."""
    objective = ResolvedSpec.from_stored(job.spec).spec.objective
    pairs = objective.objectives
    result: dict[str, Any] = {
        "job_id": job.id,
        "objectives": [{"metric": m, "direction": d} for m, d in pairs],
        "front": [],
        "others": [],
    }
    if len(pairs) < 2:
        return result
    rows = session.execute(
        select(TrialModel.number, TrialModel.metrics, TrialModel.hparams, TrialModel.arch_key)
        .where(
            TrialModel.job_id == job.id,
            TrialModel.state == _COMPLETE,
            TrialModel.objective.is_not(None),  # (not a retraining's record)
        )
        .order_by(TrialModel.number)
    ).all()
    # (number, its values for the front: a missing one the worst, as ranked; shown: null)
    points: list[tuple[int, list[float], list[float | None]]] = []
    first_of: dict[tuple[str, str], int] = {}  # configuration -> its first trial's index
    member: dict[int, tuple[str, dict[str, Any]]] = {}  # number -> its arch key, hparams
    for number, metrics, hparams, arch_key in rows:
        # (the architecture by its stored key, one per architecture: not its JSON, read and
        # written again for each of 100,000 trials)
        configuration = (arch_key, json.dumps(hparams or {}, sort_keys=True) if hparams else "")
        first_of.setdefault(configuration, len(points))
        values = objective_values(metrics or {}, pairs)
        shown = [v if math.isfinite(v) else None for v in values]
        points.append((int(number), values, shown))
        member[int(number)] = (arch_key, hparams or {})
    # The project's front (nas.pareto: O(n log n) for two objectives), best first objective
    # first, as the job's summary has it: one trial per configuration (architecture and
    # hyperparameters: its first), so two configurations with equal values are both on it,
    # a repeated one once.
    firsts = sorted(first_of.values())
    indices = non_dominated([points[i][1] for i in firsts], [d for _, d in pairs])
    sign = -1.0 if pairs[0][1] == "maximize" else 1.0
    chosen = sorted((points[firsts[i]] for i in indices), key=lambda p: (sign * p[1][0], p[0]))
    # Each member's rank, the one export and retrain take, where that rank's trial has the
    # member's hyperparameters (api.ranking.configuration_ranks)
    ranks = configuration_ranks(session, job) if chosen else {}

    def rank(number: int) -> int | None:
        key, hparams = member[number]
        place, ranked_hparams = ranks.get(key, (None, None))
        return place if ranked_hparams == hparams else None

    front = [{"trial": n, "values": shown, "rank": rank(n)} for n, _, shown in chosen]
    on_front = {p["trial"] for p in front}
    rest = [p for p in points if p[0] not in on_front]
    step = max(1, math.ceil(len(rest) / max(1, sample))) if sample else 0
    others = [] if not step else sorted(rest, key=lambda p: p[0])[::step][:sample]
    result["front"] = front
    result["others"] = [{"trial": n, "values": shown} for n, _, shown in others]
    return result

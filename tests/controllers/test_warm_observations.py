"""Warm starts beyond the priors (issue 14): the sources' trials as rank-scored observations
that shape TPE's model, evolution's priors as its initial population, and the run-folder
path by which ``nas search`` hands ENAS its source's policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from controllers import RegularizedEvolution, TpeController
from nas.spaces import Nb201Space
from nas.trial import TrialResult, TrialState

#: Observations whose good half chose operation 3 on nearly every edge and whose bad half
#: is uniform: a source that learned "conv 3x3 everywhere".
GOOD = 3


def _observations(n: int = 40) -> list[dict[str, Any]]:
    rng = np.random.default_rng(5)
    out = []
    for rank in range(n):
        good = rank < n // 2
        choices = [GOOD if good and rng.random() < 0.9 else int(rng.integers(5)) for _ in range(6)]
        out.append(
            {
                "architecture": {"space": "nb201", "choices": choices, "version": 1},
                "hparams": {},
                "score": 1.0 - rank / n,
            }
        )
    return out


def _share_good(controller: Any, asks: int) -> float:
    """The share of operation ``GOOD`` over the first ``asks`` proposals, each told a score
    that is higher the more edges chose it (the target agrees with the source)."""
    hits = 0
    for _ in range(asks):
        candidate = controller.ask()
        hits += sum(c == GOOD for c in candidate.architecture.choices)
        score = 50.0 + sum(c == GOOD for c in candidate.architecture.choices)
        controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=score))
    return hits / (6 * asks)


def test_observations_steer_tpes_first_proposals_towards_the_sources_good_region() -> None:
    cold = TpeController(space=Nb201Space(), seed=1)
    warm = TpeController(space=Nb201Space(), seed=1)
    warm.warm_start([], observations=_observations())
    # Uniform sampling picks operation 3 a fifth of the time; the observations say "3"
    # (measured over seeds 0-4: cold 0.20-0.25, warm 0.45-0.50).
    assert _share_good(cold, 10) < 0.3
    assert _share_good(warm, 10) > 0.4


def test_tpe_observations_are_not_trials_of_the_job_and_resume_exactly() -> None:
    controller = TpeController(space=Nb201Space(), seed=2)
    controller.warm_start([], observations=_observations())
    _share_good(controller, 4)
    # The study holds this job's four trials only: candidate ids stay trial numbers.
    assert controller._n_trials() == 4
    state = controller.state_dict()
    assert len(state["optuna"]["trials"]) == 4
    # A resume builds the controller from the stored spec (its warm start), then restores.
    restored = TpeController(space=Nb201Space(), seed=99)
    restored.warm_start([], observations=_observations())
    restored.load_state_dict(state)
    assert [restored.ask().architecture for _ in range(1)] == [
        controller.ask().architecture for _ in range(1)
    ]


def test_evolution_priors_are_its_initial_population() -> None:
    controller = RegularizedEvolution(space=Nb201Space(), seed=3, population_size=5)
    priors = [
        {"architecture": {"space": "nb201", "choices": [k] * 6, "version": 1}, "score": 1 - k / 5}
        for k in range(3)
    ]
    controller.warm_start(priors)
    for _ in range(5):  # 3 priors, then 2 random members fill the population of 5
        candidate = controller.ask()
        controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=1.0))
    assert controller._random_proposals == 5
    child = controller.ask().architecture.choices
    parents = [m.architecture.choices for m in controller.population]
    # Bred: one edge away from a member (the priors have not aged out before breeding).
    assert min(sum(a != b for a, b in zip(child, p, strict=True)) for p in parents) == 1


def test_nas_search_hands_enas_its_source_runs_policy(tmp_path: Path) -> None:
    import json

    from nas.warmstart import resolve_runs
    from workers.local import run_local_search
    from workers.search import build_components, parse_spec
    from workers.warmstart import CONTROLLER_FILE, resolve_run_controller

    controller = {"name": "enas", "num_aggregate": 4, "lstm_size": 8}
    source = {
        "name": "src",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": controller,
        "evaluator": {"name": "tabular"},
        "budget": {"trials": 12},
        "seed": 4,
    }
    run = tmp_path / "src"
    run_local_search(parse_spec(source), run, progress=False)
    final = json.loads((run / CONTROLLER_FILE).read_text())["enas"]["policy"]
    target = {
        **source,
        "name": "dst",
        "dataset": {"name": "nb201-cifar100"},
        "warm_start": {"runs": [str(run)], "top_k": 2},
    }
    document = resolve_run_controller(resolve_runs(target))
    warm = document["warm_start"]
    assert warm["controller_state"] == {"source": str(run), "state": {"policy": final}}
    assert (
        warm["observations"] == [] and len(warm["priors"]) == 2
    )  # (enas learns from no observations)
    built = build_components(parse_spec(document)).controller
    from controllers.enas import _to_plain

    assert _to_plain(built.policy.state_dict()) == final
    # Another controller section (other parameters) takes nothing but the priors.
    other = resolve_run_controller(
        resolve_runs({**target, "controller": {**controller, "lstm_size": 16}})
    )
    assert "controller_state" not in other["warm_start"]


def test_tpe_keeps_the_source_scores_of_priors_that_do_well_here() -> None:
    """Three priors that all do well here are anchors: their pseudo-observations give way to
    this job's results, which keep the sources' high scores instead of this job's quantiles
    (where the third-best of three would count as its worst); a trial below every prior
    ranks under them, one above every prior over them."""
    from controllers.optuna_search import _StudyView

    observations = [  # 40 distinct architectures, the best first
        {
            "architecture": {"space": "nb201", "choices": [r // 5**i % 5 for i in range(6)]},
            "score": 1.0 - r / 40,
        }
        for r in range(40)
    ]
    controller = TpeController(space=Nb201Space(), seed=4)
    controller.warm_start(observations[:3], observations=observations)
    for value in (90.0, 91.0, 89.0, 40.0, 95.0):  # the three priors, then two proposals
        candidate = controller.ask()
        controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=value))
    view = _StudyView(controller.study, controller._pseudo).get_trials(deepcopy=False)
    pseudo, job = view[: len(view) - 5], view[-5:]
    assert len(pseudo) == len(observations) - 3  # the priors' own results replace them
    assert [t.number for t in view] == list(range(len(view)))
    priors = [t.value for t in job[:3]]
    # Source scores 1.0, 0.975, 0.95; here 90, 91, 89: the isotonic fit pools the first two.
    assert priors == pytest.approx([0.9875, 0.9875, 0.95])
    assert 0 <= job[3].value < 0.95 and job[4].value == pytest.approx(0.99375)


def test_a_prior_that_fails_here_ranks_below_everything_not_as_its_source_rated_it() -> None:
    """A FAIL (or infeasible) trial is told to the study as COMPLETE with a penalty: it was
    an anchor, paired with its source's high score, so a failed prior counted as well as
    the best in TPE's view (the probe of the warm start). Its pseudo-observation goes too."""
    from controllers.optuna_search import _StudyView

    observations = [
        {"architecture": {"space": "nb201", "choices": [r // 5**i % 5 for i in range(6)]},
         "score": 1.0 - r / 40}
        for r in range(40)
    ]  # fmt: skip
    controller = TpeController(space=Nb201Space(), seed=4)
    controller.warm_start(observations[:3], observations=observations)
    told = [TrialResult(TrialState.COMPLETE, objective=94.0), TrialResult.failed("empty cell")]
    told.append(TrialResult(TrialState.COMPLETE, objective=95.0))
    for result in told:
        candidate = controller.ask()
        controller.tell(candidate.id, result)
    view = _StudyView(controller.study, controller._pseudo).get_trials(deepcopy=False)
    pseudo, job = view[:-3], view[-3:]
    assert len(pseudo) == len(observations) - 3  # the failed prior's is gone too
    failed = job[1].value
    assert failed < min(t.value for t in [*pseudo, job[0], job[2]])

"""Constraints checked before evaluation, and multi-objective search reporting its front,
through ``SearchLoop``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from controllers import RandomSearch
from nas.evaluators import standalone
from nas.models import build_model, count_parameters
from nas.pareto import non_dominated
from nas.trial import TrialState
from workers.search import SearchLoop, parse_spec
from workers.summary import summarize

ACC_PARAMS = {"metrics": ["val_accuracy", "params_M"], "directions": ["maximize", "minimize"]}


def nb201_spec(table: Path, controller: str = "random", **objective: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": controller},
        "evaluator": {"name": "tabular", "table": str(table)},
        "objective": objective or {"metric": "val_accuracy"},
        "budget": {"simulated_seconds": 12000},
        "seed": 0,
    }


def by_state(outcome: Any, state: TrialState) -> list[Any]:
    return [t for t in outcome.trials if t.result.state is state]


# --- constraints ---------------------------------------------------------------------------
def test_infeasible_nb201_candidates_are_pruned_at_no_cost(nb201_table: Path) -> None:
    spec = nb201_spec(nb201_table, constraints={"max_params": 4e5, "max_latency_ms": 20})
    loop = SearchLoop(parse_spec(spec))
    outcome = loop.run()
    pruned, complete = by_state(outcome, TrialState.PRUNED), by_state(outcome, TrialState.COMPLETE)
    assert pruned and complete
    for t in pruned:
        assert t.result.error.startswith("infeasible: ")
        assert t.result.cost_s == 0 and t.result.objective is None
        assert t.result.metrics["params"] > 4e5 or t.result.metrics["latency_ms"] > 20
    for t in complete:
        assert t.result.metrics["params_M"] * 1e6 <= 4e5
        assert t.result.metrics["latency_s"] * 1e3 <= 20
    # The simulated budget pays only for evaluated candidates; every one was told.
    assert outcome.simulated_s == pytest.approx(sum(t.result.cost_s for t in complete))
    # Only the candidates the budget refused at the end stay untold, as without constraints.
    pending = {c.id for c in loop.components.controller.pending}
    assert not pending & {t.candidate_id for t in outcome.trials}
    assert loop.budget.used_trials == len(outcome.trials)
    assert outcome.best.result.metrics["params_M"] * 1e6 <= 4e5
    # Numbered in the order proposed, the pruned among the evaluated (a batch's pruned
    # candidates came first: a warm start's first prior showed as trial 7).
    ids = [t.candidate_id for t in outcome.trials]
    assert ids == sorted(ids) and [t.number for t in outcome.trials] == list(range(len(ids)))


def test_priors_the_constraints_prune_are_said(nb201_table: Path) -> None:
    """A warm start's priors are its sources' best by their objective: all five of a
    Pareto source's broke max_params and were left out, and nothing said so (the probe of
    multi-objective search)."""
    spec = nb201_spec(nb201_table, constraints={"max_params": 3e5})
    spec["budget"] = {"trials": 20}
    prior = {"space": "nb201", "version": 1}
    spec["warm_start"] = {
        "priors": [
            {"architecture": {**prior, "choices": [3] * 6}, "score": 1.0},  # all 3x3 convs
            {"architecture": {**prior, "choices": [1] * 6}, "score": 0.5},  # all skips
        ]
    }
    resolved = parse_spec(spec)
    loop = SearchLoop(resolved)
    outcome = loop.run()
    assert outcome.trials[0].architecture.choices == (1,) * 6  # the feasible one, first
    assert all(t.architecture.choices != (3,) * 6 for t in outcome.trials)  # never proposed
    warnings = summarize(resolved, outcome, loop.components.space)["warnings"]
    said = (
        "warm start: 1 of its 2 priors break objective.constraints and were left out (a "
        "source's best are chosen by its own objective): a source searched under the same "
        "constraints lends feasible ones"
    )
    assert [w for w in warnings if w.startswith("warm start: ")] == [said]


def test_pruned_candidates_count_in_the_trial_budget(nb201_table: Path) -> None:
    spec = nb201_spec(nb201_table, constraints={"max_params": 3e5})
    spec["budget"] = {"trials": 50}
    outcome = SearchLoop(parse_spec(spec)).run()
    assert len(outcome.trials) == 50
    assert [t.number for t in outcome.trials] == list(range(50))
    assert by_state(outcome, TrialState.PRUNED)


def test_constraints_nothing_satisfies_stop_the_search(nb201_table: Path) -> None:
    resolved = parse_spec(nb201_spec(nb201_table, constraints={"max_flops": 1}))
    loop = SearchLoop(resolved)
    loop.max_infeasible_in_a_row = 300
    outcome = loop.run()
    assert "no feasible candidate in the last" in outcome.stop_reason
    assert 300 <= len(outcome.trials) < 600
    assert outcome.best is None and outcome.simulated_s == 0
    # The job "succeeds" with nothing to retrain or export: its summary says so loudly.
    summary = summarize(resolved, outcome, loop.components.space)
    assert summary["best"] is None
    warning = (
        f"no trial completed ({len(outcome.trials)} PRUNED): there is no best architecture to "
        "retrain or export; with objective.constraints, no candidate may have met them"
    )
    assert summary["warnings"] == [warning]


def test_the_servers_trial_limit_ending_a_simulated_budget_is_said(nb201_table: Path) -> None:
    """budget.max_trials (the server's NAS_MAX_TRIALS_PER_JOB) ended a search planned by
    simulated seconds at 20 trials, 2,346 of its 12,000 s used, without a word."""
    spec = nb201_spec(nb201_table)
    spec["budget"] = {"simulated_seconds": 12000, "max_trials": 20}
    resolved = parse_spec(spec)
    loop = SearchLoop(resolved)
    outcome = loop.run()
    assert len(outcome.trials) == 20
    summary = summarize(resolved, outcome, loop.components.space)
    (warning,) = summary["warnings"]
    assert warning.startswith(
        "the server's trial limit (20, budget.max_trials: NAS_MAX_TRIALS_PER_JOB) ended the "
        f"search before its budget.simulated_seconds ({outcome.simulated_s:g} of 12000 s used)"
    ), warning


def test_trials_failing_in_a_row_stop_the_search(
    nb201_table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure that costs no simulated time (a table file removed under a running job,
    on Ray) let a simulated-time budget run 100,000 failing trials in seconds (the probe of
    lifecycle operations); now 100 failures in a row stop the search, which then failed."""
    from nas.evaluators.tabular import TabularEvaluator
    from nas.trial import TrialResult

    resolved = parse_spec(nb201_spec(nb201_table))
    calls = {"n": 0}
    evaluate = TabularEvaluator.evaluate

    def failing(self: Any, archs: Any, hparams: Any = None) -> list[TrialResult]:
        results = []
        for arch in archs:  # three complete first: the stop is about the ones in a row
            calls["n"] += 1
            ok = calls["n"] <= 3
            results += (
                evaluate(self, [arch]) if ok else [TrialResult.failed("space.path: no such file")]
            )
        return results

    monkeypatch.setattr(TabularEvaluator, "evaluate", failing)
    outcome = SearchLoop(resolved).run()
    failed = by_state(outcome, TrialState.FAIL)
    # (checked after each batch of proposals: the table's batches are large)
    assert 100 <= len(failed) < 1000 and len(by_state(outcome, TrialState.COMPLETE)) == 3
    assert outcome.stop_reason == (
        f"the last {len(failed)} trials failed in a row, the latest with: space.path: no such file"
    )
    assert outcome.failure() is None  # some completed: a result, with its stop reason
    # every trial failing: the search failed, after a few hundred of them, not 100,000
    monkeypatch.setattr(TabularEvaluator, "evaluate", lambda self, archs, hparams=None: [
        TrialResult.failed("space.path: no such file") for _ in archs
    ])  # fmt: skip
    spec = nb201_spec(nb201_table)
    spec["budget"] = {"simulated_seconds": 1e9}
    outcome = SearchLoop(parse_spec(spec)).run()
    assert 100 <= len(outcome.trials) < 1000, len(outcome.trials)
    assert outcome.failure() == (
        f"all {len(outcome.trials)} trials failed; first error: space.path: no such file"
    )


def test_a_resumed_search_counts_the_failures_in_a_row_on(
    nb201_table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count behind the stop after 100 failures in a row started from 0 on resume: a
    job resumed at 60 failures ran 100 more, not 40 (the review of the stop)."""
    from nas.evaluators.tabular import TabularEvaluator
    from nas.trial import TrialResult

    monkeypatch.setattr(TabularEvaluator, "evaluate", lambda self, archs, hparams=None: [
        TrialResult.failed("space.path: no such file") for _ in archs
    ])  # fmt: skip
    spec = nb201_spec(nb201_table)
    spec["budget"] = {"trials": 60}
    first = SearchLoop(parse_spec(spec))
    first.run()
    assert len(first.trials) == 60
    resumed = SearchLoop(parse_spec(spec))
    resumed.load_state(first.state(), list(first.trials))
    assert resumed._failed_in_a_row == 60 and resumed._infeasible_in_a_row == 0


def test_a_search_whose_budget_ends_before_its_first_trial_says_so(nb201_table: Path) -> None:
    """A budget too small for one trial: the job SUCCEEDED with no trial, no best and no
    warning (the probe of spec validation); its summary now says no trial completed."""
    spec = nb201_spec(nb201_table)
    spec["budget"] = {"minutes": 1e-9}
    resolved = parse_spec(spec)
    loop = SearchLoop(resolved)
    outcome = loop.run()
    assert outcome.trials == [] and outcome.failure() is None
    summary = summarize(resolved, outcome, loop.components.space)
    assert summary["best"] is None
    (warning,) = summary["warnings"]
    assert warning.startswith("no trial completed (none recorded: the budget ended before a first")
    assert outcome.stop_reason in warning


def test_infeasible_candidates_are_never_trained(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {
        "name": "c",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 8, "reductions": [1]},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 64},
        "budget": {"trials": 6},
        "seed": 1,
    }
    # The sizes of the six architectures the seeded controller will propose: a limit between.
    space = parse_spec(spec)
    replay = RandomSearch(space=_space(space), seed=1)
    sizes = [
        count_parameters(build_model(_space(space), replay.ask().architecture, (1, 8, 8), 10))
        for _ in range(6)
    ]
    assert min(sizes) < max(sizes)
    limit = (min(sizes) + max(sizes)) / 2
    spec["objective"] = {"constraints": {"max_params": limit}}

    trained = []
    real = standalone.train_from_scratch

    def counting(space, arch, *args, **kwargs):
        trained.append(arch)
        return real(space, arch, *args, **kwargs)

    monkeypatch.setattr(standalone, "train_from_scratch", counting)
    outcome = SearchLoop(parse_spec(spec)).run()
    pruned, complete = by_state(outcome, TrialState.PRUNED), by_state(outcome, TrialState.COMPLETE)
    assert len(outcome.trials) == 6 and pruned and complete
    assert sorted(t.architecture.choices for t in complete) == sorted(a.choices for a in trained)
    assert not {t.architecture for t in pruned} & set(trained)
    for t in pruned:
        assert t.result.metrics["params"] > limit and t.result.cost_s == 0
        assert f"> max_params {limit:.4g}" in t.result.error
    for t in complete:
        assert t.result.metrics["params"] <= limit


def _space(resolved: Any) -> Any:
    from nas.spaces import SPACES

    return SPACES.get(resolved.spec.space.name).from_config(resolved.space_params)


# --- several objectives --------------------------------------------------------------------
@pytest.mark.parametrize("controller", ["nsga2", "random"])
def test_nb201_multi_objective_search_reports_its_front(nb201_table: Path, controller: str) -> None:
    resolved = parse_spec(nb201_spec(nb201_table, controller, **ACC_PARAMS))
    loop = SearchLoop(resolved)
    outcome = loop.run()
    assert "simulated time budget" in outcome.stop_reason
    complete = by_state(outcome, TrialState.COMPLETE)
    front = outcome.pareto
    assert front and all(t.result.state is TrialState.COMPLETE for t in front)
    assert len({t.architecture for t in front}) == len(front)

    def point(t: Any) -> tuple[float, float]:
        return (t.result.metrics["val_accuracy"], t.result.metrics["params_M"])

    # Exactly the non-dominated ones of all complete trials (first trial per architecture).
    first = {}
    for t in complete:
        first.setdefault(t.architecture, t)
    unique = list(first.values())
    expected = [
        unique[i] for i in non_dominated([point(t) for t in unique], ACC_PARAMS["directions"])
    ]
    assert [t.number for t in front] == [t.number for t in expected]
    # The primary objective still ranks best, and the front holds the best accuracy.
    assert outcome.best.result.objective == max(t.result.objective for t in complete)
    assert max(point(t)[0] for t in front) == outcome.best.result.objective

    summary = summarize(resolved, outcome, loop.components.space)
    assert [p["trial"] for p in summary["pareto"]] == [t.number for t in front]
    entry = summary["pareto"][0]
    assert set(entry) == {"trial", "rank", "architecture", "genotype", "values"}
    assert entry["values"] == dict(zip(ACC_PARAMS["metrics"], point(front[0]), strict=True))
    # rank: its architecture's place in the job's ranking (the best first, from 1)
    order = [t.architecture for t in loop.log.ranked()]
    for p, t in zip(summary["pareto"], front, strict=True):
        assert p["rank"] == order.index(t.architecture) + 1
    assert min(p["rank"] for p in summary["pareto"]) == 1  # (the best is on the front)


def test_ties_of_the_first_objective_are_broken_by_the_others(nb201_table: Path) -> None:
    """With the model size first, many NAS-Bench-201 cells tie on it: the best, the ranking
    and the trial whose hyperparameters a retraining uses are the best of the tied by the
    next objective, so the job's best is on its own Pareto front (it was the tied trial
    tried first, dominated)."""
    from workers.final import earning_trial

    spec = nb201_spec(
        nb201_table, metrics=["params_M", "val_accuracy"], directions=["minimize", "maximize"]
    )
    spec["budget"], spec["seed"] = {"trials": 80}, 4
    resolved = parse_spec(spec)
    loop = SearchLoop(resolved)
    outcome = loop.run()
    complete = by_state(outcome, TrialState.COMPLETE)
    smallest = min(t.result.objective for t in complete)
    tied = [t for t in complete if t.result.objective == smallest]
    assert len({t.result.metrics["val_accuracy"] for t in tied}) > 1  # (what the test needs)
    winner = max(tied, key=lambda t: (t.result.metrics["val_accuracy"], -t.number))
    assert winner is not tied[0]
    assert outcome.best is winner
    assert outcome.best.number in {t.number for t in outcome.pareto}
    assert outcome.ranked[0] == (winner.architecture, smallest)
    then = resolved.spec.objective.objectives[1:]
    assert earning_trial(outcome.trials, winner.architecture, smallest, then) is winner
    # The ranking continues by the same order: each next architecture no better.
    keys = [
        loop.log.rank_key(earning_trial(outcome.trials, a, v, then).result)
        for a, v in loop.ranked(10)
    ]
    assert keys == sorted(keys, reverse=True)


def test_single_objective_reports_no_front(nb201_table: Path) -> None:
    resolved = parse_spec(nb201_spec(nb201_table))
    loop = SearchLoop(resolved)
    outcome = loop.run()
    assert outcome.pareto == []
    assert "pareto" not in summarize(resolved, outcome, loop.components.space)


def test_the_objective_metric_is_what_is_optimised(nb201_table: Path) -> None:
    spec = nb201_spec(nb201_table, metric="params_M", direction="minimize")
    spec["budget"] = {"trials": 200}
    outcome = SearchLoop(parse_spec(spec)).run()
    for t in outcome.trials:
        assert t.result.objective == t.result.metrics["params_M"]
    assert outcome.best.result.objective == min(
        t.result.metrics["params_M"] for t in outcome.trials
    )
    assert np.isclose(outcome.ranked[0][1], outcome.best.result.objective)


def test_a_joint_searchs_front_holds_configurations_not_architectures(nb201_table: Path) -> None:
    """Two trials of one architecture with other hyperparameters are two configurations: the
    second, better on one objective and equal on the other, dominates the first, and was left
    off the front ("one per architecture, its first")."""
    from nas.architecture import Architecture
    from nas.trial import TrialRecord, TrialResult

    spec = nb201_spec(nb201_table, **ACC_PARAMS)
    spec["hparams"] = {"rate": {"type": "categorical", "choices": [0.1, 0.2]}}  # (recorded)
    loop = SearchLoop(parse_spec(spec))
    arch = Architecture("nb201", (0, 1, 2, 3, 4, 0))
    other = Architecture("nb201", (1, 1, 2, 3, 4, 0))

    def record(number: int, a: Architecture, lr: float, acc: float, size: float) -> TrialRecord:
        metrics = {"val_accuracy": acc, "params_M": size}
        result = TrialResult(state=TrialState.COMPLETE, objective=acc, metrics=metrics)
        return TrialRecord(number, number, a, {"rate": lr}, result, started_at=0, finished_at=1)

    loop.log.trials.extend(
        [
            record(0, arch, 0.1, 21.25, 2.5),
            record(1, other, 0.1, 30.0, 3.0),
            record(2, arch, 0.2, 27.5, 2.5),
            record(3, arch, 0.2, 10.0, 1.0),  # the same configuration again: its first counts
        ]
    )
    assert [t.number for t in loop.pareto()] == [1, 2]
    outcome = loop._outcome()
    summary = summarize(loop.resolved, outcome, loop.components.space)
    # each entry says which configuration it is (the architecture alone is on it twice)
    assert [(p["trial"], p["hparams"]) for p in summary["pareto"]] == [
        (1, {"rate": 0.1}),
        (2, {"rate": 0.2}),
    ]
    assert [p["rank"] for p in summary["pareto"]] == [1, 2]
    # Ranks are architectures': with a third configuration of ``arch`` on the front, better
    # by accuracy, that one is rank 2 (an export of rank 2 has its hyperparameters) and trial
    # 2's has none (it said rank 2, whose export had the other's hyperparameters).
    loop.log.trials.append(record(4, arch, 0.3, 29.0, 2.6))
    summary = summarize(loop.resolved, loop._outcome(), loop.components.space)
    ranks = {p["trial"]: p["rank"] for p in summary["pareto"]}
    assert ranks == {1: 1, 2: None, 4: 2}


def test_a_trial_lacking_a_later_objective_is_on_the_front_as_ranked(tmp_path: Path) -> None:
    """The row with the best accuracy has no latency: it was left off the front (and off the
    dashboard's points), so the job's best was not on its own front."""
    table = tmp_path / "t.csv"
    table.write_text("a,b,acc,lat\nx,1,0.5,3\nx,2,0.7,2\ny,1,0.95,\ny,2,0.6,1\n")
    spec = {
        "name": "t",
        "dataset": {"name": "table"},
        "space": {"name": "table", "path": str(table), "decisions": ["a", "b"]},
        "controller": {"name": "random"},
        "evaluator": {"name": "table", "fitness": "acc", "metrics": ["lat"]},
        "objective": {"metrics": ["acc", "lat"], "directions": ["maximize", "minimize"]},
        "budget": {"trials": 40},
        "seed": 0,
    }
    resolved = parse_spec(spec)
    loop = SearchLoop(resolved)
    outcome = loop.run()
    best = outcome.best
    assert best.result.metrics["acc"] == 0.95 and "lat" not in best.result.metrics
    summary = summarize(resolved, outcome, loop.components.space)
    front = {p["trial"]: p for p in summary["pareto"]}
    assert best.number in front and front[best.number]["rank"] == 1
    assert front[best.number]["values"] == {"acc": 0.95, "lat": None}
    accs = sorted(p["values"]["acc"] for p in front.values())
    assert accs == [0.6, 0.7, 0.95]  # (0.5 at latency 3: dominated by 0.7 at 2)

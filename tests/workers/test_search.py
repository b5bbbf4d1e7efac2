from __future__ import annotations

from pathlib import Path

import pytest

from controllers import RandomSearch
from nas.evaluators import TabularEvaluator
from nas.trial import TrialRecord
from workers.backend import InlineExecutor, SearchEvents
from workers.search import SearchComponents, SearchLoop, build_components, parse_spec


def nb201_spec(table: Path, **budget: float) -> dict:
    return {
        "name": "t",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "random"},
        "evaluator": {"name": "tabular", "table": str(table)},
        "budget": budget or {"simulated_seconds": 12000},
        "seed": 0,
    }


class CountingTabular(TabularEvaluator):
    """The real evaluator, counting how many calls answer how many queries."""

    calls: list[int]

    def evaluate(self, archs, hparams=None):
        self.calls.append(len(archs))
        return super().evaluate(archs, hparams)


def test_protocol_budget_discards_the_query_that_overruns(nb201_table: Path) -> None:
    resolved = parse_spec(nb201_spec(nb201_table))
    outcome = SearchLoop(resolved).run()
    assert 60 <= len(outcome.trials) <= 160  # about 100 queries at 12,000 s
    spent = sum(t.result.cost_s for t in outcome.trials)
    assert spent == pytest.approx(outcome.simulated_s)
    assert spent <= 12000
    # The next query the same controller would have made must overrun the budget.
    replay = build_components(resolved)
    for _ in outcome.trials:
        replay.controller.ask()
    overrun = replay.evaluator.evaluate([replay.controller.ask().architecture])[0]
    assert spent + overrun.cost_s > 12000
    assert "simulated time budget" in outcome.stop_reason


def test_the_simulated_time_is_counted_under_a_trials_budget_too(nb201_table: Path) -> None:
    """A tabular search by trials said simulated_time_s 0.0 in its summary, its trials
    holding thousands of seconds of simulated cost."""
    outcome = SearchLoop(parse_spec(nb201_spec(nb201_table, trials=20))).run()
    assert len(outcome.trials) == 20
    spent = sum(t.result.cost_s for t in outcome.trials)
    assert spent > 1000 and outcome.simulated_s == pytest.approx(spent)


def test_best_is_the_highest_fitness_and_reports_its_table_test_accuracy(nb201_table: Path) -> None:
    resolved = parse_spec(nb201_spec(nb201_table))
    outcome = SearchLoop(resolved).run()
    assert [t.number for t in outcome.trials] == list(range(len(outcome.trials)))
    best = max(outcome.trials, key=lambda t: t.result.objective)
    assert outcome.best is not None
    assert outcome.best.result.objective == best.result.objective
    evaluator = TabularEvaluator(dataset="nb201-cifar10", table=str(nb201_table))
    code = evaluator.table.codes([outcome.best.architecture])[0]
    assert outcome.final_metrics["test_accuracy"] == pytest.approx(
        evaluator.table.column("c10_test200")[code]
    )
    assert "test_accuracy" not in outcome.best.result.metrics  # never shown to controllers


def test_tabular_queries_are_answered_in_batches(nb201_table: Path) -> None:
    resolved = parse_spec(nb201_spec(nb201_table, trials=1000))
    space = build_components(resolved).space
    evaluator = CountingTabular(dataset="nb201-cifar10", table=str(nb201_table))
    evaluator.calls = []
    controller = RandomSearch(space=space, seed=0)
    outcome = SearchLoop(resolved, components=SearchComponents(space, evaluator, controller)).run()
    assert len(outcome.trials) == 1000
    assert sum(evaluator.calls) == 1000
    assert len(evaluator.calls) == 4  # 256 + 256 + 256 + 232


def test_same_seed_same_search(nb201_table: Path) -> None:
    a = SearchLoop(parse_spec(nb201_spec(nb201_table))).run()
    b = SearchLoop(parse_spec(nb201_spec(nb201_table))).run()
    assert [t.architecture for t in a.trials] == [t.architecture for t in b.trials]


def test_exhausted_space_stops_the_search(nb201_table: Path) -> None:
    spec = nb201_spec(nb201_table, trials=20_000)
    spec["controller"] = {"name": "random", "unique": True}
    outcome = SearchLoop(parse_spec(spec)).run()
    assert len(outcome.trials) == 15_625
    assert outcome.stop_reason == "search space exhausted"
    assert outcome.final_metrics["test_accuracy"] == pytest.approx(94.3733)


def test_trial_callback_sees_every_trial_in_order(nb201_table: Path) -> None:
    seen: list[int] = []
    outcome = SearchLoop(
        parse_spec(nb201_spec(nb201_table, trials=300)),
        events=SearchEvents(on_trial=lambda r: seen.append(r.number)),
    ).run()
    assert seen == list(range(300)) == [t.number for t in outcome.trials]


class EndsInReverse(InlineExecutor):
    """Evaluates here, then tells each result as if the batch's trials had ended last to
    first (Ray tasks end in any order)."""

    parallelism = 3

    def evaluate(
        self, evaluator, archs, hparams, *, should_stop=None, on_start=None, on_result=None
    ):  # type: ignore[no-untyped-def]
        results = super().evaluate(evaluator, archs, hparams, on_start=on_start)
        for i in reversed(range(len(results))) if on_result is not None else ():
            on_result(i, results[i], self.last_runs[i])
        return results


def test_a_trial_that_ends_before_the_one_before_it_is_told_ended_then_recorded_in_turn() -> None:
    """Records keep the batch's order (the controller hears results in trial order); a trial
    ending ahead of an earlier one is told at once (``on_trial_ended``: the runner shows it
    ended), with the very record it is given in its turn."""
    spec = {
        "name": "t",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1, "batch_size": 64},
        "budget": {"trials": 3},
        "seed": 0,
    }
    seen: list[tuple[str, TrialRecord]] = []
    events = SearchEvents(
        on_trial=lambda r: seen.append(("recorded", r)),
        on_trial_ended=lambda r: seen.append(("ended", r)),
    )
    outcome = SearchLoop(parse_spec(spec), events=events, executor=EndsInReverse()).run()
    assert outcome is not None and [t.number for t in outcome.trials] == [0, 1, 2]
    # told 2, 1, 0: 2 and 1 wait for 0; once 0 is in, all three are recorded in order
    assert [(what, r.number) for what, r in seen] == [
        ("ended", 2),
        ("ended", 1),
        ("recorded", 0),
        ("recorded", 1),
        ("recorded", 2),
    ]
    ended = {r.number: r for what, r in seen if what == "ended"}
    assert all(ended[t.number] == t for t in outcome.trials if t.number in ended)

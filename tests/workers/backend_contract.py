"""The contract every backend passes: start, checkpoint at safe points, resume exactly,
stop, and report, for every kind of search (trials answered by a table, a shared-weight
supernet). Subclass ``BackendContract`` and provide the ``backend`` fixture;
``test_backend_contract.py`` runs each registered backend through it."""

from __future__ import annotations

from typing import Any

import pytest

from nas.trial import TrialRecord, TrialState
from workers.backend import Backend, SafePoint, SearchEvents, SearchState
from workers.search import parse_spec


def table_spec(table: str, trials: int = 120) -> dict[str, Any]:
    return {
        "name": "contract-table",
        "dataset": {"name": "nb201-cifar10"},
        "space": {"name": "nb201"},
        "controller": {"name": "evolution", "population_size": 20, "sample_size": 5},
        "evaluator": {"name": "tabular", "table": table},
        "budget": {"trials": trials},
        "seed": 3,
    }


SUPERNET_SPEC: dict[str, Any] = {
    "name": "contract-supernet",
    "dataset": {"name": "digits"},
    "space": {"name": "enas-macro", "layers": 2, "channels": 4, "reductions": [1]},
    "controller": {"name": "enas", "num_aggregate": 5},
    "evaluator": {
        "name": "shared-weights",
        "epochs": 3,
        "batch_size": 128,
        "rewards_per_epoch": 10,
        "derive_samples": 4,
    },
    "budget": {"minutes": 5},
    "seed": 0,
}


#: Trials that train, judged by the median pruner (it prunes once 2 trials completed).
PRUNED_SPEC: dict[str, Any] = {
    "name": "contract-pruned",
    "dataset": {"name": "digits"},
    "space": {"name": "mlp", "max_layers": 2},
    "controller": {"name": "random"},
    "evaluator": {
        "name": "standalone",
        "epochs": 3,
        "batch_size": 128,
        "pruner": {"name": "median", "n_startup_trials": 2},
    },
    "budget": {"trials": 8},
    "seed": 0,
}


class Recorder:
    """Collects what a search reports, and optionally stops it after a safe point."""

    def __init__(self, *, stop_after_trials: int | None = None) -> None:
        self.trials: list[TrialRecord] = []
        self.points: list[SafePoint] = []
        self.states: list[SearchState] = []
        self.stop_after_trials = stop_after_trials
        self.search: Any = None
        self.restored = 0  # trials handed back on restore (not reported again)
        self.log: list[tuple[int, str]] = []  # (trial number, what was told of it), in order

    def events(self) -> SearchEvents:
        def told(what: str) -> Any:
            return lambda trials: self.log.extend((t.number, what) for t in trials)

        def record(trial: TrialRecord) -> None:
            self.log.append((trial.number, "result"))
            self.trials.append(trial)

        return SearchEvents(
            on_trial=record,
            on_trials_queued=told("queued"),
            on_trials_started=told("started"),
            on_intermediate=lambda number, epoch, _: self.log.append((number, f"epoch {epoch}")),
            on_safe_point=self._safe_point,
            should_stop=self._should_stop,
        )

    def _safe_point(self, point: SafePoint) -> None:
        self.points.append(point)
        assert self.search.consistent
        state = self.search.state()
        # It covers exactly what was reported.
        assert state.trial_count == self.restored + len(self.trials)
        self.states.append(state)

    def _should_stop(self) -> str | None:
        limit = self.stop_after_trials
        if limit is not None and self.states and self.states[-1].trial_count >= limit:
            return "stop asked by the test"
        return None


def run(backend: Backend, spec: dict[str, Any], recorder: Recorder, restore: Any = None) -> Any:
    search = backend.open(parse_spec(spec), recorder.events())
    recorder.search = search
    try:
        if restore is not None:
            search.restore(*restore)
            recorder.restored = len(restore[1])
        return search, search.run()
    finally:
        search.close()


def key(records: list[TrialRecord]) -> list[tuple[Any, ...]]:
    return [
        (r.number, r.candidate_id, r.architecture, r.result.state, r.result.objective, r.epoch)
        for r in records
    ]


class BackendContract:
    """Shared behaviour of all backends; subclasses provide the ``backend`` fixture."""

    def test_a_training_trial_is_told_started_then_its_values_then_its_result(
        self, backend: Backend
    ) -> None:
        """What the service shows of a trial as it goes: WAITING (only where trials wait
        for a worker), RUNNING from its start, its epochs' values, its result."""
        spec = {
            **PRUNED_SPEC,
            "evaluator": {"name": "standalone", "epochs": 2, "batch_size": 128},
            "budget": {"trials": 3},
        }
        recorder = Recorder()
        run(backend, spec, recorder)
        for number in range(3):
            told = [what for n, what in recorder.log if n == number]
            start = told.index("started")
            assert told[:start] in ([], ["queued"]), told
            assert told[start:] == ["started", "epoch 1", "epoch 2", "result"], told

    def test_runs_a_table_search_to_its_budget(self, backend: Backend, nb201_table: Any) -> None:
        recorder = Recorder()
        search, outcome = run(backend, table_spec(str(nb201_table)), recorder)
        assert [t.number for t in recorder.trials] == list(range(120))
        assert outcome.trials == search.trials == recorder.trials
        assert outcome.best is search.best and outcome.best is not None
        assert outcome.stop_reason == "trial budget reached (120)"
        assert search.fraction_done() == 1.0
        assert all(not p.required and p.curve is None for p in recorder.points)

    def test_a_stopped_table_search_resumes_exactly(
        self, backend: Backend, nb201_table: Any
    ) -> None:
        spec = table_spec(str(nb201_table))
        whole = Recorder()
        run(backend, spec, whole)
        first = Recorder(stop_after_trials=50)
        search, outcome = run(backend, spec, first)
        assert search.consistent
        state = first.states[-1]
        assert 50 <= state.trial_count < 120
        assert outcome.stop_reason == "stop asked by the test"
        assert state.evaluator is None  # a table keeps no state
        rest = Recorder()
        done = first.trials[: state.trial_count]
        _, outcome = run(backend, spec, rest, restore=(state, done))
        assert key(done + rest.trials) == key(whole.trials)
        assert [t.number for t in outcome.trials] == list(range(120))

    @pytest.mark.slow
    def test_a_pruner_judges_by_its_own_runs_trials_and_resumes_with_them(
        self, backend: Backend
    ) -> None:
        """A pruner judges a trial against the earlier trials of its own search only,
        wherever they ran (on Ray: whichever worker process): the median pruner prunes no
        trial before 2 of the run completed, and a second run of the same spec prunes
        exactly as the first (a pruner that remembered the first run's trials pruned the
        second's first trial). A run stopped after 4 trials and restored from its checkpoint
        prunes as the whole run did (a pruner that started fresh on resume trained the
        next trials fully)."""
        first, second = Recorder(), Recorder()
        run(backend, PRUNED_SPEC, first)
        run(backend, PRUNED_SPEC, second)
        states = [t.result.state for t in first.trials]
        assert TrialState.PRUNED in states[4:6], states  # a fresh pruner would not prune here
        for number, state in enumerate(states):
            if state is TrialState.PRUNED:
                assert states[:number].count(TrialState.COMPLETE) >= 2, states
        assert key(second.trials) == key(first.trials)
        stopped = Recorder(stop_after_trials=4)
        run(backend, PRUNED_SPEC, stopped)
        state = stopped.states[-1]
        assert state.trial_count == 4 and len(state.loop["memory"]) == 4
        rest = Recorder()
        done = stopped.trials[:4]
        run(backend, PRUNED_SPEC, rest, restore=(state, done))
        assert key(done + rest.trials) == key(first.trials)

    @pytest.mark.slow
    def test_trials_side_by_side_are_pruned_the_same_every_run(self, backend: Backend) -> None:
        """With ``resources.workers`` 2 each trial is judged against the job's earlier
        trials, not those its worker process happened to run: two runs prune alike."""
        spec = {**PRUNED_SPEC, "resources": {"workers": 2}}
        first, second = Recorder(), Recorder()
        run(backend, spec, first)
        run(backend, spec, second)
        assert TrialState.PRUNED in [t.result.state for t in first.trials]
        assert key(second.trials) == key(first.trials)

    @pytest.mark.slow
    def test_each_trial_records_its_own_times(self, backend: Backend) -> None:
        """Trials that run side by side (``resources.workers`` 2) each record when they
        themselves started and finished, not their batch's start and end."""
        spec = {
            **PRUNED_SPEC,
            "evaluator": {"name": "standalone", "epochs": 2, "batch_size": 128},
            "budget": {"trials": 6},
            "resources": {"workers": 2},
        }
        recorder = Recorder()
        run(backend, spec, recorder)
        times = [(t.started_at, t.finished_at) for t in recorder.trials]
        assert len(set(times)) == len(times), times
        for t in recorder.trials:
            assert t.started_at <= t.finished_at
            assert t.finished_at - t.started_at >= t.result.cost_s - 0.01, t
        # Batches of one trial per worker: the two of a batch run side by side, in either
        # order (one may wait for its worker process while the other has run), and a trial
        # of the next batch starts once every trial before it has ended.
        for before, after in zip(recorder.trials, recorder.trials[2:]):
            assert before.finished_at <= after.started_at, times

    @pytest.mark.slow
    def test_a_supernet_search_checkpoints_each_epoch_and_resumes_from_one(
        self, backend: Backend
    ) -> None:
        first = Recorder(stop_after_trials=10)
        search, _ = run(backend, SUPERNET_SPEC, first)
        required = [p for p in first.points if p.required]
        assert required and required[0].curve is not None and required[0].curve["epoch"] == 0
        state = first.states[0]
        assert state.trial_count == 10 and state.evaluator  # the supernet's weights
        assert [t.epoch for t in first.trials[:10]] == [0] * 10
        rest = Recorder()
        search, outcome = run(backend, SUPERNET_SPEC, rest, restore=(state, first.trials[:10]))
        assert [t.number for t in rest.trials] == list(range(10, 30))
        assert [t.epoch for t in rest.trials] == [1] * 10 + [2] * 10
        assert [p.curve["epoch"] for p in rest.points if p.curve] == [1, 2]
        assert len(outcome.curve) == 3 and outcome.ranked
        assert [t.number for t in search.trials] == list(range(30))
        assert search.fraction_done() == 1.0

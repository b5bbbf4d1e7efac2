"""Backends: where a search runs. One interface for every kind of search.

A ``Backend`` opens a ``SearchRun`` for a resolved spec: the job runner (and ``nas search``)
starts, checkpoints, resumes, cancels and reads progress through that one object, whatever
the evaluator (trials that train, table lookups, a shared-weight supernet):

- ``InlineBackend`` runs the search loop in this process, trials one batch at a time.
- ``workers.ray_backend.RayBackend`` runs trials as Ray tasks while the loop runs here, or,
  for a loop that keeps its evaluator's state (the supernet), runs the whole loop in one Ray
  actor and relays its trials and checkpoints.

What a search reports goes to its ``SearchEvents``; its checkpoint is a ``SearchState``.
"""

from __future__ import annotations

import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.architecture import Architecture
from nas.evaluators import Evaluator
from nas.pareto import tie_break_key
from nas.spaces import SearchSpace
from nas.spec import ResolvedSpec
from nas.trial import RunningTrial, TrialRecord, TrialResult, TrialState

if TYPE_CHECKING:
    from workers.search import SearchLoop

#: ``should_stop()`` answers why work must stop now (a cancel, a server shutdown), or
#: ``None`` to go on.
StopFn = Callable[[], "str | None"]

#: ``on_start(indices, worker, at)``: the batch's trials ``indices`` started to run on
#: ``worker`` at ``at`` (epoch seconds).
StartFn = Callable[[Sequence[int], str, float], None]

#: ``on_result(index, result, run)``: the batch's ``index``-th trial ended with ``result``,
#: having run as ``run`` says, while others of its batch may still run.
ResultFn = Callable[[int, TrialResult, "TrialRun"], None]


class Interrupted(Exception):
    """Raised out of a running search when ``should_stop`` asked to stop while trials ran;
    the unfinished trials have no result."""


@dataclass(frozen=True)
class SafePoint:
    """A point where the search's state covers exactly the trials recorded so far, so it
    may be checkpointed. ``required``: the evaluator's state changed (a supernet epoch
    ended): checkpoint now, or the work since the last checkpoint is lost on a restart.
    ``curve``: the search's per-epoch curve point made here (supernet loss, mean reward,
    controller entropy and baseline), if any, with its ``epoch``; ``series`` names the
    curve it belongs to (``GET /jobs/{id}/curves`` serves the points by series).
    ``running``: the point is inside a trial that goes on (a meta-epoch of a meta-learning
    trial ended): the checkpoint also holds that trial's state, the trial stays RUNNING,
    and a restored search continues it from there rather than from scratch."""

    required: bool = False
    curve: Mapping[str, Any] | None = None
    series: str = "epochs"
    running: bool = False


@dataclass
class SearchEvents:
    """What a running search reports, each called from the thread that runs the search.

    - ``on_trial(record)``: once per recorded trial, in number order.
    - ``on_trials_queued(trials)``: trials that train were handed to workers that may not
      start them at once (Ray tasks wait for free resources); they have no worker nor start
      yet, and are WAITING until ``on_trials_started`` names them.
    - ``on_trials_started(trials)``: trials that train start to run, each with where and
      when (not called for instant evaluators, whose trials have no RUNNING phase); a
      batch's trials may start together (inline) or one by one (Ray).
    - ``on_trial_ended(record)``: a trial that trains ended while one before it in its
      batch still runs (Ray tasks end in any order): its record as ``on_trial`` will give
      it once those before it are recorded, so that it shows as ended meanwhile.
    - ``on_intermediate(number, epoch, values)``: a running trial's intermediate values.
    - ``on_safe_point(point)``: see ``SafePoint``.
    - ``should_stop()``: see ``StopFn``; polled between batches, reward groups and epochs of
      training trials.
    - ``on_waiting(text)``: the search has waited a while for something outside it (Ray to
      place its actor, or its group of workers, or to start any of its waiting trials): a
      sentence saying what; ``None`` once it goes on. Also what it does after its trials
      when that takes a while (``Evaluator.final_metrics_work``: the meta-test).
    """

    on_trial: Callable[[TrialRecord], None] | None = None
    on_trials_queued: Callable[[list[RunningTrial]], None] | None = None
    on_trials_started: Callable[[list[RunningTrial]], None] | None = None
    on_trial_ended: Callable[[TrialRecord], None] | None = None
    on_intermediate: Callable[[int, int, Mapping[str, float]], None] | None = None
    on_safe_point: Callable[[SafePoint], None] | None = None
    should_stop: StopFn | None = None
    on_waiting: Callable[[str | None], None] | None = None


@dataclass
class SearchState:
    """A checkpoint of a search: the controller's and the loop's state as plain data, and
    the evaluator's own state (the supernet's weights) as bytes, ``None`` for evaluators
    that keep none. It covers the first ``trial_count`` trials."""

    controller: dict[str, Any]
    loop: dict[str, Any]
    evaluator: bytes | None = None

    @property
    def trial_count(self) -> int:
        return int(self.loop["trials"])


@dataclass(frozen=True)
class OutputFile:
    """A file a search produced: its name (no folders), its artifact kind, its bytes."""

    name: str
    kind: str
    data: bytes = field(repr=False)


@dataclass
class SearchOutcome:
    trials: list[TrialRecord]
    best: TrialRecord | None
    stop_reason: str
    wall_s: float
    simulated_s: float
    final_metrics: dict[str, float] = field(default_factory=dict)
    #: Best architectures with their selection score, best first (top-K of the search).
    ranked: list[tuple[Architecture, float]] = field(default_factory=list)
    #: The ranked architectures were derived from a supernet (a shared-weight search) and
    #: scored on the validation split: no trial earned their scores, even one of the same
    #: architecture whose minibatch score happens to equal it.
    derived: bool = False
    #: Per-epoch controller curve (shared-weight search): reward, entropy, baseline, loss.
    curve: list[dict[str, float]] = field(default_factory=list)
    #: Several objectives: the non-dominated COMPLETE trials (one per configuration,
    #: architecture and hyperparameters: its first trial), in trial order; empty with one
    #: objective.
    pareto: list[TrialRecord] = field(default_factory=list)
    #: What a reader of the result must know: the search stopped before its planned work
    #: (the time budget cut a supernet's training short), ...
    warnings: list[str] = field(default_factory=list)
    #: Why the search failed as a whole although it ran (``budget.on_time_limit: fail``).
    error: str | None = None
    #: Files the search produced, by file name (a meta-trained policy): ``nas search`` writes
    #: them into its run folder, the service stores them as the job's artifacts.
    files: list[OutputFile] = field(default_factory=list)
    #: More of the result for the summary, under its own key (``meta_training``: iterations,
    #: seconds, tasks, the last figures).
    report: dict[str, Any] = field(default_factory=dict)

    def failure(self) -> str | None:
        """Why the search as a whole failed: every one of its trials FAILed (none completed
        or was pruned), for instance on data every trial diverges on or an error in the
        workers. Then the search found nothing, whatever its budget says: the job is FAILED
        with this reason (the first trial's error, cut to a few hundred characters).
        ``None`` when a trial succeeded, or when there was none. ``error``, when set, comes
        first."""
        if self.error is not None:
            return self.error
        if not self.trials or any(t.result.state is not TrialState.FAIL for t in self.trials):
            return None
        first = " ".join((self.trials[0].result.error or "unknown error").split())
        if len(first) > FAILURE_ERROR_CHARS:
            first = first[: FAILURE_ERROR_CHARS - 3] + "..."
        return f"all {len(self.trials)} trials failed; first error: {first}"


#: How much of the first trial's error a failed search's reason quotes.
FAILURE_ERROR_CHARS = 300


class TrialLog:
    """The trials of one search in number order, and the best COMPLETE one so far: by the
    objective, ties broken by the other objectives ``then`` in order (``(metric,
    direction)``; ``nas.pareto.tie_break_key``), then the earlier trial."""

    def __init__(self, *, maximize: bool, then: Sequence[tuple[str, str]] = ()) -> None:
        self.maximize = maximize
        self.then = list(then)
        self.trials: list[TrialRecord] = []
        self.best: TrialRecord | None = None

    def add(self, record: TrialRecord) -> None:
        self.trials.append(record)
        result = record.result
        if result.state is TrialState.COMPLETE and (
            self.best is None or self.better(result, self.best.result)
        ):
            self.best = record

    def load(self, records: Sequence[TrialRecord]) -> None:
        self.trials, self.best = [], None
        for record in records:
            self.add(record)

    def better(self, a: TrialResult, b: TrialResult) -> bool:
        return self.rank_key(a) > self.rank_key(b)

    def rank_key(self, result: TrialResult) -> tuple[float, ...]:
        """Larger is better: the objective, then the tie-breaking objectives."""
        assert result.objective is not None
        first = result.objective if self.maximize else -result.objective
        return (first, *tie_break_key(result.metrics, self.then))

    def ranked(self, trials: Sequence[TrialRecord] | None = None) -> list[TrialRecord]:
        """Each distinct architecture's best COMPLETE trial of ``trials`` (default: the
        log's), best first; of equal ones, the architecture tried first first. The job's
        ranking: its summary's ``ranked`` is the head of it, the service's export and
        retrain ranks follow it (``api.ranking``)."""
        best: dict[Architecture, TrialRecord] = {}
        for t in self.trials if trials is None else trials:
            if t.result.state is not TrialState.COMPLETE or t.result.objective is None:
                continue
            old = best.get(t.architecture)
            if old is None or self.better(t.result, old.result):
                best[t.architecture] = t
        # (stable: of equal architectures, the one first tried first)
        return sorted(best.values(), key=lambda t: self.rank_key(t.result), reverse=True)


class SearchRun(ABC):
    """One search opened by a backend. Restore (optional), ``run``, read ``state`` at safe
    points, ``close``. Not thread-safe, except ``fraction_done``, ``trials`` and ``best``,
    which another thread may read while ``run`` runs."""

    #: The search space (for summaries and retraining).
    space: SearchSpace

    @abstractmethod
    def restore(self, state: SearchState, trials: Sequence[TrialRecord]) -> None:
        """Continue from a checkpoint: ``trials`` are the records it covers."""

    @abstractmethod
    def run(self) -> SearchOutcome:
        """Run to the end of the budget or to a stop asked by ``should_stop``: the outcome's
        ``stop_reason`` says which. A stop that lands inside a batch of training trials
        raises ``Interrupted`` instead (their results are lost)."""

    @abstractmethod
    def state(self) -> SearchState:
        """The checkpoint of the search as it is now; only valid where ``consistent``."""

    @property
    @abstractmethod
    def consistent(self) -> bool:
        """True when ``state()`` covers exactly the trials recorded so far."""

    @abstractmethod
    def final_controller_state(self) -> dict[str, Any] | None:
        """Once ``run`` has returned its outcome: the controller's state, told every
        recorded result (what a later job's warm start takes: an ENAS policy, a MetaQNN
        Q-table). Not a checkpoint to resume from: a candidate the budget refused may still
        be pending. ``None`` before the end, or for a search without a controller."""

    @property
    @abstractmethod
    def trials(self) -> list[TrialRecord]: ...

    @property
    @abstractmethod
    def best(self) -> TrialRecord | None: ...

    @abstractmethod
    def fraction_done(self) -> float:
        """How much of the budget is spent, 0..1."""

    def close(self) -> None:
        """Release what the run holds (threads, an actor)."""


@dataclass(frozen=True)
class TrialRun:
    """Where and when one trial of a batch ran (wall-clock seconds since the epoch), as its
    executor measured it; the search loop records it with the trial."""

    worker: str
    started: float
    finished: float


class TrialExecutor(ABC):
    """Evaluates a batch of candidates for a search loop: here, or as Ray tasks."""

    #: How many trials run at once (the spec's ``resources.workers``).
    parallelism: int = 1
    #: Whether a trial handed over may wait before it starts (for a free worker).
    queues: bool = False
    #: Where and when each trial of the last batch ran, in order (recorded with each trial).
    last_runs: list[TrialRun]

    def __init__(self) -> None:
        self.last_runs = []

    @property
    @abstractmethod
    def worker_name(self) -> str:
        """Where trials run (recorded with each trial)."""

    @abstractmethod
    def evaluate(
        self,
        evaluator: Evaluator,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]],
        *,
        should_stop: StopFn | None = None,
        on_start: StartFn | None = None,
        on_result: ResultFn | None = None,
    ) -> list[TrialResult]:
        """One result per architecture, in order; ``on_start`` hears when and where each
        trial starts to run, and ``on_result`` each result that is in before the batch's
        last (trials that end one by one: Ray tasks), so that the loop records it at once.
        May raise ``Interrupted``."""

    def close(self) -> None:
        """Release threads or remote workers."""


class InlineExecutor(TrialExecutor):
    """Evaluates in this process, one batch at a time. A training trial sees
    ``should_stop`` only through its per-epoch intermediate values (the loop raises
    ``Interrupted`` there)."""

    def __init__(self, *, worker_name: str | None = None) -> None:
        super().__init__()
        self._name = worker_name

    @property
    def worker_name(self) -> str:
        return self._name or f"inline@{socket.gethostname()}:{os.getpid()}"

    def evaluate(
        self,
        evaluator: Evaluator,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]],
        *,
        should_stop: StopFn | None = None,
        on_start: StartFn | None = None,
        on_result: ResultFn | None = None,
    ) -> list[TrialResult]:
        started = time.time()
        if on_start is not None:
            on_start(range(len(archs)), self.worker_name, started)
        results = evaluator.evaluate(list(archs), list(hparams))
        # One call evaluates the batch: each trial's time is the batch's (a batch of
        # trials that train inline is one trial; of lookups, one table read).
        self.last_runs = [TrialRun(self.worker_name, started, time.time())] * len(archs)
        return results


class Backend(ABC):
    """Opens searches; see the module docstring."""

    @abstractmethod
    def open(self, resolved: ResolvedSpec, events: SearchEvents) -> SearchRun:
        """A search of ``resolved`` that reports to ``events``, ready to restore or run."""

    def close(self) -> None:
        """Release what the backend holds."""


class LocalRun(SearchRun):
    """A search loop running in this process (its trials evaluated by the loop's
    executor: here, or on Ray)."""

    def __init__(self, loop: SearchLoop) -> None:
        self.loop = loop
        self.space = loop.components.space
        self._ended = False

    def restore(self, state: SearchState, trials: Sequence[TrialRecord]) -> None:
        self.loop.load_state(state, list(trials))

    def run(self) -> SearchOutcome:
        outcome = self.loop.run()
        assert outcome is not None  # no pause asked for
        self._ended = True
        return outcome

    def state(self) -> SearchState:
        return self.loop.state()

    @property
    def consistent(self) -> bool:
        return self.loop.consistent

    def final_controller_state(self) -> dict[str, Any] | None:
        return controller_state_of(self.loop) if self._ended else None

    @property
    def trials(self) -> list[TrialRecord]:
        return self.loop.log.trials

    @property
    def best(self) -> TrialRecord | None:
        return self.loop.log.best

    def fraction_done(self) -> float:
        return self.loop.fraction_done()

    def close(self) -> None:
        self.loop.executor.close()


class InlineBackend(Backend):
    """Runs every search in this process: ``nas search``, tests, and the service's default
    until a distributed backend is configured."""

    def open(self, resolved: ResolvedSpec, events: SearchEvents) -> SearchRun:
        from workers.loops import loop_class

        return LocalRun(loop_class(resolved)(resolved, events=events, executor=InlineExecutor()))


def controller_state_of(loop: Any) -> dict[str, Any] | None:
    """The state of ``loop``'s controller (``None`` for a loop without one: meta-training)."""
    return loop.components.controller.state_dict() if loop.builds_controller else None

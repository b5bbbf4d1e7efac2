"""The search loop: controller.ask -> evaluator -> controller.tell, within a budget.

One loop class per kind of search (``workers.loops.LOOPS``, chosen by the evaluator's
``search``):
``SearchLoop`` here (batches of trials: training, table lookups) and
``workers.shared.SharedWeightSearch`` (a supernet trained and rewarded epoch by epoch). A
loop reports through ``SearchEvents`` and checkpoints as a ``SearchState``; backends
(``workers.backend``) run it here or on Ray. Candidates are gathered into batches of the
evaluator's ``batch_size`` so cheap evaluators (tables) answer many per call.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from controllers import CONTROLLERS, Candidate, Controller
from nas import spec as nas_spec
from nas.architecture import Architecture
from nas.errors import SpecError
from nas.evaluators import Evaluator, build_evaluator
from nas.metalearning import META_WEIGHTS_FILE, META_WEIGHTS_KIND
from nas.pareto import non_dominated, objective_values
from nas.spaces import SearchSpace
from nas.spec import ResolvedSpec
from nas.trial import RunningTrial, TrialRecord, TrialResult, TrialState
from workers.backend import (
    FAILURE_ERROR_CHARS,
    InlineExecutor,
    Interrupted,
    OutputFile,
    SafePoint,
    SearchEvents,
    SearchOutcome,
    SearchState,
    StartFn,
    StopFn,
    TrialExecutor,
    TrialLog,
    TrialRun,
)

__all__ = [
    "Budget",
    "SearchComponents",
    "SearchLoop",
    "SearchOutcome",
    "TrialLog",
    "TrialRecord",
    "build_components",
    "parse_spec",
]


def parse_spec(
    data: Mapping[str, Any] | nas_spec.JobSpec,
    *,
    strict: bool = False,
    check_files: Callable[[ResolvedSpec], None] | None = None,
) -> ResolvedSpec:
    """Validate a job spec against the built-in components (``nas.spec.parse_spec`` with
    this project's controller registry)."""
    return nas_spec.parse_spec(
        data, controllers=CONTROLLERS, strict=strict, check_files=check_files
    )


@dataclass
class Budget:
    """Tracks the spec's budget. A result whose simulated cost would cross
    ``simulated_seconds`` is not admitted, as in the NAS-Bench-201 paper's code (its random
    search discards the query that overruns; NATS-Bench's later code keeps it)."""

    trials: int | None = None
    minutes: float | None = None
    simulated_seconds: float | None = None
    started: float = field(default_factory=time.monotonic)
    used_trials: int = 0
    used_simulated: float = 0.0
    reason: str = ""
    should_stop: StopFn | None = None
    #: The reason came from ``should_stop`` (cancel or shutdown), not from the budget.
    interrupted: bool = False
    #: The reason is the time budget (``minutes``).
    timed_out: bool = False
    #: A cap on the trials that is not a plan (``budget.max_trials``).
    max_trials: int | None = None

    def exhausted(self) -> bool:
        if self.reason:
            return True
        if self.should_stop is not None and (why := self.should_stop()):
            self.reason, self.interrupted = why, True
            return True
        if self.trials is not None and self.used_trials >= self.trials:
            self.reason = f"trial budget reached ({self.trials})"
        elif self.max_trials is not None and self.used_trials >= self.max_trials:
            self.reason = f"trial limit reached ({self.max_trials}, budget.max_trials)"
        elif self.time_up():
            self.reason = f"time budget reached ({self.minutes} min)"
            self.timed_out = True
        return bool(self.reason)

    def remaining_trials(self) -> int | None:
        caps = [c for c in (self.trials, self.max_trials) if c is not None]
        return None if not caps else min(caps) - self.used_trials

    def admit(self, result: TrialResult) -> bool:
        # The simulated time is counted whatever the budget (the summary's simulated_time_s
        # said 0.0 for a tabular search by trials: 8,089 s of its trials' costs).
        if result.simulated:
            limit = self.simulated_seconds
            if limit is not None and self.used_simulated + result.cost_s > limit:
                self.reason = f"simulated time budget reached ({limit:g} s)"
                return False
            self.used_simulated += result.cost_s
        self.used_trials += 1
        return True

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def time_up(self) -> bool:
        """``minutes`` are set and spent."""
        return self.minutes is not None and self.elapsed() >= self.minutes * 60

    def fraction_used(self) -> float:
        """How much of the tightest budget is spent, 0..1 (for progress bars)."""
        parts = []
        if self.trials is not None:
            parts.append(self.used_trials / self.trials)
        if self.minutes is not None:
            parts.append(self.elapsed() / (self.minutes * 60))
        if self.simulated_seconds is not None:
            parts.append(self.used_simulated / self.simulated_seconds)
        return min(1.0, max(parts, default=0.0))


@dataclass
class SearchComponents:
    space: SearchSpace
    evaluator: Evaluator
    controller: Controller
    #: What the search's summary must say of how they were built (priors left out).
    warnings: list[str] = field(default_factory=list)


def build_components(resolved: ResolvedSpec) -> SearchComponents:
    space, evaluator = build_evaluator(resolved)
    constraints = resolved.spec.objective.constraints
    limits = constraints.limits() if constraints is not None else {}
    warnings: list[str] = []

    def feasible(priors: Sequence[Mapping[str, Any]]) -> list[bool]:
        archs = [Architecture.from_dict(p["architecture"]) for p in priors]
        ok = [why is None for why, _ in evaluator.check_constraints(archs, limits)]
        if not all(ok):
            # (left out without a word: a Pareto source's five most accurate all broke
            # max_params, and the job page said "5 priors": the probe of multi-objective
            # search)
            warnings.append(
                f"warm start: {ok.count(False)} of its {len(ok)} priors break "
                "objective.constraints and were left out (a source's best are chosen by its "
                "own objective): a source searched under the same constraints lends "
                "feasible ones"
            )
        return ok

    controller = build_controller(
        resolved,
        space,
        deterministic_evaluator=evaluator.deterministic,
        feasible=feasible if limits else None,
    )
    return SearchComponents(space, evaluator, controller, warnings)


def build_controller(
    resolved: ResolvedSpec,
    space: SearchSpace,
    *,
    deterministic_evaluator: bool = False,
    feasible: Callable[[Sequence[Mapping[str, Any]]], list[bool]] | None = None,
) -> Controller:
    """The spec's controller over ``space``, warm-started as its ``warm_start`` says (the
    priors and observations; a transferred policy or Q-table). ``feasible``: which priors
    meet the job's ``objective.constraints``; the others are not proposed (a source's, or
    a model's, prior over this job's limits was a PRUNED trial of its budget)."""
    spec = resolved.spec
    controller = CONTROLLERS.get(spec.controller.name)(
        space=space,
        direction=spec.objective.direction,
        seed=spec.seed,
        **({"objectives": spec.objective.objectives} if spec.objective.is_multi else {}),
        **({"hparams": resolved.hparams} if resolved.hparams is not None else {}),
        deterministic_evaluator=deterministic_evaluator,
        **resolved.controller_params,
    )
    warm = spec.warm_start
    if warm is not None:
        if warm.priors is None:
            raise SpecError.at(
                ["warm_start"],
                "the sources were not resolved to priors (submit the job to the "
                "service for jobs/query; nas search reads runs)",
            )
        if warm.controller_state is not None:
            try:
                controller.load_transferred(warm.controller_state["state"])
            except (KeyError, TypeError, ValueError) as exc:
                raise SpecError.at(["warm_start", "controller_state"], str(exc)) from None
        priors = [p.model_dump() for p in warm.priors]
        if feasible is not None and priors:
            priors = [p for p, ok in zip(priors, feasible(priors), strict=True) if ok]
        controller.warm_start(
            priors, observations=[p.model_dump() for p in warm.observations or ()]
        )
    return controller


def _infeasible(trial: TrialRecord) -> bool:
    """A candidate told infeasible: PRUNED at no cost (a constraint, a table's missing row)."""
    return trial.result.state is TrialState.PRUNED and trial.result.cost_s == 0


def _in_a_row(trials: Sequence[TrialRecord], counted: Callable[[TrialRecord], bool]) -> int:
    """How many of the last ``trials`` in a row are ``counted``."""
    n = 0
    for trial in reversed(trials):
        if not counted(trial):
            break
        n += 1
    return n


class SearchLoop:
    """Runs one search of trials (ask a batch, evaluate it, tell) to the end of its budget.

    Example:
        >>> outcome = SearchLoop(parse_spec(load_spec_file("examples/nb201-random.yaml"))).run()
        >>> outcome.best.result.objective
    """

    #: The loop keeps state inside its evaluator (a supernet) that must be checkpointed with
    #: it, so the loop runs where the evaluator lives (on Ray: in one actor).
    keeps_evaluator_state: ClassVar[bool] = False
    #: Inside a trial's safe point: (the trial's ``trial_checkpoint``, its epoch).
    _trial_state: tuple[bytes, int] | None = None
    #: Restored from a checkpoint inside a trial: the candidates to evaluate first.
    _resumed: tuple[Candidate, ...] = ()
    #: On Ray with ``resources.workers`` > 1 the loop's evaluator is trained by a group of
    #: that many workers (``workers.supernet_group``); otherwise the loop's one actor (or
    #: the executor's parallel trials) is all there is.
    trains_in_groups: ClassVar[bool] = False
    #: The loop asks a controller built from the spec (``build_controller``); a loop that
    #: trains a policy instead (meta-training) builds none.
    builds_controller: ClassVar[bool] = True
    #: What the loop's progress is counted in, for a cancel's reason: its finished trials,
    #: or (``"recorded meta-training iterations"``) the ``iteration`` of its last curve point.
    progress_unit: ClassVar[str] = "finished trials"
    #: A stop (a cancel) keeps what the loop's files hold so far (``files_so_far``): a
    #: meta-training's policy. A search's result so far is its trials.
    keeps_files_when_stopped: ClassVar[bool] = False

    # (class defaults: a loop of its own __init__, the meta-training's, has them too)
    #: What ``run`` would have answered when Ctrl-C stopped the work after the search (a
    #: meta-test): the search's result, which ``nas search`` then writes.
    stopped_outcome: SearchOutcome | None = None
    #: Trials are being evaluated: a time budget whose end fails the job stops them too.
    _in_trials: bool = False
    #: The reason the time budget gave when it stopped running trials.
    _time_stop: str | None = None
    #: The search's own wall time, as its outcome says it (set when the search ends).
    _wall_s: float = 0.0
    #: The search itself has ended: what runs now is the work after it (a meta-test).
    _ended: bool = False

    def __init__(
        self,
        resolved: ResolvedSpec,
        *,
        components: SearchComponents | None = None,
        events: SearchEvents | None = None,
        executor: TrialExecutor | None = None,
    ) -> None:
        """``events``: what the loop reports (``SearchEvents``). ``executor``: where batches
        are evaluated (default: here)."""
        self.resolved = resolved
        self.components = components or build_components(resolved)
        self.events = events or SearchEvents()
        self.executor = executor or InlineExecutor()
        budget = resolved.spec.budget
        self.budget = Budget(
            budget.trials,
            budget.minutes,
            budget.simulated_seconds,
            should_stop=self.events.should_stop,
            max_trials=budget.max_trials,
        )
        self.maximize = resolved.spec.objective.direction == "maximize"
        self.log = TrialLog(maximize=self.maximize, then=resolved.spec.objective.objectives[1:])
        self.curve: list[dict[str, Any]] = []
        self._elapsed_before = 0.0
        self._infeasible_in_a_row = 0
        self._failed_in_a_row = 0
        self._batch_numbers: list[int] = []  # the trial number of each candidate evaluated
        self._running = False
        self.components.evaluator.report = self._report
        self.components.evaluator.poll = self._poll

    @property
    def trials(self) -> list[TrialRecord]:
        return self.log.trials

    @property
    def best(self) -> TrialRecord | None:
        return self.log.best

    # --- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The loop's own progress (plain data); the controller and evaluator checkpoint
        themselves. Trial records are stored by the caller and handed back on resume."""
        state: dict[str, Any] = {
            "trials": len(self.trials),
            "used_trials": self.budget.used_trials,
            "used_simulated": self.budget.used_simulated,
            "elapsed_s": self.budget.elapsed() if self._running else self._elapsed_before,
            "curve": list(self.curve),
        }
        memory = self.components.evaluator.memory()
        if memory is not None:
            # What judges later trials (a pruner's record of these): restored on resume.
            state["memory"] = memory
        if self._trial_state is not None:
            # A checkpoint inside the running trial (number ``trials``): the controller's
            # state holds its candidate as pending, the evaluator state is the trial's.
            state["running"] = {"number": len(self.trials), "epoch": self._trial_state[1]}
        return state

    def load_state_dict(self, state: Mapping[str, Any], trials: list[TrialRecord]) -> None:
        if len(trials) != int(state["trials"]):
            raise ValueError(
                f"checkpoint covers {state['trials']} trials but {len(trials)} were given"
            )
        self.log.load(trials)
        # The stops after so many in a row count on from the trials (a resumed job counted
        # from 0: it ran on past where the uninterrupted one stopped)
        self._infeasible_in_a_row = _in_a_row(trials, _infeasible)
        self._failed_in_a_row = _in_a_row(trials, lambda t: t.result.state is TrialState.FAIL)
        self.budget.used_trials = int(state["used_trials"])
        self.budget.used_simulated = float(state["used_simulated"])
        self._elapsed_before = float(state["elapsed_s"])
        self.curve = list(state.get("curve", []))
        if "memory" in state:
            self.components.evaluator.restore_memory(state["memory"])

    def state(self) -> SearchState:
        """The whole search's checkpoint: controller, loop, and evaluator state (inside a
        trial: the trial's own state, ``Evaluator.trial_checkpoint``)."""
        evaluator = self._trial_state[0] if self._trial_state is not None else None
        return SearchState(
            self.components.controller.state_dict(),
            self.state_dict(),
            evaluator if evaluator is not None else self.evaluator_state(),
        )

    def load_state(self, state: SearchState, trials: list[TrialRecord]) -> None:
        controller = self.components.controller
        controller.load_state_dict(state.controller)
        self.load_state_dict(state.loop, trials)
        if state.loop.get("running") is not None:
            if state.evaluator is None or len(controller.pending) != 1:
                raise ValueError("a checkpoint inside a trial holds its candidate and its state")
            self.components.evaluator.resume_trial(state.evaluator)
            self._resumed = tuple(controller.pending)
        elif state.evaluator is not None:
            self.load_evaluator_state(state.evaluator)

    def evaluator_state(self) -> bytes | None:
        """The evaluator's state to checkpoint with the loop (``keeps_evaluator_state``)."""
        return None

    def load_evaluator_state(self, data: bytes) -> None:
        raise ValueError(f"{type(self).__name__} keeps no evaluator state to restore")

    @property
    def consistent(self) -> bool:
        """No candidate is pending (``state()`` covers exactly the recorded trials), or the
        one pending is the trial whose state ``state()`` holds (a safe point inside it)."""
        return not self.components.controller.pending or self._trial_state is not None

    @property
    def interrupted(self) -> bool:
        """The search stopped on ``should_stop`` (cancel, shutdown) rather than its budget."""
        return self.budget.interrupted

    def fraction_done(self) -> float:
        """How much of the budget is spent, 0..1 (for progress)."""
        return self.budget.fraction_used()

    # --- running -----------------------------------------------------------------------
    def run(self, *, pause: Callable[[], bool] | None = None) -> SearchOutcome | None:
        """Run to the end of the budget. With ``pause``, asked at each safe point: when it
        answers true the loop returns ``None`` there, and a later ``run`` goes on (the
        budget's clock stands still in between)."""
        self.budget.started = time.monotonic() - self._elapsed_before
        self._running = True
        self._ended, self.stopped_outcome = False, None
        try:
            if self._search(pause):
                return self._outcome()
            return None
        finally:
            # (the search's own time: a meta-test stopped by a shutdown, in the checkpoint
            # the runner keeps, came back into the resumed job's clock and wall time)
            self._elapsed_before = self._wall_s if self._ended else self.budget.elapsed()
            self._running = False

    def _safe_point(self, point: SafePoint, pause: Callable[[], bool] | None) -> bool:
        """Report a safe point; True when the caller asked to pause here."""
        if self.events.on_safe_point is not None:
            self.events.on_safe_point(point)
        return pause is not None and pause()

    def _search(self, pause: Callable[[], bool] | None) -> bool:
        """The search itself; False when it paused (see ``run``)."""
        controller, evaluator = self.components.controller, self.components.evaluator
        while not self.budget.exhausted():
            size = evaluator.batch_size
            if not evaluator.instant:  # trials that train: one per parallel worker
                size = max(size, self.executor.parallelism)
            batch = list(self._resumed) or self._gather(controller, size)
            self._resumed = ()
            if not batch:
                if controller.finished:
                    self.budget.reason = "search space exhausted"
                    break
                raise RuntimeError(
                    f"controller {controller.name!r} proposed nothing although no result is pending"
                )
            self._evaluate(batch, self._constraint_checks(batch))
            # A result the budget refused leaves its candidate pending: not a safe point.
            if self.consistent and self._safe_point(SafePoint(), pause):
                return False
        return True

    def _evaluate(
        self, batch: list[Candidate], settled: dict[int, tuple[TrialResult, TrialRun]]
    ) -> None:
        """Evaluate the batch's candidates but those ``settled`` already (infeasible ones,
        by their index in the batch) and record every one in the batch's order: trial
        numbers follow the order of the proposals (an infeasible candidate was recorded
        before the feasible ones proposed ahead of it: a warm start's first prior showed as
        trial 7)."""
        controller, evaluator = self.components.controller, self.components.evaluator
        first = len(self.trials)
        evaluated = [i for i in range(len(batch)) if i not in settled]
        self._batch_numbers = [first + i for i in evaluated]

        def opened(
            indices: Sequence[int], worker: str | None, at: float | None
        ) -> list[RunningTrial]:
            return [
                RunningTrial(
                    first + i,
                    batch[i].id,
                    batch[i].architecture,
                    dict(batch[i].hparams),
                    at,
                    worker,
                )
                for i in (evaluated[j] for j in indices)
            ]

        on_start: StartFn | None = None
        if not evaluator.instant:
            if self.executor.queues and self.events.on_trials_queued is not None:
                self.events.on_trials_queued(opened(range(len(evaluated)), None, None))
            if (started := self.events.on_trials_started) is not None:

                def on_start(indices: Sequence[int], worker: str, at: float) -> None:
                    started(opened(indices, worker, at))

        # Each result is recorded as soon as those before it in the batch are: a trial that
        # ended while others of its batch still run (Ray tasks) is not kept RUNNING for them.
        ready: dict[int, tuple[TrialResult, TrialRun]] = dict(settled)
        recorded = 0  # the batch's first trials recorded so far
        refused = False  # the budget refused a result: the rest of the batch is not recorded
        why: str | None = None  # the last infeasible candidate's reason
        failed: str | None = None  # the last failed trial's error

        def record_ready() -> None:
            nonlocal recorded, refused, why, failed
            while not refused and recorded in ready:
                result, ran = ready.pop(recorded)
                candidate = batch[recorded]
                result = self._primary(result)
                if not self.budget.admit(result):
                    refused = True
                    return
                self._record(candidate, result, ran.started, ran.finished, worker=ran.worker)
                controller.tell(candidate.id, result)
                recorded += 1
                # A PRUNED answer that cost nothing is an infeasible candidate (a combination
                # a benchmark table does not hold), as a constraint's: it counts towards the
                # same stop after too many in a row.
                if result.state is TrialState.PRUNED and result.cost_s == 0:
                    self._infeasible_in_a_row += 1
                    why = result.error
                else:
                    self._infeasible_in_a_row = 0
                if result.state is TrialState.FAIL:
                    self._failed_in_a_row += 1
                    failed = result.error
                else:
                    self._failed_in_a_row = 0

        def on_result(index: int, result: TrialResult, ran: TrialRun) -> None:
            index = evaluated[index]
            ready[index] = (result, ran)
            record_ready()
            ended = self.events.on_trial_ended
            if index in ready and ended is not None and not evaluator.instant and not refused:
                # Waits for a trial before it: its end is told now, its record in turn.
                ended(self._record_of(first + index, batch[index], self._primary(result), ran))

        record_ready()  # the infeasible candidates ahead of the first one evaluated
        if not evaluated:
            self._stop_if_in_a_row(why, failed)
            return
        self._in_trials = True
        try:
            results = self.executor.evaluate(
                evaluator,
                [batch[i].architecture for i in evaluated],
                [batch[i].hparams for i in evaluated],
                should_stop=self._stop_now,
                on_start=on_start,
                on_result=on_result,
            )
        except Interrupted as exc:
            if self._time_stop is None or str(exc) != self._time_stop:
                raise  # a cancel or a shutdown
            # The time budget ran out while trials ran, which fails the job: those that
            # ended are recorded, the others stopped and dropped.
            record_ready()
            stopped = len(batch) - recorded  # (with the infeasible after those, unrecorded)
            self.budget.reason = self._time_stop + (
                "; the trial running then stopped"
                if stopped == 1
                else f"; the {stopped} trials not recorded by then dropped"
            )
            self.budget.timed_out = True
            return
        finally:
            self._in_trials = False
        runs = self.executor.last_runs
        for i, result, ran in zip(evaluated, results, runs, strict=True):
            if i >= recorded:
                ready.setdefault(i, (result, ran))
        record_ready()
        self._stop_if_in_a_row(why, failed)

    def _stop_if_in_a_row(self, why: str | None, failed: str | None) -> None:
        """End the search after too many infeasible candidates or failed trials in a row
        (``why``, ``failed``: the last one's reason or error)."""
        if self._infeasible_in_a_row >= self.max_infeasible_in_a_row and not self.budget.reason:
            self.budget.reason = (
                f"no feasible candidate in the last {self._infeasible_in_a_row} proposals ({why})"
            )
        if self._failed_in_a_row >= self.max_failed_in_a_row and not self.budget.reason:
            latest = " ".join((failed or "unknown error").split())[:FAILURE_ERROR_CHARS]
            self.budget.reason = (
                f"the last {self._failed_in_a_row} trials failed in a row, the latest with: "
                f"{latest}"
            )

    def _report(self, index: int, epoch: int, values: Mapping[str, float]) -> None:
        """The evaluator's intermediate value of the batch's ``index``-th trial; a stop
        asked for meanwhile ends the batch here (``Interrupted``)."""
        self._poll()
        if self.events.on_intermediate is not None:
            self.events.on_intermediate(self._batch_numbers[index], epoch, values)
        self._trial_safe_point(epoch)

    def _poll(self) -> None:
        """A stop asked for (cancel, shutdown), or the time budget spent while trials run,
        ends the running trial here: ``Interrupted``."""
        if (why := self._stop_now()) is not None:
            raise Interrupted(why)

    def _stop_now(self) -> str | None:
        """Why work must stop now: a cancel or a shutdown, or, while trials are evaluated,
        a time budget whose end fails the job (``on_time_limit: fail`` before
        ``budget.trials``: the running trial went on to its end, 35 s of a 15 s budget,
        only for the job to fail); ``None`` to go on."""
        if self.budget.should_stop is not None and (why := self.budget.should_stop()):
            return why
        budget, plan = self.budget, self.resolved.spec.budget
        fails = plan.on_time_limit == "fail" and budget.trials is not None
        if self._in_trials and fails and budget.time_up():
            self._time_stop = f"time budget reached ({budget.minutes} min)"
            return self._time_stop
        return None

    def _trial_safe_point(self, epoch: int) -> None:
        """A safe point inside the running trial, where its evaluator can resume it from
        its state now (``Evaluator.trial_checkpoint``: a meta-learning trial at the end of
        a meta-epoch) and it is the only candidate pending (a batch of one, evaluated in
        this process): the checkpoint then holds the trial's state, and a search restored
        from it continues the trial instead of redoing it whole. Trials that run elsewhere
        (Ray tasks) or cannot resume are redone whole, from the last checkpoint between
        trials."""
        if self.events.on_safe_point is None or len(self.components.controller.pending) != 1:
            return
        data = self.components.evaluator.trial_checkpoint()
        if data is None:
            return
        self._trial_state = (data, epoch)
        try:
            self.events.on_safe_point(SafePoint(required=True, running=True))
        finally:
            self._trial_state = None

    def _outcome(self) -> SearchOutcome:
        best = self.best
        # The search's own time: the meta-test after it is not (83 s of a 15 s budget read
        # as an overrun), as final: is not
        self._wall_s, self._ended = self.budget.elapsed(), True
        short, error = self._time_limit()
        final: dict[str, float] = {}
        files: list[OutputFile] = []
        warnings = [w for w in (short, self.trial_cut(), self._overran()) if w is not None]
        warnings += self.components.warnings
        if best is not None and not self.interrupted and error is None:
            evaluator = self.components.evaluator
            work = evaluator.final_metrics_work()
            if work is not None and self.events.on_waiting is not None:
                n = len(self.trials)
                self.events.on_waiting(
                    f"the search ended after {n} trial{'' if n == 1 else 's'}; {work}"
                )
            # A stop during this work (a few-shot job's meta-test: a minute and more) leaves
            # the search's answer standing without its figures: a cancel there was seen
            # only at its end, and threw the result away; Ctrl-C kept only trials.jsonl.
            try:
                final = evaluator.final_metrics(best.architecture, best.hparams)
            except (Interrupted, KeyboardInterrupt) as exc:
                why = str(exc) if isinstance(exc, Interrupted) else "interrupted"
                warnings.append(
                    f"{work or 'the final figures of the best architecture'} stopped ({why}): "
                    "the search's result stands without those figures"
                )
                if isinstance(exc, KeyboardInterrupt):
                    # the weights the search learned stand with its result (Ctrl-C of nas
                    # search lost meta-weights.pt, which a cancel in the service kept),
                    # where they are at hand: not learned again after a Ctrl-C
                    kept = (
                        self._learned_files(best)
                        if evaluator.learned_weights_ready(best.architecture)
                        else []
                    )
                    self.stopped_outcome = self._outcome_of(best, {}, kept, warnings, error)
                    raise
            # What the search itself learned for its best (the meta-learned weights):
            # cheap once the meta-test's learner is at hand; learned again otherwise,
            # which a stop asked for meanwhile ends at once.
            try:
                files = self._learned_files(best)
            except Interrupted:
                files = []
            except KeyboardInterrupt:
                self.stopped_outcome = self._outcome_of(best, final, [], warnings, error)
                raise
        return self._outcome_of(best, final, files, warnings, error)

    def _learned_files(self, best: TrialRecord) -> list[OutputFile]:
        """The weights the search learned for its best architecture, as the run's file
        (none for evaluators whose weights come from a ``final:`` retraining)."""
        learned = self.components.evaluator.learned_weights(best.architecture, best.hparams)
        return (
            [] if learned is None else [OutputFile(META_WEIGHTS_FILE, META_WEIGHTS_KIND, learned)]
        )

    def _outcome_of(
        self,
        best: TrialRecord | None,
        final: dict[str, float],
        files: list[OutputFile],
        warnings: list[str],
        error: str | None,
    ) -> SearchOutcome:
        return SearchOutcome(
            trials=self.trials,
            best=best,
            stop_reason=self.budget.reason,
            wall_s=self._wall_s,
            simulated_s=self.budget.used_simulated,
            final_metrics=final,
            ranked=[] if error is not None else self.ranked(self.top_k),
            pareto=self.pareto(),
            warnings=warnings,
            error=error,
            files=files,
        )

    def _overran(self) -> str | None:
        """The search went on well past its time budget, or ``None``: the time is checked
        between trials, and a trial running when it ran out ends first (a 40-epoch trial
        took a 15 s search to 50 s, which only the wall time showed)."""
        budget = self.budget
        if not budget.timed_out or budget.minutes is None or self.interrupted:
            return None
        if self.components.evaluator.instant:
            return None  # (lookups: what time they take past it is bookkeeping, not trials)
        allowed, elapsed = budget.minutes * 60, self._wall_s
        if elapsed <= allowed + max(2.0, 0.1 * allowed):
            return None
        if self.resolved.spec.budget.on_time_limit == "fail":
            # (it said the trials "ended first", where they were stopped: the CLI probe)
            return (
                f"the search took {elapsed / 60:.2f} min of its {budget.minutes:g} min time "
                "budget: stopping the trials running when it ran out took the rest"
            )
        fail = budget.trials is not None
        return (
            f"the search took {elapsed / 60:.2f} min of its {budget.minutes:g} min time "
            "budget: the time is checked between trials, and those running when it ran out "
            "ended first (shorten the trials, e.g. evaluator.epochs"
            + (
                ", or set budget.on_time_limit: fail to stop them at once and fail the job"
                if fail
                else ""
            )
            + ")"
        )

    def trial_cut(self) -> str | None:
        """What a trial limit left undone of a plan that was no trial count (``minutes``,
        ``simulated_seconds``): the server's cap (``budget.max_trials``, from
        ``NAS_MAX_TRIALS_PER_JOB``) ended such a search without a word (the probe of
        budgets), or ``None``."""
        budget = self.budget
        if self.interrupted or budget.trials is not None or budget.max_trials is None:
            return None
        if not budget.reason.startswith("trial limit reached"):
            return None
        plan = (
            f"simulated_seconds ({budget.used_simulated:g} of {budget.simulated_seconds:g} s used)"
            if budget.simulated_seconds is not None
            else f"minutes ({budget.minutes:g})"
        )
        return (
            f"the server's trial limit ({budget.max_trials}, budget.max_trials: "
            f"NAS_MAX_TRIALS_PER_JOB) ended the search before its budget.{plan}"
        )

    def files_so_far(self) -> list[OutputFile]:
        """The files the loop would leave if it ended here (``keeps_files_when_stopped``)."""
        return []

    def cut_short(self) -> str | None:
        """What the search did not do because the time budget ran out first, or ``None``:
        here the trials of ``budget.trials`` it did not run (with only ``minutes`` the time
        is the plan, never cut short)."""
        budget = self.budget
        if not budget.timed_out or budget.trials is None or budget.used_trials >= budget.trials:
            return None
        return (
            f"the time budget ({budget.minutes:g} min) ended the search after "
            f"{budget.used_trials} of its {budget.trials} trials"
        )

    def _time_cut(self, done: int, planned: int, stopped: str, advice: str) -> str | None:
        """A ``cut_short`` text: the time budget ``stopped`` the work after ``done`` of its
        ``planned`` units (``None`` when it did not), with ``advice`` on how to avoid it."""
        if not self.budget.timed_out or done >= planned:
            return None
        if self.resolved.spec.budget.on_time_limit != "fail":  # else the job fails already
            advice += ", or set budget.on_time_limit: fail to fail such a job"
        return f"the time budget ({self.budget.minutes:g} min) {stopped} ({advice})"

    def _time_limit(self) -> tuple[str | None, str | None]:
        """``(warning, error)`` for a search the time budget cut short (``cut_short``): a
        warning, or with ``budget.on_time_limit: fail`` the job's failure."""
        short = None if self.interrupted else self.cut_short()
        if short is None:
            return None, None
        if self.resolved.spec.budget.on_time_limit == "fail":
            return short, f"{short} (budget.on_time_limit: fail)"
        return short, None

    @property
    def top_k(self) -> int:
        final = self.resolved.spec.final
        return final.retrain_top_k if final is not None else 1

    def ranked(self, k: int) -> list[tuple[Architecture, float]]:
        """The best ``k`` distinct architectures by objective (several objectives: ties
        broken by the others, as ``best``), best first."""
        order = self.log.ranked()[:k]
        return [(t.architecture, t.result.objective) for t in order]  # type: ignore[misc]

    def pareto(self) -> list[TrialRecord]:
        """The Pareto front of the COMPLETE trials over the spec's objectives (several
        objectives only; ``[]`` with one): one trial per configuration (architecture and
        hyperparameters: its first), in trial order. A metric a trial lacks (or NaN) is the
        worst value there (``nas.pareto.objective_values``), as the ranking has it."""
        objectives = self.resolved.spec.objective.objectives
        if len(objectives) < 2:
            return []
        first: dict[tuple[Architecture, str], tuple[TrialRecord, list[float]]] = {}
        for t in self.trials:
            # (a joint search's configurations of one architecture are distinct points: one
            # that dominates another of the same architecture was left off the front)
            configuration = (t.architecture, json.dumps(dict(t.hparams), sort_keys=True))
            if t.result.state is not TrialState.COMPLETE or t.result.objective is None:
                continue
            if configuration not in first:
                first[configuration] = (t, objective_values(t.result.metrics, objectives))
        candidates = list(first.values())
        front = non_dominated([v for _, v in candidates], [d for _, d in objectives])
        return [candidates[i][0] for i in front]

    # --- constraints and objectives ---------------------------------------------------------
    #: Stop when this many proposals in a row were infeasible: constraints that (almost)
    #: nothing satisfies would otherwise loop forever under a simulated-time budget.
    max_infeasible_in_a_row: int = 1000
    #: Stop when this many trials in a row FAILed: an error every trial meets (a table file
    #: removed under a running job) costs no simulated time, so a simulated-time budget ran
    #: 100,000 failing trials in seconds (the probe of lifecycle operations).
    max_failed_in_a_row: int = 100

    def _constraint_checks(self, batch: list[Candidate]) -> dict[int, tuple[TrialResult, TrialRun]]:
        """Check ``objective.constraints`` before anything is evaluated: each infeasible
        candidate's result, by its index in the batch, a PRUNED trial (its measured figures
        as metrics, the reason as error, no cost), counted in the trial budget and told to
        the controller as not complete when it is recorded, in the batch's order."""
        constraints = self.resolved.spec.objective.constraints
        limits = constraints.limits() if constraints is not None else {}
        if not limits:
            return {}
        started = time.time()
        checks = self.components.evaluator.check_constraints(
            [c.architecture for c in batch], limits
        )
        ran = TrialRun(self.executor.worker_name, started, time.time())
        return {
            i: (TrialResult(TrialState.PRUNED, metrics=figures, error=why), ran)
            for i, (why, figures) in enumerate(checks)
            if why is not None
        }

    def _primary(self, result: TrialResult) -> TrialResult:
        """The result with ``objective`` = the spec's ``objective.metric`` (the first of
        several), when the evaluator reported that metric under another objective; a
        COMPLETE result without that metric (not the evaluator's own objective) is a FAIL."""
        spec = self.resolved.spec
        metric = spec.objective.metric
        value = result.metrics.get(metric)
        if result.state is not TrialState.COMPLETE or value == result.objective:
            return result
        if value is None:
            own, _ = type(self.components.evaluator).default_objective(
                spec.dataset.name, self.resolved.evaluator_params
            )
            if metric == own:  # the evaluator's own objective, as it reported it
                return result
            # Without it the trial kept the evaluator's objective (a table's fitness) as
            # this metric's value: an empty cell of 'params' ranked first at its accuracy
            # (the probe of multi-objective search); failed, as an empty fitness cell is.
            return dataclasses.replace(
                result,
                state=TrialState.FAIL,
                objective=None,
                error=f"no {metric!r} for this trial (objective.metric): an empty cell of "
                "its table row, or a figure its evaluator did not report for it",
            )
        return dataclasses.replace(result, objective=float(value))

    def _gather(self, controller: Controller, batch_size: int) -> list[Candidate]:
        limit = batch_size
        remaining = self.budget.remaining_trials()
        if remaining is not None:
            limit = min(limit, remaining)
        batch: list[Candidate] = []
        while len(batch) < limit and (candidate := controller.ask()) is not None:
            batch.append(candidate)
        return batch

    @staticmethod
    def _record_of(
        number: int, candidate: Candidate, result: TrialResult, ran: TrialRun
    ) -> TrialRecord:
        """The record trial ``number`` gets when it is recorded (``_record``)."""
        return TrialRecord(
            number=number,
            candidate_id=candidate.id,
            architecture=candidate.architecture,
            hparams=dict(candidate.hparams),
            result=result,
            started_at=ran.started,
            finished_at=ran.finished,
            worker=ran.worker,
        )

    def _record(
        self,
        candidate: Candidate,
        result: TrialResult,
        started: float,
        finished: float,
        *,
        worker: str,
        epoch: int | None = None,
        step: int | None = None,
    ) -> None:
        record = TrialRecord(
            number=len(self.trials),
            candidate_id=candidate.id,
            architecture=candidate.architecture,
            hparams=dict(candidate.hparams),
            result=result,
            started_at=started,
            finished_at=finished,
            epoch=epoch,
            step=step,
            worker=worker,
        )
        self.log.add(record)
        if self.events.on_trial is not None:
            self.events.on_trial(record)

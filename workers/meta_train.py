"""The meta-training loop: an ``rl2-meta`` job meta-trains the RL² policy (``LOOPS``'s
``meta-train``).

It runs no trials. Each step is one meta-training iteration of ``controllers.rl2.MetaTrainer``
on the evaluator's tasks; every ``record_every`` iterations (and at the last, or where the
time budget, a cancel or a shutdown stops it) it makes a curve point of series
``meta_train`` (``iteration``, ``mean_best_z``, ``auc_z``, ``mean_return``, ``entropy``,
``loss``) at a safe point that requires a checkpoint: the trainer's state (policy, optimizer,
both random generators) is the evaluator state the backend saves, so a search restored from
it goes on exactly as the uninterrupted one. A cancel or a shutdown is heard between the
steps of an iteration's episodes: that iteration is abandoned (not a safe point: the trainer
is left as it was before it), so a large iteration stops within a step. Its outcome carries the policy file
(``rl2-policy.pt``), which ``nas search`` writes into its run folder and the service stores as
the job's artifact, and ``meta_training`` for the summary.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from controllers.rl2 import MetaTrainer, Rl2Controller, Task, policy_bytes
from nas.evaluators import build_evaluator
from nas.evaluators.rl2_meta import Rl2MetaEvaluator
from nas.spec import ResolvedSpec
from nas.trial import TrialRecord
from workers.backend import (
    InlineExecutor,
    OutputFile,
    SafePoint,
    SearchEvents,
    SearchOutcome,
    SearchState,
    TrialExecutor,
    TrialLog,
)
from workers.search import Budget, SearchComponents, SearchLoop

POLICY_FILE = "rl2-policy.pt"
POLICY_KIND = "rl2_policy"
SERIES = "meta_train"


class MetaTrainSearch(SearchLoop):
    """Meta-trains the ``rl2`` policy on the spec's ``rl2-meta`` tasks.

    Example:
        >>> outcome = MetaTrainSearch(parse_spec(load_spec_file("examples/rl2-meta-nb201.yaml"))).run()
        >>> outcome.files[0].name
        'rl2-policy.pt'
    """

    keeps_evaluator_state = True
    builds_controller = False
    # (a cancel keeps the policy as of its last curve point: iterations since are not kept)
    progress_unit = "recorded meta-training iterations"
    keeps_files_when_stopped = True

    def __init__(
        self,
        resolved: ResolvedSpec,
        *,
        components: SearchComponents | None = None,
        events: SearchEvents | None = None,
        executor: TrialExecutor | None = None,
    ) -> None:
        """As ``SearchLoop``; no controller is built (its policy is what is trained)."""
        spec = resolved.spec
        space, evaluator = (
            build_evaluator(resolved)
            if components is None
            else (components.space, components.evaluator)
        )
        if not isinstance(evaluator, Rl2MetaEvaluator):
            raise TypeError("MetaTrainSearch needs the rl2-meta evaluator")
        self.resolved = resolved
        self.evaluator: Rl2MetaEvaluator = evaluator
        self.events = events or SearchEvents()
        self.executor = executor or InlineExecutor()
        # Trials do not apply (nor the service's budget.max_trials: nothing counts against it).
        self.budget = Budget(None, spec.budget.minutes, None, should_stop=self.events.should_stop)
        self.maximize = True
        self.log = TrialLog(maximize=True)
        self.curve: list[dict[str, Any]] = []
        self._elapsed_before = 0.0
        self._infeasible_in_a_row = 0
        self._batch_numbers: list[int] = []
        self._running = False
        self._recorded = True  # the last iteration is in a curve point (and checkpointed)
        config = self.evaluator.config
        sign = -1.0 if spec.objective.direction == "minimize" else 1.0
        self.planned = config.iterations
        self.trainer = MetaTrainer(
            [Task(name, sign * fitness) for name, fitness in self.evaluator.task_fitness()],
            self.evaluator.cardinalities,
            steps=config.steps,
            batch=config.batch,
            hidden=config.hidden,
            lr=config.lr,
            entropy_weight=config.entropy_weight,
            seed=spec.seed,
        )
        # The controller being trained: the rl2 controller around the trainer's policy (what
        # a search with the finished policy runs; its state is the search-time state).
        controller = Rl2Controller(
            space=space,
            seed=spec.seed,
            policy=self.trainer.policy,
            **{k: v for k, v in resolved.controller_params.items() if k == "unique"},
        )
        self.components = SearchComponents(space, evaluator, controller)

    # --- checkpoints -------------------------------------------------------------------
    def state(self) -> SearchState:
        return SearchState({}, self.state_dict(), self.evaluator_state())

    def load_state(self, state: SearchState, trials: list[TrialRecord]) -> None:
        self.load_state_dict(state.loop, trials)
        if state.evaluator is None:
            raise ValueError("a meta-training checkpoint holds the trainer's state")
        self.load_evaluator_state(state.evaluator)
        self._recorded = True

    def evaluator_state(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(self.trainer.state_dict(), buffer)
        return buffer.getvalue()

    def load_evaluator_state(self, data: bytes) -> None:
        self.trainer.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))

    @property
    def consistent(self) -> bool:
        """Where the last iteration is recorded in a curve point (every iteration leaves the
        trainer whole; the curve and the checkpoint go together)."""
        return self._recorded

    def fraction_done(self) -> float:
        return max(self.budget.fraction_used(), self.trainer.iterations / self.planned)

    # --- running -----------------------------------------------------------------------
    def _search(self, pause: Callable[[], bool] | None) -> bool:
        every = self.evaluator.config.record_every
        trainer = self.trainer
        while trainer.iterations < self.planned and not self.budget.exhausted():
            # A cancel or a shutdown is heard within an iteration (a large one runs for
            # minutes): the iteration is abandoned, the trainer left as it was before it,
            # and the iterations done before it are recorded as a stop between them would.
            stats = trainer.step(stop=self._stopped)
            if stats is None:
                if not self._recorded:
                    self._record(dict(trainer.last), pause)
                return True
            self._recorded = False
            due = (
                trainer.iterations % every == 0
                or trainer.iterations >= self.planned
                or self.budget.exhausted()
            )
            if due and self._record(stats, pause):
                return False
        return True

    def _record(self, stats: Mapping[str, float], pause: Callable[[], bool] | None) -> bool:
        """A curve point of the last iteration, at a safe point; True when asked to pause."""
        trainer = self.trainer
        point = {"epoch": len(self.curve), **stats, "seconds": round(trainer.seconds, 3)}
        point["iteration"] = trainer.iterations
        self.curve.append(point)
        self._recorded = True
        return self._safe_point(SafePoint(required=True, curve=point, series=SERIES), pause)

    def _stopped(self) -> bool:
        """``should_stop`` answered (a cancel, a shutdown): the budget says why."""
        why = self.events.should_stop() if self.events.should_stop is not None else None
        if why:
            self.budget.reason, self.budget.interrupted = why, True
        return bool(why)

    def cut_short(self) -> str | None:
        """The meta-training iterations the time budget left undone: the policy is then
        trained less than the spec asked."""
        done, planned = self.trainer.iterations, self.planned
        return self._time_cut(
            done,
            planned,
            f"stopped meta-training after {done} of its {planned} iterations: the policy is "
            "trained less than asked",
            "raise budget.minutes or lower evaluator.iterations",
        )

    def files_so_far(self) -> list[OutputFile]:
        """The policy as trained so far (none before the first iteration): what a cancelled
        meta-training job keeps; its meta says how many of the planned iterations it had."""
        return [self._policy_file()] if self.trainer.iterations else []

    def _policy_file(self) -> OutputFile:
        space = self.components.space
        meta: dict[str, Any] = {
            **self.trainer.summary(),
            "iterations_planned": self.planned,
            "space": {
                "name": space.name,
                "version": space.version,
                "config": space.config,
                # What a later job's space must have for this policy: its decisions.
                "decisions": [[d.name, list(d.choices)] for d in space.decisions()],
            },
            "direction": self.resolved.spec.objective.direction,
            "seed": self.resolved.spec.seed,
        }
        return OutputFile(POLICY_FILE, POLICY_KIND, policy_bytes(self.trainer.policy, meta))

    def _outcome(self) -> SearchOutcome:
        trainer = self.trainer
        if not self.budget.reason:
            self.budget.reason = f"meta-training iterations done ({trainer.iterations})"
        short, error = self._time_limit()
        summary = trainer.summary()
        files = []
        if not self.interrupted and error is None:  # (a failed job's policy names nothing)
            files.append(self._policy_file())
        return SearchOutcome(
            trials=[],
            best=None,
            stop_reason=self.budget.reason,
            wall_s=self.budget.elapsed(),
            simulated_s=0.0,
            curve=self.curve,
            files=files,
            warnings=[short] if short is not None else [],
            error=error,
            report={"meta_training": {**summary, "last": _finite(trainer.last)}},
        )


def _finite(values: Mapping[str, float]) -> dict[str, float | int | None]:
    """The figures as JSON holds them: non-finite ones ``None``, the iteration a count."""
    return {
        k: (int(v) if k == "iteration" else float(v)) if np.isfinite(v) else None
        for k, v in values.items()
    }


__all__ = ["POLICY_FILE", "POLICY_KIND", "MetaTrainSearch"]

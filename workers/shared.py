"""The ENAS search loop: alternate shared-weight training and controller training.

Per epoch: (a) one pass over the training data, each minibatch training a child freshly
sampled from the controller; (b) ``rewards_per_epoch`` candidates asked from the controller,
each rewarded with its accuracy on a validation minibatch under the shared weights, and told
back. Candidates are asked in groups of the controller's ``reward_group``: the policy only
changes after that many rewards, so the group is what sequential ENAS would have sampled.
Every rewarded candidate becomes a trial record (with its epoch and step). Each epoch ends
at a safe point that requires a checkpoint (the supernet changed) and carries the epoch's
curve point. At the end the final architectures are derived: ``derive_samples`` policy
samples scored on the whole validation split with the shared weights, best first.

Constraints (``objective.constraints``): each child's standalone network is measured once
(cached per architecture) before it is used. Supernet training uses only feasible children
(the policy is sampled again); an infeasible candidate in the reward phase is a PRUNED trial
with the reason, told to the controller as not complete (ENAS: its ``failure_reward``) and
never scored on a validation minibatch; derived architectures are the feasible policy
samples, so what ``final:`` retrains keeps to the limits too.

Warm-up (``evaluator.warmup_epochs``): the first epochs train the shared weights on children
sampled uniformly from the space (still only feasible ones), so every op is trained before
the policy narrows what the supernet sees; rewards and controller updates run as usual.
With ``evaluator.warmup_sampling: fair`` each warm-up minibatch trains FairNAS's strict-fair
set of children instead (``SharedWeightEvaluator.fair_children``: together they use every op
of every operation decision once), one optimizer step from their summed gradients. Under
constraints an infeasible child of the set is skipped, not re-drawn (a re-drawn child would
use some op twice and another not at all: the rest of the set stays one use per op at
most); a set with no feasible child is drawn again.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from nas.architecture import Architecture
from nas.evaluators.shared import SharedWeightEvaluator, StepChildren
from nas.spec import ResolvedSpec
from nas.trial import TrialResult, TrialState
from workers.backend import SafePoint
from workers.search import SearchLoop, SearchOutcome


class SharedWeightSearch(SearchLoop):
    """ENAS (or random weight sharing, with the ``random`` controller)."""

    keeps_evaluator_state = True
    #: ``resources.workers`` > 1 on Ray: one supernet trained by that many workers
    #: (``workers.supernet_group``).
    trains_in_groups = True
    #: Rewards per epoch when neither the evaluator nor the controller sets them.
    default_rewards_per_epoch = 100

    def __init__(self, resolved: ResolvedSpec, **options: Any) -> None:
        """Options as for ``SearchLoop``."""
        super().__init__(resolved, **options)
        if not isinstance(self.components.evaluator, SharedWeightEvaluator):
            raise TypeError("SharedWeightSearch needs the shared-weights evaluator")
        self.evaluator: SharedWeightEvaluator = self.components.evaluator
        self._at_epoch_end = True  # nothing recorded since the last epoch's checkpoint
        self._rewards_done = 0  # of the epoch under way (``fraction_done``)
        self.warnings: list[str] = []
        constraints = resolved.spec.objective.constraints
        self.limits = constraints.limits() if constraints is not None else {}
        #: Each architecture's constraint verdict and figures, measured once (not state).
        self._checked: dict[Architecture, tuple[str | None, dict[str, float]]] = {}
        #: Where the supernet's work runs: here, or over a group of Ray workers
        #: (``workers.supernet_group``, ``resources.workers``).
        self.ops = SupernetOps(self.evaluator, self.executor.worker_name)

    @property
    def rewards_per_epoch(self) -> int:
        configured = self.evaluator.config.rewards_per_epoch
        if configured is not None:
            return configured
        own = self.components.controller.rewards_per_epoch
        return own if own is not None else self.default_rewards_per_epoch

    def fraction_done(self) -> float:
        """Epochs done, an epoch's reward phase counting for half of it: the evaluator's
        epoch counts one once its supernet training ends, and the progress ran a whole
        epoch ahead (100 % while the last epoch's rewards still ran)."""
        done = float(self.evaluator.epoch)
        if not self._at_epoch_end:
            done -= 0.5 * (1.0 - self._rewards_done / max(1, self.rewards_per_epoch))
        return max(self.budget.fraction_used(), done / self.evaluator.config.epochs)

    @property
    def consistent(self) -> bool:
        """Only at an epoch's end: a half-rewarded epoch is redone whole on resume."""
        return self._at_epoch_end

    def evaluator_state(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(self.evaluator.state_dict(), buffer)
        return buffer.getvalue()

    def load_evaluator_state(self, data: bytes) -> None:
        # On the CPU first: the bytes may come from a GPU and this process may have none;
        # load_state_dict moves each tensor to the supernet's device.
        self.evaluator.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu"))

    def _search(self, pause: Callable[[], bool] | None) -> bool:
        controller, evaluator = self.components.controller, self.evaluator
        group = controller.reward_group
        while evaluator.epoch < evaluator.config.epochs and not self.budget.exhausted():
            try:
                stats = self.ops.train_epoch(self._training_sample)
            except _NoFeasibleChild as exc:
                self.budget.reason = str(exc)
                break
            self._rewards_done = 0
            self._at_epoch_end = False
            epoch = evaluator.epoch - 1
            rewards: list[float] = []
            rewarding = time.perf_counter()
            step = 0
            while step < self.rewards_per_epoch and not self.budget.exhausted():
                batch = self._gather(controller, min(group, self.rewards_per_epoch - step))
                if not batch:
                    break
                started = time.time()
                checks = self._check([c.architecture for c in batch])
                feasible = [c.architecture for c, (why, _) in zip(batch, checks) if why is None]
                scored = iter(self.ops.evaluate(feasible) if feasible else [])
                finished = time.time()
                for candidate, (why, figures) in zip(batch, checks, strict=True):
                    worker = self.ops.worker
                    if why is None:
                        result, worker = next(scored)
                    else:
                        result = TrialResult(TrialState.PRUNED, metrics=figures, error=why)
                    self.budget.admit(result)
                    self._record(
                        candidate, result, started, finished, worker=worker, epoch=epoch, step=step
                    )
                    controller.tell(candidate.id, result)
                    if result.state is TrialState.COMPLETE:
                        rewards.append(float(result.objective))  # type: ignore[arg-type]
                    step += 1
                    self._rewards_done = step
                self._infeasible_in_a_row = (
                    self._infeasible_in_a_row + len(batch) if not feasible else 0
                )
                if self._infeasible_in_a_row >= self.max_infeasible_in_a_row:
                    self.budget.reason = (
                        f"no feasible candidate in the last {self._infeasible_in_a_row} "
                        f"proposals (objective.constraints: {self.limits})"
                    )
            if self.interrupted and step < self.rewards_per_epoch:
                # Stopped mid-epoch (cancel, shutdown): no safe point, so no checkpoint of
                # a half-rewarded epoch; a resumed search redoes this epoch whole.
                break
            point: dict[str, Any] = {**stats, "epoch": epoch, "rewards": step}
            point["reward_seconds"] = time.perf_counter() - rewarding
            point["mean_reward"] = float(np.mean(rewards)) if rewards else None
            point.update(controller.curve_stats(step))
            self.curve.append(point)
            self._at_epoch_end = True
            if self._safe_point(SafePoint(required=True, curve=point, series="supernet"), pause):
                return False
        return True

    def _outcome(self) -> SearchOutcome:
        if not self.budget.reason:
            self.budget.reason = f"search epochs done ({self.evaluator.epoch})"
        short, error = self._time_limit()
        if short is not None:
            self.budget.reason += (
                f" after {self.evaluator.epoch} of {self.evaluator.config.epochs} supernet epochs"
            )
        # Interrupted (cancel, shutdown): stop now; deriving scores many samples on the whole
        # validation split, which is the kind of work a cancel must not wait for. A search
        # failed by its time limit derives nothing either: nothing is to be retrained.
        self.warnings = [w for w in (short, self.trial_cut()) if w is not None]
        self.warnings += self.components.warnings
        ranked = [] if self.interrupted or error is not None else self.derive()
        return SearchOutcome(
            trials=self.trials,
            best=self.best,
            stop_reason=self.budget.reason,
            wall_s=self.budget.elapsed(),
            simulated_s=0.0,
            ranked=ranked,
            derived=True,
            curve=self.curve,
            warnings=self.warnings,
            error=error,
        )

    def trial_cut(self) -> str | None:
        """The rewards (each a trial) a trial count left undone of the epochs' plan
        (``budget.trials``, or the server's cap ``budget.max_trials``): the search ended
        there without a word (the probe of budgets), or ``None``."""
        budget, config = self.budget, self.evaluator.config
        # (the resolved count: the config's is None for the controller's own, and every
        # search without the setting failed here with a TypeError as it ended)
        per_epoch = self.rewards_per_epoch
        planned = config.epochs * per_epoch
        trial_stop = budget.reason.startswith(("trial budget reached", "trial limit reached"))
        if self.interrupted or not trial_stop or budget.used_trials >= planned:
            return None
        which = (
            f"budget.trials ({budget.trials})"
            if budget.reason.startswith("trial budget reached")
            else f"the server's trial limit ({budget.max_trials}, budget.max_trials: "
            "NAS_MAX_TRIALS_PER_JOB)"
        )
        return (
            f"{which} stopped the search after {budget.used_trials} of its {planned} rewards "
            f"({per_epoch} per epoch; supernet epoch {self.evaluator.epoch} of "
            f"{config.epochs}): the controller and the shared weights trained less than "
            "planned, and the derived architectures were ranked by them (lower "
            "evaluator.epochs or rewards_per_epoch)"
        )

    def cut_short(self) -> str | None:
        """The supernet epochs the time budget left untrained: the shared weights are then
        undertrained, and the architectures derived from them ranked by a weaker estimate."""
        done, planned = self.evaluator.epoch, self.evaluator.config.epochs
        consequence = (
            "so the job fails and derives nothing"
            if self.resolved.spec.budget.on_time_limit == "fail"
            else "and the derived architectures were ranked by them"
        )
        return self._time_cut(
            done,
            planned,
            f"stopped the supernet's training after {done} of its {planned} epochs: the "
            f"shared weights are undertrained, {consequence}",
            "raise budget.minutes, lower evaluator.epochs",
        )

    def derive(self) -> list[tuple[Any, float]]:
        """Sample ``derive_samples`` architectures from the controller, score each on the
        whole validation split with the shared weights, return the top-K distinct ones.
        With constraints only feasible samples are scored; when the policy yields none, the
        best feasible rewarded trials stand in (with a warning)."""
        controller, evaluator = self.components.controller, self.evaluator
        samples = list(
            dict.fromkeys(
                controller.sample_for_training() for _ in range(evaluator.config.derive_samples)
            )
        )
        k = max(evaluator.config.top_k, self.top_k)
        if self.limits:
            checks = self._check(samples)
            samples = [a for a, (why, _) in zip(samples, checks, strict=True) if why is None]
            if not samples:
                self.warnings.append(
                    f"none of the {evaluator.config.derive_samples} architectures derived from "
                    f"the policy satisfies objective.constraints; the best feasible rewarded "
                    f"trials are reported instead"
                )
                return self.ranked(k)
        scores = self.ops.score_full(samples)
        ranked = sorted(zip(samples, scores, strict=True), key=lambda p: p[1], reverse=True)
        return ranked[:k]

    # --- constraints ---------------------------------------------------------------------------
    def _check(self, archs: list[Architecture]) -> list[tuple[str | None, dict[str, float]]]:
        """Each architecture's constraint verdict (``None``: feasible) and figures, measured
        once per architecture; all feasible without constraints."""
        if not self.limits:
            return [(None, {}) for _ in archs]
        new = [a for a in dict.fromkeys(archs) if a not in self._checked]
        if new:
            for arch, answer in zip(
                new, self.evaluator.check_constraints(new, self.limits), strict=True
            ):
                self._checked[arch] = answer
        return [self._checked[a] for a in archs]

    def _training_sample(self) -> StepChildren:
        """A child to train the shared weights on: the controller's sample, sampled again
        while it breaks a constraint (at most ``max_infeasible_in_a_row`` times). In the
        evaluator's warm-up epochs the child is a uniform sample of the space instead, or
        with ``warmup_sampling: fair`` the step's strict-fair set of children, its
        infeasible ones left out (the set drawn again while none is feasible)."""
        fair = self.evaluator.fair_warmup
        if fair:
            draw = self.evaluator.fair_children
        else:
            one = (
                self.evaluator.uniform_child
                if self.evaluator.in_warmup
                else self.components.controller.sample_for_training
            )
            draw = lambda: [one()]
        for _ in range(self.max_infeasible_in_a_row):
            children = draw()
            checks = self._check(children)  # all feasible without constraints
            feasible = [a for a, (why, _) in zip(children, checks, strict=True) if why is None]
            if feasible:
                return feasible if fair else feasible[0]
        raise _NoFeasibleChild(
            f"no feasible child in the last {self.max_infeasible_in_a_row} "
            f"{'fair sets' if fair else 'samples'} for supernet training "
            f"(objective.constraints: {self.limits})"
        )


class SupernetOps:
    """The supernet's work of a shared-weight search, in this process: an epoch of
    training, rewards, whole-split scores. ``workers.supernet_group.GroupOps`` spreads the
    same work over a group of processes."""

    def __init__(self, evaluator: SharedWeightEvaluator, worker: str) -> None:
        self.evaluator = evaluator
        #: Where the work runs (recorded with each trial).
        self.worker = worker

    def train_epoch(self, sample: Callable[[], StepChildren]) -> dict[str, float]:
        """One epoch of the shared weights, ``sample()`` giving each minibatch's child (or
        children: a fair step)."""
        return self.evaluator.train_epoch(sample)

    def evaluate(self, archs: list[Architecture]) -> list[tuple[TrialResult, str]]:
        """Each architecture's reward, with the worker that scored it."""
        return [(r, self.worker) for r in self.evaluator.evaluate(archs)]

    def score_full(self, archs: list[Architecture]) -> list[float]:
        """Each architecture's accuracy on the whole validation split."""
        return self.evaluator.score_full(archs)


class _NoFeasibleChild(Exception):
    """The policy gave no child within the constraints to train the supernet on."""

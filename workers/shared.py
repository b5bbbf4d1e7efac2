"""The ENAS search loop: alternate shared-weight training and controller training.

Per epoch: (a) one pass over the training data, each minibatch training a child freshly
sampled from the controller; (b) ``rewards_per_epoch`` candidates asked from the controller,
each rewarded with its accuracy on a validation minibatch under the shared weights, and told
back. Candidates are asked in groups of the controller's ``num_aggregate``: the policy only
changes after that many rewards, so the group is what sequential ENAS would have sampled.
Every rewarded candidate becomes a trial record (with its epoch and step). At the end the
final architectures are derived: ``derive_samples`` policy samples scored on the whole
validation split with the shared weights, best first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from nas.evaluators.shared import SharedWeightEvaluator
from nas.spec import ResolvedSpec
from nas.trial import TrialState
from workers.search import SearchComponents, SearchLoop, SearchOutcome, TrialRecord


class SharedWeightSearch(SearchLoop):
    """ENAS (or random weight sharing, with the ``random`` controller)."""

    def __init__(
        self,
        resolved: ResolvedSpec,
        *,
        components: SearchComponents | None = None,
        on_trial: Callable[[TrialRecord], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        **options: Any,
    ) -> None:
        """``on_epoch(point)`` is called after each epoch's rewards are recorded and told:
        the consistent point to checkpoint the supernet and the controller. Other options as
        for ``SearchLoop``."""
        options.pop("on_batch_start", None)  # rewards are instant: no RUNNING phase
        options.pop("on_batch_end", None)
        super().__init__(resolved, components=components, on_trial=on_trial, **options)
        if not isinstance(self.components.evaluator, SharedWeightEvaluator):
            raise TypeError("SharedWeightSearch needs the shared-weights evaluator")
        self.evaluator: SharedWeightEvaluator = self.components.evaluator
        self.on_epoch = on_epoch

    @property
    def rewards_per_epoch(self) -> int:
        configured = self.evaluator.config.rewards_per_epoch
        if configured is not None:
            return configured
        return int(getattr(self.components.controller, "rewards_per_epoch", 100))

    def fraction_done(self) -> float:
        return max(self.budget.fraction_used(), self.evaluator.epoch / self.evaluator.config.epochs)

    def run(self) -> SearchOutcome:
        controller, evaluator = self.components.controller, self.evaluator
        group = int(getattr(controller, "num_aggregate", 20))
        self._start_clock()
        while evaluator.epoch < evaluator.config.epochs and not self.budget.exhausted():
            stats = evaluator.train_epoch(controller.sample_for_training)
            epoch = evaluator.epoch - 1
            rewards: list[float] = []
            step = 0
            while step < self.rewards_per_epoch and not self.budget.exhausted():
                batch = self._gather(controller, min(group, self.rewards_per_epoch - step))
                if not batch:
                    break
                started = time.time()
                results = evaluator.evaluate([c.architecture for c in batch])
                finished = time.time()
                for candidate, result in zip(batch, results, strict=True):
                    self.budget.admit(result)
                    self._record(candidate, result, started, finished, epoch=epoch, step=step)
                    controller.tell(candidate.id, result)
                    if result.state is TrialState.COMPLETE:
                        rewards.append(float(result.objective))  # type: ignore[arg-type]
                    step += 1
            if self.interrupted and step < self.rewards_per_epoch:
                # Stopped mid-epoch (cancel, shutdown): no epoch point, so no checkpoint of
                # a half-rewarded epoch; a resumed search redoes this epoch whole.
                break
            point = {**stats, "epoch": epoch, "rewards": step}
            point["mean_reward"] = float(np.mean(rewards)) if rewards else None
            history = getattr(controller, "history", None)
            if history:
                recent = history[-step:] if step else history[-1:]
                point["entropy"] = float(np.mean([h["entropy"] for h in recent]))
                point["baseline"] = float(history[-1]["baseline"])
            self.curve.append(point)
            if self.on_epoch is not None:
                self.on_epoch(point)
        if not self.budget.reason:
            self.budget.reason = f"search epochs done ({evaluator.epoch})"
        # Interrupted (cancel, shutdown): stop now; deriving scores many samples on the whole
        # validation split, which is the kind of work a cancel must not wait for.
        ranked = [] if self.interrupted else self.derive()
        return SearchOutcome(
            trials=self.trials,
            best=self.best,
            stop_reason=self.budget.reason,
            wall_s=self.budget.elapsed(),
            simulated_s=0.0,
            ranked=ranked,
            curve=self.curve,
        )

    def derive(self) -> list[tuple[Any, float]]:
        """Sample ``derive_samples`` architectures from the controller, score each on the
        whole validation split with the shared weights, return the top-K distinct ones."""
        controller, evaluator = self.components.controller, self.evaluator
        samples = list(
            dict.fromkeys(
                controller.sample_for_training() for _ in range(evaluator.config.derive_samples)
            )
        )
        scores = evaluator.score_full(samples)
        ranked = sorted(zip(samples, scores, strict=True), key=lambda p: p[1], reverse=True)
        return ranked[: max(evaluator.config.top_k, self.top_k)]

"""``protonet``: Prototypical Networks (Snell et al. 2017) as an evaluator kind.

A task's classes are represented by their prototypes, the mean embedding of their support
examples; a query example's logits are the negative squared Euclidean distances of its
embedding to the prototypes. The candidate network without its classifier is the
embedding (``SpaceNetwork.drop_classifier``); meta-training minimises the query
cross-entropy of ``meta_batch`` episodes per iteration with Adam (``outer_lr``). The
reward is ``meta_val_accuracy`` on the meta-validation episodes; ``final_metrics`` the
mean accuracy and 95% interval on ``test_tasks`` (600) meta-test episodes. Everything else
(task streams, seeds, reports, constraints) is the meta-learning evaluators' (``nas.
evaluators.meta``).

Example spec: ``evaluator: {name: protonet, shots: 5, eval_shots: 5, queries: 15}`` with
``dataset: {name: glyphs, ways: 5}``.
"""

from __future__ import annotations

from typing import Any

import torch

from nas.evaluators.meta import FewShotLearner, MetricEvaluator
from nas.metalearning import FunctionalNet, MetricLearner, Params

__all__ = ["ProtoNetEvaluator", "PrototypicalLearner"]


class PrototypicalLearner(MetricLearner):
    """Prototypes and squared Euclidean distances (see the module docstring)."""

    def comparison(self) -> dict[str, Any]:
        return {"kind": "prototypes"}

    def log_probs(
        self,
        params: Params,
        extra: Params,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
    ) -> torch.Tensor:
        support = self.net.predict(params, support_x)
        query = self.net.predict(params, query_x)
        one_hot = self._one_hot(support_y)  # (S, N)
        prototypes = (one_hot.T @ support) / one_hot.sum(dim=0)[:, None]  # (N, D)
        distances = ((query[:, None, :] - prototypes[None, :, :]) ** 2).sum(dim=-1)
        return torch.log_softmax(-distances, dim=-1)


class ProtoNetEvaluator(MetricEvaluator):
    """Prototypical Networks: nearest class prototype in the embedding (squared Euclidean
    distance)."""

    name = "protonet"

    def _metric_learner(self, net: FunctionalNet, settings: Any) -> FewShotLearner:
        return PrototypicalLearner(net, ways=self.tasks.outputs, outer_lr=settings.outer_lr)

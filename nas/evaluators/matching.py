"""``matching``: Matching Networks (Vinyals et al. 2016) as an evaluator kind.

A query example's class distribution is an attention-weighted vote of the support labels,
the attention a softmax over the cosine similarities of its embedding with the support
examples' (``cosine_scale`` multiplies them before the softmax: 1 is the paper's plain
cosine). The candidate network without its classifier is the embedding
(``SpaceNetwork.drop_classifier``).

Full-context embeddings (``fce: true``, the paper's section 2.1.2): the support
embeddings are read by a bidirectional LSTM (``g(x_i, S) = g'(x_i) + h_fwd_i + h_bwd_i``)
and each query embedding by an LSTM with attention over them for ``fce_steps`` steps
(``h_k = LSTM(f'(x), [h_{k-1} + r_{k-1}], c_{k-1}) + f'(x)``, ``r_k`` the attention read
of the support embeddings), so both depend on the whole support set. The LSTMs are
written out on plain tensors (one set of weights per cell, initialised as PyTorch's
``nn.LSTM``: uniform in +- 1/sqrt(width)) so that ``vmap`` batches the tasks.

Meta-training minimises the query negative log-likelihood of ``meta_batch`` episodes per
iteration with Adam (``outer_lr``); the reward is ``meta_val_accuracy``, ``final_metrics``
the accuracy on 600 meta-test episodes with its 95% interval (``nas.evaluators.meta``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from pydantic import Field, ValidationInfo, model_validator

from nas.errors import at_submit
from nas.evaluators.base import EvaluatorConfig
from nas.evaluators.meta import FewShotConfig, FewShotLearner, MetricEvaluator, _hparam_keys
from nas.metalearning import FunctionalNet, MetricLearner, Params

__all__ = ["MatchingConfig", "MatchingEvaluator", "MatchingLearner"]


class MatchingConfig(FewShotConfig):
    fce: bool = Field(False, description="full-context embeddings (LSTMs over the support set)")
    fce_steps: int = Field(5, ge=1, le=100, description="attention-LSTM steps of a query (fce)")
    cosine_scale: float = Field(
        1.0, gt=0, le=1000, description="multiplies the cosine similarities before the softmax"
    )

    @model_validator(mode="after")
    def _fce_steps_with_fce(self, info: ValidationInfo) -> MatchingConfig:
        # at submit only (a job stored before still loads); a default passes (a stored
        # spec has every default filled in)
        default = type(self).model_fields["fce_steps"].default
        if at_submit(info.context) and not self.fce and self.fce_steps != default:
            raise ValueError(f"fce_steps: applies with fce: true only; got {self.fce_steps}")
        return self


def _cell_params(prefix: str, width: int, generator: torch.Generator) -> Params:
    bound = 1.0 / math.sqrt(width)

    def uniform(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * 2 - 1) * bound

    return {
        f"{prefix}.w_ih": uniform(4 * width, width),
        f"{prefix}.w_hh": uniform(4 * width, width),
        f"{prefix}.bias": uniform(4 * width),
    }


def _cell(
    p: Params, prefix: str, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    gates = x @ p[f"{prefix}.w_ih"].T + h @ p[f"{prefix}.w_hh"].T + p[f"{prefix}.bias"]
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class MatchingLearner(MetricLearner):
    """Cosine attention over the support set, optionally with full-context embeddings."""

    def __init__(
        self,
        net: FunctionalNet,
        *,
        ways: int,
        width: int,
        outer_lr: float = 1e-3,
        fce: bool = False,
        fce_steps: int = 5,
        cosine_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        extra: Params = {}
        if fce:
            generator = generator or torch.Generator().manual_seed(0)
            for prefix in ("support_fwd", "support_bwd", "query"):
                extra.update(_cell_params(prefix, width, generator))
        super().__init__(net, ways=ways, outer_lr=outer_lr, extra=extra)
        self.fce = fce
        self.fce_steps = fce_steps
        self.cosine_scale = cosine_scale

    def comparison(self) -> dict[str, Any]:
        fce = {"fce_steps": self.fce_steps} if self.fce else {}
        return {"kind": "cosine", "scale": self.cosine_scale, **fce}

    def _context(
        self, extra: Params, support: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-context embeddings of the support (bidirectional LSTM) and query
        (attention LSTM) sets. The exported ``model.py`` carries the same arithmetic as
        text (``nas.export.source._FULL_CONTEXT``: a file that imports torch only);
        ``tests/nas/test_meta_export.py`` holds the two equal."""
        zero = support.new_zeros(support.shape[1])
        h, c, forward = zero, zero, []
        for i in range(support.shape[0]):
            h, c = _cell(extra, "support_fwd", support[i], h, c)
            forward.append(h)
        h, c, backward = zero, zero, []
        for i in reversed(range(support.shape[0])):
            h, c = _cell(extra, "support_bwd", support[i], h, c)
            backward.append(h)
        g = support + torch.stack(forward) + torch.stack(backward[::-1])
        h = torch.zeros_like(query)
        c, read = torch.zeros_like(query), torch.zeros_like(query)
        for _ in range(self.fce_steps):
            hidden, c = _cell(extra, "query", query, h + read, c)
            h = hidden + query
            read = torch.softmax(h @ g.T, dim=-1) @ g
        return g, h

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
        if self.fce:
            support, query = self._context(extra, support, query)
        cosine = (
            torch.nn.functional.normalize(query, dim=-1)
            @ torch.nn.functional.normalize(support, dim=-1).T
        )
        attention = torch.softmax(self.cosine_scale * cosine, dim=-1)  # (Q, S)
        probs = attention @ self._one_hot(support_y)  # (Q, N)
        return torch.log(probs.clamp_min(1e-12))


class MatchingEvaluator(MetricEvaluator):
    """Matching Networks: cosine attention over the support set (``fce``: full-context
    embeddings)."""

    name = "matching"
    Config: ClassVar[type[EvaluatorConfig]] = MatchingConfig
    hparam_keys = _hparam_keys(MatchingConfig)

    @classmethod
    def learns_graph(cls, params: Mapping[str, Any]) -> bool:
        return not params.get("fce")  # full-context embeddings read a whole support set

    def _metric_learner(self, net: FunctionalNet, settings: Any) -> FewShotLearner:
        with torch.no_grad():
            width = int(net.predict(net.initial_params(), self._val.support_x[0, :2]).shape[-1])
        # (the network is built under the trial's seed: the LSTMs' weights follow from it)
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
        return MatchingLearner(
            net,
            ways=self.tasks.outputs,
            width=width,
            outer_lr=settings.outer_lr,
            fce=settings.fce,
            fce_steps=settings.fce_steps,
            cosine_scale=settings.cosine_scale,
            generator=generator,
        )

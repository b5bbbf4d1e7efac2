"""Gradient-based meta-learning on ``torch.func``: MAML (second and first order), Reptile
and Meta-SGD, with the tasks of a meta-batch batched by ``vmap``.

A network is called functionally (``FunctionalNet``): its parameters are a dict of tensors,
so an inner loop is plain arithmetic on dicts and its meta-gradient is ``torch.func.grad``
of the whole thing. With ``P`` the parameters, ``L_s`` / ``L_q`` a task's support / query
loss and ``alpha`` the inner step size (a number, or for Meta-SGD one learned tensor per
parameter, multiplied elementwise):

- ``adapt``: ``P_0 = P``, ``P_{i+1} = P_i - alpha * grad L_s(P_i)``, ``steps`` times;
- MAML (``maml_gradient``, ``first_order=False``): ``d L_q(P_n) / d P`` through every inner
  step, second derivatives included (the inner gradients keep their graph: create-graph
  semantics, as nested ``torch.func.grad`` gives);
- first-order MAML (``first_order=True``): the inner gradients are treated as constants
  (detached), so ``d P_n / d P`` is the identity and the meta-gradient is exactly
  ``grad L_q`` at the adapted parameters ``P_n``. With ``steps = 0`` both are ``grad L_q(P)``:
  equal; with ``steps >= 1`` they differ by the second-order terms
  ``-alpha * Hessian(L_s) * ...``;
- Meta-SGD (``metasgd_gradient``): MAML's meta-gradient with respect to the parameters and
  to ``alpha`` (Li et al. 2017); first order drops the Hessian terms from the parameters'
  gradient only (``alpha``'s gradient is ``-grad L_q(P_n) * grad L_s(P_{n-1})`` per step);
- Reptile (``reptile_direction``, Nichol et al. 2018): ``steps`` SGD steps on all of a
  task's examples (support and query), and ``P - mean_tasks(P_n)`` as the direction that the
  outer optimiser treats as a gradient.

``MetaLearner`` holds the meta-learned parameters (and Meta-SGD's rates) and an Adam outer
optimiser (``outer_lr``); ``adaptation_losses`` scores it on held-out tasks after each of
several step counts in one pass (``adaptation_scores``: with the accuracy, for
classification: ``FunctionalNet(module, "cross_entropy")``). ``MetricLearner`` is the base
of the metric-based learners (Prototypical and Matching Networks: no inner loop, the tasks
still batched by ``vmap``).

Example:
    >>> net = FunctionalNet(MlpSpace().build_network((1,), 1, MlpSpace().from_layers([40, 40])))
    >>> learner = MetaLearner(net, algorithm="maml", inner_steps=1, inner_lr=0.01)
    >>> loss = learner.step(tasks.sample(rng, n_tasks=25, shots=10, queries=10))
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from nas.datasets.tasks import TaskBatch
from nas.training import DivergedError

__all__ = [
    "ALGORITHMS",
    "META_WEIGHTS_FILE",
    "META_WEIGHTS_KIND",
    "BatchStatNorm",
    "FunctionalNet",
    "MetaLearner",
    "MetaWeights",
    "MetricLearner",
    "Params",
    "adapt",
    "adaptation_losses",
    "adaptation_scores",
    "maml_gradient",
    "meta_loss",
    "metasgd_gradient",
    "reptile_direction",
]

Params = dict[str, torch.Tensor]
#: The inner step size: one number, or one tensor per parameter (Meta-SGD).
StepSize = float | Params
Algorithm = Literal["maml", "reptile", "metasgd"]
ALGORITHMS: tuple[str, ...] = ("maml", "reptile", "metasgd")


TaskLoss = Literal["mse", "cross_entropy"]
TASK_LOSSES: tuple[str, ...] = ("mse", "cross_entropy")


class FunctionalNet:
    """An ``nn.Module`` called with parameters given as a dict (``torch.func.functional_call``);
    its buffers stay the module's. ``loss``: ``mse`` (regression) or ``cross_entropy``
    (N-way classification: the outputs are logits, labels ``0..N-1``; scored by accuracy).

    The module is put in eval mode (no dropout noise inside ``vmap``) and its batch norms
    are replaced by ``BatchStatNorm`` (same ``weight`` and ``bias``, no running statistics):
    they normalise each call's batch, i.e. each task's support or query set on its own, in
    meta-training and at test alike (the MAML authors' code does the same), and nothing is
    written in place inside ``vmap``. ``BatchStatNorm`` is plain tensor arithmetic because
    PyTorch's fused batch norm gives wrong second derivatives under ``torch.func`` (about
    1 % off finite differences with torch 2.13, and different with and without ``vmap``),
    which second-order MAML needs.
    """

    def __init__(self, module: nn.Module, loss: TaskLoss = "mse") -> None:
        if loss not in TASK_LOSSES:
            raise ValueError(f"unknown task loss {loss!r}; valid: {', '.join(TASK_LOSSES)}")
        _replace_batch_norms(module)
        self.module = module.eval()
        self.loss_name = loss
        self.buffers = dict(module.named_buffers())

    def initial_params(self) -> Params:
        """A detached copy of the module's parameters."""
        return {k: v.detach().clone() for k, v in self.module.named_parameters()}

    def predict(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, (params, self.buffers), (x,))

    def loss(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.predict(params, x)
        if self.loss_name == "cross_entropy":
            return F.cross_entropy(out, y)
        return ((out - y) ** 2).mean()

    def scores(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``[loss, accuracy %]`` (classification) or ``[loss, loss]`` (regression)."""
        out = self.predict(params, x)
        if self.loss_name == "cross_entropy":
            accuracy = (out.argmax(dim=-1) == y).float().mean() * 100.0
            return torch.stack([F.cross_entropy(out, y), accuracy])
        loss = ((out - y) ** 2).mean()
        return torch.stack([loss, loss])


class BatchStatNorm(nn.Module):
    """Batch normalisation with the statistics of each call's batch only (no running
    statistics), written as plain tensor operations so that its second derivatives are
    exact; takes over a batch norm's ``weight`` and ``bias`` (same names)."""

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.eps = norm.eps
        self.weight = norm.weight
        self.bias = norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        out = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            shape = [1, -1] + [1] * (x.dim() - 2)
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def _replace_batch_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, BatchStatNorm(child))
        else:
            _replace_batch_norms(child)


def _rate(lr: StepSize, name: str) -> float | torch.Tensor:
    return lr[name] if isinstance(lr, dict) else lr


def adapt(
    net: FunctionalNet,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: StepSize,
    first_order: bool = False,
) -> Params:
    """``steps`` gradient steps on one task's ``(x, y)`` from ``params``. Differentiable in
    ``params`` (and in ``lr`` when it is a dict) through every step; ``first_order``: the
    inner gradients are constants (detached)."""
    loss_grad = grad(net.loss)
    for _ in range(steps):
        grads = loss_grad(params, x, y)
        if first_order:
            grads = {k: g.detach() for k, g in grads.items()}
        params = {k: p - _rate(lr, k) * grads[k] for k, p in params.items()}
    return params


def _query_loss(
    net: FunctionalNet,
    params: Params,
    lr: StepSize,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    steps: int,
    first_order: bool,
) -> torch.Tensor:
    adapted = adapt(net, params, support_x, support_y, steps=steps, lr=lr, first_order=first_order)
    return net.loss(adapted, query_x, query_y)


def meta_loss(
    net: FunctionalNet,
    params: Params,
    tasks: TaskBatch,
    *,
    steps: int,
    lr: StepSize,
    first_order: bool = False,
    vectorize: bool = True,
) -> torch.Tensor:
    """The mean over ``tasks`` of the query loss after adapting to the support set.
    ``vectorize``: the tasks batched by ``vmap``; else a Python loop over them (the same
    numbers, for comparison)."""

    def one(
        p: Params,
        rate: StepSize,
        sx: torch.Tensor,
        sy: torch.Tensor,
        qx: torch.Tensor,
        qy: torch.Tensor,
    ) -> torch.Tensor:
        return _query_loss(net, p, rate, sx, sy, qx, qy, steps, first_order)

    data = (tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y)
    if vectorize:
        return vmap(one, in_dims=(None, None, 0, 0, 0, 0))(params, lr, *data).mean()
    losses = [one(params, lr, *(d[i] for d in data)) for i in range(len(tasks))]
    return torch.stack(losses).mean()


def maml_gradient(
    net: FunctionalNet,
    params: Params,
    tasks: TaskBatch,
    *,
    steps: int,
    lr: float,
    first_order: bool = False,
    vectorize: bool = True,
) -> tuple[torch.Tensor, Params]:
    """MAML's meta-loss and its gradient with respect to ``params`` (see the module
    docstring for what ``first_order`` changes)."""

    def loss(p: Params) -> tuple[torch.Tensor, torch.Tensor]:
        value = meta_loss(
            net, p, tasks, steps=steps, lr=lr, first_order=first_order, vectorize=vectorize
        )
        return value, value.detach()

    grads, value = grad(loss, has_aux=True)(params)
    return value, grads


def metasgd_gradient(
    net: FunctionalNet,
    params: Params,
    rates: Params,
    tasks: TaskBatch,
    *,
    steps: int,
    first_order: bool = False,
    vectorize: bool = True,
) -> tuple[torch.Tensor, Params, Params]:
    """Meta-SGD's meta-loss and its gradients with respect to the parameters and to the
    per-parameter inner learning rates ``rates``."""

    def loss(p: Params, r: Params) -> tuple[torch.Tensor, torch.Tensor]:
        value = meta_loss(
            net, p, tasks, steps=steps, lr=r, first_order=first_order, vectorize=vectorize
        )
        return value, value.detach()

    (grads, rate_grads), value = grad(loss, argnums=(0, 1), has_aux=True)(params, rates)
    return value, grads, rate_grads


def reptile_direction(
    net: FunctionalNet, params: Params, tasks: TaskBatch, *, steps: int, lr: float
) -> tuple[torch.Tensor, Params]:
    """Reptile: adapt to each task's examples (support and query together) and answer the
    mean loss after adapting and ``params - mean(adapted)``, the outer optimiser's
    "gradient"."""
    x = torch.cat([tasks.support_x, tasks.query_x], dim=1)
    y = torch.cat([tasks.support_y, tasks.query_y], dim=1)

    def one(xs: torch.Tensor, ys: torch.Tensor) -> tuple[Params, torch.Tensor]:
        adapted = adapt(net, params, xs, ys, steps=steps, lr=lr, first_order=True)
        return adapted, net.loss(adapted, xs, ys)

    with torch.no_grad():
        adapted, losses = vmap(one)(x, y)
        direction = {k: p - adapted[k].mean(dim=0) for k, p in params.items()}
    return losses.mean(), direction


def adaptation_losses(
    net: FunctionalNet,
    params: Params,
    tasks: TaskBatch,
    *,
    steps: Sequence[int],
    lr: StepSize,
    chunk: int = 200,
) -> torch.Tensor:
    """``(len(tasks), len(steps))``: each task's query loss after adapting to its support
    set for each count in ``steps`` (one pass of ``max(steps)`` inner steps), with no graph
    kept for the outer level. ``chunk`` tasks at a time bound the memory."""
    return adaptation_scores(net, params, tasks, steps=steps, lr=lr, chunk=chunk)[..., 0]


def adaptation_scores(
    net: FunctionalNet,
    params: Params,
    tasks: TaskBatch,
    *,
    steps: Sequence[int],
    lr: StepSize,
    chunk: int = 200,
) -> torch.Tensor:
    """``(len(tasks), len(steps), 2)``: each task's query ``FunctionalNet.scores`` (loss,
    and accuracy in % for classification) after each count in ``steps`` (see
    ``adaptation_losses``)."""
    counts = sorted({int(s) for s in steps})
    if not counts or counts[0] < 0:
        raise ValueError(f"steps must be non-negative counts, got {list(steps)}")
    loss_grad = grad(net.loss)

    def one(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor) -> torch.Tensor:
        p, out = params, []
        for step in range(counts[-1] + 1):
            if step in counts:
                out.append(net.scores(p, qx, qy))
            if step < counts[-1]:
                g = loss_grad(p, sx, sy)
                p = {k: v - _rate(lr, k) * g[k] for k, v in p.items()}
        return torch.stack(out)

    parts = []
    with torch.no_grad():
        for start in range(0, len(tasks), chunk):
            part = tasks.take(slice(start, start + chunk))
            parts.append(vmap(one)(part.support_x, part.support_y, part.query_x, part.query_y))
    by_count = torch.cat(parts)
    return by_count[:, [counts.index(int(s)) for s in steps]]


class MetaLearner:
    """Meta-trains a network's initialisation (Meta-SGD: and its inner learning rates) with
    Adam (``outer_lr``) on batches of tasks.

    ``algorithm``: ``maml`` (``first_order`` for first-order MAML; ``inner_steps = 0`` is
    plain joint training on all tasks: the pretraining baseline), ``reptile`` or
    ``metasgd`` (rates start at ``inner_lr``). ``vectorize=False`` loops over the tasks of a
    meta-batch in Python instead of ``vmap`` (same results; for speed comparisons).
    """

    def __init__(
        self,
        net: FunctionalNet,
        *,
        algorithm: Algorithm,
        inner_steps: int,
        inner_lr: float,
        first_order: bool = False,
        outer_lr: float = 1e-3,
        vectorize: bool = True,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; valid: {', '.join(ALGORITHMS)}")
        self.net = net
        self.algorithm = algorithm
        self.inner_steps = inner_steps
        self.inner_lr = inner_lr
        self.first_order = first_order
        self.vectorize = vectorize
        self.params = {k: v.requires_grad_() for k, v in net.initial_params().items()}
        self.rates: Params | None = None
        tensors = list(self.params.values())
        if algorithm == "metasgd":
            self.rates = {
                k: torch.full_like(v, inner_lr).requires_grad_() for k, v in self.params.items()
            }
            tensors += list(self.rates.values())
        self.optimizer = torch.optim.Adam(tensors, lr=outer_lr)

    def current(self) -> Params:
        """The meta-learned parameters (detached)."""
        return {k: v.detach() for k, v in self.params.items()}

    def step_size(self) -> StepSize:
        """The inner step size: Meta-SGD's learned rates (detached), else ``inner_lr``."""
        if self.rates is not None:
            return {k: v.detach() for k, v in self.rates.items()}
        return self.inner_lr

    @property
    def module(self) -> nn.Module:
        """The network being meta-trained."""
        return self.net.module

    def step(self, tasks: TaskBatch) -> float:
        """One meta-iteration on ``tasks``; answers its meta-training loss. Raises
        ``DivergedError`` when the loss is not finite (nothing is updated then)."""
        params = self.current()
        rate_grads: Params = {}
        if self.algorithm == "maml":
            loss, grads = maml_gradient(
                self.net,
                params,
                tasks,
                steps=self.inner_steps,
                lr=self.inner_lr,
                first_order=self.first_order,
                vectorize=self.vectorize,
            )
        elif self.algorithm == "metasgd":
            assert self.rates is not None
            loss, grads, rate_grads = metasgd_gradient(
                self.net,
                params,
                self.step_size(),  # type: ignore[arg-type]
                tasks,
                steps=self.inner_steps,
                first_order=self.first_order,
                vectorize=self.vectorize,
            )
        else:
            loss, grads = reptile_direction(
                self.net, params, tasks, steps=self.inner_steps, lr=self.inner_lr
            )
        value = float(loss)
        if not math.isfinite(value):
            raise DivergedError(f"meta-training loss {value} ({self.algorithm})")
        for k, p in self.params.items():
            p.grad = grads[k]
        if self.rates is not None:
            for k, r in self.rates.items():
                r.grad = rate_grads[k]
        self.optimizer.step()
        return value

    def adaptation_losses(
        self, tasks: TaskBatch, steps: Sequence[int], lr: float | None = None
    ) -> torch.Tensor:
        """Per task, the query loss after each count of ``steps`` inner steps from the
        meta-learned parameters, with step size ``lr`` (default: ``step_size()``)."""
        rate = self.step_size() if lr is None else lr
        return adaptation_losses(self.net, self.current(), tasks, steps=steps, lr=rate)

    def scores(
        self,
        tasks: TaskBatch,
        steps: Sequence[int],
        lr: float | None = None,
        *,
        chunk: int = 200,
    ) -> torch.Tensor:
        """``(len(tasks), len(steps), 2)``: per task the query loss and accuracy (%)
        (regression: the loss twice) after each count of ``steps`` inner steps."""
        rate = self.step_size() if lr is None else lr
        return adaptation_scores(self.net, self.current(), tasks, steps=steps, lr=rate, chunk=chunk)

    def state_dict(self) -> dict[str, Params]:
        """The meta-learned parameters (``params``) and Meta-SGD's rates (``rates``) as
        plain tensors, e.g. to keep the best of a search or to export."""
        out = {"params": {k: v.detach().clone() for k, v in self.params.items()}}
        if self.rates is not None:
            out["rates"] = {k: v.detach().clone() for k, v in self.rates.items()}
        return out

    def load_state_dict(self, state: dict[str, Params]) -> None:
        with torch.no_grad():
            for k, v in state["params"].items():
                self.params[k].copy_(v)
            if self.rates is not None:
                for k, v in state["rates"].items():
                    self.rates[k].copy_(v)


class MetricLearner:
    """Base of the metric-based few-shot learners (Prototypical and Matching Networks):
    no inner loop; a task's query examples are classified by comparing their embeddings
    with the support set's (``log_probs``), and the embedding network (its classifier
    taken off: ``SpaceNetwork.drop_classifier``) and any ``extra`` parameters of the
    method are trained end to end by Adam (``outer_lr``) on the query cross-entropy. The
    tasks of a meta-batch go through ``vmap`` as the gradient-based learners' do (each
    task's batch norms see that task's examples only).
    """

    def __init__(
        self, net: FunctionalNet, *, ways: int, outer_lr: float = 1e-3, extra: Params | None = None
    ) -> None:
        self.net = net
        self.ways = ways
        self.params = {k: v.requires_grad_() for k, v in net.initial_params().items()}
        # The method's own parameters (built on the CPU from a generator) live where the
        # network does: on a GPU both take part in the same matrix products.
        device = next(iter(self.params.values())).device if self.params else None
        self.extra = {
            k: v.detach().to(device).clone().requires_grad_() for k, v in (extra or {}).items()
        }
        self.optimizer = torch.optim.Adam(
            [*self.params.values(), *self.extra.values()], lr=outer_lr
        )

    def log_probs(
        self,
        params: Params,
        extra: Params,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        query_x: torch.Tensor,
    ) -> torch.Tensor:
        """``(queries, ways)`` log-probabilities of one task's query examples."""
        raise NotImplementedError

    def comparison(self) -> dict[str, Any]:
        """How ``log_probs`` compares embeddings, for an export to do the same
        (``MetaWeights.comparison``): ``kind`` and the method's settings."""
        raise NotImplementedError

    def _one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return (labels[:, None] == torch.arange(self.ways, device=labels.device)).to(torch.float32)

    def _task_scores(
        self,
        params: Params,
        extra: Params,
        sx: torch.Tensor,
        sy: torch.Tensor,
        qx: torch.Tensor,
        qy: torch.Tensor,
    ) -> torch.Tensor:
        logp = self.log_probs(params, extra, sx, sy, qx)
        loss = F.nll_loss(logp, qy)
        accuracy = (logp.argmax(dim=-1) == qy).float().mean() * 100.0
        return torch.stack([loss, accuracy])

    @property
    def module(self) -> nn.Module:
        """The network being meta-trained."""
        return self.net.module

    def step(self, tasks: TaskBatch) -> float:
        """One meta-iteration on ``tasks``; answers its loss (``DivergedError`` when it is
        not finite: nothing is updated then)."""
        scores = vmap(self._task_scores, in_dims=(None, None, 0, 0, 0, 0))(
            self.params, self.extra, tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y
        )
        loss = scores[:, 0].mean()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergedError(f"meta-training loss {value} ({type(self).__name__})")
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return value

    def scores(
        self,
        tasks: TaskBatch,
        steps: Sequence[int],
        lr: float | None = None,
        *,
        chunk: int = 200,
    ) -> torch.Tensor:
        """``(len(tasks), len(steps), 2)``: query loss and accuracy (%) per task; there are
        no adaptation steps, so every column of ``steps`` holds the same figures."""
        params = {k: v.detach() for k, v in self.params.items()}
        extra = {k: v.detach() for k, v in self.extra.items()}
        parts = []
        with torch.no_grad():
            for start in range(0, len(tasks), chunk):
                part = tasks.take(slice(start, start + chunk))
                parts.append(
                    vmap(self._task_scores, in_dims=(None, None, 0, 0, 0, 0))(
                        params, extra, part.support_x, part.support_y, part.query_x, part.query_y
                    )
                )
        out = torch.cat(parts)
        return out[:, None, :].expand(-1, len(steps), -1).contiguous()

    def state_dict(self) -> dict[str, Params]:
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "extra": {k: v.detach().clone() for k, v in self.extra.items()},
        }

    def load_state_dict(self, state: dict[str, Params]) -> None:
        with torch.no_grad():
            for k, v in state["params"].items():
                self.params[k].copy_(v)
            for k, v in state.get("extra", {}).items():
                self.extra[k].copy_(v)


#: The file a meta-learning search leaves for its best architecture (``nas search``: in the
#: run folder; the service: ``jobs/ID/files/``, artifact kind ``META_WEIGHTS_KIND``).
META_WEIGHTS_FILE = "meta-weights.pt"
META_WEIGHTS_KIND = "meta_weights"


@dataclass(frozen=True)
class MetaWeights:
    """The meta-learned weights of one architecture and how they adapt to a new task: what
    a gradient-based meta-learning search keeps of its best architecture
    (``Evaluator.learned_weights``) and what its exports are made from.

    ``weights`` is the whole network's ``state_dict`` (the meta-learned initialisation, the
    buffers as built), so it loads strictly into the exported ``model.py``; ``rates`` are
    Meta-SGD's learned per-parameter inner learning rates (same names and shapes as the
    parameters), ``lr`` the one step size of the others (``None`` for Meta-SGD), ``steps``
    the evaluator's adaptation steps (``eval_steps``), ``loss`` the task loss (``mse`` or
    ``cross_entropy``). A metric-based learner's (Prototypical, Matching Networks) or
    pretrain's file has no steps (0) and names its ``comparison`` instead
    (``MetricLearner.comparison``): its network up to the classifier is the embedding, and
    a task's query examples are labelled from the support set's embeddings (compared with
    them; pretrain: by a head fitted on them); the classifier layer keeps its initial
    weights, which meta-training never used. ``extra`` are the method's own weights
    besides the network (Matching Networks' full-context LSTMs), or ``None``.

    Example:
        >>> meta = MetaWeights.load("runs/sine/meta-weights.pt")  # doctest: +SKIP
        >>> export("pytorch", "model.py", space=space, arch=meta.arch(), ...)  # doctest: +SKIP
    """

    architecture: dict[str, Any]
    algorithm: str
    loss: str
    steps: int
    lr: float | None
    weights: dict[str, torch.Tensor]
    rates: dict[str, torch.Tensor] | None = None
    comparison: dict[str, Any] | None = None
    extra: dict[str, torch.Tensor] | None = None

    def adaptation(self) -> dict[str, Any]:
        """What an export needs to write ``adapt`` or, with a ``comparison``, ``classify``
        (``nas.export.ExportContext.adaptation``)."""
        settings: dict[str, Any] = {
            "algorithm": self.algorithm,
            "loss": self.loss,
            "steps": self.steps,
            "lr": self.lr,
            "rates": self.rates,
        }
        if self.comparison is not None:
            settings["comparison"] = dict(self.comparison)
            settings["extra"] = self.extra
        return settings

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(
            {
                # 2: with a comparison, which a reader of format 1 would take for steps
                "format": 1 if self.comparison is None else 2,
                "architecture": self.architecture,
                "algorithm": self.algorithm,
                "loss": self.loss,
                "steps": int(self.steps),
                "lr": self.lr,
                "weights": {k: v.detach().cpu() for k, v in self.weights.items()},
                "rates": None
                if self.rates is None
                else {k: v.detach().cpu() for k, v in self.rates.items()},
                "comparison": self.comparison,
                "extra": None
                if self.extra is None
                else {k: v.detach().cpu() for k, v in self.extra.items()},
            },
            buffer,
        )
        return buffer.getvalue()

    @classmethod
    def load(cls, source: str | Path | bytes) -> MetaWeights:
        """Read a ``META_WEIGHTS_FILE`` (a path, or its bytes); ``ValueError`` when it is
        not one."""
        handle: Any = io.BytesIO(source) if isinstance(source, bytes) else source
        data = torch.load(handle, map_location="cpu", weights_only=True)
        if not isinstance(data, Mapping) or data.get("format") not in (1, 2):
            what = "the data" if isinstance(source, bytes) else str(source)
            raise ValueError(f"{what} is not a meta-weights file (format 1 or 2)")
        return cls(
            architecture=dict(data["architecture"]),
            algorithm=str(data["algorithm"]),
            loss=str(data["loss"]),
            steps=int(data["steps"]),
            lr=None if data["lr"] is None else float(data["lr"]),
            weights=dict(data["weights"]),
            rates=None if data["rates"] is None else dict(data["rates"]),
            # (absent from the files of the gradient-based learners written before it)
            comparison=None if data.get("comparison") is None else dict(data["comparison"]),
            extra=None if data.get("extra") is None else dict(data["extra"]),
        )

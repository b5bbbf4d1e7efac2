"""``pretrain``: the pretrain-then-fine-tune baseline of few-shot classification (Chen et
al. 2019, "A Closer Look at Few-shot Classification": Baseline).

Per trial: the candidate network, with a classifier over every meta-training class, is
trained by plain supervised learning on all examples of those classes
(``meta_iterations`` minibatches of ``batch_size``, Adam with ``outer_lr``; batch norm as
usual: batch statistics in training, running statistics at test). A new task is then
learnt from its support set alone: the trained network without its classifier
(``SpaceNetwork.drop_classifier``) embeds the support and query examples (L2-normalised),
and a new N-way linear head, starting at zero, takes ``finetune_steps`` full-batch gradient
steps of ``finetune_lr`` on the support set's cross-entropy (the tasks' heads are fitted
together under ``vmap``). The reward is the query accuracy on the meta-validation episodes
(``meta_val_accuracy``); ``final_metrics`` the accuracy on 600 meta-test episodes with its
95% interval, as for the meta-learning evaluators (``nas.evaluators.meta``), with which it
shares tasks, seeds, reports and constraints. ``meta_batch``, ``shots`` and ``queries``
(episodes for meta-training) do not apply.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn
from torch.func import grad, vmap
from torch.nn import functional as F

from nas.architecture import Architecture
from nas.datasets.episodes import EpisodeTasks
from nas.datasets.tasks import TaskBatch
from nas.errors import at_submit
from nas.evaluators.base import EvaluatorConfig
from nas.evaluators.meta import FewShotConfig, FewShotLearner, MetaEvaluator
from nas.models import build_model
from nas.training import DivergedError, forked_rng

__all__ = ["PretrainConfig", "PretrainEvaluator", "PretrainLearner"]


class PretrainConfig(FewShotConfig):
    #: Fields of the episodes it does not train on: refused (below), so never listed as valid
    inapplicable_fields: ClassVar[frozenset[str]] = frozenset({"meta_batch", "shots", "queries"})

    meta_iterations: int = Field(
        1000, ge=1, le=10_000_000, description="pretraining minibatches (on all meta-train classes)"
    )
    batch_size: int = Field(64, ge=1, le=65_536, description="examples per pretraining minibatch")
    finetune_steps: int = Field(
        100, ge=1, le=10_000, description="gradient steps of a new task's head on its support set"
    )
    finetune_lr: float = Field(1.0, gt=0, le=100, description="step size of those steps")

    @field_validator("meta_batch", "shots", "queries")
    @classmethod
    def _no_episodes(cls, value: Any, info: ValidationInfo) -> Any:
        """Meta-training's episodes do not apply: a value other than the default (which a
        stored spec writes out) would be ignored, so it is refused at submit (a job stored
        before this check still loads)."""
        field = info.field_name or ""
        if at_submit(info.context) and value != cls.model_fields[field].default:
            raise ValueError(
                f"pretrain trains on plain minibatches of batch_size examples, not on "
                f"episodes: {field} does not apply (meta-validation and meta-test tasks take "
                "eval_shots)"
            )
        return value


class PretrainLearner:
    """Supervised pretraining of ``model`` (its classifier over the meta-training classes)
    and a new linear head per task on the frozen, L2-normalised embedding."""

    def __init__(
        self,
        model: nn.Module,
        *,
        ways: int,
        outer_lr: float,
        finetune_steps: int,
        finetune_lr: float,
    ) -> None:
        self.model = model.train()
        self.ways = ways
        self.finetune_steps = finetune_steps
        self.finetune_lr = finetune_lr
        self.optimizer = torch.optim.Adam(model.parameters(), lr=outer_lr)

    @property
    def module(self) -> nn.Module:
        return self.model

    def comparison(self) -> dict[str, Any]:
        """How a task's queries are labelled, for an export to do the same
        (``MetaWeights.comparison``): a new head fitted on the support set, on embeddings
        made with the running statistics of pretraining."""
        return {
            "kind": "finetune",
            "steps": self.finetune_steps,
            "lr": self.finetune_lr,
            "batch_statistics": False,
        }

    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        x, y = batch
        self.model.train()
        loss = F.cross_entropy(self.model(x), y)
        value = float(loss.detach())
        if not np.isfinite(value):
            raise DivergedError(f"pretraining loss {value}")
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return value

    def _fit_and_score(
        self, support: torch.Tensor, sy: torch.Tensor, query: torch.Tensor, qy: torch.Tensor
    ) -> torch.Tensor:
        def loss(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(support @ w.T + b, sy)

        w = support.new_zeros(self.ways, support.shape[-1])
        b = support.new_zeros(self.ways)
        step = grad(loss, argnums=(0, 1))
        for _ in range(self.finetune_steps):
            gw, gb = step(w, b)
            w, b = w - self.finetune_lr * gw, b - self.finetune_lr * gb
        logits = query @ w.T + b
        accuracy = (logits.argmax(dim=-1) == qy).float().mean() * 100.0
        return torch.stack([F.cross_entropy(logits, qy), accuracy])

    def scores(
        self, tasks: TaskBatch, steps: Any, lr: float | None = None, *, chunk: int = 200
    ) -> torch.Tensor:
        """``(len(tasks), len(steps), 2)``: query loss and accuracy (%) per task after
        fitting its head (``steps`` does not apply: every column is the same)."""
        embed = copy.deepcopy(self.model).eval()
        embed.drop_classifier()  # type: ignore[operator]
        parts = []
        with torch.no_grad():
            for start in range(0, len(tasks), chunk):
                part = tasks.take(slice(start, start + chunk))
                n, s = part.support_x.shape[:2]
                q = part.query_x.shape[1]
                support = F.normalize(embed(part.support_x.flatten(0, 1)), dim=-1)
                query = F.normalize(embed(part.query_x.flatten(0, 1)), dim=-1)
                parts.append(
                    vmap(self._fit_and_score)(
                        support.view(n, s, -1), part.support_y, query.view(n, q, -1), part.query_y
                    )
                )
        out = torch.cat(parts)
        return out[:, None, :].expand(-1, len(steps), -1).contiguous()

    def state_dict(self) -> dict[str, Any]:
        return {"model": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])


class PretrainEvaluator(MetaEvaluator):
    """Pretrain on every meta-training class, fine-tune a new head on each task's support
    set (see the module docstring)."""

    name = "pretrain"
    adapts_by_steps = False
    learns_weights = False
    trains_on_episodes = False
    regression = False
    Config: ClassVar[type[EvaluatorConfig]] = PretrainConfig
    hparam_keys = ("outer_lr",)
    metrics = ("meta_val_accuracy", "meta_train_loss", "params")

    @classmethod
    def learns_graph(cls, params: Mapping[str, Any]) -> bool:
        return True  # the pretrained body

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(self.tasks, EpisodeTasks):
            raise TypeError(f"evaluator 'pretrain' needs classification episodes, got {self.tasks}")
        self._x, self._y = self.tasks.split_arrays("train")
        self._classes = int(self._y.max()) + 1

    def _network(self, arch: Architecture) -> torch.nn.Module:
        # (constraints measure the embedding network with an N-way head, as the others)
        return super()._network(arch)

    def _learner(self, arch: Architecture, settings: Any) -> FewShotLearner:
        with forked_rng(self.trial_seed(arch), device=self.device):
            model = build_model(self.space, arch, self.tasks.input_shape, self._classes)
        return PretrainLearner(  # type: ignore[return-value]
            model.to(self.device),
            ways=self.tasks.outputs,
            outer_lr=settings.outer_lr,
            finetune_steps=settings.finetune_steps,
            finetune_lr=settings.finetune_lr,
        )

    def learned_weights(
        self, arch: Architecture, hparams: Mapping[str, Any] | None = None
    ) -> bytes | None:
        """The pretrained body ``final_metrics`` scored (its batch norms' running statistics
        included) in the N-way network an export builds, whose classifier keeps its initial
        weights (a task's head is fitted anew), with the learner's ``comparison``."""
        learner, _ = self._final_learner(arch, hparams)
        if not isinstance(learner, PretrainLearner):
            return None
        classifier = learner.model.classifier_path  # type: ignore[union-attr]
        # the body: by name (with as many pretraining classes as ways, shapes would match)
        body = {
            k: v
            for k, v in learner.model.state_dict().items()
            if k.rpartition(".")[0] != classifier
        }
        return self._embedding_file(arch, body, learner.comparison())

    def _draw(self, stream: np.random.Generator, settings: Any) -> Any:
        """A minibatch of meta-training examples (all classes), drawn from the trial's
        meta-training stream."""
        index = torch.from_numpy(stream.integers(0, len(self._y), size=settings.batch_size))
        return self._x[index].to(self.device), self._y[index].to(self.device)

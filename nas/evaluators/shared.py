"""``SharedWeightEvaluator``: ENAS's one supernet whose weights every child shares.

The search loop (``workers.shared``) alternates two phases per epoch, as ENAS does:
(a) ``train_epoch``: one pass over the training split, a freshly sampled child per minibatch,
SGD with Nesterov momentum, cosine learning rate with warm restarts, gradient clipping;
(b) ``evaluate``: each architecture's reward is its accuracy on the next validation minibatch,
computed with the shared weights. ``score_full`` scores derived candidates on the whole
validation split. Batch-norm layers use batch statistics in the supernet: running
averages mixed over thousands of children describe none of them.

Remedies for the shared weights' weak ranking (measured by ``bench/supernet_ranking.py``):
``bn_recalibration`` gives each child scored by ``score_full`` its own BatchNorm statistics
(a fixed set of training minibatches run through that child, then scored with them);
``warmup_epochs`` trains the first epochs' children sampled uniformly from the space
(``uniform_child``) instead of from the policy; with ``warmup_sampling: fair`` those epochs
are FairNAS's strict-fair steps instead (Chu et al., "FairNAS: Rethinking Evaluation Fairness
of Weight Sharing NAS"): each minibatch trains ``space.fair_k`` children
(``SearchSpace.fair_children``) that together use every op of every operation decision once,
their gradients summed into one optimizer step (``warmup_epochs`` = ``epochs``: a supernet
trained fairly throughout; each such epoch costs about ``fair_k`` plain ones); longer
training is ``epochs``; ``split_epoch`` is few-shot NAS (Zhao et al., "Few-shot Neural
Architecture Search", ICML 2021): after that many epochs the supernet is split into one
sub-supernet per choice of the space's first operation decision (``SearchSpace.
split_decision``), each a copy of the trained weights (and of their momentum) that from then
on trains and scores only the children taking its choice (``SplitSupernet``), so children
that differ there no longer share, and fight over, the later layers' weights.

Several processes (``distribute``, ``resources.workers`` on Ray: ``workers.supernet_group``)
train one supernet data-parallel with torch's DistributedDataParallel: each step every process
trains its own child on its shard of the minibatch and the gradients are averaged. Fair
warm-up steps and split supernets are single-process only (``spec_problems`` refuses
``warmup_sampling: fair`` and ``split_epoch`` with ``resources.workers`` > 1).
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from nas.architecture import Architecture
from nas.datasets import DatasetSplits, load_dataset
from nas.evaluators.base import RETRAINING_METRICS, Evaluator, EvaluatorConfig
from nas.models import build_supernet
from nas.spaces.base import SearchSpace
from nas.spec import DeviceSetting
from nas.training import (
    accuracy,
    check_fits,
    configure_cpu_threads,
    forked_rng,
    select_device,
    to_tensors,
)
from nas.trial import TrialResult, TrialState

if TYPE_CHECKING:
    from nas.spec import JobSpec, SpecProblem

#: What ``train_epoch``'s ``sample()`` gives per minibatch: one child, or several trained on
#: the same minibatch with their gradients summed into one step (a fair step).
StepChildren = Architecture | Sequence[Architecture]


class SharedWeightConfig(EvaluatorConfig):
    """Defaults from ENAS's macro search script (child_* flags), scaled to small data."""

    epochs: int = Field(30, ge=1, le=10_000, description="search epochs")
    batch_size: int = Field(128, ge=1, le=65_536)
    lr_max: float = Field(0.05, gt=0, le=10, description="ENAS child_lr_max")
    lr_min: float = Field(0.0005, ge=0, le=10, description="ENAS child_lr_min")
    lr_t0: int = Field(
        10, ge=1, le=10_000, description="epochs of the first cosine cycle (child_lr_T_0)"
    )
    lr_t_mul: int = Field(2, ge=1, le=16, description="cycle length multiplier (child_lr_T_mul)")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.00025, ge=0, le=1, description="ENAS child_l2_reg")
    grad_clip: float = Field(5.0, gt=0, description="ENAS child_grad_bound")
    rewards_per_epoch: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="controller rewards per epoch; default: the controller's own",
    )
    derive_samples: int = Field(64, ge=1, le=10_000, description="candidates sampled at the end")
    top_k: int = Field(1, ge=1, le=100, description="derived architectures to report")
    bn_recalibration: int = Field(
        0,
        ge=0,
        le=1_000,
        description=(
            "training minibatches run through each child scored by score_full (derived "
            "candidates) to set its own BatchNorm statistics before scoring; 0: score with "
            "the validation batches' statistics"
        ),
    )
    warmup_epochs: int = Field(
        0,
        ge=0,
        le=10_000,
        description="first epochs whose children are sampled uniformly, not from the policy",
    )
    warmup_sampling: Literal["uniform", "fair"] = Field(
        "uniform",
        description=(
            "how the warm-up epochs sample: 'uniform', one uniformly drawn child per "
            "minibatch; 'fair', FairNAS's strict-fair step: the space's fair_k children "
            "that together use every op of every operation decision once, trained on the "
            "same minibatch, their gradients summed into one optimizer step (each epoch "
            "costs about fair_k plain ones; one process only: resources.workers 1)"
        ),
    )
    split_epoch: int = Field(
        0,
        ge=0,
        le=10_000,
        description=(
            "few-shot NAS: after this many epochs the supernet is split into one "
            "sub-supernet per choice of the space's first operation decision, each starting "
            "from the trained weights and then training and scoring only the children with "
            "that choice (memory: that many supernets); 0: never split; below epochs; one "
            "process only: resources.workers 1"
        ),
    )
    device: DeviceSetting = "auto"

    @model_validator(mode="after")
    def _consistent(self) -> SharedWeightConfig:
        """Settings that contradict each other were followed by one of them, silently."""
        if self.lr_min > self.lr_max:
            raise ValueError(
                f"lr_min: {self.lr_min} is above lr_max ({self.lr_max}); the cosine schedule "
                "anneals from lr_max down to lr_min"
            )
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                f"warmup_epochs: {self.warmup_epochs} is more than the search's epochs "
                f"({self.epochs}); at most epochs (every epoch a warm-up one)"
            )
        if self.top_k > self.derive_samples:
            raise ValueError(
                f"top_k: {self.top_k} derived architectures out of derive_samples "
                f"{self.derive_samples} candidates; at most derive_samples"
            )
        if self.warmup_sampling == "fair" and self.warmup_epochs == 0:
            raise ValueError(
                "warmup_sampling: 'fair' samples the warm-up epochs, and warmup_epochs is 0; "
                "set warmup_epochs (epochs: fair throughout) or leave warmup_sampling out"
            )
        return self


class SplitSupernet(nn.Module):
    """Few-shot NAS's sub-supernets: one copy of a trained supernet per choice of one
    decision; each child runs (trains, is scored) on the copy its choice there names."""

    def __init__(self, supernet: nn.Module, decision: int, choices: int) -> None:
        super().__init__()
        self.decision = decision
        self.parts = nn.ModuleList(copy.deepcopy(supernet) for _ in range(choices))

    def part(self, arch: Architecture) -> nn.Module:
        """The sub-supernet that ``arch`` belongs to."""
        return self.parts[arch.choices[self.decision]]

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        return self.part(arch)(x, arch)

    def extract_child(self, arch: Architecture) -> nn.Module:
        """A standalone child carrying its sub-supernet's weights for its ops."""
        return self.part(arch).extract_child(arch)  # type: ignore[operator]


class SharedWeightEvaluator(Evaluator):
    """Holds the supernet of an ``enas-macro`` or ``enas-micro`` space on one device.

    Example:
        >>> ev = SharedWeightEvaluator(space=MacroSpace(layers=4), data=load_dataset("mnist1d"))
        >>> ev.train_epoch(lambda: space.sample(rng))
        >>> ev.evaluate([space.sample(rng)])[0].objective
    """

    name = "shared-weights"
    Config = SharedWeightConfig
    metrics = ("val_accuracy",)
    extra_metrics = RETRAINING_METRICS
    #: Checked on each child's standalone network (what is retrained) before it trains the
    #: shared weights or is rewarded (``workers.shared``).
    constraint_keys = ("max_params", "max_flops", "max_latency_ms")
    batch_size = 64
    instant = True
    needs_supernet = True
    multi_objective = False
    search = "supernet"

    def __init__(
        self,
        *,
        space: SearchSpace,
        data: DatasetSplits,
        config: SharedWeightConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.space = space
        self.data = data
        self.config = config or SharedWeightConfig()
        self.device = select_device(self.config.device)
        if self.device.type == "cpu":
            configure_cpu_threads()
        # (a 48 x 1024 supernet at batch 65,536 took the server's process to 5 GB and
        # beyond: one that cannot fit is said at once, with a child's share of the outputs)
        check_fits(
            space,
            space.sample(np.random.default_rng(0)),
            tuple(data.input_shape),
            data.num_classes,
            min(self.config.batch_size, len(data.y_train)),
            self.device,
            supernet=True,
        )
        with forked_rng(seed, self.device):  # global RNG (CPU and CUDA) untouched
            self.supernet = build_supernet(space, data.input_shape, data.num_classes).to(
                self.device
            )
        # Listed once: walking the module tree per step costs ms on a micro supernet.
        self._parameters = list(self.supernet.parameters())
        self.optimizer = torch.optim.SGD(
            self._parameters,
            lr=self.config.lr_max,
            momentum=self.config.momentum,
            nesterov=self.config.momentum > 0,
            weight_decay=self.config.weight_decay,
        )
        self.generator = torch.Generator().manual_seed(seed)
        #: Draws the warm-up epochs' children (``uniform_child``, ``fair_children``).
        self.uniform_rng = np.random.default_rng(seed)
        self._train = to_tensors(data.x_train, data.y_train, self.device)
        self._valid = to_tensors(data.x_valid, data.y_valid, self.device)
        self._valid_order: list[int] = []
        self.epoch = 0
        self.loss_fn = nn.CrossEntropyLoss()
        self._batch_norms = [
            m for m in self.supernet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]
        # BN recalibration's minibatches: fixed per seed (not drawn from ``generator``), so a
        # child scores the same whenever it is scored and resuming needs no extra state.
        calibration = torch.Generator().manual_seed(seed + 1)
        order = torch.randperm(len(self._train[1]), generator=calibration).to(self.device)
        size = self.config.batch_size
        self._calibration = [
            self._train[0][order[i * size : (i + 1) * size]]
            for i in range(min(self.config.bn_recalibration, math.ceil(len(order) / size)))
        ]

    @classmethod
    def from_spec(
        cls,
        *,
        dataset: str,
        dataset_params: Mapping[str, Any],
        space: SearchSpace,
        params: Mapping[str, Any],
        seed: int,
    ) -> SharedWeightEvaluator:
        data = load_dataset(dataset, seed=seed, **dataset_params)
        return cls(space=space, data=data, config=SharedWeightConfig(**params), seed=seed)

    # --- phase (a): shared weights ---------------------------------------------------------
    def learning_rate(self, epoch: float) -> float:
        """SGDR (Loshchilov & Hutter): cosine from lr_max to lr_min, cycles T0, T0*Tmul, ..."""
        c = self.config
        start, length = 0.0, float(c.lr_t0)
        while epoch >= start + length:
            start += length
            length *= c.lr_t_mul
        progress = (epoch - start) / length
        return c.lr_min + 0.5 * (c.lr_max - c.lr_min) * (1 + math.cos(math.pi * progress))

    def train_epoch(self, sample: Callable[[], StepChildren]) -> dict[str, float]:
        """One pass over the training split; ``sample()`` gives each minibatch's child, or a
        list of children (a fair step, one process only): each is trained on the whole
        minibatch, their gradients summed, clipped together and applied in one optimizer
        step (an empty list skips the step). A step whose loss (any child's) is not finite
        is skipped (counted in ``skipped_steps``), never applied. The epoch's loss and
        accuracy average over every child trained."""
        if self.device.type == "cpu":
            configure_cpu_threads()  # the cores free now (measured at most every 30 s)
        if 0 < self.config.split_epoch <= self.epoch and not self.is_split:
            self.split()
        x, y = self._train
        size = self.config.batch_size
        order = torch.randperm(len(y), generator=self.generator).to(self.device)
        steps = math.ceil(len(y) / size)
        total_loss, correct, seen, skipped = 0.0, 0, 0, 0
        started = time.perf_counter()
        model = self.supernet if self._ddp is None else self._ddp
        self.supernet.train()
        for step in range(steps):
            lr = self.learning_rate(self.epoch + step / steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            index = order[step * size : (step + 1) * size]
            drawn = sample()
            children = [drawn] if isinstance(drawn, Architecture) else list(drawn)
            if self._world == 1:
                trained = self._step(x[index], y[index], children)
                if trained is None:
                    skipped += 1
                    continue
                total_loss += trained[0] * len(index)
                correct += trained[1]
                seen += trained[2] * len(index)
                continue
            if len(children) != 1:
                raise ValueError("fair steps (several children per step) train in one process")
            (arch,) = children
            if len(index) < self._world:  # too small to shard: every process skips it
                skipped += 1
                continue
            index = index.tensor_split(self._world)[self._rank]
            logits = model(x[index], arch)
            loss = self.loss_fn(logits, y[index])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(
                [p for p in self._parameters if p.grad is not None], self.config.grad_clip
            )
            if not torch.isfinite(norm):
                # A shard's loss was not finite: the averaged gradients are not either, on
                # every process alike, so all skip the step (a collective decision for free).
                skipped += 1
                continue
            self.optimizer.step()
            total_loss += float(loss.detach()) * len(index)
            correct += int((logits.argmax(1) == y[index]).sum())
            seen += len(index)
        if self._world > 1:  # the epoch's figures over every process's shards
            totals = torch.tensor([total_loss, correct, seen], dtype=torch.float64)
            totals = totals.to(self.device)
            torch.distributed.all_reduce(totals)
            total_loss, correct, seen = (float(v) for v in totals.tolist())
        self.epoch += 1
        return {
            "epoch": self.epoch,
            "train_loss": total_loss / max(1, seen),
            "train_accuracy": 100.0 * correct / max(1, seen),
            "skipped_steps": skipped,
            "lr": self.learning_rate(self.epoch - 1e-9),
            "seconds": time.perf_counter() - started,
        }

    def _step(
        self, x: torch.Tensor, y: torch.Tensor, children: list[Architecture]
    ) -> tuple[float, int, int] | None:
        """One optimizer step in this process from every child's gradients on ``(x, y)``,
        summed (one child: a plain ENAS step; several: a fair step; each child's backward
        runs at once: one graph held at a time). Returns the children's summed loss, summed
        correct count and how many children trained, or ``None`` when the step was skipped
        (no child, or a loss that is not finite)."""
        if not children:
            return None
        self.optimizer.zero_grad(set_to_none=True)
        total_loss, correct = 0.0, 0
        for arch in children:
            logits = self.supernet(x, arch)
            loss = self.loss_fn(logits, y)
            if not torch.isfinite(loss):
                self.optimizer.zero_grad(set_to_none=True)
                return None
            loss.backward()
            total_loss += float(loss.detach())
            correct += int((logits.argmax(1) == y).sum())
        nn.utils.clip_grad_norm_(
            [p for p in self._parameters if p.grad is not None], self.config.grad_clip
        )
        self.optimizer.step()
        return total_loss, correct, len(children)

    # --- several processes (torch.distributed) -------------------------------------------
    #: This process's rank and the number of processes training the supernet together.
    _rank, _world = 0, 1
    _ddp: nn.Module | None = None

    def distribute(self) -> None:
        """Train the shared weights with the other processes of ``torch.distributed``'s
        default group, data parallel: in ``train_epoch`` every process takes its shard of
        each minibatch (the same order everywhere: keep ``generator`` equal) and trains the
        child its ``sample()`` gives on it; DistributedDataParallel averages the gradients
        over the processes, those of ops a process's child did not use counting as zero
        (``find_unused_parameters``), so every process applies the same step. All processes
        call this at once; rank 0's weights become everyone's."""
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        self._rank, self._world = dist.get_rank(), dist.get_world_size()
        cuda = self.device.type == "cuda"
        index = self.device.index if self.device.index is not None else 0
        # Batch statistics: the running buffers are scratch, not synced at each forward.
        buffers = (
            {"forward_sync_buffers": False}
            if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            else {"broadcast_buffers": False}  # its name before torch 2.13
        )
        self._ddp = DistributedDataParallel(
            self.supernet,
            device_ids=[index] if cuda else None,
            find_unused_parameters=True,
            **buffers,
        )

    @property
    def steps_per_epoch(self) -> int:
        """Minibatches (children trained) per epoch."""
        return math.ceil(len(self._train[1]) / self.config.batch_size)

    @property
    def in_warmup(self) -> bool:
        """The next epoch's children are uniform samples (``warmup_epochs``), not the policy's."""
        return self.epoch < self.config.warmup_epochs

    def uniform_child(self) -> Architecture:
        """An architecture drawn uniformly from the space (the warm-up's children)."""
        return self.space.sample(self.uniform_rng)

    @property
    def is_split(self) -> bool:
        """The supernet has been split into sub-supernets (``split_epoch``)."""
        return isinstance(self.supernet, SplitSupernet)

    def split(self) -> None:
        """Few-shot NAS's split (``split_epoch``): the supernet becomes one copy per choice
        of the space's first operation decision, each with the trained weights and their
        momentum; the optimizer then steps over all copies (a step moves only the copy whose
        child trained: the others have no gradients)."""
        where = self.space.split_decision
        if where is None:
            raise ValueError(f"space {self.space.name!r} has no operation decision to split on")
        old_parameters = self._parameters
        self.supernet = SplitSupernet(self.supernet, *where)
        self._parameters = list(self.supernet.parameters())
        state = self.optimizer.state
        optimizer = torch.optim.SGD(self._parameters, **self.optimizer.defaults)
        for part in self.supernet.parts:
            for old, new in zip(old_parameters, part.parameters(), strict=True):
                if "momentum_buffer" in state.get(old, {}):
                    optimizer.state[new]["momentum_buffer"] = state[old]["momentum_buffer"].clone()
        self.optimizer = optimizer
        self._batch_norms = [
            m for m in self.supernet.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]

    def fair_children(self) -> list[Architecture]:
        """One strict-fair step's children (``SearchSpace.fair_children``), drawn from the
        warm-up's generator (``uniform_rng``: checkpointed with the progress state)."""
        return self.space.fair_children(self.uniform_rng)

    @property
    def fair_warmup(self) -> bool:
        """The next epoch trains fair steps (``warmup_sampling: fair`` in the warm-up)."""
        return self.in_warmup and self.config.warmup_sampling == "fair"

    @classmethod
    def spec_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """The base checks; ``split_epoch`` below ``epochs`` (else the split would never
        come); ``warmup_sampling: fair`` and ``split_epoch`` only with one worker: a fair step
        trains several children on one minibatch and a split supernet is several networks,
        which the data-parallel group (one child per process and shard of one network,
        ``distribute``) does not do."""
        problems = super().spec_problems(spec)
        params = spec.evaluator.params
        split = params.get("split_epoch", 0)
        if isinstance(split, int) and split > 0:
            epochs = params.get("epochs", SharedWeightConfig.model_fields["epochs"].default)
            if isinstance(epochs, int) and split >= epochs:
                problems.append(
                    (
                        ("evaluator", "split_epoch"),
                        (
                            f"the supernet is split after split_epoch epochs, so it must be below "
                            f"epochs ({epochs}); got {split} (0: never split)"
                        ),
                    )
                )
            if spec.resources.workers > 1:
                problems.append(
                    (
                        ("evaluator", "split_epoch"),
                        (
                            f"a split supernet trains in one process; with resources.workers "
                            f"{spec.resources.workers} use split_epoch: 0, or workers: 1"
                        ),
                    )
                )
        if (
            params.get("warmup_sampling") == "fair"
            and params.get("warmup_epochs", 0)
            and spec.resources.workers > 1
        ):
            problems.append(
                (
                    ("evaluator", "warmup_sampling"),
                    (
                        f"fair warm-up steps train in one process; with resources.workers "
                        f"{spec.resources.workers} use warmup_sampling: uniform, or workers: 1"
                    ),
                )
            )
        return problems

    # --- phase (b): rewards ----------------------------------------------------------------
    @contextmanager
    def _scoring(self) -> Iterator[None]:
        """Batch statistics (train-mode BN), no dropout, no gradients."""
        self.supernet.train()
        dropouts = [m for m in self.supernet.modules() if isinstance(m, nn.Dropout)]
        for m in dropouts:
            m.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            for m in dropouts:
                m.train()

    def _next_valid_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._valid
        size = min(self.config.batch_size, len(y))
        if len(self._valid_order) < size:
            self._valid_order = torch.randperm(len(y), generator=self.generator).tolist()
        index = torch.tensor(self._valid_order[:size], device=self.device)
        del self._valid_order[:size]
        return x[index], y[index]

    def evaluate(
        self,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TrialResult]:
        """Reward of each architecture: accuracy (percent) on the next validation minibatch."""
        results = []
        with self._scoring():
            for arch in archs:
                started = time.perf_counter()
                x, y = self._next_valid_batch()
                try:
                    logits = self.supernet(x, arch)
                except torch.cuda.OutOfMemoryError as exc:
                    torch.cuda.empty_cache()
                    results.append(TrialResult.failed(f"out of memory: {exc}"))
                    continue
                if not torch.isfinite(logits).all():
                    results.append(
                        TrialResult.failed(
                            "diverged: non-finite outputs with the shared weights",
                            cost_s=time.perf_counter() - started,
                        )
                    )
                    continue
                acc = 100.0 * float((logits.argmax(1) == y).float().mean())
                results.append(
                    TrialResult(
                        TrialState.COMPLETE,
                        objective=acc,
                        metrics={"val_accuracy": acc},
                        cost_s=time.perf_counter() - started,
                    )
                )
        return results

    def score_full(self, archs: Sequence[Architecture]) -> list[float]:
        """Accuracy (percent) of each architecture on the whole validation split; with
        ``bn_recalibration``, under that architecture's own BatchNorm statistics."""
        scores = []
        with self._scoring():
            for arch in archs:
                with self._recalibrated(arch):
                    scores.append(
                        accuracy(
                            lambda x, a=arch: self.supernet(x, a), *self._valid, batch_size=256
                        )
                    )
        return scores

    @contextmanager
    def _recalibrated(self, arch: Architecture) -> Iterator[None]:
        """BatchNorm layers in eval mode with running statistics of ``arch`` alone: reset,
        then the calibration minibatches run through ``arch`` (a cumulative average). The
        running buffers are scratch in the supernet (training uses batch statistics)."""
        if not self._calibration:
            yield
            return
        momenta = [m.momentum for m in self._batch_norms]
        for m in self._batch_norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        for x in self._calibration:
            self.supernet(x, arch)
        for m in self._batch_norms:
            m.eval()
        try:
            yield
        finally:
            for m, momentum in zip(self._batch_norms, momenta, strict=True):
                m.train()
                m.momentum = momentum

    def constraint_figures(
        self, archs: Sequence[Architecture], figures: Sequence[str]
    ) -> list[dict[str, float]]:
        """Each child's standalone network (as ``final:`` retrains it: the same parameters
        as its ops in the supernet), untrained, measured on this evaluator's device."""
        from nas.constraints import measure_architectures

        return measure_architectures(
            self.space, archs, self.data.input_shape, self.data.num_classes, self.device, figures
        )

    # --- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "supernet": self.supernet.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "split": self.is_split,
            **self.progress_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("split", False) and not self.is_split:
            self.split()  # the sub-supernets' shapes, then their weights from the state
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.load_progress_state(state)

    def progress_state(self) -> dict[str, Any]:
        """The state besides the weights and the optimizer: data and validation order, epoch,
        warm-up sampler (small; what a supernet group's lead sends its followers each epoch,
        DDP keeping their weights and optimizers equal)."""
        return {
            "generator": self.generator.get_state(),
            "valid_order": list(self._valid_order),
            "epoch": self.epoch,
            "uniform_rng": self.uniform_rng.bit_generator.state,
        }

    def load_progress_state(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._valid_order = list(state["valid_order"])
        self.epoch = int(state["epoch"])
        if "uniform_rng" in state:  # checkpoints from before the warm-up option lack it
            self.uniform_rng.bit_generator.state = state["uniform_rng"]

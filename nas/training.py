"""Training and scoring of networks: device choice, minibatch loops, accuracy, size.

Device-agnostic: CUDA when present (or as asked), else CPU with a sensible thread count.
Accuracies are percentages (0..100) everywhere, the NAS-Bench-201 table's convention.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import NasError
from nas.spaces.base import SearchSpace

__all__ = [
    "DivergedError",
    "TrainRecipe",
    "accuracy",
    "configure_cpu_threads",
    "count_flops",
    "make_optimizer",
    "select_device",
    "to_tensors",
    "train_epochs",
    "train_from_scratch",
]


class DivergedError(NasError, RuntimeError):
    """The training loss became NaN or infinite."""


def select_device(preference: str = "auto") -> torch.device:
    """``auto``: the CUDA device when one is present, else CPU. ``cuda`` without a GPU is an
    error, not a silent fallback."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NasError(f"device {preference!r} was asked for but no CUDA device is available")
    return device


def configure_cpu_threads(threads: int | None = None) -> int:
    """Use the cores this process may run on (affinity, not the host's count), unless told.
    Tiny models gain nothing from oversubscription, and Ray workers pin their own count."""
    if threads is None:
        threads = int(os.environ.get("NAS_TORCH_THREADS", "0")) or len(os.sched_getaffinity(0))
    threads = max(1, threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True)
class TrainRecipe:
    """How a network is trained (the training procedure of one trial)."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    grad_clip: float | None = 5.0
    label_smoothing: float = 0.0


def make_optimizer(params: object, recipe: TrainRecipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            nesterov=recipe.momentum > 0,
        )
    cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def to_tensors(
    x: np.ndarray, y: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def train_epochs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainRecipe,
    *,
    generator: torch.Generator,
    on_epoch: Callable[[int, float], None] | None = None,
) -> float:
    """Train ``model`` in place for ``recipe.epochs``; returns the last epoch's mean loss.
    ``on_epoch(epoch, mean_loss)`` runs after each epoch (intermediate values, pruning)."""
    optimizer = make_optimizer(model.parameters(), recipe)
    steps_per_epoch = math.ceil(len(y) / recipe.batch_size)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, recipe.epochs * steps_per_epoch)
        if recipe.lr_schedule == "cosine"
        else None
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    mean_loss = float("nan")
    model.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(y), generator=generator).to(y.device)
        total, count = 0.0, 0
        for start in range(0, len(y), recipe.batch_size):
            index = order[start : start + recipe.batch_size]
            loss = loss_fn(model(x[index]), y[index])
            if not torch.isfinite(loss):
                raise DivergedError(f"loss became {loss.item()} in epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item() * len(index)
            count += len(index)
        mean_loss = total / count
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)
    return mean_loss


@torch.no_grad()
def accuracy(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1024,
) -> float:
    """Top-1 accuracy in percent. The caller chooses train/eval mode."""
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(dim=1) == y[start : start + batch_size]).sum())
    return 100.0 * correct / max(1, len(y))


def count_flops(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> int:
    """Forward FLOPs for one example (multiply and add counted separately), by torch's own
    FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


def train_from_scratch(
    space: SearchSpace,
    arch: Architecture,
    input_shape: tuple[int, ...],
    num_classes: int,
    train: tuple[torch.Tensor, torch.Tensor],
    recipe: TrainRecipe,
    *,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[nn.Module, float]:
    """Build ``arch`` with weights drawn from ``seed`` (global RNG untouched), train it; returns
    the model in eval mode and the last epoch's mean loss. Raises ``DivergedError``."""
    from nas.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(space, arch, input_shape, num_classes).to(device)
    generator = torch.Generator().manual_seed(seed)
    loss = train_epochs(model, *train, recipe, generator=generator, on_epoch=on_epoch)
    model.eval()
    return model, loss

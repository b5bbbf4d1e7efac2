"""Training and scoring of networks: device choice, minibatch loops, accuracy, size.

Device-agnostic: CUDA when present (or as asked), else CPU with a sensible thread count.
Accuracies are percentages (0..100) everywhere, the NAS-Bench-201 table's convention.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from nas.architecture import Architecture
from nas.errors import NasError
from nas.hparams import TRAINING_HPARAMS
from nas.rng import dropout_from, forked_rng
from nas.spaces.base import SearchSpace

__all__ = [
    "DivergedError",
    "FocalLoss",
    "TrainRecipe",
    "accuracy",
    "configure_cpu_threads",
    "count_flops",
    "cpu_threads_free",
    "dropout_from",
    "focal_loss",
    "forked_rng",
    "make_loss",
    "make_optimizer",
    "select_device",
    "to_tensors",
    "train_epochs",
    "train_from_scratch",
]


class DivergedError(NasError, RuntimeError):
    """The training loss became NaN or infinite."""


class TooLargeError(NasError, MemoryError):
    """A network would need more memory to train than its device has free."""


def free_bytes(device: torch.device) -> int | None:
    """Memory free for a new allocation on ``device``: the CUDA device's free memory, the
    machine's available memory (Linux ``MemAvailable``) for the CPU; ``None`` unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(
    space: SearchSpace,
    arch: Architecture,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    device: torch.device,
    *,
    supernet: bool = False,
) -> None:
    """Raise ``TooLargeError`` when training ``arch`` would need more than ``device`` has
    free: its parameters four times (weights, gradients, two optimizer moments) and one
    minibatch's layer outputs twice (kept for backward, and their gradients). Such a
    network once took the server's process to its memory limit, an allocation of a few GB at
    a time, before the allocator failed (or the kernel's OOM killer chose a process).
    ``supernet``: the space's supernet, training ``arch`` (``training_bytes``)."""
    from nas.models import training_bytes

    need = training_bytes(space, arch, input_shape, num_classes, batch_size, supernet=supernet)
    free = free_bytes(device)
    if need is None or free is None:
        return
    params, outputs = need
    total = 4 * params + 2 * outputs
    if total > free:
        gib = 2**30
        raise TooLargeError(
            f"the {'supernet' if supernet else 'network'} needs about {total / gib:.1f} GiB to train (parameters, gradients "
            f"and optimizer state {4 * params / gib:.1f} GiB, a minibatch of {batch_size}'s "
            f"activations {2 * outputs / gib:.1f} GiB), more than the {free / gib:.1f} GiB "
            f"free on {device}; not trained"
        )


def cuda_index(device: object) -> int | None:
    """The CUDA device a ``device`` setting names (``cuda`` is 0); ``None`` for ``auto`` and
    ``cpu``."""
    if not isinstance(device, str) or not device.startswith("cuda"):
        return None
    return torch.device(device).index or 0


def select_device(preference: str = "auto") -> torch.device:
    """``auto``: the CUDA device when one is present, else CPU. ``cuda`` without a GPU is an
    error, not a silent fallback."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NasError(f"device {preference!r} was asked for but no CUDA device is available")
    return device


#: How long a measured thread count holds before ``configure_cpu_threads`` measures again.
THREADS_RECHECK_S = 30.0
#: A core counts as free when at least this share of it was idle (our own use included).
FREE_CORE_SHARE = 0.8
_measured: tuple[float, int] | None = None  # (when, threads) of the last measurement


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count on the CPU and return it.

    ``threads`` decides when given; else ``NAS_TORCH_THREADS``: a positive number, or
    ``auto`` for the cores free now (``cpu_threads_free``, re-measured at most every
    ``THREADS_RECHECK_S`` seconds). Unset, the count is ``OMP_NUM_THREADS`` where it is set
    (Ray sets it to a task's CPUs, ``resources.cpus_per_trial``), else one thread.

    Why one by default: the count changes the floating-point order of a gradient's sums
    (one and two threads give different gradients for the same convolution), so a count
    that follows the machine's load would make a seeded search unrepeatable (and break
    reusing a deterministic evaluator's results, and exact resume). And threads that wait
    for a core are far worse than fewer threads: on a 2-core machine loaded by other work,
    two threads trained an MNIST-1D network 3.7x to 6x slower than one (issue 17)."""
    global _measured
    if threads is None:
        setting = os.environ.get("NAS_TORCH_THREADS", "").strip().lower()
        if setting == "auto":
            now = time.monotonic()
            if _measured is None or now - _measured[0] >= THREADS_RECHECK_S:
                _measured = (now, cpu_threads_free())
            threads = _measured[1]
        elif setting:
            if not setting.isdigit() or int(setting) < 1:
                raise ValueError(
                    f"NAS_TORCH_THREADS must be a positive whole number or 'auto', got {setting!r}"
                )
            threads = int(setting)
        else:
            omp = os.environ.get("OMP_NUM_THREADS", "").strip()
            threads = int(omp) if omp.isdigit() and int(omp) > 0 else 1
    threads = max(1, threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def cpu_threads_free(window_s: float = 0.1) -> int:
    """The threads worth running now: the cores this process may use (affinity, capped by
    ``OMP_NUM_THREADS``) that are free, judged from ``/proc/stat`` over ``window_s`` (this
    process's own use counts as free: its threads are the ones to place); the load average
    where ``/proc/stat`` cannot be read. At least 1."""
    allowed = sorted(os.sched_getaffinity(0))
    cap = len(allowed)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        cap = min(cap, int(omp))
    try:
        before, own_before = _cpu_jiffies(allowed), time.process_time()
        time.sleep(window_s)
        after, own_after = _cpu_jiffies(allowed), time.process_time()
        free = free_cores(before, after, own_after - own_before, window_s)
    except (OSError, ValueError, ZeroDivisionError):
        try:
            free = len(allowed) - os.getloadavg()[0]
        except OSError:
            free = float(len(allowed))
    return max(1, min(cap, int(free + (1 - FREE_CORE_SHARE))))


def free_cores(
    before: Mapping[int, tuple[int, int]],
    after: Mapping[int, tuple[int, int]],
    own_cpu_s: float,
    window_s: float,
) -> float:
    """Cores free for this process between two ``/proc/stat`` snapshots (per core: idle and
    total jiffies): the idle cores plus the cores this process itself kept busy
    (``own_cpu_s`` of CPU time over ``window_s``)."""
    idle = 0.0
    for cpu, (idle_after, total_after) in after.items():
        idle_before, total_before = before[cpu]
        idle += (idle_after - idle_before) / (total_after - total_before)
    return idle + own_cpu_s / window_s


def _cpu_jiffies(cpus: Collection[int]) -> dict[int, tuple[int, int]]:
    """Idle (idle + iowait) and total jiffies of each of ``cpus`` from ``/proc/stat``."""
    wanted = {f"cpu{c}": c for c in cpus}
    out = {}
    with open("/proc/stat") as stat:
        for line in stat:
            name, *fields = line.split()
            if name in wanted:
                values = [int(v) for v in fields[:8]]  # guest time is already in user
                out[wanted[name]] = (values[3] + values[4], sum(values))
    if len(out) != len(wanted):
        raise ValueError("/proc/stat lacks some of this process's cores")
    return out


#: Recipe settings that only some values of another setting use: name -> (that setting,
#: the values of it that use the name, why). A value the rest of the recipe would ignore is
#: refused at its field: the standalone evaluator's, a searched one (``hparams:``), and
#: ``final:``'s.
DEPENDENT_SETTINGS: dict[str, tuple[str, frozenset[str], str]] = {
    "momentum": ("optimizer", frozenset({"sgd"}), "only optimizer sgd uses momentum"),
    "focal_gamma": ("loss", frozenset({"focal"}), "only loss focal uses focal_gamma"),
    "label_smoothing": (
        "loss",
        frozenset({"cross_entropy", "label_smoothing"}),
        "loss focal does not smooth labels",
    ),
}


def unused_settings(recipe: Any, searched: Collection[str] = ()) -> list[tuple[str, str]]:
    """The dependent settings (``DEPENDENT_SETTINGS``) that ``recipe`` (settings as
    attributes: an evaluator's config, ``final:``) would ignore, unless a joint search sets
    what they depend on (``searched``): each as (name, why)."""
    out = []
    for name, (parent, uses, because) in DEPENDENT_SETTINGS.items():
        value = getattr(recipe, parent)
        if parent not in searched and value not in uses:
            out.append((name, f"{because} ({parent} {value} does not use it)"))
    return out


@dataclass(frozen=True)
class TrainRecipe:
    """How a network is trained (the training procedure of one trial).

    ``loss``: ``cross_entropy`` (with ``label_smoothing``, 0 by default: plain),
    ``label_smoothing`` (cross-entropy with ``label_smoothing``, 0.1 when that is 0) or
    ``focal`` (focal loss with ``focal_gamma``; no smoothing). ``momentum`` is SGD's
    (Nesterov when above 0); Adam and AdamW ignore it.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    grad_clip: float | None = 5.0
    label_smoothing: float = 0.0
    loss: Literal["cross_entropy", "label_smoothing", "focal"] = "cross_entropy"
    focal_gamma: float = 2.0

    def with_hparams(
        self, hparams: Mapping[str, Any] | None, *, exclude: Collection[str] = ()
    ) -> TrainRecipe:
        """This recipe with the training-procedure names of ``hparams``
        (``nas.hparams.TRAINING_HPARAMS``) set; other names (the user's own) are left out."""
        changes: dict[str, Any] = {}
        for name, value in (hparams or {}).items():
            key = TRAINING_HPARAMS.get(name)
            if key is None or name in exclude:
                continue
            cast = {"number": float, "integer": int, "choice": str}[key.kind]
            changes[name] = cast(value)
        return dataclasses.replace(self, **changes) if changes else self


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017), mean over the batch: ``-(1 - p_t)^gamma * log p_t``,
    with ``p_t`` the softmax probability of the true class. ``gamma = 0`` is cross-entropy;
    larger ``gamma`` down-weights examples that are already classified well."""
    log_p = torch.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    # (1 - p_t) is clamped away from 0: a gamma below 1 would give an infinite gradient there.
    weight = (1.0 - log_p.exp()).clamp(min=1e-12) ** gamma
    return -(weight * log_p).mean()


class FocalLoss(nn.Module):
    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, self.gamma)


def make_loss(recipe: TrainRecipe) -> nn.Module:
    """The training loss that ``recipe.loss`` names."""
    if recipe.loss == "focal":
        return FocalLoss(recipe.focal_gamma)
    smoothing = recipe.label_smoothing
    if recipe.loss == "label_smoothing" and smoothing == 0:
        smoothing = 0.1  # Szegedy et al. 2016's value
    return nn.CrossEntropyLoss(label_smoothing=smoothing)


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
    loss_fn = make_loss(recipe)
    mean_loss = float("nan")
    model.train()
    for epoch in range(recipe.epochs):
        order = torch.randperm(len(y), generator=generator).to(y.device)
        total, count = 0.0, 0
        for start in range(0, len(y), recipe.batch_size):
            index = order[start : start + recipe.batch_size]
            loss = loss_fn(model(x[index]), y[index])
            if not torch.isfinite(loss):
                raise DivergedError(
                    f"loss became {loss.item()} in epoch {epoch + 1} of {recipe.epochs}"
                )
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
    FLOP formulas (``torch.utils.flop_counter``), counted in this thread only."""
    was_training = model.training
    model.eval()
    counter = _FlopCount()
    with torch.no_grad(), counter:
        model(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return counter.flops


class _FlopCount(TorchDispatchMode):
    """Sums ``torch.utils.flop_counter``'s formulas over the ops this thread runs under it,
    as ``FlopCounterMode`` totals them. Not ``FlopCounterMode`` itself: its module tracker
    registers forward hooks on every module of the process, which ran in other threads too
    and broke a concurrent job's backward pass (an ENAS policy's step: "Expected gradient
    function to be set"); a dispatch mode is the calling thread's alone."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        from torch.utils.flop_counter import flop_registry

        kwargs = kwargs or {}
        if func is not torch.ops.prim.device.default:
            with self:  # counted in what it decomposes into, as FlopCounterMode does
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            self.flops += int(flop_registry[packet](*args, **kwargs, out_val=out))
        return out


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
    check_epoch: Callable[[int, nn.Module], None] | None = None,
) -> tuple[nn.Module, float]:
    """Build ``arch`` with weights drawn from ``seed``, train it; returns the model in eval
    mode and the last epoch's mean loss. Raises ``DivergedError``. Weights, minibatch order and
    dropout all follow from ``seed`` (on CPU or GPU), whatever other threads do meanwhile; the
    global RNG, CPU and CUDA, is left as it was. ``check_epoch(epoch, model)`` runs after each
    epoch with the model in eval mode (and may raise to abandon the run, e.g. to restart it)."""
    from nas.models import build_model

    batch = min(recipe.batch_size, len(train[1]))
    check_fits(space, arch, tuple(input_shape), num_classes, batch, device)
    # Only the build holds the RNG lock; training draws from generators of its own, so
    # trials that run beside each other in threads of one process train as when alone.
    with forked_rng(seed, device) as init_rng:
        model = build_model(space, arch, input_shape, num_classes).to(device)
    # Dropout goes on from where the weights' draws left off (as it did in the global RNG);
    # on a GPU from a CUDA generator seeded with ``seed``.
    dropout_rng = init_rng if device.type == "cpu" else torch.Generator(device).manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    def after_epoch(epoch: int, loss: float) -> None:
        if on_epoch is not None:
            on_epoch(epoch, loss)
        if check_epoch is not None:
            model.eval()
            try:
                with torch.no_grad():
                    check_epoch(epoch, model)
            finally:
                model.train()

    with dropout_from(model, dropout_rng):
        loss = train_epochs(model, *train, recipe, generator=generator, on_epoch=after_epoch)
    model.eval()
    return model, loss

"""Seeded randomness that threads of one process cannot disturb.

torch's process-wide RNG is one state shared by every thread; the inline backend runs jobs in
threads of one process, so a trial that seeds it and then draws from it (weights, dropout) can
be disturbed by whatever runs beside it. ``forked_rng`` seeds under a lock and routes this
thread's draws to a generator of its own; ``dropout_from`` gives dropout layers one.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from nas.errors import NasError

__all__ = ["dropout_from", "forked_rng"]


#: Held by every ``forked_rng`` section: torch's process-wide RNG is one state that a section
#: seeds and restores, so two threads (the inline backend runs jobs in threads of one process)
#: must not interleave there. Re-entrant: sections nest.
_GLOBAL_RNG_LOCK = threading.RLock()
_local = threading.local()  # .generator: this thread's innermost forked_rng generator

#: torch's functions and Tensor methods that draw from the process-wide generator unless given
#: ``generator=`` (``nn.init``'s functions pass ``generator=None`` and are recognised by it).
_RANDOM_FUNCTIONS = frozenset(
    {
        torch.rand,
        torch.randn,
        torch.randint,
        torch.randperm,
        torch.normal,
        torch.bernoulli,
        torch.multinomial,
        torch.poisson,
        torch.Tensor.uniform_,
        torch.Tensor.normal_,
        torch.Tensor.bernoulli_,
        torch.Tensor.bernoulli,
        torch.Tensor.random_,
        torch.Tensor.exponential_,
        torch.Tensor.cauchy_,
        torch.Tensor.log_normal_,
        torch.Tensor.geometric_,
        torch.Tensor.multinomial,
    }
)


def _on_cpu(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether a random draw with these arguments lands on the CPU (its first tensor argument,
    else its ``device``, else torch's default device)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device.type == "cpu"
    device = kwargs.get("device")
    return torch.device(device if device is not None else torch.get_default_device()).type == "cpu"


class _DrawFrom(TorchFunctionMode):
    """Inside, in this thread only (torch's function modes are per thread): each CPU draw that
    would use torch's process-wide generator uses ``generator`` instead, so what other threads
    do to the global RNG meanwhile cannot change it. A ``generator`` in the global RNG's state
    gives exactly the numbers the global RNG would have."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.generator = generator

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Collection[type],
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        if (
            kwargs.get("generator") is None
            and ("generator" in kwargs or func in _RANDOM_FUNCTIONS)
            and _on_cpu(args, kwargs)
        ):
            kwargs["generator"] = self.generator
        return func(*args, **kwargs)


@contextmanager
def forked_rng(
    seed: int | None = None, device: torch.device | None = None
) -> Iterator[torch.Generator]:
    """Inside: torch's global RNG, seeded with ``seed`` if given; on exit the caller's global
    RNG state is exactly as before, on the CPU and on every CUDA device. Yields the CPU
    generator that this thread's draws inside use (see below): after the section it holds
    the state the global RNG would have reached, for a caller that goes on drawing.

    Safe beside other threads (the inline backend's concurrent jobs): sections hold a
    process-wide lock, and inside one every CPU draw of this thread that would use the
    global generator (``nn.init``, ``torch.rand*``, ``Tensor.uniform_``, ...) uses a private
    generator started from the same state (``seed``, else the enclosing section's generator,
    else the global state), so the numbers are those of the global RNG, and no thread that
    draws from the global RNG without this lock can change them.

    CUDA's generators are forked (all of them: seeding seeds every device) when the work runs
    on ``device`` CUDA or CUDA is already initialised, and seeded with ``seed`` too, so dropout
    on a GPU is reproducible from ``seed`` as on the CPU. Otherwise CUDA is left alone: no
    context is created in a CPU-only trial, and no seed is queued for CUDA's lazy start (which
    would replace the caller's pending ``torch.manual_seed``). Without CUDA this is a CPU fork.
    """
    with _GLOBAL_RNG_LOCK:
        on_cuda = torch.cuda.is_available() and (
            (device is not None and device.type == "cuda") or torch.cuda.is_initialized()
        )
        devices = list(range(torch.cuda.device_count())) if on_cuda else []
        outer: torch.Generator | None = getattr(_local, "generator", None)
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            if seed is not None:
                torch.random.default_generator.manual_seed(seed)
                if devices:
                    torch.cuda.manual_seed_all(seed)
            generator = torch.Generator()
            if seed is not None:
                generator.manual_seed(seed)
            else:
                generator.set_state((outer or torch.random.default_generator).get_state())
            _local.generator = generator
            try:
                with _DrawFrom(generator):
                    yield generator
            finally:
                _local.generator = outer


@contextmanager
def dropout_from(model: nn.Module, generator: torch.Generator) -> Iterator[None]:
    """Inside: ``model``'s ``nn.Dropout`` layers draw their masks from ``generator`` (on the
    device of their input) instead of torch's process-wide RNG, which other threads share. On
    the CPU the masks are exactly ``nn.Dropout``'s from a global RNG in ``generator``'s state
    (the same Bernoulli draw); on a GPU they differ from its fused kernel's. Other random
    layers (``Dropout1d``/``2d``/``3d``, ``AlphaDropout``, ``RReLU``) are an error: none
    draws from a generator of its own."""
    stochastic = (nn.modules.dropout._DropoutNd, nn.RReLU)
    layers = [m for m in model.modules() if isinstance(m, stochastic)]
    for m in layers:
        if type(m) is not nn.Dropout:
            raise NasError(
                f"{type(m).__name__} layers draw from torch's global RNG; a seeded trial "
                "supports nn.Dropout only"
            )
    for m in layers:
        m.forward = functools.partial(_dropout, m, generator)  # shadows the class's forward
    try:
        yield
    finally:
        for m in layers:
            m.__dict__.pop("forward", None)


def _dropout(layer: nn.Dropout, generator: torch.Generator, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` with its mask drawn from ``generator`` (torch's CPU arithmetic)."""
    p = layer.p
    if not layer.training or p == 0 or x.numel() == 0:
        return x
    if p == 1:
        return x.mul_(0) if layer.inplace else x * torch.zeros((), dtype=x.dtype, device=x.device)
    noise = torch.empty_like(x).bernoulli_(1 - p, generator=generator).div_(1 - p)
    return x.mul_(noise) if layer.inplace else x * noise

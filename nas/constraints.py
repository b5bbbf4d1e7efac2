"""Hard constraints (``objective.constraints``) checked before a candidate is trained.

Each constraint bounds one figure that can be had without training: ``max_params`` (trainable
parameters), ``max_flops`` (forward FLOPs of one example) and ``max_latency_ms`` (forward
time of one example). Evaluators measure the figures their own way (``Evaluator.
constraint_figures``): a table reads its columns, a trainer builds the untrained network.
``verdict`` turns the figures into ``None`` (feasible) or the reason it is not.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from nas.architecture import Architecture
    from nas.spaces.base import SearchSpace

__all__ = ["CONSTRAINTS", "measure_architectures", "measure_model", "verdict"]

#: constraint key -> the figure it bounds (a key of what ``constraint_figures`` returns)
CONSTRAINTS: dict[str, str] = {
    "max_params": "params",
    "max_flops": "flops",
    "max_latency_ms": "latency_ms",
}


def verdict(figures: Mapping[str, float], constraints: Mapping[str, float | None]) -> str | None:
    """``None`` when every set constraint holds, else ``"infeasible: params 1.2e+06 >
    max_params 5e+05"`` (all violated ones, ``; ``-separated). An unknown figure (NaN)
    violates its constraint."""
    broken = []
    for key, limit in constraints.items():
        if limit is None:
            continue
        figure = CONSTRAINTS[key]
        value = float(figures[figure])
        if math.isnan(value):  # not known, so not known to hold
            broken.append(f"{figure} unknown (needed for {key})")
        elif value > limit:
            broken.append(f"{figure} {value:.4g} > {key} {limit:.4g}")
    return "infeasible: " + "; ".join(broken) if broken else None


def measure_model(
    model: nn.Module,
    input_shape: Sequence[int],
    device: torch.device,
    figures: Iterable[str],
    *,
    latency_repeats: int = 10,
) -> dict[str, float]:
    """The ``figures`` (``params``, ``flops``, ``latency_ms``) of an untrained network.

    Latency: median wall time of ``latency_repeats`` forward passes of one example in eval
    mode without gradients, on ``device`` (after two warm-up passes; CUDA is synchronised).
    """
    from nas.models import count_parameters
    from nas.training import count_flops

    wanted = set(figures)
    out: dict[str, float] = {}
    if "params" in wanted:
        out["params"] = float(count_parameters(model))
    if "flops" in wanted:
        out["flops"] = float(count_flops(model, tuple(input_shape), device))
    if "latency_ms" in wanted:
        out["latency_ms"] = _latency_ms(model, input_shape, device, latency_repeats)
    return out


def measure_architectures(
    space: SearchSpace,
    archs: Sequence[Architecture],
    input_shape: Sequence[int],
    num_classes: int,
    device: torch.device,
    figures: Iterable[str],
) -> list[dict[str, float]]:
    """The ``figures`` of each architecture's standalone network (what a trial or a final
    retraining builds), untrained, on ``device``; the global RNG is left untouched. What
    every evaluator that trains networks answers ``constraint_figures`` with."""
    from nas.models import build_model
    from nas.training import forked_rng

    wanted = list(figures)
    out = []
    for arch in archs:
        space.validate(arch)
        with forked_rng(device=device):
            model = build_model(space, arch, input_shape, num_classes).to(device)
        out.append(measure_model(model, input_shape, device, wanted))
    return out


@torch.no_grad()
def _latency_ms(
    model: nn.Module, input_shape: Sequence[int], device: torch.device, repeats: int
) -> float:
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_shape, device=device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        model(x)
    times = []
    for _ in range(max(1, repeats)):
        sync()
        start = time.perf_counter()
        model(x)
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    model.train(was_training)
    return statistics.median(times)

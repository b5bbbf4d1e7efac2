"""A Markdown model card: a text drawing of the network, size, FLOPs, latency, accuracy and
the command that reproduces it."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError
from nas.export.artifacts import package_version
from nas.models import count_parameters
from nas.models.base import SpaceNetwork
from nas.spaces.base import SearchSpace
from nas.training import count_flops

__all__ = ["Drawing", "draw_network", "measure_latency", "model_card"]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    cpu = platform.processor() or platform.machine() or "cpu"
    threads = torch.get_num_threads()
    return f"cpu ({cpu}, {threads} thread{'s' if threads != 1 else ''})"


def measure_latency(
    model: nn.Module, input_shape: Sequence[int], *, runs: int = 50, warmup: int = 5
) -> dict[str, Any]:
    """Median (and spread) of ``runs`` timed forward passes at batch size 1, in eval mode
    without gradients, on the model's device."""
    if runs < 1:
        raise ExportError(f"latency needs at least one run, got {runs}")
    device = _device(model)
    x = torch.randn(1, *input_shape, device=device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model(x)
            sync()
            for _ in range(runs):
                start = time.perf_counter()
                model(x)
                sync()
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.train(was_training)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "min_ms": times[0],
        "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
        "runs": runs,
        "batch_size": 1,
        "device": device_name(device),
    }


# --- the drawing --------------------------------------------------------------------------------
class Drawing:
    """What a network's ``draw`` hook draws with: the input shape, the output shape of any of
    its modules (one forward pass), and the row format (name, what it computes, shape).

    Example:
        >>> space = MacroSpace(layers=2, channels=4)
        >>> model = space.build_network((1, 40), 10, space.make([0, 0, 1]))
        >>> drawing = Drawing(model, (1, 40))
        >>> shapes = drawing.shapes([model.stem, model.head])
        >>> drawing.row("stem", "conv3 -> BN", shapes[id(model.stem)])
        'stem       conv3 -> BN                                (4, 40)'
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int]) -> None:
        self.model = model
        self.input_shape = tuple(int(v) for v in input_shape)

    def shapes(self, modules: Sequence[nn.Module]) -> dict[int, tuple[int, ...]]:
        """Output shape (one example) of each of ``modules``, by ``id``."""
        shapes: dict[int, tuple[int, ...]] = {}

        def record(module: nn.Module, _args: Any, out: torch.Tensor) -> None:
            shapes[id(module)] = tuple(out.shape[1:])

        model = self.model
        hooks = [m.register_forward_hook(record) for m in modules]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(torch.zeros(1, *self.input_shape, device=_device(model)))
        finally:
            model.train(was_training)
            for hook in hooks:
                hook.remove()
        return shapes

    @staticmethod
    def row(name: str, what: str, shape: tuple[int, ...] | None) -> str:
        return f"{name:<10} {what:<42} {'' if shape is None else str(shape)}".rstrip()


def draw_network(model: nn.Module, arch: Architecture, input_shape: Sequence[int]) -> str:
    """A plain-text drawing of the layers or cells of ``model`` with each output shape (the
    network draws itself: ``SpaceNetwork.draw``)."""
    if not isinstance(model, SpaceNetwork):
        raise ExportError(f"no drawing for a {type(model).__name__}")
    return model.draw(arch, Drawing(model, input_shape))


# --- the card -----------------------------------------------------------------------------------
def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e5 else f"{value:.2f}"
    return str(value)


def model_card(
    space: SearchSpace,
    arch: Architecture,
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    accuracies: Mapping[str, Any] | None = None,
    command: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    job_id: str | None = None,
    trial: int | None = None,
    seed: int | None = None,
    latency_runs: int = 50,
) -> str:
    """Markdown: the drawing of ``model`` (built for ``arch``), parameters, FLOPs, latency
    measured here (median of ``latency_runs`` passes at batch 1), the given accuracies
    (name -> value) and the reproducing ``command``."""
    space.validate(arch)
    shape = tuple(int(v) for v in input_shape)
    drawing = draw_network(model, arch, shape)
    params = count_parameters(model)
    flops = count_flops(model, shape, _device(model))
    latency = measure_latency(model, shape, runs=latency_runs)
    classes = getattr(model, "num_classes", None)
    lines = [
        f"# Model card: {space.name} architecture",
        "",
        f"`{arch.key}`",
        "",
        "| | |",
        "|---|---|",
        f"| Search space | {space.name} v{space.version} |",
        f"| Space config | `{json.dumps(space.config)}` |",
        f"| Input shape | {shape} (one example) |",
        f"| Classes | {classes} |",
        f"| Parameters | {params:,} |",
        f"| FLOPs | {flops:,} per example (multiplies and adds counted separately) |",
        (
            f"| Latency | {latency['median_ms']:.3f} ms median of {latency['runs']} forward "
            f"passes at batch size 1 (min {latency['min_ms']:.3f}, p90 {latency['p90_ms']:.3f}), "
            f"{latency['device']} |"
        ),
        "",
        "## Accuracy",
        "",
    ]
    if accuracies:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {name} | {_number(value)} |" for name, value in accuracies.items()]
    else:
        lines.append("No accuracy was given.")
    lines += ["", "## Architecture", "", "```text", drawing, "```", "", "Genotype:", ""]
    lines += ["```json", json.dumps(space.describe(arch), indent=2), "```"]
    if hyperparameters:
        lines += ["", "## Hyperparameters", "", "| name | value |", "|---|---|"]
        lines += [f"| {k} | {_number(v)} |" for k, v in hyperparameters.items()]
    lines += ["", "## Reproduce", ""]
    lines += ["```bash", command, "```"] if command else ["No command was given."]
    lines += ["", "## Provenance", ""]
    provenance = {"job id": job_id, "trial": trial, "seed": seed}
    lines += [f"- {k}: {v}" for k, v in provenance.items() if v is not None]
    lines += [
        f"- exported by nas-service {package_version()} with torch {torch.__version__}",
        "",
    ]
    return "\n".join(lines)

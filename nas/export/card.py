"""Drawing and timing a network, shared by the model card (``nas.export.formats.model_card``)
and the spaces: ``Drawing`` (what a network's ``draw`` hook draws itself with),
``draw_network``, ``measure_latency`` and the device helpers it reports with."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError
from nas.models.base import SpaceNetwork

__all__ = ["Drawing", "device_name", "draw_network", "measure_latency", "model_device"]


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s (first) parameter."""
    return next(model.parameters()).device


def device_name(device: torch.device) -> str:
    """``device`` as a model card names it: the GPU's name, or the CPU and its thread count."""
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
    device = model_device(model)
    # An input of its own generator: torch's global RNG is shared with concurrent trials.
    x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)
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
                model(torch.zeros(1, *self.input_shape, device=model_device(model)))
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

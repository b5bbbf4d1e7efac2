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
from nas.export.network import Nb201Cell, Nb201Network, metaqnn_layers
from nas.models import count_parameters
from nas.models.macro import MacroNetwork
from nas.models.metaqnn import MetaQNNNetwork
from nas.models.micro import MicroNetwork
from nas.spaces.base import SearchSpace
from nas.spaces.metaqnn import CONV, FC, GAP, POOL, SM
from nas.spaces.micro import input_labels
from nas.spaces.nb201 import NB201_EDGES, NB201_OPS
from nas.training import count_flops

__all__ = ["draw_network", "measure_latency", "model_card"]


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
def _output_shapes(
    model: nn.Module, modules: Sequence[nn.Module], input_shape: Sequence[int]
) -> dict[int, tuple[int, ...]]:
    shapes: dict[int, tuple[int, ...]] = {}

    def record(module: nn.Module, _args: Any, out: torch.Tensor) -> None:
        shapes[id(module)] = tuple(out.shape[1:])

    hooks = [m.register_forward_hook(record) for m in modules]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=_device(model)))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes


def _row(name: str, what: str, shape: tuple[int, ...] | None) -> str:
    return f"{name:<10} {what:<42} {'' if shape is None else str(shape)}".rstrip()


def draw_network(model: nn.Module, arch: Architecture, input_shape: Sequence[int]) -> str:
    """A plain-text drawing of the layers or cells of ``model`` with each output shape."""
    shape_in = tuple(int(v) for v in input_shape)
    if isinstance(model, MacroNetwork):
        return _draw_macro(model, arch, shape_in)
    if isinstance(model, MicroNetwork):
        return _draw_micro(model, arch, shape_in)
    if isinstance(model, Nb201Network):
        return _draw_nb201(model, arch, shape_in)
    if isinstance(model, MetaQNNNetwork):
        return _draw_metaqnn(model, shape_in)
    raise ExportError(f"no drawing for a {type(model).__name__}")


def _draw_macro(model: MacroNetwork, arch: Architecture, input_shape: tuple[int, ...]) -> str:
    layers, needed = model.plan(arch)
    ops = [model.layers[i][op] for i, (op, _) in enumerate(layers)]
    shapes = _output_shapes(model, [model.stem, *ops, model.head], input_shape)
    lines = [
        _row("input", "", input_shape),
        "  |",
        _row("stem", "conv3 -> BN", shapes[id(model.stem)]),
    ]
    for index, ((op, skips), module) in enumerate(zip(layers, ops, strict=True)):
        if index in model.space.reductions:
            sources = [j for j in range(index) if (index, j) in needed]
            lines.append(f"  |  ~~ resolution halves: FactorizedReduce of layer(s) {sources}")
        else:
            lines.append("  |")
        skip = f" + skip from {', '.join(map(str, skips))}" if skips else ""
        lines.append(_row(f"layer {index}", op + skip, shapes[id(module)]))
    lines += ["  |", _row("head", "ReLU -> global avg pool -> linear", shapes[id(model.head)])]
    return "\n".join(lines)


def _draw_micro(model: MicroNetwork, arch: Architecture, input_shape: tuple[int, ...]) -> str:
    shapes = _output_shapes(model, [model.stem, *model.cells, model.head], input_shape)
    lines = [
        _row("input", "", input_shape),
        "  |",
        _row("stem", "conv3 -> BN", shapes[id(model.stem)]),
    ]
    for index, cell in enumerate(model.cells):
        kind = "reduction cell" if cell.reduction else "normal cell"
        lines += [
            "  |",
            _row(f"cell {index}", f"{kind} (inputs: 2 previous cells)", shapes[id(cell)]),
        ]
    lines += ["  |", _row("head", "ReLU -> global avg pool -> linear", shapes[id(model.head)])]
    for kind, nodes in model.space.cell_choices(arch).items():
        if kind == "reduce" and not any(c.reduction for c in model.cells):
            continue
        title = (
            "reduction cell (ops on cell inputs have stride 2)"
            if kind == "reduce"
            else "normal cell"
        )
        lines += ["", f"{title}:", "  cell_in0 = previous-but-one cell, cell_in1 = previous cell"]
        for node, (in0, in1, op0, op1) in enumerate(nodes):
            labels = input_labels(node)
            lines.append(f"  node{node} = {op0}({labels[in0]}) + {op1}({labels[in1]})")
        lines.append("  output = concat(" + ", ".join(f"node{j}" for j in range(len(nodes))) + ")")
    return "\n".join(lines)


def _draw_nb201(model: Nb201Network, arch: Architecture, input_shape: tuple[int, ...]) -> str:
    shapes = _output_shapes(model, [model.stem, *model.cells, model.classifier], input_shape)
    lines = [
        _row("input", "", input_shape),
        "  |",
        _row("stem", "conv3 -> BN", shapes[id(model.stem)]),
    ]
    for index, cell in enumerate(model.cells):
        what = "cell" if isinstance(cell, Nb201Cell) else "residual block (stride 2)"
        lines += ["  |", _row(f"cell {index}", what, shapes[id(cell)])]
    lines += [
        "  |",
        _row("head", "BN -> ReLU -> global avg pool -> linear", shapes[id(model.classifier)]),
        "",
        "cell (node0 = cell input, node3 = cell output; none = zeros):",
    ]
    for target in range(1, 4):
        terms = [
            f"{NB201_OPS[arch.choices[e]]}(node{s})"
            for e, (t, s) in enumerate(NB201_EDGES)
            if t == target
        ]
        lines.append(f"  node{target} = " + " + ".join(terms))
    return "\n".join(lines)


def _draw_metaqnn(model: MetaQNNNetwork, input_shape: tuple[int, ...]) -> str:
    """One row per MetaQNN layer, named by its label (``C(3,32)``, ``P(2)``, ``FC(64)``,
    ``GAP``, ``SM``), with the body modules that make it and its output shape."""
    layers = metaqnn_layers(model)
    ends = [model.body[positions[-1]] for _, _, positions in layers if positions]
    shapes = _output_shapes(model, [*ends, model.classifier], input_shape)
    dropout = model.space.dropout
    lines = [_row("input", "", input_shape)]
    for label, kind, positions in layers:
        flatten = bool(positions) and isinstance(model.body[positions[0]], nn.Flatten)
        parts = ["flatten"] if flatten else []
        if kind == CONV:
            conv = model.body[positions[0]]
            parts = [f"conv{_side(conv.kernel_size)} x {conv.out_channels}", "BN", "ReLU"]
        elif kind == POOL:
            parts = [f"max pool {_side(model.body[positions[0]].kernel_size)}, stride 2"]
        elif kind == FC:
            parts += ["linear", "ReLU"] + ([f"dropout {dropout:g}"] if dropout > 0 else [])
        elif kind == GAP:
            parts = ["global avg pool"]
        else:  # SM: the classifier
            parts += [f"dropout {dropout:g}"] if dropout > 0 else []
            parts.append(f"linear -> {model.num_classes} logits")
        last = model.classifier if kind == SM else model.body[positions[-1]]
        shape = shapes[id(last)]
        lines += ["  |", _row(label, " -> ".join(parts), shape)]
    lines += ["", "layers: " + " -> ".join(label for label, _, _ in layers)]
    return "\n".join(lines)


def _side(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else value[0]


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

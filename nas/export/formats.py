"""The export formats by name, and ``export``: one call that writes any of them to a file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError
from nas.export.artifacts import export_json, export_onnx, export_torchscript
from nas.export.card import model_card
from nas.export.network import exportable_spaces, load_network
from nas.export.source import export_pytorch_source
from nas.spaces.base import SearchSpace

__all__ = ["FORMATS", "ExportFormat", "export", "get_format", "supported_formats"]


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """One export format: file suffix, media type, whether it needs a buildable network."""

    name: str
    suffix: str
    media_type: str
    needs_network: bool
    description: str


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("json", ".json", "application/json", False, "architecture and provenance"),
        ExportFormat("pytorch", ".py", "text/x-python", True, "standalone nn.Module source"),
        ExportFormat("torchscript", ".pt", "application/octet-stream", True, "traced TorchScript"),
        ExportFormat("onnx", ".onnx", "application/octet-stream", True, "ONNX, dynamic batch"),
        ExportFormat("model-card", ".md", "text/markdown", True, "Markdown model card"),
    )
}


def supported_formats(space: SearchSpace | str) -> list[str]:
    """The format names that ``space`` (or a space name) exports to."""
    name = space if isinstance(space, str) else space.name
    has_network = name in exportable_spaces()
    return [f.name for f in FORMATS.values() if has_network or not f.needs_network]


def get_format(fmt: str, space: SearchSpace | str | None = None) -> ExportFormat:
    """The format called ``fmt``; ``ExportError`` if there is none, or if ``space`` cannot
    export to it."""
    try:
        found = FORMATS[fmt]
    except (KeyError, TypeError):
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}") from None
    if space is not None and fmt not in supported_formats(space):
        name = space if isinstance(space, str) else space.name
        raise ExportError(
            f"space {name!r} cannot export to {fmt}: it has no network to build (it exports "
            f"to {', '.join(supported_formats(space))}); spaces with a network: "
            f"{', '.join(exportable_spaces())}"
        )
    return found


def export(
    fmt: str,
    path: str | Path,
    *,
    space: SearchSpace,
    arch: Architecture,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    weights: str | Path | Mapping[str, torch.Tensor] | None = None,
    model: nn.Module | None = None,
    options: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    job_id: str | None = None,
    trial: int | None = None,
    seed: int | None = None,
    command: str | None = None,
    latency_runs: int = 50,
) -> Path:
    """Write ``arch`` as ``fmt`` to ``path``. The network formats use ``model`` when given,
    else build one and load ``weights`` strictly (random weights when ``None``); ``metrics``
    are the card's accuracies."""
    spec = get_format(fmt, space)
    path = Path(path)
    if spec.name == "json":
        data = export_json(
            space,
            arch,
            input_shape=input_shape,
            num_classes=num_classes,
            hyperparameters=hyperparameters,
            metrics=metrics,
            job_id=job_id,
            trial=trial,
            seed=seed,
            options=options,
        )
        return _write_text(path, json.dumps(data, indent=2) + "\n")
    if input_shape is None or num_classes is None:
        raise ExportError(f"the {fmt} export needs input_shape and num_classes")
    if spec.name == "pytorch":
        return _write_text(
            path, export_pytorch_source(space, arch, input_shape, num_classes, options=options)
        )
    if model is None:
        model = load_network(space, arch, input_shape, num_classes, weights, options)
    if spec.name == "torchscript":
        return export_torchscript(model, input_shape, path)
    if spec.name == "onnx":
        return export_onnx(model, input_shape, path)
    card = model_card(
        space,
        arch,
        model,
        input_shape,
        accuracies=metrics,
        command=command,
        hyperparameters=hyperparameters,
        job_id=job_id,
        trial=trial,
        seed=seed,
        latency_runs=latency_runs,
    )
    return _write_text(path, card)


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

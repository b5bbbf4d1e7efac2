"""The export formats by name, and ``export``: one call that writes any of them to a file.

Each format is one module of this package (an ``ExportFormat``) plus its entry in ``FORMATS``
below; the registration order is the order users see them in. Callers look a format up and
call its ``write`` with an ``ExportContext``: this registry is the only dispatch on a format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.architecture import Architecture
from nas.export.formats.base import (
    FORMATS,
    ExportContext,
    ExportFormat,
    get_format,
    supported_formats,
)
from nas.export.formats.json import JsonFormat
from nas.export.formats.model_card import ModelCardFormat
from nas.export.formats.onnx import OnnxFormat
from nas.export.formats.pytorch import PyTorchFormat
from nas.export.formats.torchscript import TorchScriptFormat
from nas.spaces.base import SearchSpace

for _format in (
    JsonFormat(),
    PyTorchFormat(),
    TorchScriptFormat(),
    OnnxFormat(),
    ModelCardFormat(),
):
    FORMATS.register(_format.name)(_format)

__all__ = [
    "FORMATS",
    "ExportContext",
    "ExportFormat",
    "export",
    "get_format",
    "supported_formats",
]


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
    are the card's accuracies. For more (a bundle, a card note, document keys), build an
    ``ExportContext`` and call ``get_format(fmt, space).write(ctx, path)``."""
    found = get_format(fmt, space)
    ctx = ExportContext(
        space=space,
        arch=arch,
        input_shape=None if input_shape is None else tuple(input_shape),
        num_classes=num_classes,
        weights=weights,
        model=model,
        options=options,
        metrics=metrics,
        hyperparameters=hyperparameters,
        job_id=job_id,
        trial=trial,
        seed=seed,
        command=command,
        latency_runs=latency_runs,
    )
    return found.write(ctx, Path(path))

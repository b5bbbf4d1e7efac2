"""The export formats by name.

Each format is one module of this package: its ``ExportFormat`` subclass and the functions
that do its work (``json``: ``export_json`` and its reader ``architecture_from_json``;
``onnx``: ``export_onnx``; ``torchscript``: ``export_torchscript``; ``model_card``:
``model_card``; ``pytorch``: the bundle around ``nas.export.source``), plus its entry in
``FORMATS`` below; the registration order is the order users see them in. What formats share
lives in ``base`` (the context, the contract, the registry, the load-back check). Machinery
that is not one format's stays outside this package, in ``nas.export``: ``network`` (the
networks exports are made from), ``card`` (drawing and latency, with the spaces' ``draw``
hooks), ``source`` (the PyTorch source writer, with the spaces' ``write_source`` hooks) and
``provenance`` (the package version every export records). Callers look a format up and call
its ``write`` with an ``ExportContext``: this registry is the only dispatch on a format;
``export`` is a shorthand for that lookup and call.
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
    job_id: int | None = None,
    trial: int | None = None,
    seed: int | None = None,
    command: str | None = None,
    latency_runs: int = 50,
) -> Path:
    """Write ``arch`` as ``fmt`` to ``path``: a convenience over the registry, the same as
    ``get_format(fmt, space).write(ExportContext(...), path)`` with these arguments.

    The network formats use ``model`` when given, else build one and load ``weights``
    strictly (random weights when ``None``); ``metrics`` are the card's accuracies. For the
    rest of ``ExportContext`` (a bundle, a card note, document keys, a recipe), build one and
    call ``get_format(fmt, space).write(ctx, path)``."""
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

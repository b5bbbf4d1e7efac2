"""Export of architectures: JSON, standalone PyTorch source, TorchScript, ONNX, model card.

Example:
    >>> space = MacroSpace(layers=4, channels=8)
    >>> arch = space.sample(np.random.default_rng(0))
    >>> source = export_pytorch_source(space, arch, (1, 40), 10)  # imports torch only
    >>> model = load_network(space, arch, (1, 40), 10, "final/rank0.pt")  # doctest: +SKIP
    >>> export("onnx", "model.onnx", space=space, arch=arch, input_shape=(1, 40),
    ...        num_classes=10, model=model)  # doctest: +SKIP
"""

from __future__ import annotations

from nas.export.card import draw_network, measure_latency
from nas.export.formats import (
    FORMATS,
    ExportContext,
    ExportFormat,
    export,
    get_format,
    supported_formats,
)
from nas.export.formats.json import architecture_from_json, export_json
from nas.export.formats.model_card import model_card
from nas.export.formats.onnx import export_onnx
from nas.export.formats.torchscript import export_torchscript
from nas.export.network import build_network, exportable_spaces, load_network
from nas.export.source import export_pytorch_source

__all__ = [
    "FORMATS",
    "ExportContext",
    "ExportFormat",
    "architecture_from_json",
    "build_network",
    "draw_network",
    "export",
    "export_json",
    "export_onnx",
    "export_pytorch_source",
    "export_torchscript",
    "exportable_spaces",
    "get_format",
    "load_network",
    "measure_latency",
    "model_card",
    "supported_formats",
]

"""``onnx``: the network as ONNX with a dynamic batch axis (``export_onnx``)."""

from __future__ import annotations

from pathlib import Path

from nas.export.artifacts import export_onnx
from nas.export.formats.base import ExportContext, ExportFormat


class OnnxFormat(ExportFormat):
    name = "onnx"
    suffix = ".onnx"
    media_type = "application/octet-stream"
    description = "ONNX, dynamic batch"
    noun = "an ONNX model"
    needs_weights = True

    def write(self, ctx: ExportContext, path: Path) -> Path:
        input_shape, _ = ctx.shape(self.name)
        return export_onnx(ctx.network(self.name), input_shape, path)

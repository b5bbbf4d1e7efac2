"""``torchscript``: the network traced to TorchScript (``export_torchscript``)."""

from __future__ import annotations

from pathlib import Path

from nas.export.artifacts import export_torchscript
from nas.export.formats.base import ExportContext, ExportFormat


class TorchScriptFormat(ExportFormat):
    name = "torchscript"
    suffix = ".pt"
    media_type = "application/octet-stream"
    description = "traced TorchScript"
    noun = "a TorchScript model"
    needs_weights = True

    def write(self, ctx: ExportContext, path: Path) -> Path:
        input_shape, _ = ctx.shape(self.name)
        return export_torchscript(ctx.network(self.name), input_shape, path)

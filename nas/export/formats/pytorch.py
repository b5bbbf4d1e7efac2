"""``pytorch``: one standalone ``model.py`` (imports torch only); bundled for a download, a
zip of ``model.py``, ``weights.pt`` (when trained; checked to load strictly) and
``architecture.json``. Meta-learned weights (``ExportContext.adaptation``) add ``adapt`` to
``model.py`` and, for Meta-SGD, its learned per-parameter step sizes as ``rates.pt``
(a metric-based learner's embedding: ``classify``, and Matching Networks' full-context LSTMs
as ``context.pt``). The
source is written by ``nas.export.source``, whose ``SourceWriter`` the spaces' networks also
write their own parts with."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from nas.export.formats.base import ExportContext, ExportFormat, write_text
from nas.export.formats.json import JsonFormat
from nas.export.network import load_network
from nas.export.source import CONTEXT_FILE, RATES_FILE, export_pytorch_source


class PyTorchFormat(ExportFormat):
    name = "pytorch"
    suffix = ".py"
    media_type = "text/x-python"
    description = "standalone nn.Module source"
    noun = "a PyTorch module"
    holds_weights = True
    bundle_suffix = ".zip"
    bundle_media_type = "application/zip"

    def write(self, ctx: ExportContext, path: Path) -> Path:
        input_shape, num_classes = ctx.shape(self.name)
        adaptation = None
        if ctx.adaptation is not None:
            adaptation = {k: v for k, v in ctx.adaptation.items() if k not in ("rates", "extra")}
            adaptation["rates"] = RATES_FILE if ctx.adaptation.get("rates") is not None else None
            if ctx.adaptation.get("extra") is not None:
                adaptation["extra"] = CONTEXT_FILE
        source = export_pytorch_source(
            ctx.space,
            ctx.arch,
            input_shape,
            num_classes,
            options=ctx.options,
            adaptation=adaptation,
            inputs=ctx.inputs,
        )
        if not ctx.bundle:
            return write_text(path, source)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("model.py", source)
            if ctx.weights is not None:
                # The weights must load into model.py's network: the same check as its own.
                load_network(
                    ctx.space, ctx.arch, input_shape, num_classes, ctx.weights, ctx.options
                )
                if isinstance(ctx.weights, Mapping):
                    saved = io.BytesIO()
                    torch.save(dict(ctx.weights), saved)
                    archive.writestr("weights.pt", saved.getvalue())
                else:
                    archive.write(ctx.weights, "weights.pt")
            for key, name in (("rates", RATES_FILE), ("extra", CONTEXT_FILE)):
                tensors = None if ctx.adaptation is None else ctx.adaptation.get(key)
                if tensors is not None:
                    saved = io.BytesIO()
                    torch.save({k: v.detach().cpu() for k, v in tensors.items()}, saved)
                    archive.writestr(name, saved.getvalue())
            document = JsonFormat().document(ctx)
            archive.writestr("architecture.json", json.dumps(document, indent=2) + "\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
        return path

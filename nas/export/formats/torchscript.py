"""``torchscript``: the network traced to TorchScript, checked by loading it back (a
few-shot learner's embedding: the network less its classifier, ``ExportContext.graph``)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from nas.errors import ExportError
from nas.export.formats.base import (
    GRAPH_EXPORT_LOCK,
    ExportContext,
    ExportFormat,
    check_close,
    cpu_eval_copy,
    example_inputs,
)

__all__ = ["TorchScriptFormat", "export_torchscript"]


def export_torchscript(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    verify: bool = True,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Trace ``model`` (eval mode, on CPU) to a TorchScript file, with ``extra_files``
    (name: text; read back by ``torch.jit.load(path, _extra_files={name: ""})``);
    ``verify`` loads it with ``torch.jit.load`` and compares outputs at batch sizes 1 and 3."""
    path = Path(path)
    net = cpu_eval_copy(model)
    (example,) = example_inputs(input_shape, 2)
    with GRAPH_EXPORT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, not gone
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            traced = torch.jit.trace(net, example, check_trace=False)
        except Exception as error:
            raise ExportError(f"TorchScript tracing failed: {error}") from error
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(traced, str(path), _extra_files=dict(extra_files or {}))
        if verify:
            loaded = torch.jit.load(str(path), map_location="cpu")
            with torch.no_grad():
                for x in example_inputs(input_shape, 1, 3):
                    check_close("TorchScript", net(x), loaded(x), 1e-5)
    return path


class TorchScriptFormat(ExportFormat):
    name = "torchscript"
    suffix = ".pt"
    media_type = "application/octet-stream"
    description = "traced TorchScript"
    noun = "a TorchScript model"
    needs_weights = True
    holds_weights = True

    def write(self, ctx: ExportContext, path: Path) -> Path:
        input_shape, _ = ctx.shape(self.name)
        network, _ = ctx.graph(self.name)
        return export_torchscript(network, input_shape, path, extra_files=ctx.graph_metadata())

"""``onnx``: the network as ONNX with a dynamic batch axis, checked in onnxruntime (a
few-shot learner's embedding: the network less its classifier, output ``embedding``)."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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

__all__ = ["OnnxFormat", "export_onnx"]


def export_onnx(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    opset: int = 17,
    verify: bool = True,
    output: str = "logits",
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """ONNX (input ``input``, output ``output``, dynamic batch axis, ``metadata`` as the
    model's metadata properties) by torch's TorchScript-based exporter; ``verify`` checks
    the graph and runs it in onnxruntime at batch sizes 1 and 3."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - a main dependency
        raise ExportError(
            "ONNX export needs the onnx package: pip install onnx onnxruntime"
        ) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = cpu_eval_copy(model)
    (example,) = example_inputs(input_shape, 2)
    kwargs: dict[str, Any] = {
        "input_names": ["input"],
        "output_names": [output],
        "dynamic_axes": {"input": {0: "batch"}, output: {0: "batch"}},
        "opset_version": opset,
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the new exporter needs onnxscript and is slower
    with GRAPH_EXPORT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and constant-folding notices
        try:
            torch.onnx.export(net, (example,), str(path), **kwargs)
        except Exception as error:
            raise ExportError(f"ONNX export failed: {error}") from error
    graph = onnx.load(str(path))
    # The exporter may leave an output axis other than the batch symbolic where it lost
    # track of the shape (an embedding after explicit batch-norm reductions came out
    # ['batch', 'ReduceMeanembedding_dim_1']): those axes are the network's, fixed.
    with torch.no_grad():
        shape = tuple(net(example).shape)
    for axis, dim in enumerate(graph.graph.output[0].type.tensor_type.shape.dim):
        if axis > 0 and axis < len(shape) and dim.HasField("dim_param"):
            dim.dim_value = shape[axis]
    for key, value in (metadata or {}).items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))
    if verify:
        onnx.checker.check_model(str(path))
        try:
            import onnxruntime
        except ImportError:  # pragma: no cover - a main dependency
            raise ExportError(
                "ONNX verification needs onnxruntime: pip install onnxruntime"
            ) from None
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            for x in example_inputs(input_shape, 1, 3):
                (got,) = session.run([output], {"input": x.numpy()})
                check_close("ONNX", net(x), got, 1e-4)
    return path


class OnnxFormat(ExportFormat):
    name = "onnx"
    suffix = ".onnx"
    media_type = "application/octet-stream"
    description = "ONNX, dynamic batch"
    noun = "an ONNX model"
    needs_weights = True
    holds_weights = True

    def write(self, ctx: ExportContext, path: Path) -> Path:
        input_shape, _ = ctx.shape(self.name)
        network, output = ctx.graph(self.name)
        return export_onnx(network, input_shape, path, output=output, metadata=ctx.graph_metadata())

"""JSON, TorchScript and ONNX exports, each checked by loading it back."""

from __future__ import annotations

import copy
import datetime as dt
import inspect
import json
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError
from nas.spaces import SPACES
from nas.spaces.base import SearchSpace

__all__ = [
    "JSON_FORMAT",
    "architecture_from_json",
    "export_json",
    "export_onnx",
    "export_torchscript",
    "package_version",
]

#: ``format`` field of the JSON export, with its version.
JSON_FORMAT = "nas-service/architecture"
JSON_FORMAT_VERSION = 1


def package_version() -> str:
    try:
        return metadata.version("nas-service")
    except metadata.PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "unknown"


def export_json(
    space: SearchSpace,
    arch: Architecture,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    job_id: str | None = None,
    trial: int | None = None,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything that rebuilds and describes ``arch``, as JSON-ready data; read it back with
    ``architecture_from_json``."""
    space.validate(arch)
    exportable = space.network_class is not None
    data = {
        "format": JSON_FORMAT,
        "format_version": JSON_FORMAT_VERSION,
        "architecture": arch.to_dict(),
        "space": {"name": space.name, "version": space.version, "config": space.config},
        "genotype": space.describe(arch),
        "network_options": space.network_options(options) if exportable else {},
        "input_shape": None if input_shape is None else [int(v) for v in input_shape],
        "num_classes": None if num_classes is None else int(num_classes),
        "hyperparameters": dict(hyperparameters or {}),
        "metrics": dict(metrics or {}),
        "provenance": {
            "job_id": job_id,
            "trial": trial,
            "seed": seed,
            "package": "nas-service",
            "package_version": package_version(),
            "torch_version": torch.__version__,
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    }
    try:  # plain JSON types only (numpy scalars become Python numbers)
        return json.loads(json.dumps(data, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ExportError(f"the export holds a value JSON cannot represent: {error}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serialisable")


def architecture_from_json(data: Mapping[str, Any] | str) -> tuple[SearchSpace, Architecture]:
    """The space (with its config) and the validated architecture of an ``export_json`` dict
    (or its JSON text)."""
    if isinstance(data, str):
        data = json.loads(data)
    if not isinstance(data, Mapping) or not {"space", "architecture"} <= set(data):
        raise ExportError("not an architecture export: it needs 'space' and 'architecture'")
    space_data = data["space"]
    try:
        arch = Architecture.from_dict(data["architecture"])
    except ValueError as error:
        raise ExportError(f"invalid architecture in the export: {error}") from None
    space_cls = SPACES.get(str(space_data.get("name", arch.space)))  # UnknownNameError
    try:
        space = space_cls.from_config(space_data.get("config") or {})
    except ValueError as error:
        raise ExportError(f"invalid {space_cls.name} config in the export: {error}") from None
    if int(space_data.get("version", space.version)) != space.version:
        raise ExportError(
            f"the export is of {space.name} version {space_data['version']}; this service has "
            f"version {space.version}"
        )
    space.validate(arch)
    return space, arch


# --- TorchScript and ONNX ------------------------------------------------------------------
def _cpu_eval_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu().eval()


def _examples(input_shape: Sequence[int], *batches: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(b, *input_shape, generator=generator) for b in batches]


def _check_close(name: str, expected: torch.Tensor, got: Any, atol: float) -> None:
    got = torch.as_tensor(np.asarray(got)) if not isinstance(got, torch.Tensor) else got
    if got.shape != expected.shape:
        raise ExportError(
            f"the {name} export gives shape {tuple(got.shape)}, not {tuple(expected.shape)}"
        )
    gap = (got.float() - expected.float()).abs().max().item()
    if not gap <= atol + atol * expected.abs().max().item():
        raise ExportError(f"the {name} export's outputs differ from the model's by {gap:g}")


def export_torchscript(
    model: nn.Module, input_shape: Sequence[int], path: str | Path, *, verify: bool = True
) -> Path:
    """Trace ``model`` (eval mode, on CPU) to a TorchScript file; ``verify`` loads it with
    ``torch.jit.load`` and compares outputs at batch sizes 1 and 3."""
    path = Path(path)
    net = _cpu_eval_copy(model)
    (example,) = _examples(input_shape, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, not gone
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            traced = torch.jit.trace(net, example, check_trace=False)
        except Exception as error:
            raise ExportError(f"TorchScript tracing failed: {error}") from error
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(traced, str(path))
        if verify:
            loaded = torch.jit.load(str(path), map_location="cpu")
            with torch.no_grad():
                for x in _examples(input_shape, 1, 3):
                    _check_close("TorchScript", net(x), loaded(x), 1e-5)
    return path


def export_onnx(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    opset: int = 17,
    verify: bool = True,
) -> Path:
    """ONNX (input ``input``, output ``logits``, dynamic batch axis) by torch's TorchScript-based
    exporter; ``verify`` checks the graph and runs it in onnxruntime at batch sizes 1 and 3."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - a main dependency
        raise ExportError(
            "ONNX export needs the onnx package: pip install onnx onnxruntime"
        ) from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = _cpu_eval_copy(model)
    (example,) = _examples(input_shape, 2)
    kwargs: dict[str, Any] = {
        "input_names": ["input"],
        "output_names": ["logits"],
        "dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}},
        "opset_version": opset,
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the new exporter needs onnxscript and is slower
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and constant-folding notices
        try:
            torch.onnx.export(net, (example,), str(path), **kwargs)
        except Exception as error:
            raise ExportError(f"ONNX export failed: {error}") from error
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
            for x in _examples(input_shape, 1, 3):
                (got,) = session.run(["logits"], {"input": x.numpy()})
                _check_close("ONNX", net(x), got, 1e-4)
    return path

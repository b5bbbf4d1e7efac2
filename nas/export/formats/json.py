"""``json``: the architecture, its space and genotype, metrics and provenance, plus any keys
the caller adds; ``architecture_from_json`` reads it back."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.architecture import Architecture
from nas.errors import ExportError
from nas.export.formats.base import ExportContext, ExportFormat, write_text
from nas.export.provenance import package_version
from nas.spaces import SPACES
from nas.spaces.base import SearchSpace

__all__ = [
    "JSON_FORMAT",
    "JSON_FORMAT_VERSION",
    "JsonFormat",
    "architecture_from_json",
    "export_json",
]

#: ``format`` field of the JSON export, with its version.
JSON_FORMAT = "nas-service/architecture"
JSON_FORMAT_VERSION = 1


def export_json(
    space: SearchSpace,
    arch: Architecture,
    *,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    job_id: int | None = None,
    trial: int | None = None,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
    inputs: str | None = None,
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
        "inputs": inputs,
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


class JsonFormat(ExportFormat):
    name = "json"
    suffix = ".json"
    media_type = "application/json"
    description = "architecture and provenance"
    noun = "an architecture document"
    needs_network = False

    def document(self, ctx: ExportContext) -> dict[str, Any]:
        """The JSON-ready document: ``export_json``, how meta-learned weights adapt
        (``adaptation``: ``ExportContext.adaptation`` with ``rates`` naming the bundle's file)
        and then ``ctx.document``'s keys."""
        data = export_json(
            ctx.space,
            ctx.arch,
            input_shape=ctx.input_shape,
            num_classes=ctx.num_classes,
            hyperparameters=ctx.hyperparameters,
            metrics=ctx.metrics,
            job_id=ctx.job_id,
            trial=ctx.trial,
            seed=ctx.seed,
            options=ctx.options,
            inputs=ctx.inputs,
        )
        if ctx.adaptation is not None and ctx.adaptation.get("comparison") is not None:
            # a metric-based learner's embedding: no steps, its comparison instead
            keys = ("algorithm", "loss", "comparison", "shots", "ways")
            adaptation = {k: ctx.adaptation.get(k) for k in keys if k in ctx.adaptation}
            if ctx.adaptation.get("extra") is not None:
                adaptation["context"] = "LSTM weights: context.pt in the pytorch bundle"
            data["adaptation"] = adaptation
        elif ctx.adaptation is not None:
            keys = ("algorithm", "loss", "steps", "lr", "shots", "ways")
            adaptation = {k: ctx.adaptation.get(k) for k in keys if k in ctx.adaptation}
            learned = ctx.adaptation.get("rates") is not None
            adaptation["rates"] = (
                "learned per parameter: rates.pt in the pytorch bundle" if learned else None
            )
            data["adaptation"] = adaptation
        data.update(ctx.document or {})
        return data

    def write(self, ctx: ExportContext, path: Path) -> Path:
        return write_text(path, json.dumps(self.document(ctx), indent=2) + "\n")

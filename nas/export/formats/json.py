"""``json``: the architecture, its space and genotype, metrics and provenance
(``nas.export.artifacts.export_json``), plus any keys the caller adds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.export.artifacts import export_json
from nas.export.formats.base import ExportContext, ExportFormat, write_text


class JsonFormat(ExportFormat):
    name = "json"
    suffix = ".json"
    media_type = "application/json"
    description = "architecture and provenance"
    noun = "an architecture document"
    needs_network = False

    def document(self, ctx: ExportContext) -> dict[str, Any]:
        """The JSON-ready document: ``export_json`` and then ``ctx.document``'s keys."""
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
        )
        data.update(ctx.document or {})
        return data

    def write(self, ctx: ExportContext, path: Path) -> Path:
        return write_text(path, json.dumps(self.document(ctx), indent=2) + "\n")

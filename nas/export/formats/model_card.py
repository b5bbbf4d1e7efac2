"""``model-card``: Markdown with the network's drawing, size, FLOPs, latency measured here,
accuracies, hyperparameters and the reproducing command (``nas.export.card.model_card``)."""

from __future__ import annotations

from pathlib import Path

from nas.export.card import model_card
from nas.export.formats.base import ExportContext, ExportFormat, write_text


class ModelCardFormat(ExportFormat):
    name = "model-card"
    suffix = ".md"
    media_type = "text/markdown"
    description = "Markdown model card"
    noun = "a model card"

    def write(self, ctx: ExportContext, path: Path) -> Path:
        input_shape, _ = ctx.shape(self.name)
        hyperparameters = dict(ctx.hyperparameters or {})
        if ctx.recipe:
            recipe = {f"final.{k}": v for k, v in ctx.recipe.items() if v is not None}
            hyperparameters.update(recipe)
        card = model_card(
            ctx.space,
            ctx.arch,
            ctx.network(self.name),
            input_shape,
            accuracies=ctx.metrics,
            command=ctx.command,
            hyperparameters=hyperparameters,
            job_id=ctx.job_id,
            trial=ctx.trial,
            seed=ctx.seed,
            latency_runs=ctx.latency_runs,
        )
        if ctx.note:
            title, _, rest = card.partition("\n")
            card = f"{title}\n\n{ctx.note}\n{rest}"
        return write_text(path, card)

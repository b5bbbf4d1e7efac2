"""``model-card``: Markdown with the network's drawing, size, FLOPs and MACs, latency measured
here, the search's metrics (each with what it is), hyperparameters, the reproducing command and
provenance."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.architecture import Architecture
from nas.evaluators import metric_note
from nas.export.card import draw_network, measure_latency, model_device
from nas.export.formats.base import ExportContext, ExportFormat, write_text
from nas.export.provenance import package_version
from nas.models import count_parameters
from nas.spaces.base import SearchSpace
from nas.training import count_flops

__all__ = ["ModelCardFormat", "describe_metric", "model_card"]

#: Metrics an export adds about its weights: ``retrained_<name>`` is ``<name>`` of them.
RETRAINED = "retrained_"


#: Metrics that count things (a float in JSON, an integer on the card: 2690, not 2690.00).
COUNTS = frozenset({"params", "flops", "macs", "retrained_params", "retrained_flops"})


def _number(value: Any, name: str = "") -> str:
    if isinstance(value, float) and name in COUNTS and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        # Below 1 (a loss, a latency in seconds) two decimals say too little: 0.015 is not 0.02.
        return f"{value:.4g}" if abs(value) < 1 or abs(value) >= 1e5 else f"{value:.2f}"
    return str(value)


def describe_metric(name: str) -> str:
    """What the metric ``name`` is, for the card's metrics table: as the evaluators describe
    it (``Evaluator.metric_notes``); ``retrained_<name>`` is ``<name>`` of the retrained
    weights; empty when nobody describes it."""
    if name.startswith(RETRAINED):
        base = metric_note(name.removeprefix(RETRAINED))
        return f"these weights, retrained from scratch: {base}" if base else ""
    return metric_note(name) or ""


def model_card(
    space: SearchSpace,
    arch: Architecture,
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    accuracies: Mapping[str, Any] | None = None,
    command: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    job_id: int | None = None,
    trial: int | None = None,
    seed: int | None = None,
    latency_runs: int = 50,
    inputs: str | None = None,
    metric_notes: Mapping[str, str] | None = None,
    adaptation: Mapping[str, Any] | None = None,
) -> str:
    """Markdown: the drawing of ``model`` (built for ``arch``), parameters, FLOPs and MACs,
    latency measured here (median of ``latency_runs`` passes at batch 1), the given metrics
    (``accuracies``: name -> value; each with what it is: ``metric_notes``, else
    ``describe_metric``), how meta-learned weights adapt (``adaptation``, as
    ``ExportContext.adaptation``) and the reproducing ``command``. Every figure says what it
    counts and where it was measured, so that the card's own FLOPs and latency are not
    confused with a table's."""
    space.validate(arch)
    shape = tuple(int(v) for v in input_shape)
    drawing = draw_network(model, arch, shape)
    params = count_parameters(model)
    flops = count_flops(model, shape, model_device(model))
    latency = measure_latency(model, shape, runs=latency_runs)
    classes = getattr(model, "num_classes", None)
    lines = [
        f"# Model card: {space.name} architecture",
        "",
        f"`{arch.key}`",
        "",
        "| | |",
        "|---|---|",
        f"| Search space | {space.name} v{space.version} |",
        f"| Space config | `{json.dumps(space.config)}` |",
        f"| Input shape | {shape} (one example) |",
        *([f"| Inputs | {inputs} |"] if inputs else []),
        f"| Classes | {classes} |",
        f"| Parameters | {params:,} |",
        f"| FLOPs | {flops:,} per example (multiplies and adds counted separately) |",
        (
            f"| MACs | {flops // 2:,} per example (multiply-accumulates: half the FLOPs; "
            "what some benchmarks, NAS-Bench-201 among them, call FLOPs) |"
        ),
        (
            f"| Latency, measured at export | {latency['median_ms']:.3f} ms median of "
            f"{latency['runs']} forward passes at batch size 1 (min {latency['min_ms']:.3f}, "
            f"p90 {latency['p90_ms']:.3f}), on {latency['device']} |"
        ),
        "",
        "## Metrics",
        "",
    ]
    if accuracies:
        lines += ["| metric | value | what it is |", "|---|---|---|"]
        lines += [
            f"| {name} | {_number(value, name)} | "
            f"{(metric_notes or {}).get(name) or describe_metric(name)} |"
            for name, value in accuracies.items()
        ]
    else:
        lines.append("No metric was given.")
    if adaptation:
        lines += ["", "## Adaptation", "", *adaptation_rows(adaptation)]
    lines += ["", "## Architecture", "", "```text", drawing, "```", "", "Genotype:", ""]
    lines += ["```json", json.dumps(space.describe(arch), indent=2), "```"]
    if hyperparameters:
        lines += ["", "## Hyperparameters", "", "| name | value |", "|---|---|"]
        # as the trial ran them (0.07458, not 0.07): the card is what reproduces it
        lines += [f"| {k} | {v} |" for k, v in hyperparameters.items()]
    lines += ["", "## Reproduce", ""]
    lines += ["```bash", command, "```"] if command else ["No command was given."]
    lines += ["", "## Provenance", ""]
    provenance = {"job id": job_id, "trial": trial, "seed": seed}
    lines += [f"- {k}: {v}" for k, v in provenance.items() if v is not None]
    lines += [
        f"- exported by nas-service {package_version()} with torch {torch.__version__}",
        "",
    ]
    return "\n".join(lines)


#: What each ``comparison`` kind of a metric-based learner does, for the model card.
_COMPARISONS = {
    "prototypes": "the nearest class prototype (mean support embedding), squared Euclidean",
    "cosine": "a vote of the support labels, attention by cosine similarity of embeddings",
    "finetune": "a new linear head fitted on the support set's normalised embeddings",
}


def adaptation_rows(adaptation: Mapping[str, Any]) -> list[str]:
    """The model card's table of how meta-learned weights adapt to a new task."""
    rates = adaptation.get("rates")
    step = "learned per parameter (rates.pt)" if rates is not None else adaptation.get("lr")
    comparison = adaptation.get("comparison")
    rows = {
        "algorithm": adaptation.get("algorithm"),
        "loss": adaptation.get("loss"),
        "gradient steps on the support set": adaptation.get("steps"),
        "step size": step,
        "support examples per class (per task for regression)": adaptation.get("shots"),
        "classes per task": adaptation.get("ways"),
    }
    if comparison is not None:  # a metric-based learner: no steps
        rows = {
            "algorithm": adaptation.get("algorithm"),
            "loss": adaptation.get("loss"),
            "a query is labelled by": _COMPARISONS.get(kind := str(comparison.get("kind")), kind)
            + (f" (scale {comparison['scale']})" if "scale" in comparison else "")
            + (
                f" ({comparison.get('steps')} steps of {comparison.get('lr')})"
                if kind == "finetune"
                else ""
            ),
            "embedding": "the network up to its classifier (model.py's classify())",
            "full-context embeddings": None
            if adaptation.get("extra") is None
            else f"LSTMs over the support set, {comparison.get('fce_steps')} attention steps "
            "for a query (context.pt)",
            "support examples per class": adaptation.get("shots"),
            "classes per task": adaptation.get("ways"),
        }
    table = ["| | |", "|---|---|"]
    return table + [f"| {k} | {v} |" for k, v in rows.items() if v is not None]


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
            inputs=ctx.inputs,
            metric_notes=ctx.metric_notes,
            adaptation=ctx.adaptation,
        )
        if ctx.note:
            title, _, rest = card.partition("\n")
            card = f"{title}\n\n{ctx.note}\n{rest}"
        return write_text(path, card)

"""What every export format shares: the context an export is written from, the format
contract, the registry that maps a format's name to it, and the check the network formats
run on their file (the same seeded inputs through the model and the loaded export)."""

from __future__ import annotations

import copy
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError
from nas.export.network import embedding_network, exportable_spaces, load_network
from nas.registry import Registry
from nas.spaces import SPACES
from nas.spaces.base import SearchSpace

__all__ = [
    "EMBEDDING_KEY",
    "FORMATS",
    "GRAPH_EXPORT_LOCK",
    "ExportContext",
    "ExportFormat",
    "FormatRegistry",
    "check_close",
    "cpu_eval_copy",
    "example_inputs",
    "get_format",
    "supported_formats",
    "write_text",
]


#: Where a graph file of a few-shot embedding says what it is (``ExportContext.graph_metadata``):
#: a TorchScript file's extra file of that name, an ONNX model's metadata property.
EMBEDDING_KEY = "nas.embedding.json"

#: One graph export at a time per process: torch's ONNX exporter (``GLOBALS.in_onnx_export``)
#: and the TorchScript tracer keep process-wide state, and a server exports in a thread pool.
GRAPH_EXPORT_LOCK = threading.Lock()


@dataclass(frozen=True, kw_only=True)
class ExportContext:
    """Everything an export may be written from; each format uses what it needs.

    Example:
        >>> ctx = ExportContext(space=space, arch=arch, input_shape=(1, 40), num_classes=10,
        ...                     weights="final/rank0.pt", metrics={"test_accuracy": 91.2})
        >>> FORMATS.get("onnx").write(ctx, Path("model.onnx"))  # doctest: +SKIP
    """

    space: SearchSpace
    arch: Architecture
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    #: What one input is: the data and its preprocessing (``DatasetEntry.inputs``).
    inputs: str | None = None
    #: Trained weights: a state_dict or a ``torch.save``d file of one (``None``: random init).
    weights: str | Path | Mapping[str, torch.Tensor] | None = None
    #: A network already built (and trained) for ``arch``; used instead of ``weights``.
    model: nn.Module | None = None
    #: The space's network options (nb201: channels, cells).
    options: Mapping[str, Any] | None = None
    metrics: Mapping[str, Any] | None = None
    #: What each of ``metrics`` is for this job (its evaluator's settings: e.g. how many
    #: meta-test tasks); the model card falls back on the evaluators' general notes.
    metric_notes: Mapping[str, str] | None = None
    hyperparameters: Mapping[str, Any] | None = None
    #: The training recipe that made ``weights``; the model card lists it as ``final.<name>``.
    recipe: Mapping[str, Any] | None = None
    job_id: int | None = None
    trial: int | None = None
    seed: int | None = None
    #: The command that reproduces the export (the model card shows it).
    command: str | None = None
    latency_runs: int = 50
    #: A paragraph the model card shows under its title.
    note: str | None = None
    #: Keys added at the end of the JSON document (also the bundle's ``architecture.json``).
    document: Mapping[str, Any] | None = None
    #: Write the form a person downloads where the format has one (``bundle_suffix``).
    bundle: bool = False
    #: Meta-learned ``weights``: how they adapt to a new task (``MetaWeights.adaptation``:
    #: ``algorithm``, ``loss``, ``steps``, ``lr``, ``rates``: Meta-SGD's per-parameter step
    #: sizes by parameter name, or ``None``; optionally ``shots``, the support examples per
    #: class (regression: per task) a task gave at evaluation, and ``ways``, its classes);
    #: the pytorch export then writes ``adapt``, the JSON and the model card say how. With
    #: a ``comparison`` (a metric-based learner's embedding) it writes ``classify`` instead.
    adaptation: Mapping[str, Any] | None = None

    def shape(self, fmt: str) -> tuple[tuple[int, ...], int]:
        """Input shape and classes, which every network format needs."""
        if self.input_shape is None or self.num_classes is None:
            raise ExportError(f"the {fmt} export needs input_shape and num_classes")
        return tuple(int(v) for v in self.input_shape), int(self.num_classes)

    def network(self, fmt: str) -> nn.Module:
        """``model`` when given, else the network built for ``arch`` with ``weights`` loaded
        strictly, in eval mode."""
        if self.model is not None:
            return self.model
        input_shape, num_classes = self.shape(fmt)
        return load_network(
            self.space, self.arch, input_shape, num_classes, self.weights, self.options
        )

    @property
    def comparison(self) -> Mapping[str, Any] | None:
        """How a few-shot learner labels a task's queries from the embeddings of its network
        less the classifier (``adaptation["comparison"]``), else ``None``."""
        return None if self.adaptation is None else self.adaptation.get("comparison")

    def graph(self, fmt: str) -> tuple[nn.Module, str]:
        """What a graph format (TorchScript, ONNX) holds and the name of its output: the
        network (``logits``) or, with a ``comparison``, its embedding (``embedding``:
        ``nas.export.network.embedding_network``)."""
        network = self.network(fmt)
        if self.comparison is None:
            return network, "logits"
        return embedding_network(network, self.comparison), "embedding"

    def graph_metadata(self) -> dict[str, str]:
        """What a graph file records beside its graph: with a ``comparison``, under
        ``EMBEDDING_KEY``, JSON saying that it answers embeddings and how a task's queries
        are labelled from them."""
        if self.comparison is None:
            return {}
        adaptation = self.adaptation or {}
        described = {
            "output": "embedding",
            "algorithm": adaptation.get("algorithm"),
            "comparison": dict(self.comparison),
            "batch_statistics": bool(self.comparison.get("batch_statistics", True)),
            "ways": adaptation.get("ways"),
            "shots": adaptation.get("shots"),
            "classify": "the pytorch export's model.py: classify(model, support_x, support_y, "
            "query_x) does the comparison",
        }
        return {EMBEDDING_KEY: json.dumps(described)}


class ExportFormat(ABC):
    """One export format: what its file is, what it needs, and how it is written.

    Subclasses live one per module in this package and register an instance in ``FORMATS``
    under ``name``; callers look a format up there and call ``write`` (never test its name).
    """

    name: ClassVar[str]
    suffix: ClassVar[str]
    media_type: ClassVar[str]
    description: ClassVar[str]
    #: What the file holds, with its article, for messages ("a TorchScript model").
    noun: ClassVar[str]
    #: It holds a network: only spaces with a network (``SearchSpace.network_class``) export it.
    needs_network: ClassVar[bool] = True
    #: Useful only with trained weights (a service refuses it without, unless asked).
    needs_weights: ClassVar[bool] = False
    #: It writes the network's weights (random ones where it has none to write).
    holds_weights: ClassVar[bool] = False
    #: Suffix and media type of the bundled form (``ExportContext.bundle``), if it has one.
    bundle_suffix: ClassVar[str | None] = None
    bundle_media_type: ClassVar[str | None] = None

    def file_suffix(self, bundle: bool = False) -> str:
        return self.bundle_suffix if bundle and self.bundle_suffix else self.suffix

    def file_media_type(self, bundle: bool = False) -> str:
        return self.bundle_media_type if bundle and self.bundle_media_type else self.media_type

    @abstractmethod
    def write(self, ctx: ExportContext, path: Path) -> Path:
        """Write the export of ``ctx`` to ``path`` (its folder is created) and return it."""

    def __repr__(self) -> str:
        return f"<export format {self.name}>"


class FormatRegistry(Registry[ExportFormat]):
    """The formats in the order they were registered, which is the order users read them in
    (json first), rather than sorted."""

    def names(self) -> list[str]:
        return list(self._entries)


FORMATS: FormatRegistry = FormatRegistry("export format")


def supported_formats(space: SearchSpace | str) -> list[str]:
    """The format names that ``space`` (or a registered space's name) exports to."""
    if isinstance(space, str):
        has_network = space in SPACES and SPACES.get(space).network_class is not None
    else:
        has_network = space.network_class is not None
    return [n for n in FORMATS if has_network or not FORMATS.get(n).needs_network]


def get_format(fmt: str, space: SearchSpace | str | None = None) -> ExportFormat:
    """The format called ``fmt``; ``ExportError`` if there is none, or if ``space`` cannot
    export to it."""
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if space is not None and fmt not in supported_formats(space):
        name = space if isinstance(space, str) else space.name
        raise ExportError(
            f"space {name!r} cannot export to {fmt}: it has no network to build (it exports "
            f"to {', '.join(supported_formats(space))}); spaces with a network: "
            f"{', '.join(exportable_spaces())}"
        )
    return FORMATS.get(fmt)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- checking a network export by loading it back ------------------------------------------
def cpu_eval_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on CPU in eval mode, so exporting leaves the caller's model as is."""
    return copy.deepcopy(model).cpu().eval()


def example_inputs(input_shape: Sequence[int], *batches: int) -> list[torch.Tensor]:
    """One seeded random input per batch size in ``batches`` (the same on every call)."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(b, *input_shape, generator=generator) for b in batches]


def check_close(name: str, expected: torch.Tensor, got: Any, atol: float) -> None:
    """``ExportError`` unless the ``name`` export's outputs ``got`` (a tensor or an array)
    have ``expected``'s shape and are within ``atol`` of it, relative to its scale."""
    got = torch.as_tensor(np.asarray(got)) if not isinstance(got, torch.Tensor) else got
    if got.shape != expected.shape:
        raise ExportError(
            f"the {name} export gives shape {tuple(got.shape)}, not {tuple(expected.shape)}"
        )
    gap = (got.float() - expected.float()).abs().max().item()
    if not gap <= atol + atol * expected.abs().max().item():
        raise ExportError(f"the {name} export's outputs differ from the model's by {gap:g}")

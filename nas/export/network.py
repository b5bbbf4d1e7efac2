"""The networks that exports are made from: each space builds its own
(``SearchSpace.build_network``); these helpers add what an export needs on top: a clear
error for a space without a network, weights loaded strictly, and a few-shot learner's
embedding (the network less its classifier) in a form the graph exporters keep."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError, WeightsMismatchError
from nas.models.base import SpaceNetwork
from nas.spaces import SPACES
from nas.spaces.base import SearchSpace

__all__ = ["build_network", "embedding_network", "exportable_spaces", "load_network"]


def exportable_spaces() -> list[str]:
    """Names of the spaces whose architectures build into a network (and so export as code,
    TorchScript, ONNX and a model card); every space exports as JSON."""
    return [name for name in SPACES if SPACES.get(name).network_class is not None]


def build_network(
    space: SearchSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    options: Mapping[str, Any] | None = None,
) -> SpaceNetwork:
    """A freshly initialised network for ``arch`` (``options``: the space's network options,
    e.g. nb201's channels and cells). Raises ``ExportError`` for a space without a network."""
    if space.network_class is None:
        raise ExportError(
            f"space {space.name!r} has no network to export (it exports as json only); "
            f"spaces with a network: {', '.join(exportable_spaces())}"
        )
    options = space.network_options(options)  # checked before the architecture, as ever
    space.validate(arch)
    return space.build_network(input_shape, num_classes, arch, options=options)


def load_network(
    space: SearchSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    weights: str | Path | Mapping[str, torch.Tensor] | None = None,
    options: Mapping[str, Any] | None = None,
) -> SpaceNetwork:
    """``build_network`` in eval mode with ``weights`` (a state_dict or a ``torch.save``d file
    of one, e.g. ``final/rank0.pt``) loaded strictly; ``None`` keeps the random init."""
    model = build_network(space, arch, input_shape, num_classes, options)
    if weights is not None:
        state = weights
        if isinstance(weights, str | Path):
            state = torch.load(weights, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state, strict=True)  # type: ignore[arg-type]
        except RuntimeError as error:
            raise WeightsMismatchError(
                f"the weights do not fit {space.name} {arch.key} built for input "
                f"{tuple(input_shape)} and {num_classes} classes (was the space config, e.g. "
                f"the final channels, the same?): {error}"
            ) from None
    return model.eval()


def embedding_network(model: nn.Module, comparison: Mapping[str, Any]) -> nn.Module:
    """A copy of ``model`` (a ``SpaceNetwork``) that answers the embedding a few-shot learner
    compares (``MetaWeights.comparison``): its classifier an identity
    (``SpaceNetwork.drop_classifier``), in eval mode. Where the learner normalised each batch
    by its own statistics (``batch_statistics``, true unless the comparison says false: the
    metric-based learners), its batch norms do so as explicit reductions, which trace into
    TorchScript and ONNX alike; a graph then answers a task's examples embedded together.
    ``ExportError`` for full-context embeddings (``fce_steps``): LSTMs over the support set
    that no per-example graph holds."""
    if comparison.get("fce_steps") is not None:
        raise ExportError(
            "a Matching Networks embedding with full-context embeddings (fce) reads the "
            "support set with LSTMs, which a per-example graph cannot hold: export pytorch, "
            "whose model.py's classify() runs them (context.pt)"
        )
    if not isinstance(model, SpaceNetwork):
        raise ExportError(f"an embedding is taken from a space's network, not {type(model)}")
    embedding = copy.deepcopy(model).cpu().eval()
    embedding.drop_classifier()
    if comparison.get("batch_statistics", True):
        for name, module in list(embedding.named_modules()):
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                *parents, last = name.split(".")
                owner = embedding.get_submodule(".".join(parents))
                setattr(owner, last, _BatchStatisticsNorm(module))
    return embedding


class _BatchStatisticsNorm(nn.Module):
    """A batch norm that normalises each batch by its own statistics (biased variance, as
    ``torch.nn.functional.batch_norm`` in training mode), written out so that the graph
    exporters keep it so rather than folding in running statistics."""

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.eps = float(norm.eps)
        self.weight = None if norm.weight is None else nn.Parameter(norm.weight.detach().clone())
        self.bias = None if norm.bias is None else nn.Parameter(norm.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        mean = x.mean(dim=dims, keepdim=True)
        variance = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        y = (x - mean) / torch.sqrt(variance + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(shape)
        if self.bias is not None:
            y = y + self.bias.view(shape)
        return y

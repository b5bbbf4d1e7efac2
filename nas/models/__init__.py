"""Networks built from architectures: ``build_supernet`` (shared weights) and ``build_model``
(a standalone child). Both use the op vocabulary of ``nas.ops``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nas.architecture import Architecture
from nas.errors import UnknownNameError
from nas.models.base import SpaceNetwork
from nas.models.macro import MacroNetwork
from nas.models.metaqnn import MetaQNNNetwork
from nas.models.micro import MicroNetwork
from nas.spaces.base import SearchSpace

NETWORKS: dict[str, type[SpaceNetwork]] = {
    "enas-macro": MacroNetwork,
    "enas-micro": MicroNetwork,
    "metaqnn": MetaQNNNetwork,
}


def _network_class(space: SearchSpace) -> type[SpaceNetwork]:
    try:
        return NETWORKS[space.name]
    except KeyError:
        raise UnknownNameError("trainable space", space.name, sorted(NETWORKS)) from None


def build_supernet(
    space: SearchSpace, input_shape: Sequence[int], num_classes: int
) -> SpaceNetwork:
    """The shared-weight supernet of ``space`` for data of ``input_shape`` (C, L) or (C, H, W)."""
    return _network_class(space)(space, input_shape, num_classes)


def build_model(
    space: SearchSpace, arch: Architecture, input_shape: Sequence[int], num_classes: int
) -> SpaceNetwork:
    """A freshly initialised standalone network for one architecture."""
    return _network_class(space)(space, input_shape, num_classes, arch)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "NETWORKS",
    "MacroNetwork",
    "MetaQNNNetwork",
    "MicroNetwork",
    "SpaceNetwork",
    "build_model",
    "build_supernet",
    "count_parameters",
]

"""Networks built from architectures: ``build_supernet`` (shared weights) and ``build_model``
(a standalone child), for the spaces that train here (``SearchSpace.trainable``).

Each space builds its own network (``SearchSpace.build_network``; the network class lives in
the space's module): these functions add the check that the space trains here. The op
vocabulary is ``nas.ops``; what every network shares is ``nas.models.base``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

from nas.architecture import Architecture
from nas.errors import UnknownNameError
from nas.models.base import ClassifierHead, NetworkSource, SpaceNetwork

if TYPE_CHECKING:
    # Not at run time: the space modules import nas.models.base, which runs this file first.
    from nas.spaces.base import SearchSpace


def _check_trainable(space: SearchSpace) -> None:
    if not space.trainable:
        from nas.spaces import SPACES

        trainable = [name for name in SPACES if SPACES.get(name).trainable]
        raise UnknownNameError("trainable space", space.name, trainable)


def build_supernet(
    space: SearchSpace, input_shape: Sequence[int], num_classes: int
) -> SpaceNetwork:
    """The shared-weight supernet of ``space`` for data of ``input_shape`` (C, L) or (C, H, W)."""
    _check_trainable(space)
    return space.build_network(input_shape, num_classes)


def build_model(
    space: SearchSpace, arch: Architecture, input_shape: Sequence[int], num_classes: int
) -> SpaceNetwork:
    """A freshly initialised standalone network for one architecture."""
    _check_trainable(space)
    return space.build_network(input_shape, num_classes, arch)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "ClassifierHead",
    "NetworkSource",
    "SpaceNetwork",
    "build_model",
    "build_supernet",
    "count_parameters",
]

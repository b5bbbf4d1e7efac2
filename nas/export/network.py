"""The networks that exports are made from: each space builds its own
(``SearchSpace.build_network``); these helpers add what an export needs on top: a clear
error for a space without a network, and weights loaded strictly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from nas.architecture import Architecture
from nas.errors import ExportError
from nas.models.base import SpaceNetwork
from nas.spaces import SPACES
from nas.spaces.base import SearchSpace

__all__ = ["build_network", "exportable_spaces", "load_network"]


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
            raise ExportError(
                f"the weights do not fit {space.name} {arch.key} built for input "
                f"{tuple(input_shape)} and {num_classes} classes (was the space config, e.g. "
                f"the final channels, the same?): {error}"
            ) from None
    return model.eval()

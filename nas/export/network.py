"""The networks that exports are made from: ``build_model`` for the spaces of ``nas.models``
(ENAS macro and micro, MetaQNN), and a NAS-Bench-201 network (the benchmark's own topology)
for ``nb201``, which ``nas.models`` does not build because its search reads accuracies from
a table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError
from nas.models import NETWORKS, build_model
from nas.models.base import SpaceNetwork
from nas.models.metaqnn import MetaQNNNetwork
from nas.ops import OPS, ReLUConvBN, batch_norm, conv_layer
from nas.spaces.base import SearchSpace
from nas.spaces.metaqnn import CONV, FC, GAP, PAD, POOL, SM
from nas.spaces.nb201 import NB201_EDGES, NB201_OPS, Nb201Space

#: Options of the nb201 network (its space has no parameters): the benchmark's defaults.
NB201_DEFAULTS: dict[str, int] = {"channels": 16, "cells": 5}

__all__ = [
    "NB201_DEFAULTS",
    "Nb201Cell",
    "Nb201Network",
    "ResNetBlock",
    "build_network",
    "exportable_spaces",
    "load_network",
    "metaqnn_layers",
    "network_options",
]


class ResNetBlock(nn.Module):
    """NAS-Bench-201's reduction block: two 3x3 ReLU-conv-BN (the first with stride 2) plus
    a shortcut of 2x2 average pooling and a 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, dim: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, dim)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, dim)
        pool = nn.AvgPool1d if dim == 1 else nn.AvgPool2d
        # ceil_mode: odd sizes round up, as the stride-2 conv does.
        self.downsample = nn.Sequential(
            pool(2, stride=2, ceil_mode=True), conv_layer(dim)(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class Nb201Cell(nn.Module):
    """The 4-node NAS-Bench-201 cell; ``edges`` follow the ``arch_str`` order."""

    def __init__(self, ops: Sequence[str], channels: int, dim: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(OPS[op](channels, channels, 1, dim) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in range(1, 4):
            out: torch.Tensor | None = None
            for edge, (t, source) in enumerate(NB201_EDGES):
                if t == target:
                    y = self.edges[edge](nodes[source])
                    out = y if out is None else out + y
            nodes.append(out)  # type: ignore[arg-type]
        return nodes[-1]


class Nb201Network(SpaceNetwork[Nb201Space]):
    """NAS-Bench-201's network for one cell: stem, three stages of ``cells`` cells with a
    ``ResNetBlock`` (doubling the channels) between stages, BN-ReLU, pooling, linear.
    Children only (no supernet); works on 1-D signals and 2-D images."""

    def __init__(
        self,
        space: Nb201Space,
        input_shape: Sequence[int],
        num_classes: int,
        arch: Architecture,
        *,
        channels: int = 16,
        cells: int = 5,
    ) -> None:
        super().__init__(space, input_shape, num_classes, arch)
        dim, c = self.dim, channels
        ops = [NB201_OPS[choice] for choice in arch.choices]
        self.stem = nn.Sequential(
            conv_layer(dim)(self.input_shape[0], c, 3, padding=1, bias=False), batch_norm(dim, c)
        )
        self.cells = nn.ModuleList()
        for stage in range(3):
            if stage > 0:
                self.cells.append(ResNetBlock(c, 2 * c, dim))
                c *= 2
            for _ in range(cells):
                self.cells.append(Nb201Cell(ops, c, dim))
        self.lastact = nn.Sequential(batch_norm(dim, c), nn.ReLU())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        self._resolve(arch)
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.classifier(self.lastact(x).flatten(2).mean(dim=2))


def metaqnn_layers(model: MetaQNNNetwork) -> list[tuple[str, str, list[int]]]:
    """The layers of a metaqnn network, in order, as ``(label, kind, positions)``: the labels
    of ``space.labels(arch)`` (``SM``, the classifier, last), the layer kind and the indices in
    ``model.body`` of the modules that make the layer (``SM``: the ``Flatten`` before the
    classifier, if any). The source writer comments the body with these; the card draws them."""
    space, arch = model.space, model.fixed_arch
    if arch is None:  # pragma: no cover - MetaQNNNetwork builds children only
        raise ExportError("a metaqnn network without an architecture")
    body = list(model.body)

    def take(cls: type[nn.Module], at: int) -> int:
        return at + 1 if at < len(body) and isinstance(body[at], cls) else at

    layers: list[tuple[str, str, list[int]]] = []
    position = 0
    for choice in arch.choices:
        action = space.actions[choice]
        if action.kind == PAD:
            break
        start = position
        if action.kind == CONV:
            position += 3  # conv, BN, ReLU
        elif action.kind == POOL:
            position += 1
        elif action.kind == FC:  # [Flatten,] Linear, ReLU[, Dropout]
            position = take(nn.Dropout, take(nn.Flatten, position) + 2)
        elif action.kind == GAP:
            position += 2  # adaptive average pooling, Flatten
        else:
            position = take(nn.Flatten, position)
        layers.append((action.label, action.kind, list(range(start, position))))
    if layers and layers[-1][1] == GAP:
        layers.append(("SM", SM, []))
    if position != len(body):  # pragma: no cover - the network builder changed
        raise ExportError(
            f"the metaqnn body has {len(body)} modules but its layers account for {position}"
        )
    return layers


def exportable_spaces() -> list[str]:
    """Names of the spaces whose architectures build into a network (and so export as code,
    TorchScript, ONNX and a model card); every space exports as JSON."""
    return sorted({*NETWORKS, Nb201Space.name})


def network_options(space: SearchSpace, options: Mapping[str, Any] | None) -> dict[str, int]:
    """The validated network options of ``space``: only nb201 has any (``channels``,
    ``cells``); the other spaces take their widths from the space config."""
    options = dict(options or {})
    if space.name != Nb201Space.name:
        if options:
            raise ExportError(
                f"space {space.name!r} takes no network options (got {sorted(options)}); "
                "its widths come from the space config"
            )
        return {}
    unknown = sorted(set(options) - set(NB201_DEFAULTS))
    if unknown:
        raise ExportError(f"unknown nb201 network options {unknown}; valid: channels, cells")
    merged = {**NB201_DEFAULTS, **options}
    for key, value in merged.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ExportError(
                f"nb201 network option {key} must be a positive integer, got {value!r}"
            )
    return merged


def build_network(
    space: SearchSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """A freshly initialised network for ``arch``: ``build_model`` for the ENAS and MetaQNN
    spaces, an ``Nb201Network`` (``options``: channels, cells) for nb201. Raises
    ``ExportError`` for a space without a network."""
    opts = network_options(space, options)
    space.validate(arch)
    if space.name == Nb201Space.name:
        return Nb201Network(space, input_shape, num_classes, arch, **opts)  # type: ignore[arg-type]
    if space.name in NETWORKS:
        return build_model(space, arch, input_shape, num_classes)
    raise ExportError(
        f"space {space.name!r} has no network to export (it exports as json only); "
        f"spaces with a network: {', '.join(exportable_spaces())}"
    )


def load_network(
    space: SearchSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    weights: str | Path | Mapping[str, torch.Tensor] | None = None,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
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

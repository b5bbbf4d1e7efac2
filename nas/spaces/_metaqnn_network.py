"""The ``metaqnn`` network: a plain chain, built only as a standalone child.

Part of the ``metaqnn`` space (``nas.spaces.metaqnn`` imports it and names it its
``network_class``; nothing else registers it), kept apart only for length. It also holds the
layer kinds of the space's vocabulary, because the space module imports this one.

``C(f,d)`` is conv (stride 1, "same" padding) -> BN -> ReLU (the paper: ReLU convolutions;
BN keeps the short trainings of a search stable), ``P(k)`` max pooling with stride 2 (kernel
2 with ceil mode, kernel 3 with padding 1: both give ``ceil(R/2)``, also for ``R = 1``),
``FC(u)`` flatten (first one) -> linear -> ReLU -> dropout, ``GAP`` global average pooling,
and the classifier (dropout -> linear) after ``GAP`` or directly on the flattened
representation (``SM``). There is no weight-sharing supernet: MetaQNN trains every
architecture from scratch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError
from nas.models.base import NetworkSource, SpaceNetwork
from nas.ops import batch_norm, conv_layer

if TYPE_CHECKING:
    from nas.export.card import Drawing
    from nas.export.source import SourceWriter
    from nas.spaces.metaqnn import MetaQNNSpace

#: Layer kinds of the vocabulary, in its order.
CONV, POOL, FC, GAP, SM, PAD = "conv", "pool", "fc", "gap", "sm", "pad"
TERMINALS = (GAP, SM)

#: One MetaQNN layer of a built network: its label, kind and the indices in ``body`` of the
#: modules that make it.
Layer = tuple[str, str, list[int]]


def _max_pool(kernel: int, dim: int) -> nn.Module:
    cls = nn.MaxPool1d if dim == 1 else nn.MaxPool2d
    if kernel == 2:
        return cls(2, stride=2, ceil_mode=True)
    return cls(kernel, stride=2, padding=kernel // 2)


class MetaQNNNetwork(SpaceNetwork["MetaQNNSpace"]):
    """One MetaQNN architecture for ``(C, L)`` signals or ``(C, H, W)`` images.

    Example:
        >>> space = MetaQNNSpace(max_layers=4, input_size=40, channels=16)
        >>> arch = space.from_labels(["C(3,8)", "P(2)", "FC(64)", "SM"])
        >>> MetaQNNNetwork(space, (1, 40), 10, arch)(torch.zeros(2, 1, 40)).shape
        torch.Size([2, 10])
    """

    classifier_path = "classifier"

    def __init__(
        self,
        space: MetaQNNSpace,
        input_shape: Sequence[int],
        num_classes: int,
        arch: Architecture | None = None,
    ) -> None:
        super().__init__(space, input_shape, num_classes, arch)
        if arch is None:
            raise ValueError(
                "metaqnn has no shared-weight supernet (MetaQNN trains each architecture from "
                "scratch): use the standalone evaluator"
            )
        # The data's spatial size matches the space's input_size: the base checked it.
        dim, channels, sizes = self.dim, self.input_shape[0], list(self.input_shape[1:])
        layers: list[nn.Module] = []
        flat = False
        features = channels
        for choice in arch.choices:
            action = space.actions[choice]
            if action.kind == PAD:
                break
            if action.kind == CONV:
                layers += [
                    conv_layer(dim)(
                        channels,
                        action.width,
                        action.kernel,
                        padding=action.kernel // 2,
                        bias=False,
                    ),
                    batch_norm(dim, action.width),
                    nn.ReLU(inplace=True),
                ]
                channels = action.width
            elif action.kind == POOL:
                layers.append(_max_pool(action.kernel, dim))
                sizes = [math.ceil(s / 2) for s in sizes]
            elif action.kind == FC:
                if not flat:
                    layers.append(nn.Flatten())
                    features, flat = channels * math.prod(sizes), True
                layers += [nn.Linear(features, action.width), nn.ReLU(inplace=True)]
                if space.dropout > 0:
                    layers.append(nn.Dropout(space.dropout))
                features = action.width
            elif action.kind == GAP:
                pool = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
                layers += [pool, nn.Flatten()]
                features = channels
            else:  # SM: the classifier on the flattened representation
                if not flat:
                    layers.append(nn.Flatten())
                    features = channels * math.prod(sizes)
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(space.dropout) if space.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        self._resolve(arch)
        return self.classifier(self.dropout(self.body(x)))

    def layers(self) -> list[Layer]:
        """The MetaQNN layers, in order, as ``(label, kind, positions)``: the labels of
        ``space.labels(arch)`` (``SM``, the classifier, last), the layer kind and the indices
        in ``body`` of the modules that make the layer (``SM``: the ``Flatten`` before the
        classifier, if any). The source comments the body with these; the card draws them."""
        space, arch = self.space, self._resolve(None)
        body = list(self.body)

        def take(cls: type[nn.Module], at: int) -> int:
            return at + 1 if at < len(body) and isinstance(body[at], cls) else at

        layers: list[Layer] = []
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

    # --- export hooks ------------------------------------------------------------------------
    def write_source(self, writer: SourceWriter) -> NetworkSource:
        """The body as one ``nn.Sequential`` with a comment per MetaQNN layer: its label, the
        body indices of its modules (the state_dict's ``body.<i>``) and its output shape."""
        shapes: list[tuple[int, ...]] = []
        with torch.no_grad():
            h = torch.zeros(1, *self.input_shape)
            for module in self.body:
                h = module(h)
                shapes.append(tuple(h.shape[1:]))
        indent, level = writer.INDENT, 2
        pad = indent * (level + 1)
        lines = []
        for label, kind, positions in self.layers():
            if not positions:
                continue
            first, last = positions[0], positions[-1]
            where = f"body.{first}" if first == last else f"body.{first}-{last}"
            then = " (the classifier follows)" if kind == SM else ""
            lines.append(f"{pad}# {label}: {where}, output {shapes[last]}{then}")
            lines += [f"{pad}{writer.expr(self.body[i], level + 1)}," for i in positions]
        body = "nn.Sequential(\n" + "\n".join(lines) + f"\n{indent * level})"
        forward = (
            f"{indent}def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
            f"{indent * 2}return self.classifier(self.dropout(self.body(x)))\n"
        )
        return NetworkSource(forward=forward, attributes={"body": body})

    def draw(self, arch: Architecture, drawing: Drawing) -> str:
        """One row per MetaQNN layer, named by its label (``C(3,32)``, ``P(2)``, ``FC(64)``,
        ``GAP``, ``SM``), with the body modules that make it and its output shape."""
        layers = self.layers()
        ends = [self.body[positions[-1]] for _, _, positions in layers if positions]
        shapes = drawing.shapes([*ends, self.classifier])
        dropout = self.space.dropout
        lines = [drawing.row("input", "", drawing.input_shape)]
        for label, kind, positions in layers:
            flatten = bool(positions) and isinstance(self.body[positions[0]], nn.Flatten)
            parts = ["flatten"] if flatten else []
            if kind == CONV:
                conv = self.body[positions[0]]
                parts = [f"conv{_side(conv.kernel_size)} x {conv.out_channels}", "BN", "ReLU"]
            elif kind == POOL:
                parts = [f"max pool {_side(self.body[positions[0]].kernel_size)}, stride 2"]
            elif kind == FC:
                parts += ["linear", "ReLU"] + ([f"dropout {dropout:g}"] if dropout > 0 else [])
            elif kind == GAP:
                parts = ["global avg pool"]
            else:  # SM: the classifier
                parts += [f"dropout {dropout:g}"] if dropout > 0 else []
                parts.append(f"linear -> {self.num_classes} logits")
            last = self.classifier if kind == SM else self.body[positions[-1]]
            lines += ["  |", drawing.row(label, " -> ".join(parts), shapes[id(last)])]
        lines += ["", "layers: " + " -> ".join(label for label, _, _ in layers)]
        return "\n".join(lines)


def _side(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else value[0]

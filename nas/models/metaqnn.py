"""The ``metaqnn`` network: a plain chain, built only as a standalone child.

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

import torch
from torch import nn

from nas.architecture import Architecture
from nas.models.base import SpaceNetwork
from nas.ops import batch_norm, conv_layer
from nas.spaces.metaqnn import CONV, FC, GAP, PAD, POOL, MetaQNNSpace


def _max_pool(kernel: int, dim: int) -> nn.Module:
    cls = nn.MaxPool1d if dim == 1 else nn.MaxPool2d
    if kernel == 2:
        return cls(2, stride=2, ceil_mode=True)
    return cls(kernel, stride=2, padding=kernel // 2)


class MetaQNNNetwork(SpaceNetwork[MetaQNNSpace]):
    """One MetaQNN architecture for ``(C, L)`` signals or ``(C, H, W)`` images.

    Example:
        >>> space = MetaQNNSpace(max_layers=4, input_size=40, channels=16)
        >>> arch = space.from_labels(["C(3,8)", "P(2)", "FC(64)", "SM"])
        >>> MetaQNNNetwork(space, (1, 40), 10, arch)(torch.zeros(2, 1, 40)).shape
        torch.Size([2, 10])
    """

    has_supernet = False

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
        spatial = self.input_shape[1:]
        if max(spatial) != space.input_size:
            raise ValueError(
                f"space metaqnn has input_size {space.input_size} but the data's spatial size "
                f"is {tuple(spatial)}; set the space's input_size to {max(spatial)}"
            )
        dim, channels, sizes = self.dim, self.input_shape[0], list(spatial)
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

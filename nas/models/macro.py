"""The ``enas-macro`` network, as a supernet or as a standalone child."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn

from nas.architecture import Architecture
from nas.models.base import ClassifierHead, SpaceNetwork
from nas.ops import OPS, FactorizedReduce, batch_norm, conv_layer
from nas.spaces.macro import MACRO_OPS, MacroSpace

Plan = tuple[tuple[tuple[str, tuple[int, ...]], ...], frozenset[tuple[int, int]]]


def _reduce_key(point: int, source: int) -> str:
    return f"at{point}_from{source}"


class MacroNetwork(SpaceNetwork[MacroSpace]):
    """Layer ``i`` computes ``op_i(h_{i-1}) + sum_{j in skips_i} h_j``. Before each reduction
    layer every earlier output that is still read later goes through a ``FactorizedReduce``
    to the new resolution and channel count, so skips always add tensors of equal shape.

    Example:
        >>> space = MacroSpace(layers=4, channels=8)
        >>> supernet = MacroNetwork(space, (1, 40), 10)
        >>> arch = space.sample(np.random.default_rng(0))
        >>> supernet(torch.zeros(2, 1, 40), arch).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        space: MacroSpace,
        input_shape: Sequence[int],
        num_classes: int,
        arch: Architecture | None = None,
    ) -> None:
        super().__init__(space, input_shape, num_classes, arch)
        dim, c = self.dim, space.channels
        self.stem = nn.Sequential(
            conv_layer(dim)(self.input_shape[0], c, 3, padding=1, bias=False),
            batch_norm(dim, c),
        )
        self.channels: list[int] = []
        for layer in range(space.layers):
            if layer in space.reductions:
                c *= space.channel_growth
            self.channels.append(c)

        plan = self.plan(arch) if arch is not None else None
        self.layers = nn.ModuleList()
        for layer, channels in enumerate(self.channels):
            names = MACRO_OPS if plan is None else (plan[0][layer][0],)
            self.layers.append(
                nn.ModuleDict({op: OPS[op](channels, channels, 1, dim) for op in names})
            )
        self.reduce = nn.ModuleDict()
        for point in space.reductions:
            for source in range(point):
                if plan is None or (point, source) in plan[1]:
                    self.reduce[_reduce_key(point, source)] = FactorizedReduce(
                        self.channels[point - 1], self.channels[point], dim
                    )
        self.head = ClassifierHead(self.channels[-1], num_classes, space.dropout)

    def plan(self, arch: Architecture) -> Plan:
        """Per layer the op and skip sources, and the (reduction point, source) pairs that
        this architecture needs: a source is reduced at a point if a layer at or after the
        point still reads it."""
        return _plan(self.space, arch)

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        layers, needed = self.plan(self._resolve(arch))
        reductions = self.space.reductions
        prev = self.stem(x)
        outputs: list[torch.Tensor | None] = []
        for index, (op, skips) in enumerate(layers):
            if index in reductions:
                outputs = [
                    self.reduce[_reduce_key(index, j)](h) if (index, j) in needed else None
                    for j, h in enumerate(outputs)
                ]
                prev = outputs[index - 1]  # type: ignore[assignment]
            out = self.layers[index][op](prev)
            for j in skips:
                out = out + outputs[j]  # type: ignore[operator]
            outputs.append(out)
            prev = out
        return self.head(prev)


@lru_cache(maxsize=4096)
def _plan(space: MacroSpace, arch: Architecture) -> Plan:
    layers = tuple(space.layer_choices(arch))
    last_reader = {j: j + 1 for j in range(len(layers))}  # the next layer reads it as input
    for reader, (_, skips) in enumerate(layers):
        for j in skips:
            last_reader[j] = max(last_reader[j], reader)
    needed = frozenset(
        (point, source)
        for point in space.reductions
        for source in range(point)
        if last_reader[source] >= point
    )
    return layers, needed

"""The ``enas-micro`` network, as a supernet or as a standalone child."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas.architecture import Architecture
from nas.models.base import ClassifierHead, SpaceNetwork
from nas.ops import OPS, FactorizedReduce, ReLUConvBN, batch_norm, conv_layer
from nas.spaces.micro import MICRO_OPS, MicroSpace

NodeChoice = tuple[int, int, str, str]


def _edge_key(node: int, slot: int, source: int, op: str) -> str:
    return f"n{node}_s{slot}_i{source}_{op}"


class Cell(nn.Module):
    """One cell: preprocess both inputs to ``channels``, then ``nodes`` nodes, each the sum of
    two ops on earlier states; the output concatenates all nodes."""

    def __init__(
        self,
        *,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        nodes: int,
        dim: int,
        choices: Sequence[NodeChoice] | None,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0: nn.Module = (
            FactorizedReduce(c_prev_prev, channels, dim)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, channels, 1, 1, dim)
        )
        self.pre1 = ReLUConvBN(c_prev, channels, 1, 1, dim)
        self.edges = nn.ModuleDict()
        for node in range(nodes):
            for slot in (0, 1):
                if choices is None:
                    options = [(s, op) for s in range(node + 2) for op in MICRO_OPS]
                else:
                    in0, in1, op0, op1 = choices[node]
                    options = [(in0, op0) if slot == 0 else (in1, op1)]
                for source, op in options:
                    stride = 2 if reduction and source < 2 else 1
                    self.edges[_edge_key(node, slot, source, op)] = OPS[op](
                        channels, channels, stride, dim
                    )

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, choices: Sequence[NodeChoice]
    ) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node, (in0, in1, op0, op1) in enumerate(choices):
            a = self.edges[_edge_key(node, 0, in0, op0)](states[in0])
            b = self.edges[_edge_key(node, 1, in1, op1)](states[in1])
            states.append(a + b)
        return torch.cat(states[2:], dim=1)


class MicroNetwork(SpaceNetwork[MicroSpace]):
    """Stem, then ``stages`` stages of ``cells`` normal cells with a reduction cell (doubling
    the channels) between stages, then the classifier head.

    Example:
        >>> space = MicroSpace(nodes=2, cells=1, stages=2, channels=4)
        >>> supernet = MicroNetwork(space, (3, 8, 8), 10)
        >>> arch = space.sample(np.random.default_rng(0))
        >>> supernet(torch.zeros(2, 3, 8, 8), arch).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        space: MicroSpace,
        input_shape: Sequence[int],
        num_classes: int,
        arch: Architecture | None = None,
    ) -> None:
        super().__init__(space, input_shape, num_classes, arch)
        dim, c, nodes = self.dim, space.channels, space.nodes
        cells = space.cell_choices(arch) if arch is not None else None
        stem_channels = 3 * c
        self.stem = nn.Sequential(
            conv_layer(dim)(self.input_shape[0], stem_channels, 3, padding=1, bias=False),
            batch_norm(dim, stem_channels),
        )
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction_prev = stem_channels, stem_channels, False
        for stage in range(space.stages):
            kinds = ["normal"] * space.cells
            if stage > 0:
                kinds.insert(0, "reduce")
            for kind in kinds:
                reduction = kind == "reduce"
                if reduction:
                    c *= 2
                cell = Cell(
                    c_prev_prev=c_pp,
                    c_prev=c_p,
                    channels=c,
                    reduction=reduction,
                    reduction_prev=reduction_prev,
                    nodes=nodes,
                    dim=dim,
                    choices=cells[kind] if cells is not None else None,
                )
                self.cells.append(cell)
                c_pp, c_p, reduction_prev = c_p, nodes * c, reduction
        self.head = ClassifierHead(c_p, num_classes, space.dropout)

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        cells = self.space.cell_choices(self._resolve(arch))
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, cells["reduce" if cell.reduction else "normal"])
        return self.head(s1)

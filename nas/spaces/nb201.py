"""``nb201``: the NAS-Bench-201 cell (Dong & Yang 2020): 4 nodes, 6 edges, 5 ops each.

Choices are the op ids of the six edges in the official ``arch_str`` order (edges 1<-0, 2<-0,
2<-1, 3<-0, 3<-1, 3<-2), with the benchmark table's numbering (0=none, 1=skip_connect,
2=nor_conv_1x1, 3=nor_conv_3x3, 4=avg_pool_3x3), so ``"".join(choices)`` is the table's
``ops`` column. The official index needs the table: see ``nas.evaluators.tabular``.

This module is the whole space: its decisions (``Nb201Space``), the benchmark's network for one
cell (``Nb201Network``: searches read accuracies from the table, so it is built for exports
only, never trained here), the cell class that network writes into its standalone PyTorch
export, and its drawing for the model card.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError, InvalidArchitectureError
from nas.models.base import NetworkSource, SpaceNetwork
from nas.ops import OPS, ReLUConvBN, batch_norm, conv_layer
from nas.spaces.base import Decision, SearchSpace, SpaceConfig

if TYPE_CHECKING:
    from nas.export.card import Drawing
    from nas.export.source import SourceWriter

NB201_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
#: (target node, source node) of each edge, in arch_str order.
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

_EDGE_RE = re.compile(r"^([a-z0-9_]+)~(\d+)$")
#: Options of the nb201 network (its space has no parameters): the benchmark's defaults.
NB201_DEFAULTS: dict[str, int] = {"channels": 16, "cells": 5}


class Nb201Config(SpaceConfig):
    pass


# --- the network ---------------------------------------------------------------------------------
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


def _resnet_block_call(block: nn.Module, dim: int) -> str:
    """The constructor call of a ``ResNetBlock`` in the exported source (not a method: the
    class's source is copied into that file as it is)."""
    conv = block.conv_a[1]  # type: ignore[index]
    return f"ResNetBlock({conv.in_channels}, {conv.out_channels}, {dim})"


class Nb201Network(SpaceNetwork["Nb201Space"]):
    """NAS-Bench-201's network for one cell: stem, three stages of ``cells`` cells with a
    ``ResNetBlock`` (doubling the channels) between stages, BN-ReLU, pooling, linear.
    Children only (no supernet); works on 1-D signals and 2-D images."""

    classifier_path = "classifier"

    def __init__(
        self,
        space: Nb201Space,
        input_shape: Sequence[int],
        num_classes: int,
        arch: Architecture | None = None,
        *,
        channels: int = 16,
        cells: int = 5,
    ) -> None:
        super().__init__(space, input_shape, num_classes, arch)
        if arch is None:
            raise ValueError(
                "nb201 has no shared-weight supernet (its searches read the benchmark table): "
                "build a network for one architecture"
            )
        dim, c = self.dim, channels
        ops_ = [NB201_OPS[choice] for choice in arch.choices]
        self.stem = nn.Sequential(
            conv_layer(dim)(self.input_shape[0], c, 3, padding=1, bias=False), batch_norm(dim, c)
        )
        self.cells = nn.ModuleList()
        for stage in range(3):
            if stage > 0:
                self.cells.append(ResNetBlock(c, 2 * c, dim))
                c *= 2
            for _ in range(cells):
                self.cells.append(Nb201Cell(ops_, c, dim))
        self.lastact = nn.Sequential(batch_norm(dim, c), nn.ReLU())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        self._resolve(arch)
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.classifier(self.lastact(x).flatten(2).mean(dim=2))

    # --- export hooks ------------------------------------------------------------------------
    def write_source(self, writer: SourceWriter) -> NetworkSource:
        """A ``Cell`` class with the edges unrolled (the cells are written as calls of it);
        ``ResNetBlock`` is copied as it is."""
        writer.write_as(Nb201Cell, lambda cell: ("Cell", ("edges",)))
        writer.copy_class(
            ResNetBlock, _resnet_block_call, needs=(ReLUConvBN, conv_layer, batch_norm)
        )
        arch = self._resolve(None)
        names = ["x", "node1", "node2", "node3"]
        lines, doc = [], []
        for target in range(1, 4):
            edges = [(e, s) for e, (t, s) in enumerate(NB201_EDGES) if t == target]
            terms = [f"self.edges[{e}]({names[s]})" for e, s in edges]
            lines.append(f"{names[target]} = " + " + ".join(terms))
            ops_ = [f"{NB201_OPS[arch.choices[e]]}({names[s]})" for e, s in edges]
            doc.append(f"{names[target]} = " + " + ".join(ops_))
        lines.append("return node3")
        cell = writer.module_class(
            "Cell",
            "NAS-Bench-201 cell (none: zeros)",
            [self.space.arch_str(arch), "", *doc],
            "edges: nn.ModuleList",
            ["edges"],
            "forward(self, x: torch.Tensor) -> torch.Tensor",
            lines,
        )
        indent = writer.INDENT
        forward = (
            f"{indent}def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
            f"{indent * 2}x = self.stem(x)\n"
            f"{indent * 2}for cell in self.cells:\n"
            f"{indent * 3}x = cell(x)\n"
            f"{indent * 2}return self.classifier(self.lastact(x).flatten(2).mean(dim=2))\n"
        )
        return NetworkSource(forward=forward, classes=[cell])

    def draw(self, arch: Architecture, drawing: Drawing) -> str:
        """The cell stack, then the cell's wiring."""
        shapes = drawing.shapes([self.stem, *self.cells, self.classifier])
        row = drawing.row
        lines = [
            row("input", "", drawing.input_shape),
            "  |",
            row("stem", "conv3 -> BN", shapes[id(self.stem)]),
        ]
        for index, cell in enumerate(self.cells):
            what = "cell" if isinstance(cell, Nb201Cell) else "residual block (stride 2)"
            lines += ["  |", row(f"cell {index}", what, shapes[id(cell)])]
        lines += [
            "  |",
            row("head", "BN -> ReLU -> global avg pool -> linear", shapes[id(self.classifier)]),
            "",
            "cell (node0 = cell input, node3 = cell output; none = zeros):",
        ]
        for target in range(1, 4):
            terms = [
                f"{NB201_OPS[arch.choices[e]]}(node{s})"
                for e, (t, s) in enumerate(NB201_EDGES)
                if t == target
            ]
            lines.append(f"  node{target} = " + " + ".join(terms))
        return "\n".join(lines)


# --- the space -----------------------------------------------------------------------------------
class Nb201Space(SearchSpace):
    """The 15,625-architecture NAS-Bench-201 cell space.

    Example:
        >>> space = Nb201Space()
        >>> arch = space.from_arch_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        ...                            "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
        >>> arch.choices
        (3, 3, 4, 1, 3, 1)
    """

    name = "nb201"
    version = 1
    # Searches read the benchmark table: the network is built for exports, not trained here.
    trainable = False
    has_supernet = False
    network_class = Nb201Network
    Config = Nb201Config

    def network_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """``channels`` and ``cells`` of the network (the space has no parameters); the
        benchmark's defaults (``NB201_DEFAULTS``) for those not given."""
        options = dict(options or {})
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

    def decisions(self) -> list[Decision]:
        return [Decision(f"edge{t}<-{s}", NB201_OPS, "edge") for t, s in NB201_EDGES]

    def arch_str(self, arch: Architecture) -> str:
        """The official NAS-Bench-201 string, e.g. ``|nor_conv_3x3~0|+|...|``."""
        self.validate(arch)
        ops = [NB201_OPS[c] for c in arch.choices]
        groups = [
            f"|{ops[0]}~0|",
            f"|{ops[1]}~0|{ops[2]}~1|",
            f"|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|",
        ]
        return "+".join(groups)

    def ops_code(self, arch: Architecture) -> str:
        """The table's ``ops`` column: six digits, one per edge."""
        self.validate(arch)
        return "".join(str(c) for c in arch.choices)

    def from_arch_str(self, text: str) -> Architecture:
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise InvalidArchitectureError(
                f"arch_str {text!r} must have 3 '+'-separated node groups, got {len(groups)}"
            )
        choices: list[int] = []
        for target, group in enumerate(groups, start=1):
            edges = [e for e in group.strip("|").split("|") if e]
            if len(edges) != target:
                raise InvalidArchitectureError(
                    f"node {target} in arch_str must have {target} edges, got {len(edges)}"
                )
            for source, edge in enumerate(edges):
                match = _EDGE_RE.match(edge)
                if not match or int(match.group(2)) != source:
                    raise InvalidArchitectureError(
                        f"edge {edge!r} must read OP~{source}", decision=f"edge{target}<-{source}"
                    )
                op = match.group(1)
                if op not in NB201_OPS:
                    raise InvalidArchitectureError(
                        f"unknown op {op!r}; valid: {', '.join(NB201_OPS)}",
                        decision=f"edge{target}<-{source}",
                    )
                choices.append(NB201_OPS.index(op))
        return self.make(choices)

    def describe(self, arch: Architecture) -> dict[str, Any]:
        return {"arch_str": self.arch_str(arch)}

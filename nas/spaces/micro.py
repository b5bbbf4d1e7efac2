"""``enas-micro``: the ENAS micro (cell) search space (Pham et al. 2018, section 2.4).

A normal and a reduction cell of ``nodes`` nodes each. Node ``i`` takes two inputs from the
two cell inputs or earlier nodes and applies one op to each; the node output is their sum.
The cell output concatenates all nodes (as DARTS does; ENAS concatenates only the nodes no
other node reads, so cells here are wider than ENAS's for the same choices). Cells are
stacked: ``cells`` normal cells per stage, a reduction cell between stages (so at least two
stages: with one, the reduction cell's decisions would change nothing).

This module is the whole space: its decisions (``MicroSpace``), the network it builds
(``MicroNetwork`` of ``Cell``s, a supernet or a standalone child), the cell classes that
network writes into its standalone PyTorch export, and its drawing for the model card.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field, ValidationInfo, model_validator
from torch import nn

from nas.architecture import Architecture
from nas.errors import at_submit
from nas.models.base import ClassifierHead, NetworkSource, SpaceNetwork
from nas.ops import OPS, FactorizedReduce, ReLUConvBN, batch_norm, conv_layer
from nas.spaces.base import Decision, SearchSpace, SpaceConfig

if TYPE_CHECKING:
    from nas.export.card import Drawing
    from nas.export.source import SourceWriter

MICRO_OPS: tuple[str, ...] = ("sep_conv3", "sep_conv5", "avg_pool3", "max_pool3", "identity")
CELL_TYPES: tuple[str, ...] = ("normal", "reduce")


class MicroConfig(SpaceConfig):
    nodes: int = Field(5, ge=1, le=10, description="nodes B per cell")
    cells: int = Field(2, ge=1, le=10, description="normal cells N per stage")
    stages: int = Field(3, ge=1, le=5, description="stages; a reduction cell between stages")
    channels: int = Field(16, ge=1, le=512, description="channels per node in the first stage")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")

    @model_validator(mode="after")
    def _a_reduction_cell_is_built(self, info: ValidationInfo) -> MicroConfig:
        if at_submit(info.context) and self.stages == 1:  # (a job stored before still loads)
            # (its reduce.* decisions changed nothing: the size squared, the searches and
            # the controller spending choices on them)
            raise ValueError(
                f"stages: 1 builds no reduction cell, so the space's {4 * self.nodes} "
                "reduce.* decisions would change nothing; use stages of 2 or more (a "
                "reduction cell between stages)"
            )
        return self


def input_labels(node: int) -> tuple[str, ...]:
    return ("cell_in0", "cell_in1") + tuple(f"node{j}" for j in range(node))


# --- the network ---------------------------------------------------------------------------------
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


class MicroNetwork(SpaceNetwork["MicroSpace"]):
    """Stem, then ``stages`` stages of ``cells`` normal cells with a reduction cell (doubling
    the channels) between stages, then the classifier head.

    Example:
        >>> space = MicroSpace(nodes=2, cells=1, stages=2, channels=4)
        >>> supernet = MicroNetwork(space, (3, 8, 8), 10)
        >>> arch = space.sample(np.random.default_rng(0))
        >>> supernet(torch.zeros(2, 3, 8, 8), arch).shape
        torch.Size([2, 10])
    """

    classifier_path = "head.linear"

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

    # --- export hooks ------------------------------------------------------------------------
    def write_source(self, writer: SourceWriter) -> NetworkSource:
        """``NormalCell`` / ``ReduceCell`` classes with the node wiring unrolled; the cells are
        written as calls of them."""
        writer.write_as(
            Cell,
            lambda cell: (
                "ReduceCell" if cell.reduction else "NormalCell",
                ("pre0", "pre1", "edges"),
            ),
        )
        choices = self.space.cell_choices(self._resolve(None))
        present = {"reduce" if c.reduction else "normal" for c in self.cells}  # type: ignore[union-attr]
        classes = []
        for kind in ("normal", "reduce"):
            if kind not in present:
                continue
            names = ["in0", "in1"] + [f"node{j}" for j in range(len(choices[kind]))]
            lines = ["in0 = self.pre0(s0)", "in1 = self.pre1(s1)"]
            doc = []
            for node, (in0, in1, op0, op1) in enumerate(choices[kind]):
                a = f'self.edges["n{node}_s0_i{in0}_{op0}"]({names[in0]})'
                b = f'self.edges["n{node}_s1_i{in1}_{op1}"]({names[in1]})'
                lines.append(f"node{node} = {a} + {b}")
                doc.append(f"node{node} = {op0}({names[in0]}) + {op1}({names[in1]})")
            outputs = ", ".join(f"node{j}" for j in range(len(choices[kind])))
            lines.append(f"return torch.cat([{outputs}], dim=1)")
            title = (
                "Reduction cell (ops on in0/in1 have stride 2)"
                if kind == "reduce"
                else "Normal cell"
            )
            classes.append(
                writer.module_class(
                    f"{kind.capitalize()}Cell",
                    title,
                    doc + [f"output = concat({outputs})"],
                    "pre0: nn.Module, pre1: nn.Module, edges: nn.ModuleDict",
                    ["pre0", "pre1", "edges"],
                    "forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor",
                    lines,
                )
            )
        indent = writer.INDENT
        forward = (
            f"{indent}def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
            f"{indent * 2}s0 = s1 = self.stem(x)\n"
            f"{indent * 2}for cell in self.cells:\n"
            f"{indent * 3}s0, s1 = s1, cell(s0, s1)\n"
            f"{indent * 2}return self.head(s1)\n"
        )
        return NetworkSource(forward=forward, classes=classes)

    def draw(self, arch: Architecture, drawing: Drawing) -> str:
        """The cell stack, then each cell type's node wiring."""
        shapes = drawing.shapes([self.stem, *self.cells, self.head])
        row = drawing.row
        lines = [
            row("input", "", drawing.input_shape),
            "  |",
            row("stem", "conv3 -> BN", shapes[id(self.stem)]),
        ]
        for index, cell in enumerate(self.cells):
            kind = "reduction cell" if cell.reduction else "normal cell"
            lines += [
                "  |",
                row(f"cell {index}", f"{kind} (inputs: 2 previous cells)", shapes[id(cell)]),
            ]
        lines += ["  |", row("head", "ReLU -> global avg pool -> linear", shapes[id(self.head)])]
        for kind, nodes in self.space.cell_choices(arch).items():
            if kind == "reduce" and not any(c.reduction for c in self.cells):
                continue
            title = (
                "reduction cell (ops on cell inputs have stride 2)"
                if kind == "reduce"
                else "normal cell"
            )
            lines += [
                "",
                f"{title}:",
                "  cell_in0 = previous-but-one cell, cell_in1 = previous cell",
            ]
            for node, (in0, in1, op0, op1) in enumerate(nodes):
                labels = input_labels(node)
                lines.append(f"  node{node} = {op0}({labels[in0]}) + {op1}({labels[in1]})")
            lines.append(
                "  output = concat(" + ", ".join(f"node{j}" for j in range(len(nodes))) + ")"
            )
        return "\n".join(lines)


# --- the space -----------------------------------------------------------------------------------
class MicroSpace(SearchSpace):
    """ENAS micro space: two cells, each ``nodes`` x (input, input, op, op).

    Decision order per node follows the ENAS controller: both inputs, then both ops.

    Example:
        >>> space = MicroSpace(nodes=2)
        >>> space.size() == ((2 * 5) ** 2 * (3 * 5) ** 2) ** 2
        True
    """

    name = "enas-micro"
    version = 1
    trainable = True
    has_supernet = True
    network_class = MicroNetwork
    Config = MicroConfig

    def __init__(
        self,
        *,
        nodes: int = 5,
        cells: int = 2,
        stages: int = 3,
        channels: int = 16,
        dropout: float = 0.0,
    ) -> None:
        self.nodes = nodes
        self.cells = cells
        self.stages = stages
        self.channels = channels
        self.dropout = dropout

    @property
    def config(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "cells": self.cells,
            "stages": self.stages,
            "channels": self.channels,
            "dropout": self.dropout,
        }

    def decisions(self) -> list[Decision]:
        out: list[Decision] = []
        for cell in CELL_TYPES:
            for node in range(self.nodes):
                inputs = input_labels(node)
                out.append(Decision(f"{cell}.node{node}.input0", inputs, "input"))
                out.append(Decision(f"{cell}.node{node}.input1", inputs, "input"))
                out.append(Decision(f"{cell}.node{node}.op0", MICRO_OPS, "op"))
                out.append(Decision(f"{cell}.node{node}.op1", MICRO_OPS, "op"))
        return out

    def cell_choices(self, arch: Architecture) -> dict[str, list[tuple[int, int, str, str]]]:
        """Per cell type: for each node ``(input0, input1, op0, op1)``; inputs index the cell's
        states (0 and 1 are the cell inputs, ``2 + j`` is node ``j``)."""
        self.validate(arch)
        choices = iter(arch.choices)
        cells: dict[str, list[tuple[int, int, str, str]]] = {}
        for cell in CELL_TYPES:
            nodes = []
            for _ in range(self.nodes):
                in0, in1, op0, op1 = (next(choices) for _ in range(4))
                nodes.append((in0, in1, MICRO_OPS[op0], MICRO_OPS[op1]))
            cells[cell] = nodes
        return cells

    def describe(self, arch: Architecture) -> dict[str, Any]:
        described: dict[str, Any] = {}
        for cell, nodes in self.cell_choices(arch).items():
            described[cell] = [
                {
                    "inputs": [input_labels(i)[in0], input_labels(i)[in1]],
                    "ops": [op0, op1],
                }
                for i, (in0, in1, op0, op1) in enumerate(nodes)
            ]
        return described

"""``enas-micro``: the ENAS micro (cell) search space (Pham et al. 2018, section 2.4).

A normal and a reduction cell of ``nodes`` nodes each. Node ``i`` takes two inputs from the
two cell inputs or earlier nodes and applies one op to each; the node output is their sum.
The cell output concatenates all nodes. Cells are stacked: ``cells`` normal cells per stage,
a reduction cell between stages.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from nas.architecture import Architecture
from nas.spaces.base import Decision, SearchSpace, SpaceConfig

MICRO_OPS: tuple[str, ...] = ("sep_conv3", "sep_conv5", "avg_pool3", "max_pool3", "identity")
CELL_TYPES: tuple[str, ...] = ("normal", "reduce")


class MicroConfig(SpaceConfig):
    nodes: int = Field(5, ge=1, le=10, description="nodes B per cell")
    cells: int = Field(2, ge=1, le=10, description="normal cells N per stage")
    stages: int = Field(3, ge=1, le=5, description="stages; a reduction cell between stages")
    channels: int = Field(16, ge=1, le=512, description="channels per node in the first stage")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")


def input_labels(node: int) -> tuple[str, ...]:
    return ("cell_in0", "cell_in1") + tuple(f"node{j}" for j in range(node))


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

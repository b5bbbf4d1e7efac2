"""``mlp``: fully connected networks for vector inputs and regression (few-shot sinusoid
regression, MAML's 40-40 ReLU network) and for any data flattened to a vector.

Decisions: ``depth`` (``min_layers``..``max_layers`` hidden layers), ``width1`` ..
``width<max_layers>`` (each from ``widths``; only the first ``depth`` are used), the
``activation`` (``relu``, ``tanh``) and the ``norm`` after each hidden linear layer
(``none``, ``layer``: LayerNorm, no running statistics, so it adapts per task like any
weight). A hidden layer is linear -> [LayerNorm] -> activation; the head is linear to
``num_classes`` outputs (1 for regression). The widths of unused layers do not change the
network: architectures that differ only there build the same network.

MAML's sinusoid network is ``depth 2, width1 40, width2 40, relu, none``
(``MlpSpace().from_layers([40, 40])``).

This module is the whole space: its decisions, the network (``MlpNetwork``: children only,
no supernet), its export source (a plain ``nn.Sequential`` body) and its drawing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field, model_validator
from torch import nn

from nas.architecture import Architecture
from nas.errors import InvalidArchitectureError
from nas.models.base import NetworkSource, SpaceNetwork
from nas.spaces.base import Decision, SearchSpace, SpaceConfig

if TYPE_CHECKING:
    from nas.export.card import Drawing
    from nas.export.source import SourceWriter

__all__ = ["MLP_ACTIVATIONS", "MLP_NORMS", "MlpConfig", "MlpNetwork", "MlpSpace"]

MLP_ACTIVATIONS: tuple[str, ...] = ("relu", "tanh")
MLP_NORMS: tuple[str, ...] = ("none", "layer")
_ACTIVATION: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


class MlpConfig(SpaceConfig):
    min_layers: int = Field(1, ge=1, le=16, description="fewest hidden layers")
    max_layers: int = Field(4, ge=1, le=16, description="most hidden layers")
    widths: list[int] = Field(
        [20, 40, 80], min_length=1, description="the width choices of each hidden layer"
    )
    activations: list[str] = Field(list(MLP_ACTIVATIONS), min_length=1)
    norms: list[str] = Field(list(MLP_NORMS), min_length=1)

    @model_validator(mode="after")
    def _check(self) -> MlpConfig:
        if self.min_layers > self.max_layers:
            raise ValueError(
                f"min_layers ({self.min_layers}) exceeds max_layers ({self.max_layers})"
            )
        if len(set(self.widths)) != len(self.widths) or any(
            not 1 <= w <= 65_536 for w in self.widths
        ):
            raise ValueError(f"widths {self.widths} must be distinct, each 1..65536")
        for name, valid in (("activations", MLP_ACTIVATIONS), ("norms", MLP_NORMS)):
            values = getattr(self, name)
            bad = [v for v in values if v not in valid]
            if bad or len(set(values)) != len(values):
                raise ValueError(f"{name} {values} must be distinct values of: {', '.join(valid)}")
        return self


# --- the network ---------------------------------------------------------------------------------
class MlpNetwork(SpaceNetwork["MlpSpace"]):
    """One ``mlp`` architecture: input flattened to a vector, ``body`` (the hidden layers as
    one ``nn.Sequential``), ``head`` (linear). Children only.

    Example:
        >>> space = MlpSpace()
        >>> net = MlpNetwork(space, (1,), 1, space.from_layers([40, 40]))
        >>> net(torch.zeros(5, 1)).shape
        torch.Size([5, 1])
    """

    #: One output is a regression.
    min_outputs: ClassVar[int] = 1

    def __init__(
        self,
        space: MlpSpace,
        input_shape: Sequence[int],
        num_classes: int,
        arch: Architecture | None = None,
    ) -> None:
        super().__init__(space, input_shape, num_classes, arch)
        if arch is None:
            raise ValueError(
                "mlp has no shared-weight supernet: build a network for one architecture"
            )
        genotype = space.genotype(arch)
        features = math.prod(self.input_shape)
        layers: list[nn.Module] = []
        for width in genotype["widths"]:
            layers.append(nn.Linear(features, width))
            if genotype["norm"] == "layer":
                layers.append(nn.LayerNorm(width))
            layers.append(_ACTIVATION[genotype["activation"]]())
            features = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor, arch: Architecture | None = None) -> torch.Tensor:
        self._resolve(arch)
        return self.head(self.body(x.flatten(1)))

    # --- export hooks ------------------------------------------------------------------------
    def write_source(self, writer: SourceWriter) -> NetworkSource:
        """The body as it is (an ``nn.Sequential`` of standard modules)."""
        indent = writer.INDENT
        forward = (
            f"{indent}def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
            f"{indent * 2}return self.head(self.body(x.flatten(1)))\n"
        )
        return NetworkSource(forward=forward)

    def draw(self, arch: Architecture, drawing: Drawing) -> str:
        """One row per hidden layer, then the head."""
        genotype = self.space.genotype(arch)
        per_layer = 3 if genotype["norm"] == "layer" else 2
        ends = [self.body[i * per_layer + per_layer - 1] for i in range(len(genotype["widths"]))]
        shapes = drawing.shapes([*ends, self.head])
        norm = " -> LayerNorm" if genotype["norm"] == "layer" else ""
        lines = [drawing.row("input", "flatten", drawing.input_shape)]
        for index, (width, end) in enumerate(zip(genotype["widths"], ends, strict=True)):
            what = f"linear {width}{norm} -> {genotype['activation']}"
            lines += ["  |", drawing.row(f"layer {index + 1}", what, shapes[id(end)])]
        outputs = "1 output" if self.num_classes == 1 else f"{self.num_classes} outputs"
        lines += ["  |", drawing.row("head", f"linear -> {outputs}", shapes[id(self.head)])]
        return "\n".join(lines)


# --- the space -----------------------------------------------------------------------------------
class MlpSpace(SearchSpace):
    """Depth, per-layer widths, activation and normalisation of a fully connected network.

    Example:
        >>> space = MlpSpace()
        >>> space.describe(space.from_layers([40, 40]))
        {'depth': 2, 'widths': [40, 40], 'activation': 'relu', 'norm': 'none'}
    """

    name = "mlp"
    version = 1
    trainable = True
    has_supernet = False
    network_class = MlpNetwork
    Config = MlpConfig

    def __init__(
        self,
        *,
        min_layers: int = 1,
        max_layers: int = 4,
        widths: Sequence[int] = (20, 40, 80),
        activations: Sequence[str] = MLP_ACTIVATIONS,
        norms: Sequence[str] = MLP_NORMS,
    ) -> None:
        MlpConfig(  # the Config's checks, for direct construction too
            min_layers=min_layers,
            max_layers=max_layers,
            widths=list(widths),
            activations=list(activations),
            norms=list(norms),
        )
        self.min_layers = min_layers
        self.max_layers = max_layers
        self.widths = tuple(int(w) for w in widths)
        self.activations = tuple(activations)
        self.norms = tuple(norms)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "min_layers": self.min_layers,
            "max_layers": self.max_layers,
            "widths": list(self.widths),
            "activations": list(self.activations),
            "norms": list(self.norms),
        }

    def input_shape_problem(self, input_shape: Sequence[int]) -> str | None:
        """Any shape: examples are flattened to a vector."""
        if len(input_shape) < 1 or any(int(v) < 1 for v in input_shape):
            return f"input_shape must be positive sizes, got {tuple(input_shape)}"
        return None

    def decisions(self) -> list[Decision]:
        depths = tuple(str(d) for d in range(self.min_layers, self.max_layers + 1))
        widths = tuple(str(w) for w in self.widths)
        return [
            Decision("depth", depths),
            *(Decision(f"width{i}", widths) for i in range(1, self.max_layers + 1)),
            Decision("activation", self.activations),
            Decision("norm", self.norms),
        ]

    def genotype(self, arch: Architecture) -> dict[str, Any]:
        """``depth``, the ``widths`` of the layers used, ``activation`` and ``norm``."""
        self.validate(arch)
        depth = self.min_layers + arch.choices[0]
        return {
            "depth": depth,
            "widths": [self.widths[c] for c in arch.choices[1 : 1 + depth]],
            "activation": self.activations[arch.choices[-2]],
            "norm": self.norms[arch.choices[-1]],
        }

    def describe(self, arch: Architecture) -> dict[str, Any]:
        return self.genotype(arch)

    def from_layers(
        self, widths: Sequence[int], activation: str = "relu", norm: str = "none"
    ) -> Architecture:
        """The architecture with hidden layers of ``widths`` (unused layers take the first
        width choice), e.g. ``from_layers([40, 40])`` for MAML's sinusoid network."""
        depth = len(widths)
        if not self.min_layers <= depth <= self.max_layers:
            raise InvalidArchitectureError(
                f"{depth} layers; valid: {self.min_layers}..{self.max_layers}", decision="depth"
            )
        for i, width in enumerate(widths, start=1):
            if width not in self.widths:
                raise InvalidArchitectureError(
                    f"width {width} is not a choice; valid: {', '.join(map(str, self.widths))}",
                    decision=f"width{i}",
                )
        for name, value, valid in (
            ("activation", activation, self.activations),
            ("norm", norm, self.norms),
        ):
            if value not in valid:
                raise InvalidArchitectureError(
                    f"{value!r} is not a choice; valid: {', '.join(valid)}", decision=name
                )
        padded = [self.widths.index(w) for w in widths] + [0] * (self.max_layers - depth)
        return self.make(
            [
                depth - self.min_layers,
                *padded,
                self.activations.index(activation),
                self.norms.index(norm),
            ]
        )

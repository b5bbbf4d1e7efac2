"""``enas-macro``: the ENAS macro search space (Pham et al. 2018, section 2.3).

A chain of ``layers`` layers. Each layer picks one of six operations and a skip-connection
mask over all earlier layers; its output is ``op(previous layer) + sum(selected earlier
layers)``. Before each layer index in ``reductions`` the resolution halves (and the channel
count grows by ``channel_growth``).

This module is the whole space: its decisions (``MacroSpace``), the network it builds
(``MacroNetwork``, a supernet or a standalone child), the ``forward`` that network writes into
its standalone PyTorch export, and its drawing for the model card.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field, model_validator
from torch import nn

from nas.architecture import Architecture
from nas.models.base import ClassifierHead, NetworkSource, SpaceNetwork
from nas.ops import OPS, FactorizedReduce, batch_norm, conv_layer
from nas.spaces.base import Decision, SearchSpace, SpaceConfig

if TYPE_CHECKING:
    from nas.export.card import Drawing
    from nas.export.source import SourceWriter

MACRO_OPS: tuple[str, ...] = (
    "conv3",
    "conv5",
    "sep_conv3",
    "sep_conv5",
    "max_pool3",
    "avg_pool3",
)


class MacroConfig(SpaceConfig):
    layers: int = Field(8, ge=1, le=48, description="number of layers L")
    channels: int = Field(32, ge=1, le=1024, description="channels of the first stage")
    reductions: list[int] | None = Field(
        None,
        description="layer indices before which the resolution halves; default: L/3 and 2L/3",
    )
    channel_growth: int = Field(2, ge=1, le=4, description="channel multiplier at a reduction")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier")

    @model_validator(mode="after")
    def _check_reductions(self) -> MacroConfig:
        if self.reductions is not None:
            bad = [r for r in self.reductions if not 0 < r < self.layers]
            if bad:
                raise ValueError(
                    f"reductions {bad} out of range; each must be in 1..{self.layers - 1} "
                    f"(a layer index before which the resolution halves)"
                )
            if len(set(self.reductions)) != len(self.reductions):
                raise ValueError(f"reductions {self.reductions} repeat a layer index")
        return self

    def as_built(self) -> dict[str, Any]:
        built = super().as_built()
        given = self.reductions
        built["reductions"] = (
            sorted(given) if given is not None else default_reductions(self.layers)
        )
        return built


def default_reductions(layers: int) -> list[int]:
    """ENAS puts its pooling layers at one and two thirds of the depth."""
    points = {layers // 3, 2 * layers // 3}
    return sorted(p for p in points if 0 < p < layers)


# --- the network ---------------------------------------------------------------------------------
Plan = tuple[tuple[tuple[str, tuple[int, ...]], ...], frozenset[tuple[int, int]]]


def _reduce_key(point: int, source: int) -> str:
    return f"at{point}_from{source}"


class MacroNetwork(SpaceNetwork["MacroSpace"]):
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

    classifier_path = "head.linear"

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

    # --- export hooks ------------------------------------------------------------------------
    def write_source(self, writer: SourceWriter) -> NetworkSource:
        """``forward`` unrolled: one line per layer, the reductions where they happen."""
        layers, needed = self.plan(self._resolve(None))
        lines = ["h = self.stem(x)"]
        for index, (op, skips) in enumerate(layers):
            source = "h" if index == 0 else f"h{index - 1}"
            if index in self.space.reductions:
                lines.append(f"# resolution halves before layer {index}")
                for j in range(index):
                    if (index, j) in needed:
                        lines.append(f'h{j} = self.reduce["{_reduce_key(index, j)}"](h{j})')
            terms = [f'self.layers[{index}]["{op}"]({source})', *(f"h{j}" for j in skips)]
            lines.append(f"h{index} = " + " + ".join(terms))
        lines.append(f"return self.head(h{len(layers) - 1})")
        return NetworkSource(
            forward=writer.method("forward(self, x: torch.Tensor) -> torch.Tensor", lines)
        )

    def draw(self, arch: Architecture, drawing: Drawing) -> str:
        layers, needed = self.plan(arch)
        ops = [self.layers[i][op] for i, (op, _) in enumerate(layers)]
        shapes = drawing.shapes([self.stem, *ops, self.head])
        row = drawing.row
        lines = [
            row("input", "", drawing.input_shape),
            "  |",
            row("stem", "conv3 -> BN", shapes[id(self.stem)]),
        ]
        for index, ((op, skips), module) in enumerate(zip(layers, ops, strict=True)):
            if index in self.space.reductions:
                sources = [j for j in range(index) if (index, j) in needed]
                lines.append(f"  |  ~~ resolution halves: FactorizedReduce of layer(s) {sources}")
            else:
                lines.append("  |")
            skip = f" + skip from {', '.join(map(str, skips))}" if skips else ""
            lines.append(row(f"layer {index}", op + skip, shapes[id(module)]))
        lines += ["  |", row("head", "ReLU -> global avg pool -> linear", shapes[id(self.head)])]
        return "\n".join(lines)


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


# --- the space -----------------------------------------------------------------------------------
class MacroSpace(SearchSpace):
    """ENAS macro space: per layer an op (6 choices) and a skip mask over earlier layers.

    Example:
        >>> space = MacroSpace(layers=4)
        >>> space.size() == 6**4 * 2**6
        True
    """

    name = "enas-macro"
    version = 1
    trainable = True
    has_supernet = True
    network_class = MacroNetwork
    Config = MacroConfig

    def __init__(
        self,
        *,
        layers: int = 8,
        channels: int = 32,
        reductions: list[int] | None = None,
        channel_growth: int = 2,
        dropout: float = 0.0,
    ) -> None:
        self.layers = layers
        self.channels = channels
        self.reductions = (
            sorted(reductions) if reductions is not None else default_reductions(layers)
        )
        self.channel_growth = channel_growth
        self.dropout = dropout

    @property
    def config(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "channels": self.channels,
            "reductions": list(self.reductions),
            "channel_growth": self.channel_growth,
            "dropout": self.dropout,
        }

    def decisions(self) -> list[Decision]:
        out: list[Decision] = []
        for layer in range(self.layers):
            out.append(Decision(f"layer{layer}.op", MACRO_OPS, "op"))
            for source in range(layer):
                out.append(Decision(f"layer{layer}.skip{source}", ("off", "on"), "skip", source))
        return out

    def layer_choices(self, arch: Architecture) -> list[tuple[str, tuple[int, ...]]]:
        """Per layer: the op name and the indices of the earlier layers it takes skips from."""
        self.validate(arch)
        choices = iter(arch.choices)
        layers: list[tuple[str, tuple[int, ...]]] = []
        for layer in range(self.layers):
            op = MACRO_OPS[next(choices)]
            skips = tuple(j for j in range(layer) if next(choices))
            layers.append((op, skips))
        return layers

    def describe(self, arch: Architecture) -> dict[str, Any]:
        return {
            "layers": [{"op": op, "skips": list(skips)} for op, skips in self.layer_choices(arch)],
            "reductions": list(self.reductions),
        }

"""``enas-macro``: the ENAS macro search space (Pham et al. 2018, section 2.3).

A chain of ``layers`` layers. Each layer picks one of six operations and a skip-connection
mask over all earlier layers; its output is ``op(previous layer) + sum(selected earlier
layers)``. Before each layer index in ``reductions`` the resolution halves (and the channel
count grows by ``channel_growth``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from nas.architecture import Architecture
from nas.spaces.base import Decision, SearchSpace, SpaceConfig

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


def default_reductions(layers: int) -> list[int]:
    """ENAS puts its pooling layers at one and two thirds of the depth."""
    points = {layers // 3, 2 * layers // 3}
    return sorted(p for p in points if 0 < p < layers)


class MacroSpace(SearchSpace):
    """ENAS macro space: per layer an op (6 choices) and a skip mask over earlier layers.

    Example:
        >>> space = MacroSpace(layers=4)
        >>> space.size() == 6**4 * 2**6
        True
    """

    name = "enas-macro"
    version = 1
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

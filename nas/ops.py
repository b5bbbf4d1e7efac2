"""The one op vocabulary, shared by supernets and standalone children (DARTS' ``OPS``).

Every op works on 1-D signals ``(N, C, L)`` and 2-D images ``(N, C, H, W)``: ``dim`` picks the
torch layer family. ``OPS[name](c_in, c_out, stride, dim)`` builds an op; a stride-2 op halves
each spatial size (rounding up), the same for every op, so ops can be swapped freely.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "OPS",
    "FactorizedReduce",
    "Pool",
    "ReLUConvBN",
    "SepConv",
    "Zero",
    "batch_norm",
    "conv_layer",
]


def conv_layer(dim: int) -> type[nn.Conv1d | nn.Conv2d]:
    if dim == 1:
        return nn.Conv1d
    if dim == 2:
        return nn.Conv2d
    raise ValueError(f"dim must be 1 (signals, N x C x L) or 2 (images, N x C x H x W), got {dim}")


def batch_norm(dim: int, channels: int, affine: bool = True) -> nn.Module:
    cls = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
    return cls(channels, affine=affine)


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (k, stride, 'same' padding) -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dim: int) -> None:
        conv = conv_layer(dim)
        super().__init__(
            nn.ReLU(inplace=False),
            conv(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            batch_norm(dim, c_out),
        )


class SepConv(nn.Sequential):
    """Depthwise-separable conv: ReLU -> depthwise k x k -> pointwise 1 x 1 -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dim: int) -> None:
        conv = conv_layer(dim)
        super().__init__(
            nn.ReLU(inplace=False),
            conv(c_in, c_in, kernel, stride=stride, padding=kernel // 2, groups=c_in, bias=False),
            conv(c_in, c_out, 1, bias=False),
            batch_norm(dim, c_out),
        )


class Pool(nn.Module):
    """Max or average pooling with 'same' padding; channels must not change."""

    def __init__(self, kind: str, c_in: int, c_out: int, kernel: int, stride: int, dim: int):
        super().__init__()
        if c_in != c_out:
            raise ValueError(f"a pooling op keeps channels; got {c_in} -> {c_out}")
        if kind == "max":
            cls = nn.MaxPool1d if dim == 1 else nn.MaxPool2d
            self.pool: nn.Module = cls(kernel, stride=stride, padding=kernel // 2)
        else:
            cls = nn.AvgPool1d if dim == 1 else nn.AvgPool2d
            self.pool = cls(kernel, stride=stride, padding=kernel // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing every other pixel: two stride-2 1x1 convs, the
    second on the input shifted by one, concatenated (ENAS / DARTS)."""

    def __init__(self, c_in: int, c_out: int, dim: int) -> None:
        super().__init__()
        conv = conv_layer(dim)
        self.dim = dim
        self.relu = nn.ReLU(inplace=False)
        # With one output channel there is nothing to split: the shifted path is dropped.
        self.conv_a = conv(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.conv_b = conv(c_in, c_out // 2, 1, stride=2, bias=False) if c_out > 1 else None
        self.bn = batch_norm(dim, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        if self.conv_b is None:
            return self.bn(self.conv_a(x))
        # Shift by one along every spatial axis, padding at the end, so both paths see the
        # same output size for odd and even inputs.
        shifted = F.pad(x, (0, 1) * self.dim)[(..., *([slice(1, None)] * self.dim))]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


class Zero(nn.Module):
    """NAS-Bench-201's ``none``: outputs zeros of the right shape."""

    def __init__(self, c_out: int, stride: int, dim: int) -> None:
        super().__init__()
        self.c_out = c_out
        self.stride = stride
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Slicing keeps the output on the autograd graph (a zero gradient, not an error).
        strided = x[(slice(None), slice(0, 1), *([slice(None, None, self.stride)] * self.dim))]
        return strided.mul(0.0).expand(-1, self.c_out, *strided.shape[2:])


def _identity(c_in: int, c_out: int, stride: int, dim: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    if stride == 1:
        return ReLUConvBN(c_in, c_out, 1, 1, dim)
    return FactorizedReduce(c_in, c_out, dim)


OpFactory = Callable[[int, int, int, int], nn.Module]

OPS: dict[str, OpFactory] = {
    # ENAS macro and micro
    "conv3": lambda ci, co, s, d: ReLUConvBN(ci, co, 3, s, d),
    "conv5": lambda ci, co, s, d: ReLUConvBN(ci, co, 5, s, d),
    "sep_conv3": lambda ci, co, s, d: SepConv(ci, co, 3, s, d),
    "sep_conv5": lambda ci, co, s, d: SepConv(ci, co, 5, s, d),
    "max_pool3": lambda ci, co, s, d: Pool("max", ci, co, 3, s, d),
    "avg_pool3": lambda ci, co, s, d: Pool("avg", ci, co, 3, s, d),
    "identity": _identity,
    # NAS-Bench-201 (its own names, so its arch_str maps one to one)
    "none": lambda ci, co, s, d: Zero(co, s, d),
    "skip_connect": _identity,
    "nor_conv_1x1": lambda ci, co, s, d: ReLUConvBN(ci, co, 1, s, d),
    "nor_conv_3x3": lambda ci, co, s, d: ReLUConvBN(ci, co, 3, s, d),
    "avg_pool_3x3": lambda ci, co, s, d: Pool("avg", ci, co, 3, s, d),
}

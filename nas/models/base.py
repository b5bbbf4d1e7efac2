"""What the macro and micro networks share: the supernet/child split and the head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Generic, TypeVar

import torch
from torch import nn

from nas.architecture import Architecture
from nas.spaces.base import SearchSpace

S = TypeVar("S", bound=SearchSpace)


class SpaceNetwork(nn.Module, Generic[S]):
    """A network of one search space, in one of two roles.

    - **Supernet** (``arch=None``): holds the parameters of every op of the space and runs
      exactly the ops of the architecture given to ``forward(x, arch)``.
    - **Child** (``arch`` given): holds only the parameters that ``arch`` uses, under the
      same names as in the supernet, so ``supernet.extract_child(arch)`` is a plain key copy.

    Input is ``(N, C, L)`` when ``input_shape`` is ``(C, L)`` and ``(N, C, H, W)`` when it is
    ``(C, H, W)``.
    """

    #: Whether ``arch=None`` builds a shared-weight supernet (the ENAS evaluator needs one).
    has_supernet: ClassVar[bool] = True

    def __init__(
        self,
        space: S,
        input_shape: Sequence[int],
        num_classes: int,
        arch: Architecture | None = None,
    ) -> None:
        super().__init__()
        if len(input_shape) not in (2, 3):
            raise ValueError(
                f"input_shape must be (C, L) for signals or (C, H, W) for images, got "
                f"{tuple(input_shape)}"
            )
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if arch is not None:
            space.validate(arch)
        self.space = space
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)
        self.dim = len(self.input_shape) - 1
        self.fixed_arch = arch

    @property
    def is_supernet(self) -> bool:
        return self.fixed_arch is None

    def _resolve(self, arch: Architecture | None) -> Architecture:
        if arch is None:
            if self.fixed_arch is None:
                raise ValueError("a supernet needs the architecture to run: forward(x, arch)")
            return self.fixed_arch
        if self.fixed_arch is not None and arch != self.fixed_arch:
            raise ValueError("this child network is built for another architecture")
        return arch

    def extract_child(self, arch: Architecture) -> SpaceNetwork[S]:
        """A standalone child for ``arch`` carrying this supernet's weights for its ops."""
        if not self.is_supernet:
            raise ValueError("extract_child is for supernets; this network is a child")
        child = type(self)(self.space, self.input_shape, self.num_classes, arch)
        own = self.state_dict()
        child.load_state_dict({k: own[k] for k in child.state_dict()})
        return child.to(next(self.parameters()).device)


class ClassifierHead(nn.Module):
    """ReLU -> global average pooling -> dropout -> linear."""

    def __init__(self, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x).flatten(2).mean(dim=2)
        return self.linear(self.dropout(x))

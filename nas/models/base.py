"""What every space's network shares: the supernet/child split, the classifier head, and the
hooks through which exports ask a network to write its source and draw itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

import torch
from torch import nn

from nas.architecture import Architecture
from nas.errors import ExportError

if TYPE_CHECKING:  # the export package imports the space registry, which imports this module
    from nas.export.card import Drawing
    from nas.export.source import SourceWriter
    from nas.spaces.base import SearchSpace

S = TypeVar("S", bound="SearchSpace")


@dataclass(frozen=True)
class NetworkSource:
    """A network's part of its standalone PyTorch file (see ``SpaceNetwork.write_source``).

    ``forward`` is the ``ExportedNet.forward`` method (indented as a method); ``classes`` are
    class definitions written before ``ExportedNet`` (e.g. cells with their wiring unrolled);
    ``attributes`` maps a child attribute to the constructor expression written for it where
    the generic writer's expression is not wanted.
    """

    forward: str
    classes: Sequence[str] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)


class SpaceNetwork(nn.Module, Generic[S]):
    """A network of one search space, in one of two roles.

    - **Supernet** (``arch=None``): holds the parameters of every op of the space and runs
      exactly the ops of the architecture given to ``forward(x, arch)``.
    - **Child** (``arch`` given): holds only the parameters that ``arch`` uses, under the
      same names as in the supernet, so ``supernet.extract_child(arch)`` is a plain key copy.

    Input is ``(N, C, L)`` when ``input_shape`` is ``(C, L)`` and ``(N, C, H, W)`` when it is
    ``(C, H, W)``. Whether a space has a supernet at all is the space's answer
    (``SearchSpace.has_supernet``).

    Exports ask the network itself for what only its space knows: ``write_source`` (the
    space-specific part of the standalone PyTorch file) and ``draw`` (the model card's drawing).
    """

    #: The fewest outputs (``num_classes``) the network takes: 2 for a classifier; a network
    #: that also regresses (the ``mlp`` space's) takes 1.
    min_outputs: ClassVar[int] = 2
    #: The attribute path of the final linear layer (the classifier), which
    #: ``drop_classifier`` takes off.
    classifier_path: ClassVar[str] = "head"

    def __init__(
        self,
        space: S,
        input_shape: Sequence[int],
        num_classes: int,
        arch: Architecture | None = None,
    ) -> None:
        super().__init__()
        problem = space.input_shape_problem(input_shape)
        if problem is not None:
            raise ValueError(problem)
        if num_classes < self.min_outputs:
            raise ValueError(f"num_classes must be at least {self.min_outputs}, got {num_classes}")
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

    def drop_classifier(self) -> int:
        """Replace the final linear layer by an identity, in place, so the network answers
        its embedding (what the classifier would read) instead of logits: what metric-based
        few-shot learners (Prototypical and Matching Networks) compare. Answers the
        embedding's width."""
        *parents, last = self.classifier_path.split(".")
        owner: nn.Module = self
        for part in parents:
            owner = getattr(owner, part)
        linear = getattr(owner, last)
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"{type(self).__name__}.{self.classifier_path} is not a linear layer")
        setattr(owner, last, nn.Identity())
        return int(linear.in_features)

    # --- export hooks ------------------------------------------------------------------------
    def write_source(self, writer: SourceWriter) -> NetworkSource:
        """This child's part of its standalone PyTorch file. ``writer`` writes any module as
        the expression that rebuilds it and formats methods and classes; register the
        space's own module classes with it (``write_as``, ``copy_class``) before returning."""
        raise ExportError(f"no PyTorch source writer for {type(self).__name__}")

    def draw(self, arch: Architecture, drawing: Drawing) -> str:
        """A plain-text drawing of this child's layers or cells with their output shapes, for
        the model card; ``drawing`` measures output shapes and formats rows."""
        raise ExportError(f"no drawing for a {type(self).__name__}")


class ClassifierHead(nn.Module):
    """ReLU -> global average pooling -> dropout -> linear."""

    def __init__(self, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x).flatten(2).mean(dim=2)
        return self.linear(self.dropout(x))

"""Networks built from architectures: ``build_supernet`` (shared weights) and ``build_model``
(a standalone child), for the spaces that train here (``SearchSpace.trainable``).

Each space builds its own network (``SearchSpace.build_network``; the network class lives in
the space's module): these functions add the check that the space trains here. The op
vocabulary is ``nas.ops``; what every network shares is ``nas.models.base``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

from nas.architecture import Architecture
from nas.errors import UnknownNameError
from nas.models.base import ClassifierHead, NetworkSource, SpaceNetwork

if TYPE_CHECKING:
    # Not at run time: the space modules import nas.models.base, which runs this file first.
    from nas.spaces.base import SearchSpace


def _check_trainable(space: SearchSpace) -> None:
    if not space.trainable:
        from nas.spaces import SPACES

        trainable = [name for name in SPACES if SPACES.get(name).trainable]
        raise UnknownNameError("trainable space", space.name, trainable)


def build_supernet(
    space: SearchSpace, input_shape: Sequence[int], num_classes: int
) -> SpaceNetwork:
    """The shared-weight supernet of ``space`` for data of ``input_shape`` (C, L) or (C, H, W)."""
    _check_trainable(space)
    return space.build_network(input_shape, num_classes)


def build_model(
    space: SearchSpace, arch: Architecture, input_shape: Sequence[int], num_classes: int
) -> SpaceNetwork:
    """A freshly initialised standalone network for one architecture."""
    _check_trainable(space)
    return space.build_network(input_shape, num_classes, arch)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def training_bytes(
    space: SearchSpace,
    arch: Architecture,
    input_shape: Sequence[int],
    num_classes: int,
    batch_size: int,
    *,
    supernet: bool = False,
) -> tuple[int, int] | None:
    """What training ``arch`` on minibatches of ``batch_size`` takes, without allocating
    it: the network built and run on torch's ``meta`` device. Returns the bytes of its
    parameters and of one minibatch's layer outputs (what backward keeps), or ``None`` where
    a network cannot run there. ``supernet``: the space's whole supernet's parameters, and
    the outputs of ``arch``'s path through it."""
    import torch

    outputs = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal outputs
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                outputs += t.numel() * t.element_size()

    try:
        with torch.device("meta"):
            model = (
                build_supernet(space, input_shape, num_classes)
                if supernet
                else build_model(space, arch, input_shape, num_classes)
            )
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        leaves = [m for m in model.modules() if next(m.children(), None) is None]
        hooks = [m.register_forward_hook(count) for m in leaves]
        model.train()
        x = torch.empty((batch_size, *input_shape), device="meta")
        model(x, arch) if supernet else model(x)
        for hook in hooks:
            hook.remove()
    except (NotImplementedError, RuntimeError):
        return None  # (an op without a meta kernel: the training finds out for real)
    return params, outputs


__all__ = [
    "ClassifierHead",
    "NetworkSource",
    "SpaceNetwork",
    "build_model",
    "build_supernet",
    "count_parameters",
    "training_bytes",
]

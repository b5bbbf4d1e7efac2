"""Search spaces, registered by the name a job spec uses (``space: {name: ...}``)."""

from __future__ import annotations

from nas.registry import Registry
from nas.spaces.base import Decision, SearchSpace, SpaceConfig
from nas.spaces.macro import MACRO_OPS, MacroSpace
from nas.spaces.metaqnn import MetaQNNSpace
from nas.spaces.micro import MICRO_OPS, MicroSpace
from nas.spaces.mlp import MlpSpace
from nas.spaces.nb201 import NB201_OPS, Nb201Space
from nas.spaces.table import TableSpace

SPACES: Registry[type[SearchSpace]] = Registry("space")
for _space in (MacroSpace, MicroSpace, Nb201Space, MetaQNNSpace, TableSpace, MlpSpace):
    SPACES.register(_space.name)(_space)


def create_space(name: str, **config: object) -> SearchSpace:
    """Build a registered space from its spec parameters (validated)."""
    return SPACES.get(name).from_config(config)


__all__ = [
    "MACRO_OPS",
    "MICRO_OPS",
    "NB201_OPS",
    "SPACES",
    "Decision",
    "MacroSpace",
    "MetaQNNSpace",
    "MicroSpace",
    "MlpSpace",
    "Nb201Space",
    "SearchSpace",
    "SpaceConfig",
    "TableSpace",
    "create_space",
]

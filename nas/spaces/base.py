"""The ``SearchSpace`` contract and the product-space base that the built-in spaces share."""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from nas.architecture import Architecture
from nas.errors import ExportError, InvalidArchitectureError

if TYPE_CHECKING:
    from nas.models.base import SpaceNetwork


@dataclass(frozen=True, slots=True)
class Decision:
    """One categorical choice a controller makes.

    ``kind`` tells an RL controller how to treat it: ``op`` (pick an operation), ``skip``
    (a binary skip connection from an earlier layer, ENAS macro), ``input`` (pick an earlier
    node as input, ENAS micro), ``edge`` (an op on a fixed cell edge, NAS-Bench-201).
    ``source`` is the earlier layer or node that a ``skip`` decision connects from.
    """

    name: str
    choices: tuple[str, ...]
    kind: str = "op"
    source: int | None = None

    @property
    def num_choices(self) -> int:
        return len(self.choices)


class SpaceConfig(BaseModel):
    """Base of each space's parameters (the job spec's ``space:`` section without ``name``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def as_built(self) -> dict[str, Any]:
        """The parameters as the space is built from them (JSON values): a parameter left
        ``None`` for a default derived from the others filled in, so two sections that build
        one space compare equal (a warm start refused a source whose spec wrote out the
        ``reductions`` the other left to their default: the probe of a NAS researcher)."""
        return self.model_dump(mode="json")


class SearchSpace(ABC):
    """What is allowed, how to sample, validate, mutate and encode it.

    A space is a fixed sequence of categorical ``decisions()``; an ``Architecture`` holds one
    choice index per decision. Spaces with a variable-length decision sequence (MetaQNN)
    override the methods that assume a fixed sequence.

    Subclasses set ``name``, ``version`` and ``Config`` and implement ``decisions`` and
    ``describe``. Every method that takes an architecture validates it first, so a bad one
    fails with the name of the bad decision instead of deep inside a network builder.

    A space that builds networks sets ``network_class`` (a ``SpaceNetwork``, defined in the
    space's own module, which also writes the network's export source and draws it) and says
    what it can do with it: ``trainable``, ``has_supernet``. Callers ask the space
    (``build_network``) instead of looking its network up by name.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    Config: ClassVar[type[SpaceConfig]] = SpaceConfig
    #: Builds a network that standalone and shared-weight evaluators can train.
    trainable: ClassVar[bool] = False
    #: Builds a shared-weight supernet (what the ``shared-weights`` evaluator needs).
    has_supernet: ClassVar[bool] = False
    #: The network its architectures build into (exports need one); ``None``: JSON only.
    network_class: ClassVar[type[SpaceNetwork] | None] = None

    @classmethod
    def from_config(cls, config: SpaceConfig | dict[str, Any] | None = None) -> SearchSpace:
        if not isinstance(config, SpaceConfig):
            config = cls.Config.model_validate(config or {})
        return cls(**config.model_dump())

    @property
    def config(self) -> dict[str, Any]:
        """The parameters that rebuild this space (``type(self).from_config(space.config)``)."""
        return {}

    def pinned_config(self) -> dict[str, Any]:
        """``config`` with what the space read from its files written out (a table's
        choices), so that a stored spec keeps naming the same architectures by the same
        choice indices when a file changes later; the same as ``config`` for a space that
        reads none."""
        return self.config

    # --- the network ---------------------------------------------------------------------------
    def build_network(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        arch: Architecture | None = None,
        *,
        options: Mapping[str, Any] | None = None,
    ) -> SpaceNetwork:
        """A freshly initialised network for data of ``input_shape`` (C, L) or (C, H, W): the
        shared-weight supernet when ``arch`` is ``None``, else the standalone child of ``arch``.
        ``options`` are the network's own options (``network_options``)."""
        if self.network_class is None:
            raise ExportError(f"space {self.name!r} builds no network")
        opts = self.network_options(options)
        return self.network_class(self, input_shape, num_classes, arch, **opts)

    def input_shape_problem(self, input_shape: Sequence[int]) -> str | None:
        """Why this space's networks cannot take examples of ``input_shape``, or ``None``:
        ``(C, L)`` signals or ``(C, H, W)`` images, and whatever the space adds (MetaQNN: its
        ``input_size``). Ask it before building anything, e.g. with the shape that
        ``nas.datasets.dataset_shape`` gives; the networks check it too."""
        if len(input_shape) not in (2, 3):
            return (
                f"input_shape must be (C, L) for signals or (C, H, W) for images, got "
                f"{tuple(input_shape)}"
            )
        return None

    def network_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        """The validated options of this space's network that are not part of the space
        config (``ExportError`` if invalid). By default there are none: the widths come from
        the space config."""
        if options:
            raise ExportError(
                f"space {self.name!r} takes no network options (got {sorted(options)}); "
                "its widths come from the space config"
            )
        return {}

    # --- the decision sequence -------------------------------------------------------------
    @abstractmethod
    def decisions(self) -> list[Decision]:
        """The ordered categorical choices that make one architecture."""

    @cached_property
    def _decisions(self) -> tuple[Decision, ...]:
        return tuple(self.decisions())

    @cached_property
    def _cardinalities(self) -> np.ndarray:
        return np.array([d.num_choices for d in self._decisions], dtype=np.int64)

    def make(self, choices: Sequence[int]) -> Architecture:
        """An architecture of this space from choice indices, validated."""
        arch = Architecture(self.name, tuple(choices), self.version)
        self.validate(arch)
        return arch

    def legal_choices(self, choices: Sequence[int]) -> tuple[int, ...]:
        """``choices`` (each within its decision's range) as a legal architecture's: the
        same in a space where every combination is one. A space with rules between its
        decisions (``metaqnn``) maps each illegal choice onto a legal one, deterministically,
        for a controller that draws each decision on its own (Optuna's samplers): what it
        drew then has a value, that of the architecture it stands for."""
        return tuple(int(c) for c in choices)

    def holds(self, arch: Architecture) -> bool:
        """Whether ``arch`` (a valid choice sequence) is one this space can evaluate; every
        sequence in most spaces, only the table's rows in ``table``. Used where candidates
        are made without a controller (``nas.warmstart.predicted_priors``)."""
        return True

    # --- contract --------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random architecture, drawn from ``rng`` only."""
        choices = rng.integers(0, self._cardinalities)
        return Architecture(self.name, tuple(choices), self.version)

    def validate(self, arch: Architecture) -> None:
        """Raise ``InvalidArchitectureError`` naming the first bad decision, else return."""
        if not isinstance(arch, Architecture):
            raise InvalidArchitectureError(f"expected an Architecture, got {type(arch).__name__}")
        if arch.space != self.name:
            raise InvalidArchitectureError(
                f"architecture belongs to space {arch.space!r}, not {self.name!r}"
            )
        if arch.version != self.version:
            raise InvalidArchitectureError(
                f"architecture has space version {arch.version}; {self.name} is version "
                f"{self.version}"
            )
        decisions = self._decisions
        if len(arch.choices) != len(decisions):
            raise InvalidArchitectureError(
                f"expected {len(decisions)} choices ({self._shape_hint()}), got {len(arch.choices)}"
            )
        for decision, choice in zip(decisions, arch.choices, strict=True):
            if not 0 <= choice < decision.num_choices:
                raise InvalidArchitectureError(
                    f"choice {choice} out of range; valid 0..{decision.num_choices - 1} "
                    f"({', '.join(decision.choices)})",
                    decision=decision.name,
                )

    def encode(self, arch: Architecture) -> np.ndarray:
        """The choice indices as an int64 vector (one entry per decision)."""
        self.validate(arch)
        return np.asarray(arch.choices, dtype=np.int64)

    def decode(self, vector: Sequence[int] | np.ndarray) -> Architecture:
        """Inverse of ``encode``; validates."""
        return self.make([int(v) for v in np.asarray(vector).reshape(-1)])

    def one_hot(self, arch: Architecture) -> np.ndarray:
        """Concatenated one-hot blocks, one per decision (float32), for model-based search."""
        self.validate(arch)
        out = np.zeros(int(self._cardinalities.sum()), dtype=np.float32)
        offsets = np.concatenate([[0], np.cumsum(self._cardinalities)[:-1]])
        out[offsets + np.asarray(arch.choices)] = 1.0
        return out

    #: Decision kinds that pick an operation: what ``fair_children`` balances.
    fair_kinds: ClassVar[tuple[str, ...]] = ("op", "edge")

    @property
    def fair_k(self) -> int:
        """How many children one ``fair_children`` step trains: the most choices of any
        operation decision (1 when the space has none)."""
        ops = [d.num_choices for d in self._decisions if d.kind in self.fair_kinds]
        return max(ops, default=1)

    @property
    def split_decision(self) -> tuple[int, int] | None:
        """Where few-shot NAS splits this space's supernet: the index (in
        ``Architecture.choices``) and the number of choices of the first operation decision
        (kinds in ``fair_kinds``); ``None`` when the space has none."""
        for index, decision in enumerate(self._decisions):
            if decision.kind in self.fair_kinds:
                return index, decision.num_choices
        return None

    def fair_children(self, rng: np.random.Generator) -> list[Architecture]:
        """FairNAS's strict-fair step (Chu et al., "FairNAS: Rethinking Evaluation Fairness
        of Weight Sharing NAS"): ``fair_k`` architectures that, together, use every choice
        of every operation decision (kinds in ``fair_kinds``) once. Each operation decision
        draws a random permutation of its choices and child ``i`` takes ``perm[i mod n]``
        (a decision with fewer choices than ``fair_k`` uses some of them twice); the other
        decisions (skip connections, node inputs) are drawn uniformly per child. Drawn from
        ``rng`` only: first every child's uniform draws, then the permutations in decision
        order."""
        k = self.fair_k
        cards = self._cardinalities
        choices = rng.integers(0, cards, size=(k, len(cards)))
        rows = np.arange(k)
        for index, decision in enumerate(self._decisions):
            if decision.kind in self.fair_kinds:
                perm = rng.permutation(decision.num_choices)
                choices[:, index] = perm[rows % decision.num_choices]
        return [
            Architecture(self.name, tuple(int(c) for c in row), self.version) for row in choices
        ]

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one decision (chosen uniformly among those with more than one choice) to a
        different value, as regularized evolution does."""
        self.validate(arch)
        mutable = np.flatnonzero(self._cardinalities > 1)
        if mutable.size == 0:
            return arch
        index = int(rng.choice(mutable))
        offset = int(rng.integers(1, self._cardinalities[index]))
        choices = list(arch.choices)
        choices[index] = (choices[index] + offset) % int(self._cardinalities[index])
        return Architecture(self.name, tuple(choices), self.version)

    def size(self) -> int:
        """Number of distinct choice sequences (an exact Python int; may be astronomically big)."""
        return math.prod(int(c) for c in self._cardinalities)

    def choice_sequences(self) -> Iterator[tuple[int, ...]]:
        """Every legal choice sequence, ``size()`` of them, the last decision varying fastest
        (mixed-radix order). Only for a space small enough to list."""
        return itertools.product(*(range(int(c)) for c in self._cardinalities))

    def describe(self, arch: Architecture) -> dict[str, Any]:
        """A readable genotype: decision name -> chosen label."""
        self.validate(arch)
        return {d.name: d.choices[c] for d, c in zip(self._decisions, arch.choices, strict=True)}

    def _shape_hint(self) -> str:
        return f"{len(self._decisions)} decisions of {self.name}"

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({params})"

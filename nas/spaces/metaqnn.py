"""``metaqnn``: the MetaQNN layer-sequence space (Baker et al. 2017, section 4 and table 1).

An architecture is a chain of layers chosen one step at a time from one vocabulary:

- ``C(f,d)``: convolution, receptive field ``f`` in ``kernels`` (paper: 1, 3, 5), ``d``
  filters in ``channels/4, channels/2, channels`` (paper: 64..512), stride 1, "same"
  padding, so the representation size is unchanged;
- ``P(k)``: max pooling, kernel ``k`` in ``pools`` (2 or 3), stride 2: the representation
  size ``R`` becomes ``ceil(R/2)`` (the paper also has 5x5 stride 3; halving keeps 1-D and
  small 2-D inputs simple);
- ``FC(u)``: fully connected, ``u`` in ``fc_units`` (paper: 512, 256, 128);
- ``GAP``: terminate with global average pooling and the softmax classifier;
- ``SM``: terminate with the softmax classifier on the flattened representation;
- ``PAD``: fills the steps after termination.

The decision sequence has a fixed length ``max_layers + 1`` (one categorical over the whole
vocabulary per step) so encoding, one-hot vectors and mutation work as for the other spaces;
an architecture is exactly one terminal action (``GAP`` or ``SM``) after 1..``max_layers``
layers, then ``PAD`` to the end.

Which actions are legal depends on the representation size ``R`` (the spatial side, the
larger one for images), binned as in the paper by ``size_bins``, upper edges, descending;
the default scales the paper's 8 and 4 for 32-pixel CIFAR to the input: ``input_size/4``,
``input_size/8``. The rules (paper section 4, adapted):

1. the first layer is a convolution; a convolution's receptive field is at most ``R``;
2. no pooling right after pooling, and no pooling once ``R`` is 1;
3. ``FC`` only after a convolution was seen, while ``R`` is in a small bin
   (``R <= size_bins[0]``; paper: ``R <= 8``), at most ``max_fc`` (2) of them in a row and
   each no wider than the one before; after an ``FC`` only ``FC`` or ``SM`` follow;
4. ``GAP`` after a convolution or pooling layer; ``SM`` after ``FC``, or after a
   convolution or pooling layer when ``R`` is small (as for ``FC``);
5. a terminal action at step ``max_layers`` at the latest; only ``PAD`` after it.

The space has to know the input's spatial size (``input_size``: 40 for MNIST-1D, 8 for the
8x8 digits) because the legal actions depend on it; the network builder
(``MetaQNNNetwork``, with its export source and drawing, in ``_metaqnn_network``) checks it
against the data. ``sample`` is uniform over all legal sequences (counted exactly); the MetaQNN
controller does its own walk (uniform over the legal actions of each step at epsilon 1).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import Field, ValidationInfo, model_validator

from nas.architecture import Architecture
from nas.errors import InvalidArchitectureError, at_submit

# The network (and the layer kinds it builds, the vocabulary's kinds) is this space's, in a
# module of its own for length only.
from nas.spaces._metaqnn_network import (
    CONV,
    FC,
    GAP,
    PAD,
    POOL,
    SM,
    TERMINALS,
    MetaQNNNetwork,
)
from nas.spaces.base import Decision, SearchSpace, SpaceConfig


class MetaQNNConfig(SpaceConfig):
    max_layers: int = Field(8, ge=1, le=32, description="most layers before termination")
    input_size: int = Field(
        40,
        ge=1,
        le=4096,
        description="the data's spatial size: L of (C, L) signals, max(H, W) of images "
        "(MNIST-1D 40, digits 8)",
    )
    channels: int = Field(
        64, ge=4, le=1024, description="largest filter count; choices channels/4, /2, x1"
    )
    # (at most 64 kernels and FC widths: every step of a walk weighs each action, and 100,000
    # kernels took minutes per sample, deaf to a cancel)
    kernels: list[int] = Field(
        [1, 3, 5],
        min_length=1,
        max_length=64,
        description="conv receptive fields (odd, at most input_size)",
    )
    pools: list[int] = Field([2, 3], description="max-pool kernels (stride 2); [] for none")
    fc_units: list[int] = Field(
        [128, 64, 32], max_length=64, description="FC widths; [] for no FC layers"
    )
    max_fc: int = Field(2, ge=0, le=8, description="most FC layers (the paper: 2)")
    size_bins: list[int] | None = Field(
        None,
        min_length=1,
        description="representation-size bin edges, descending; FC/SM need R <= the first. "
        "Default input_size/4, input_size/8 (the paper's 8, 4 for 32 pixels)",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="dropout after FC layers and before the classifier"
    )

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> MetaQNNConfig:
        for name in ("kernels", "pools", "fc_units"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} {values} repeat a value")
            if any(v < 1 for v in values):
                raise ValueError(f"{name} {values} must be positive")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels {self.kernels} must be odd ('same' padding)")
        if at_submit(info.context) and max(self.kernels) > self.input_size:
            # (a receptive field past the representation is never legal: with every kernel
            # past it, no walk could start, and the job failed on an IndexError)
            raise ValueError(
                f"kernels: {max(self.kernels)} exceeds input_size {self.input_size}, and no "
                f"layer could use it; use kernels of at most {self.input_size}"
            )
        if any(k not in (2, 3) for k in self.pools):
            raise ValueError(f"pools {self.pools}: each must be 2 or 3 (stride-2 max pooling)")
        if (
            at_submit(info.context)  # (a job stored before still loads)
            and self.max_fc == 0
            and self.fc_units
            and self.fc_units != type(self).model_fields["fc_units"].default
        ):
            raise ValueError(
                f"fc_units: max_fc 0 allows no FC layers, so fc_units {self.fc_units} would "
                "never be used; set max_fc above 0 or fc_units: []"
            )
        if self.size_bins is not None:
            bins = self.size_bins
            if any(b < 1 for b in bins) or any(a <= b for a, b in itertools.pairwise(bins)):
                raise ValueError(f"size_bins {bins} must be positive and strictly descending")
        return self

    def as_built(self) -> dict[str, Any]:
        built = super().as_built()
        built["fc_units"] = sorted(self.fc_units, reverse=True)  # (as the space orders them)
        if self.size_bins is None:
            built["size_bins"] = default_size_bins(self.input_size)
        return built


def default_size_bins(input_size: int) -> list[int]:
    """The paper's R-size bin edges (8 and 4 for a 32-pixel input) scaled to ``input_size``."""
    edges = [max(1, round(input_size / 4)), max(1, round(input_size / 8))]
    return sorted(set(edges), reverse=True)


@dataclass(frozen=True, slots=True)
class Action:
    """One entry of the vocabulary: a layer kind and its parameters."""

    kind: str
    kernel: int = 0
    width: int = 0  # conv filters or FC units

    @property
    def label(self) -> str:
        if self.kind == CONV:
            return f"C({self.kernel},{self.width})"
        if self.kind == POOL:
            return f"P({self.kernel})"
        if self.kind == FC:
            return f"FC({self.width})"
        return self.kind.upper()


@dataclass(frozen=True, slots=True)
class LayerState:
    """Where a partial sequence stands: what decides the legal next actions.

    ``size`` is the representation size ``R``; ``last`` the kind of the last layer (``input``
    at the start); ``label`` its label; ``fc`` the number of FC layers so far and ``fc_width``
    the last one's width.
    """

    depth: int = 0
    last: str = "input"
    label: str = "input"
    size: int = 1
    conv_seen: bool = False
    fc: int = 0
    fc_width: int = 0

    @property
    def terminated(self) -> bool:
        return self.last in TERMINALS


class MetaQNNSpace(SearchSpace):
    """MetaQNN's chain of conv / pool / FC layers ending in GAP or softmax.

    Example:
        >>> space = MetaQNNSpace(max_layers=4, input_size=40, channels=32)
        >>> arch = space.from_labels(["C(3,16)", "P(2)", "C(5,32)", "GAP"])
        >>> space.labels(arch)
        ['C(3,16)', 'P(2)', 'C(5,32)', 'GAP', 'SM']
    """

    name = "metaqnn"
    version = 1
    trainable = True
    has_supernet = False
    network_class = MetaQNNNetwork
    Config = MetaQNNConfig

    def __init__(
        self,
        *,
        max_layers: int = 8,
        input_size: int = 40,
        channels: int = 64,
        kernels: list[int] | tuple[int, ...] = (1, 3, 5),
        pools: list[int] | tuple[int, ...] = (2, 3),
        fc_units: list[int] | tuple[int, ...] = (128, 64, 32),
        max_fc: int = 2,
        size_bins: list[int] | None = None,
        dropout: float = 0.0,
    ) -> None:
        # The Config's checks, for direct construction too.
        MetaQNNConfig(
            max_layers=max_layers,
            input_size=input_size,
            channels=channels,
            kernels=list(kernels),
            pools=list(pools),
            fc_units=list(fc_units),
            max_fc=max_fc,
            size_bins=size_bins,
            dropout=dropout,
        )
        self.max_layers = max_layers
        self.input_size = input_size
        self.channels = channels
        self.kernels = tuple(kernels)
        self.pools = tuple(pools)
        self.fc_units = tuple(sorted(fc_units, reverse=True))
        self.max_fc = max_fc
        self.size_bins = (
            tuple(size_bins) if size_bins is not None else tuple(default_size_bins(input_size))
        )
        self.dropout = dropout

    @property
    def config(self) -> dict[str, Any]:
        return {
            "max_layers": self.max_layers,
            "input_size": self.input_size,
            "channels": self.channels,
            "kernels": list(self.kernels),
            "pools": list(self.pools),
            "fc_units": list(self.fc_units),
            "max_fc": self.max_fc,
            "size_bins": list(self.size_bins),
            "dropout": self.dropout,
        }

    # --- the vocabulary -------------------------------------------------------------------
    @property
    def filters(self) -> tuple[int, ...]:
        return tuple(
            sorted({max(1, self.channels // 4), max(1, self.channels // 2), self.channels})
        )

    @cached_property
    def actions(self) -> tuple[Action, ...]:
        out = [Action(CONV, k, d) for k in self.kernels for d in self.filters]
        out += [Action(POOL, k) for k in self.pools]
        if self.max_fc > 0:
            out += [Action(FC, 0, u) for u in self.fc_units]
        out += [Action(GAP), Action(SM), Action(PAD)]
        return tuple(out)

    @cached_property
    def pad(self) -> int:
        """The index of ``PAD`` in the vocabulary."""
        return len(self.actions) - 1

    @cached_property
    def _labels(self) -> tuple[str, ...]:
        return tuple(a.label for a in self.actions)

    def decisions(self) -> list[Decision]:
        return [Decision(f"step{i}", self._labels, "op") for i in range(self.max_layers + 1)]

    # --- the state machine ----------------------------------------------------------------
    def initial_state(self) -> LayerState:
        return LayerState(size=self.input_size)

    def size_bin(self, size: int) -> int:
        """0 for the largest representations; +1 for each bin edge that ``size`` is at or below."""
        return sum(size <= edge for edge in self.size_bins)

    def illegal_reason(self, state: LayerState, action: int) -> str | None:
        """Why ``action`` may not follow ``state``, or ``None`` when it is legal."""
        a = self.actions[action]
        if state.terminated:
            return None if a.kind == PAD else f"{a.label} after termination; only PAD may follow"
        if a.kind == PAD:
            return "PAD before a terminal action (GAP or SM)"
        if state.depth >= self.max_layers and a.kind not in TERMINALS:
            return f"{a.label} beyond max_layers={self.max_layers}; only GAP or SM may end it"
        small = state.size <= self.size_bins[0]
        if a.kind == CONV:
            if state.last == FC:
                return f"{a.label} after a fully connected layer"
            if a.kernel > state.size:
                return f"{a.label}: receptive field {a.kernel} exceeds representation size {state.size}"
            return None
        if state.depth == 0 or not state.conv_seen:
            return f"{a.label} before the first convolution"
        if a.kind == POOL:
            if state.last == POOL:
                return f"{a.label} right after pooling"
            if state.last == FC:
                return f"{a.label} after a fully connected layer"
            if state.size <= 1:
                return f"{a.label} with representation size 1"
            return None
        if a.kind == FC:
            if state.fc >= self.max_fc:
                return f"{a.label}: more than max_fc={self.max_fc} fully connected layers"
            if state.last == FC:
                if a.width > state.fc_width:
                    return f"{a.label} wider than the FC({state.fc_width}) before it"
                return None
            if not small:
                return (
                    f"{a.label} at representation size {state.size}; FC needs <= "
                    f"{self.size_bins[0]}"
                )
            return None
        if a.kind == GAP:
            return (
                f"GAP after {state.label}; GAP follows a conv or pool" if state.last == FC else None
            )
        # SM
        if state.last != FC and not small:
            return (
                f"SM at representation size {state.size}; SM needs an FC layer or size <= "
                f"{self.size_bins[0]}"
            )
        return None

    def legal_actions(self, state: LayerState) -> list[int]:
        return [a for a in range(len(self.actions)) if self.illegal_reason(state, a) is None]

    def next_state(self, state: LayerState, action: int) -> LayerState:
        """The state after a legal ``action``."""
        a = self.actions[action]
        if a.kind == PAD:
            return state
        base = replace(state, depth=state.depth + 1, last=a.kind, label=a.label)
        if a.kind == CONV:
            return replace(base, conv_seen=True)
        if a.kind == POOL:
            return replace(base, size=math.ceil(state.size / 2))
        if a.kind == FC:
            return replace(base, fc=state.fc + 1, fc_width=a.width)
        return base  # terminal

    def states(self, arch: Architecture) -> list[LayerState]:
        """The state before each step up to and including the terminal action."""
        self.validate(arch)
        state, out = self.initial_state(), []
        for choice in arch.choices:
            if state.terminated:
                break
            out.append(state)
            state = self.next_state(state, choice)
        return out

    def input_shape_problem(self, input_shape: Sequence[int]) -> str | None:
        """The legal layer sequences depend on the representation size: the data's spatial
        size must be ``input_size``."""
        problem = super().input_shape_problem(input_shape)
        spatial = tuple(int(v) for v in input_shape[1:])
        if problem is None and max(spatial) != self.input_size:
            problem = (
                f"space metaqnn has input_size {self.input_size} but the data's spatial size "
                f"is {spatial}; set the space's input_size to {max(spatial)}"
            )
        return problem

    # --- contract -------------------------------------------------------------------------
    def validate(self, arch: Architecture) -> None:
        super().validate(arch)  # space, version, length, ranges
        self._check_sequence(arch.choices)

    def _check_sequence(self, choices: tuple[int, ...]) -> None:
        state = self.initial_state()
        for step, choice in enumerate(choices):
            reason = self.illegal_reason(state, choice)
            if reason is not None:
                raise InvalidArchitectureError(reason, decision=f"step{step}")
            state = self.next_state(state, choice)

    def legal_choices(self, choices: Sequence[int]) -> tuple[int, ...]:
        """Step by step, an illegal choice becomes the legal action at its index modulo
        their count (after termination only PAD is legal); legal sequences are unchanged."""
        state, out = self.initial_state(), []
        for choice in choices:
            choice = int(choice)
            if self.illegal_reason(state, choice) is not None:
                legal = self.legal_actions(state)
                choice = legal[choice % len(legal)]
            out.append(choice)
            state = self.next_state(state, choice)
        return tuple(out)

    def _is_legal(self, choices: tuple[int, ...]) -> bool:
        state = self.initial_state()
        for choice in choices:
            if self.illegal_reason(state, choice) is not None:
                return False
            state = self.next_state(state, choice)
        return True

    def _completions(self, state: LayerState) -> int:
        """Number of legal sequences that complete ``state`` (1 once terminated)."""
        memo = self._completion_memo
        if state not in memo:
            if state.terminated:
                memo[state] = 1
            else:
                memo[state] = sum(
                    self._completions(self.next_state(state, a)) for a in self.legal_actions(state)
                )
        return memo[state]

    @cached_property
    def _completion_memo(self) -> dict[LayerState, int]:
        return {}

    def size(self) -> int:
        """Number of legal architectures (counted exactly by dynamic programming)."""
        return self._completions(self.initial_state())

    def choice_sequences(self) -> Iterator[tuple[int, ...]]:
        """The legal architectures' choices, depth first in action order (the choices'
        product also counts illegal sequences: a layer past ``max_layers``, PAD first)."""

        def walk(state: LayerState, prefix: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
            if state.terminated:
                yield prefix + (self.pad,) * (self.max_layers + 1 - len(prefix))
                return
            for action in self.legal_actions(state):
                yield from walk(self.next_state(state, action), (*prefix, action))

        return walk(self.initial_state(), ())

    def sample(self, rng: np.random.Generator) -> Architecture:
        """Uniform over the legal architectures: each step picks an action with probability
        proportional to the number of legal sequences that it leads to."""
        state, choices = self.initial_state(), []
        while not state.terminated:
            legal = self.legal_actions(state)
            counts = [self._completions(self.next_state(state, a)) for a in legal]
            cumulative = np.cumsum(np.asarray(counts, dtype=np.float64))
            index = bisect.bisect_right(cumulative.tolist(), float(rng.random() * cumulative[-1]))
            action = legal[min(index, len(legal) - 1)]
            choices.append(action)
            state = self.next_state(state, action)
        choices += [self.pad] * (self.max_layers + 1 - len(choices))
        return Architecture(self.name, tuple(choices), self.version)

    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """Change one step to another action such that the whole sequence stays legal (a
        layer's parameters or kind, or GAP <-> SM), uniformly over all such changes."""
        self.validate(arch)
        choices = list(arch.choices)
        options: list[tuple[int, int]] = []
        for step, current in enumerate(choices):
            if current == self.pad:
                break
            for action in range(len(self.actions)):
                if action == current:
                    continue
                choices[step] = action
                if self._is_legal(tuple(choices)):
                    options.append((step, action))
            choices[step] = current
        if not options:
            return arch
        step, action = options[int(rng.integers(len(options)))]
        choices[step] = action
        return Architecture(self.name, tuple(choices), self.version)

    def labels(self, arch: Architecture) -> list[str]:
        """The readable layer list, e.g. ``["C(3,32)", "P(2)", "C(5,64)", "GAP", "SM"]``
        (a GAP termination is followed by the softmax classifier, ``SM``)."""
        self.validate(arch)
        out = []
        for choice in arch.choices:
            if choice == self.pad:
                break
            out.append(self._labels[choice])
        if out[-1] == "GAP":
            out.append("SM")
        return out

    def describe(self, arch: Architecture) -> dict[str, Any]:
        return {"layers": self.labels(arch)}

    def from_labels(self, labels: list[str] | tuple[str, ...]) -> Architecture:
        """The architecture of a label list (``labels`` output, with or without the ``SM``
        after ``GAP``); validated."""
        names = list(labels)
        if len(names) >= 2 and names[-2:] == ["GAP", "SM"]:
            names = names[:-1]
        choices = []
        for step, label in enumerate(names):
            if label not in self._labels:
                raise InvalidArchitectureError(
                    f"unknown layer {label!r}; valid: {', '.join(self._labels)}",
                    decision=f"step{step}",
                )
            choices.append(self._labels.index(label))
        if len(choices) > self.max_layers + 1:
            raise InvalidArchitectureError(
                f"{len(choices)} steps; at most max_layers + 1 = {self.max_layers + 1}"
            )
        choices += [self.pad] * (self.max_layers + 1 - len(choices))
        return self.make(choices)

    def _shape_hint(self) -> str:
        return f"max_layers + 1 = {self.max_layers + 1} steps of {self.name}"

"""``random``: uniform random search, the baseline every paper reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from controllers.base import Controller, ControllerConfig
from nas.architecture import Architecture


class RandomConfig(ControllerConfig):
    unique: bool = Field(
        False,
        description="never propose an architecture twice (the space can then be exhausted); "
        "off by default, as in the NAS-Bench-201 protocol",
    )


class RandomSearch(Controller):
    """Samples each decision uniformly, and each hyperparameter of a joint search uniformly
    (log-uniformly on a log scale); ``unique`` concerns the architecture alone.

    Example:
        >>> controller = RandomSearch(space=Nb201Space(), seed=0)
        >>> candidate = controller.ask()
    """

    name = "random"
    Config = RandomConfig
    multi_objective = True  # samples without looking at results

    def __init__(self, *, unique: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unique = unique
        self._seen: set[tuple[int, ...]] = set()
        self._remaining: list[tuple[int, ...]] | None = None

    def _propose(self) -> Architecture | None:
        if not self.unique:
            return self.space.sample(self.rng)
        size = self.space.size()
        if self._remaining is None and len(self._seen) * 2 >= size:
            # Dense: rejection sampling would slow down, so list the unseen ones once.
            # (the legal ones: a MetaQNN space's choices also combine into illegal ones)
            unseen = [c for c in self.space.choice_sequences() if c not in self._seen]
            self._remaining = [unseen[i] for i in self.rng.permutation(len(unseen))]
        if self._remaining is not None:
            if not self._remaining:
                self._finished = True
                return None
            arch = self.space.make(self._remaining.pop())
        else:
            while (arch := self.space.sample(self.rng)).choices in self._seen:
                pass
        self._seen.add(arch.choices)
        return arch

    def _propose_seed(
        self, architecture: Architecture, hparams: dict[str, Any]
    ) -> tuple[Architecture, Mapping[str, Any]] | None:
        """A warm-start prior, counted as seen: ``unique`` never proposes it again."""
        if self.unique:
            self._seen.add(architecture.choices)
            if self._remaining is not None and architecture.choices in self._remaining:
                self._remaining.remove(architecture.choices)
        return super()._propose_seed(architecture, hparams)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["seen"] = [list(c) for c in sorted(self._seen)]
        state["remaining"] = None if self._remaining is None else [list(c) for c in self._remaining]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._seen = {tuple(c) for c in state.get("seen", [])}
        remaining = state.get("remaining")
        self._remaining = None if remaining is None else [tuple(c) for c in remaining]

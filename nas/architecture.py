"""``Architecture``: plain, hashable data, separate from any ``nn.Module``."""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Architecture:
    """One point of a search space: the space's name and version plus the sequence of
    categorical choices that a controller makes (see ``SearchSpace.decisions``).

    The choices are the canonical form; ``SearchSpace.describe`` gives a readable genotype.

    Example:
        >>> arch = Architecture("nb201", (3, 3, 1, 0, 2, 4))
        >>> Architecture.from_json(arch.to_json()) == arch
        True
    """

    space: str
    choices: tuple[int, ...]
    version: int = 1

    def __post_init__(self) -> None:
        # Accept any integer sequence (lists from JSON, numpy arrays) but store plain ints.
        object.__setattr__(self, "choices", tuple(_as_index(c) for c in self.choices))

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "version": self.version, "choices": list(self.choices)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        missing = [k for k in ("space", "choices") if k not in data]
        if missing:
            raise ValueError(f"architecture JSON lacks {missing}; it needs space, choices")
        choices = data["choices"]
        if not isinstance(choices, Sequence) or isinstance(choices, str):
            # (a ValueError, as every malformed architecture is: callers answer it with a 4xx)
            raise ValueError("architecture 'choices' must be a list of integers")  # noqa: TRY004
        return cls(str(data["space"]), tuple(choices), int(data.get("version", 1)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        return cls.from_dict(json.loads(text))

    @property
    def key(self) -> str:
        """A short stable string, handy as a cache or database key."""
        return f"{self.space}/v{self.version}/" + ".".join(map(str, self.choices))


def _as_index(value: object) -> int:
    """An integer choice; 1.7, "2" or True are rejected rather than silently converted."""
    if isinstance(value, bool):  # a ValueError, as for any other non-integer
        raise ValueError(f"architecture choices must be integers, got {value!r}")  # noqa: TRY004
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON writers may emit 2.0
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"architecture choices must be integers, got {value!r}") from None

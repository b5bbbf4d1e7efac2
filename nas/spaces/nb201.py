"""``nb201``: the NAS-Bench-201 cell (Dong & Yang 2020): 4 nodes, 6 edges, 5 ops each.

Choices are the op ids of the six edges in the official ``arch_str`` order (edges 1<-0, 2<-0,
2<-1, 3<-0, 3<-1, 3<-2), with the benchmark table's numbering (0=none, 1=skip_connect,
2=nor_conv_1x1, 3=nor_conv_3x3, 4=avg_pool_3x3), so ``"".join(choices)`` is the table's
``ops`` column. The official index needs the table: see ``nas.evaluators.tabular``.
"""

from __future__ import annotations

import re
from typing import Any

from nas.architecture import Architecture
from nas.errors import InvalidArchitectureError
from nas.spaces.base import Decision, SearchSpace, SpaceConfig

NB201_OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
#: (target node, source node) of each edge, in arch_str order.
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

_EDGE_RE = re.compile(r"^([a-z0-9_]+)~(\d+)$")


class Nb201Config(SpaceConfig):
    pass


class Nb201Space(SearchSpace):
    """The 15,625-architecture NAS-Bench-201 cell space.

    Example:
        >>> space = Nb201Space()
        >>> arch = space.from_arch_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        ...                            "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
        >>> arch.choices
        (3, 3, 4, 1, 3, 1)
    """

    name = "nb201"
    version = 1
    Config = Nb201Config

    def decisions(self) -> list[Decision]:
        return [Decision(f"edge{t}<-{s}", NB201_OPS, "edge") for t, s in NB201_EDGES]

    def arch_str(self, arch: Architecture) -> str:
        """The official NAS-Bench-201 string, e.g. ``|nor_conv_3x3~0|+|...|``."""
        self.validate(arch)
        ops = [NB201_OPS[c] for c in arch.choices]
        groups = [
            f"|{ops[0]}~0|",
            f"|{ops[1]}~0|{ops[2]}~1|",
            f"|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|",
        ]
        return "+".join(groups)

    def ops_code(self, arch: Architecture) -> str:
        """The table's ``ops`` column: six digits, one per edge."""
        self.validate(arch)
        return "".join(str(c) for c in arch.choices)

    def from_arch_str(self, text: str) -> Architecture:
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise InvalidArchitectureError(
                f"arch_str {text!r} must have 3 '+'-separated node groups, got {len(groups)}"
            )
        choices: list[int] = []
        for target, group in enumerate(groups, start=1):
            edges = [e for e in group.strip("|").split("|") if e]
            if len(edges) != target:
                raise InvalidArchitectureError(
                    f"node {target} in arch_str must have {target} edges, got {len(edges)}"
                )
            for source, edge in enumerate(edges):
                match = _EDGE_RE.match(edge)
                if not match or int(match.group(2)) != source:
                    raise InvalidArchitectureError(
                        f"edge {edge!r} must read OP~{source}", decision=f"edge{target}<-{source}"
                    )
                op = match.group(1)
                if op not in NB201_OPS:
                    raise InvalidArchitectureError(
                        f"unknown op {op!r}; valid: {', '.join(NB201_OPS)}",
                        decision=f"edge{target}<-{source}",
                    )
                choices.append(NB201_OPS.index(op))
        return self.make(choices)

    def describe(self, arch: Architecture) -> dict[str, Any]:
        return {"arch_str": self.arch_str(arch)}

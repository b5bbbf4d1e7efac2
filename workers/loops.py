"""The search loop of each kind of search, by the ``Evaluator.search`` it drives.

A new kind of search (an evaluator whose work is not "evaluate a batch of trials") is one
loop module (a ``workers.search.SearchLoop`` subclass) plus one entry here.
"""

from __future__ import annotations

from nas.evaluators import EVALUATORS
from nas.registry import Registry
from nas.spec import ResolvedSpec
from workers.meta_train import MetaTrainSearch
from workers.search import SearchLoop
from workers.shared import SharedWeightSearch

LOOPS: Registry[type[SearchLoop]] = Registry("search loop")
LOOPS.register("trials")(SearchLoop)
LOOPS.register("supernet")(SharedWeightSearch)
LOOPS.register("meta-train")(MetaTrainSearch)


def loop_class(resolved: ResolvedSpec) -> type[SearchLoop]:
    """The loop that drives the spec's evaluator (its ``search``), without building it."""
    return LOOPS.get(EVALUATORS.get(resolved.spec.evaluator.name).search)


__all__ = ["LOOPS", "loop_class"]

"""The search loop of each kind of search, by the ``Evaluator.search`` it drives.

A new kind of search (an evaluator whose work is not "evaluate a batch of trials") is one
loop module (a ``workers.search.SearchLoop`` subclass) plus one entry here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from controllers import CONTROLLERS, Controller
from nas.datasets import DATASETS, check_dataset, dataset_shape
from nas.errors import NasError, SpecError, spec_error_at_field
from nas.evaluators import EVALUATORS
from nas.paths import spec_path
from nas.registry import Registry
from nas.spaces.base import SearchSpace
from nas.spec import ResolvedSpec
from nas.trial import TrialRecord
from workers.backend import OutputFile, SearchState
from workers.meta_train import MetaTrainSearch
from workers.search import SearchLoop, build_controller
from workers.shared import SharedWeightSearch

LOOPS: Registry[type[SearchLoop]] = Registry("search loop")
LOOPS.register("trials")(SearchLoop)
LOOPS.register("supernet")(SharedWeightSearch)
LOOPS.register("meta-train")(MetaTrainSearch)


def loop_class(resolved: ResolvedSpec) -> type[SearchLoop]:
    """The loop that drives the spec's evaluator (its ``search``), without building it."""
    return LOOPS.get(EVALUATORS.get(resolved.spec.evaluator.name).search)


def check_startable(resolved: ResolvedSpec) -> None:
    """Find now what a job would otherwise find only when it starts, as a ``SpecError`` at
    the field: the files it reads, as far as their structure tells without loading data (an
    ``.npz`` dataset's arrays, a table's columns), and whether its controller can be built
    (an RL² policy file, a transferred controller state, a grid that would be too large).
    A service calls it at submit, once the spec's files are confined to its data roots."""
    spec = resolved.spec
    with _errors_at("dataset"):
        check_dataset(spec.dataset.name, **resolved.dataset_params)
    with _errors_at("space"):
        space = resolved.build_space()
        space.decisions()
        entry = DATASETS.get(spec.dataset.name)
        # A space with its own demands on the input (MetaQNN's input_size): on generated
        # data, building it costs seconds; a user's file tells from its headers (an npz of
        # 16 x 16 images failed the job at its start).
        demands = type(space).input_shape_problem is not SearchSpace.input_shape_problem
        shape: tuple[int, ...] | None = None
        if demands and entry.load is not None and entry.check is None:
            shape, _ = dataset_shape(spec.dataset.name, resolved.dataset_params, spec.seed)
        elif demands and entry.example_shape is not None:
            shape = entry.example_shape(**resolved.dataset_params)
        problem = None if shape is None else space.input_shape_problem(shape)
        if problem is not None:  # MetaQNN's input_size
            raise SpecError.at(["space"], problem)
    with _errors_at("evaluator"):
        EVALUATORS.get(spec.evaluator.name).check_files(
            space=space,
            params=resolved.evaluator_params,
            dataset=spec.dataset.name,
            dataset_params=resolved.dataset_params,
        )
    if loop_class(resolved).builds_controller:
        with _errors_at("controller"):
            controller = build_controller(resolved, space)
        check_parallel_trials(resolved, controller)


def with_absolute_files(resolved: ResolvedSpec) -> ResolvedSpec:
    """``resolved`` with each file it names as an absolute path: a relative one is read
    from the working directory, and was stored as written, so a server (or a run's
    spec.yaml run again) started from another folder later found no such file. (Before
    the sources of a warm start or a meta-training are compared with it: they are stored
    so.)"""
    stored = resolved.to_dict()
    changed = False
    listed: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # (section, name, path) -> its loc
    for loc, value in resolved.file_params(CONTROLLERS):  # (section, name[, index])
        absolute = str(spec_path(value))  # (and its .. taken lexically, as readers take it)
        if len(loc) == 3:  # a list of files: each once (rl2-meta's tables), however written
            first = listed.setdefault((*loc[:2], absolute), loc)
            if first != loc:
                raise SpecError.at(
                    list(loc),
                    f"the same file as {'.'.join(map(str, first))} (written another way: "
                    f"{value!r}); each may appear once",
                )
        if absolute == value:
            continue
        container: Any = stored
        for key in loc[:-1]:
            container = container[key]
        container[loc[-1]] = absolute
        changed = True
    return ResolvedSpec.from_stored(stored) if changed else resolved


def with_pinned_space(resolved: ResolvedSpec) -> ResolvedSpec:
    """``resolved`` with its space's parameters as the space read them from its files
    (``SearchSpace.pinned_config``: a table's choices), for the spec a job or a run stores;
    a file the space cannot read is a ``SpecError`` at ``space``."""
    with _errors_at("space"):
        space = resolved.build_space()
        pinned = space.pinned_config()
    if pinned == space.config:  # (a space that reads no file: its parameters as given)
        return resolved
    stored = resolved.to_dict()
    stored["space"] = {"name": stored["space"]["name"], **pinned}
    return ResolvedSpec.from_stored(stored)


def check_parallel_trials(resolved: ResolvedSpec, controller: Controller) -> None:
    """``resources.workers`` trials side by side need a controller that has that many
    candidates out at once (``Controller.pending_limit``): one that has fewer would run
    fewer trials at a time, silently. Refused (``SpecError`` at ``resources.workers``,
    naming the controller's setting). Not for searches whose workers are not trials side
    by side: a supernet's group of workers, table lookups (answered in batches)."""
    spec = resolved.spec
    workers = spec.resources.workers
    if (
        workers == 1
        or loop_class(resolved).keeps_evaluator_state
        or EVALUATORS.get(spec.evaluator.name).instant
    ):
        return
    limit, setting = controller.pending_limit()
    if limit is None or limit >= workers:
        return
    why = (
        f"controller.{setting}: {limit}"
        if setting is not None
        else "each proposal follows the previous result"
    )
    fix = f"set resources.workers: {limit}"
    if setting is not None:
        fix += (
            f", or controller.{setting}: {workers} or more (or null where allowed) to run "
            f"{workers} trials at once (each proposal then sees fewer earlier results)"
        )
    raise SpecError.at(
        ["resources", "workers"],
        f"controller {spec.controller.name!r} has at most {limit} candidate"
        f"{'' if limit == 1 else 's'} out at once ({why}), so workers: {workers} would run "
        f"{limit} trial{'' if limit == 1 else 's'} at a time; {fix}",
    )


@contextmanager
def _errors_at(section: str) -> Iterator[None]:
    """A component's error as a ``SpecError`` at the field its message names, else at
    ``section``."""
    try:
        yield
    except SpecError:
        raise
    except (NasError, ValueError, TypeError, KeyError) as exc:
        raise spec_error_at_field(exc, [section]) from None


def files_at(
    resolved: ResolvedSpec, state: SearchState, trials: Sequence[TrialRecord]
) -> list[OutputFile]:
    """What a search stopped at the checkpoint ``state`` keeps beyond its trials
    (``SearchLoop.keeps_files_when_stopped``: a meta-training's policy so far), built from
    that state here, wherever the search ran (on Ray it ran in an actor a stop ended)."""
    cls = loop_class(resolved)
    if not cls.keeps_files_when_stopped:
        return []
    loop = cls(resolved)
    loop.load_state(state, list(trials))
    return loop.files_so_far()


__all__ = ["LOOPS", "check_parallel_trials", "check_startable", "files_at", "loop_class"]

"""Warm starts, the controller's part: what a warm-started job's controller takes from a
source job's last checkpoint (``Controller.transferable_state``: ENAS its policy, MetaQNN its
Q-table), resolved at submit into the stored spec's ``warm_start.controller_state`` so that
a source deleted later changes nothing and a resume is exact. The service reads the source's
checkpoint from the database (``api.warmstart``); ``nas search`` reads ``controller.json``
from a source run folder (``resolve_run_controller``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from controllers import CONTROLLERS
from nas.errors import SpecError
from nas.warmstart import read_run_spec

__all__ = [
    "CONTROLLER_FILE",
    "controller_transfer",
    "models_observations",
    "resolve_run_controller",
]

#: The final controller state a ``nas search`` run folder keeps (its ``state_dict()``).
CONTROLLER_FILE = "controller.json"


def controller_transfer(
    controller: Mapping[str, Any],
    sources: Iterable[tuple[Any, Mapping[str, Any], Mapping[str, Any] | None]],
) -> dict[str, Any] | None:
    """``warm_start.controller_state`` for a job whose ``controller`` section is given, from
    the first source ``(id, its controller section, its last controller state)`` that ran
    the same controller with the same parameters and has a state this controller takes
    (``None``: none does, and the controller starts from the priors alone)."""
    name = controller.get("name")
    if name not in CONTROLLERS:
        return None
    cls = CONTROLLERS.get(name)

    def compared(params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k not in cls.transfer_ignores}

    for source, section, state in sources:
        if state is None or compared(section) != compared(controller) or state.get("name") != name:
            continue
        transferred = cls.transferable_state(state)
        if transferred is not None:
            return {"source": source, "state": transferred}
    return None


def models_observations(document: Mapping[str, Any]) -> bool:
    """Whether the job this spec document describes learns from a warm start's
    ``observations`` (``Controller.models_observations``). For the others they are not
    kept: they would only make the stored spec larger (up to the body limit a stored spec
    submitted again must fit)."""
    controller = document.get("controller")
    name = controller.get("name") if isinstance(controller, Mapping) else controller
    return (
        isinstance(name, str) and name in CONTROLLERS and CONTROLLERS.get(name).models_observations
    )


def resolve_run_controller(document: Mapping[str, Any]) -> dict[str, Any]:
    """A spec document resolved by ``nas.warmstart.resolve_runs`` with the controller's
    ``controller_state`` taken from its source run folders' ``controller.json`` (a folder
    without one, from before this file was written, gives priors only). A damaged file is
    a ``SpecError`` at the folder's ``warm_start.runs.I``."""
    doc = dict(document)
    warm = doc.get("warm_start")
    if (
        not isinstance(warm, Mapping)
        or not isinstance(warm.get("runs"), list)
        or "controller_state" in warm
    ):
        return doc  # (a malformed section is reported by the spec's own validation)
    if warm.get("observations") and not models_observations(doc):
        warm = doc["warm_start"] = {**warm, "observations": []}
    controller = _controller_section(doc)
    # Every folder's file is read first: a damaged one is an error wherever it is listed.
    sources: list[tuple[list[Any], str, Mapping[str, Any], dict[str, Any]]] = []
    for i, run in enumerate(warm["runs"]):
        loc = ["warm_start", "runs", i]
        source = _run_controller(Path(str(run)).expanduser(), loc)
        if source is not None:
            sources.append((loc, *source))
    for loc, folder, section, state in sources:
        try:
            # One source at a time, in order (the first that gives a state is taken, as
            # controller_transfer takes it), so that a state it cannot read is known by its
            # folder's index.
            transfer = controller_transfer(controller, [(folder, section, state)])
        except (KeyError, TypeError, AttributeError) as exc:
            raise SpecError.at(
                loc, f"{folder!r}: {CONTROLLER_FILE} is not a state of its controller: {exc!r}"
            ) from None
        if transfer is not None:
            doc["warm_start"] = {**warm, "controller_state": transfer}
            break
    return doc


def _run_controller(
    folder: Path, loc: list[Any]
) -> tuple[str, Mapping[str, Any], dict[str, Any]] | None:
    """A run folder's controller section (its ``spec.yaml``'s) and final state (its
    ``controller.json``), ``None`` without that file, or a ``SpecError`` at ``loc``."""
    path = folder / CONTROLLER_FILE
    if not path.is_file():
        return None
    section = read_run_spec(folder, loc=loc).get("controller") or {}
    if not isinstance(section, Mapping):
        raise SpecError.at(loc, f"{str(folder)!r}: its spec.yaml has no controller section")
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError.at(
            loc, f"{str(folder)!r}: {CONTROLLER_FILE} cannot be read as JSON: {exc}"
        ) from None
    if not isinstance(state, dict):
        raise SpecError.at(
            loc,
            f"{str(folder)!r}: {CONTROLLER_FILE} holds a {type(state).__name__}; "
            "expected a JSON object (the controller's state_dict)",
        )
    return str(folder), section, state


def _controller_section(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document's controller section as a run folder's ``spec.yaml`` stores it."""
    from workers.search import parse_spec

    return dict(parse_spec(dict(doc)).to_dict()["controller"])

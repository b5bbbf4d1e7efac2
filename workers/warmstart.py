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

__all__ = ["CONTROLLER_FILE", "controller_transfer", "resolve_run_controller"]

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


def resolve_run_controller(document: Mapping[str, Any]) -> dict[str, Any]:
    """A spec document resolved by ``nas.warmstart.resolve_runs`` with the controller's
    ``controller_state`` taken from its source run folders' ``controller.json`` (a folder
    without one, from before this file was written, gives priors only)."""
    doc = dict(document)
    warm = doc.get("warm_start")
    if not isinstance(warm, Mapping) or not warm.get("runs") or "controller_state" in warm:
        return doc
    import yaml

    sources = []
    for run in warm["runs"]:
        folder = Path(run).expanduser()
        path = folder / CONTROLLER_FILE
        if not path.is_file():
            continue
        spec = yaml.safe_load((folder / "spec.yaml").read_text())
        sources.append((str(folder), spec.get("controller") or {}, json.loads(path.read_text())))
    transfer = controller_transfer(_controller_section(doc), sources)
    if transfer is not None:
        doc["warm_start"] = {**warm, "controller_state": transfer}
    return doc


def _controller_section(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document's controller section as a run folder's ``spec.yaml`` stores it."""
    from workers.search import parse_spec

    return dict(parse_spec(dict(doc)).to_dict()["controller"])

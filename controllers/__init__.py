"""Search strategies behind one ask/tell interface, registered by spec name."""

from __future__ import annotations

from controllers.base import Candidate, Controller, ControllerConfig, UnknownCandidateError
from controllers.enas import EnasController
from controllers.random_search import RandomSearch
from nas.registry import Registry

CONTROLLERS: Registry[type[Controller]] = Registry("controller")
CONTROLLERS.register(RandomSearch.name)(RandomSearch)
CONTROLLERS.register(EnasController.name)(EnasController)

__all__ = [
    "CONTROLLERS",
    "Candidate",
    "Controller",
    "ControllerConfig",
    "EnasController",
    "RandomSearch",
    "UnknownCandidateError",
]

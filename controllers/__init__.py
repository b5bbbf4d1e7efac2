"""Search strategies behind one ask/tell interface, registered by spec name."""

from __future__ import annotations

from controllers.base import Candidate, Controller, ControllerConfig, UnknownCandidateError
from controllers.enas import EnasController
from controllers.evolution import RegularizedEvolution
from controllers.metaqnn import MetaQNN
from controllers.optuna_search import (
    CmaEsController,
    GpController,
    GridController,
    Nsga2Controller,
    OptunaController,
    QmcController,
    TpeController,
)
from controllers.random_search import RandomSearch
from controllers.rl2 import Rl2Controller
from nas.registry import Registry

CONTROLLERS: Registry[type[Controller]] = Registry("controller")
for _controller in (
    RandomSearch,
    EnasController,
    RegularizedEvolution,
    MetaQNN,
    TpeController,
    CmaEsController,
    GpController,
    Nsga2Controller,
    QmcController,
    GridController,
    Rl2Controller,
):
    CONTROLLERS.register(_controller.name)(_controller)
del _controller

__all__ = [
    "CONTROLLERS",
    "Candidate",
    "CmaEsController",
    "Controller",
    "ControllerConfig",
    "EnasController",
    "GpController",
    "GridController",
    "MetaQNN",
    "Nsga2Controller",
    "OptunaController",
    "QmcController",
    "RandomSearch",
    "RegularizedEvolution",
    "Rl2Controller",
    "TpeController",
    "UnknownCandidateError",
]

"""Constraint figures measured without training, and the verdicts drawn from them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.constraints import CONSTRAINTS, measure_model, verdict
from nas.evaluators import StandaloneEvaluator, TabularEvaluator
from nas.models import build_model, count_parameters
from nas.spaces import MacroSpace, Nb201Space
from nas.training import count_flops


def test_verdict_lists_every_broken_constraint() -> None:
    figures = {"params": 1.2e6, "flops": 3e7, "latency_ms": 4.0}
    assert verdict(figures, {"max_params": 2e6, "max_flops": None}) is None
    assert verdict(figures, {"max_params": 5e5}) == "infeasible: params 1.2e+06 > max_params 5e+05"
    both = verdict(figures, {"max_params": 5e5, "max_latency_ms": 2})
    assert both == "infeasible: params 1.2e+06 > max_params 5e+05; latency_ms 4 > max_latency_ms 2"
    assert verdict(figures, {"max_flops": 3e7}) is None  # the limit itself is allowed
    assert "unknown" in verdict({"latency_ms": math.nan}, {"max_latency_ms": 1})


def test_every_constraint_bounds_a_figure_the_evaluators_measure() -> None:
    assert set(CONSTRAINTS.values()) == {"params", "flops", "latency_ms"}
    for cls in (TabularEvaluator, StandaloneEvaluator):
        assert set(cls.constraint_keys) == set(CONSTRAINTS)


def test_measure_model_counts_what_the_trainer_would_report() -> None:
    space = MacroSpace(layers=2, channels=4)
    arch = space.sample(np.random.default_rng(0))
    model = build_model(space, arch, (1, 40), 10)
    device = torch.device("cpu")
    figures = measure_model(model, (1, 40), device, ["params", "flops", "latency_ms"])
    assert figures["params"] == count_parameters(model)
    assert figures["flops"] == count_flops(model, (1, 40), device)
    assert 0 < figures["latency_ms"] < 10_000
    assert set(measure_model(model, (1, 40), device, ["params"])) == {"params"}


def test_tabular_reads_the_table_in_units(nb201_table: Path) -> None:
    evaluator = TabularEvaluator(dataset="nb201-cifar10", table=str(nb201_table))
    space = Nb201Space()
    archs = [space.sample(np.random.default_rng(i)) for i in range(5)]
    results = evaluator.evaluate(archs)
    figures = evaluator.constraint_figures(archs, ["params", "flops", "latency_ms"])
    for result, fig in zip(results, figures, strict=True):
        assert fig["params"] == pytest.approx(result.metrics["params_M"] * 1e6)
        # flops_M counts multiply-accumulates; max_flops counts multiplies and adds (the
        # limit let networks of twice the size through here)
        assert fig["flops"] == pytest.approx(result.metrics["flops_M"] * 2e6)
        assert fig["latency_ms"] == pytest.approx(result.metrics["latency_s"] * 1e3)
    limit = float(np.median([f["params"] for f in figures]))
    checks = evaluator.check_constraints(archs, {"max_params": limit, "max_flops": None})
    assert [why is None for why, _ in checks] == [f["params"] <= limit for f in figures]
    assert all(set(fig) == {"params"} for _, fig in checks)
    assert evaluator.check_constraints(archs, {"max_params": None}) == [(None, {})] * 5


def test_tabular_flops_are_those_standalone_counts_on_the_network_built(nb201_table: Path) -> None:
    """A max_flops must mean the same network size under both evaluators."""
    evaluator = TabularEvaluator(dataset="nb201-cifar10", table=str(nb201_table))
    space = Nb201Space()
    arch = space.sample(np.random.default_rng(3))
    (table,) = evaluator.constraint_figures([arch], ["flops"])
    network = space.build_network((3, 32, 32), 10, arch)
    counted = count_flops(network, (3, 32, 32), torch.device("cpu"))
    assert table["flops"] == pytest.approx(counted, rel=1e-5)  # (the table's rounding)

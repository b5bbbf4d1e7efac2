"""The contract every evaluator kind passes (as ``tests/controllers/contract.py`` is for
controllers). Subclass ``EvaluatorContract`` in the kind's test module and set ``spec``: a
small job spec (a dict) that selects the evaluator. ``test_evaluator_contract.py`` checks
that every registered evaluator has such a subclass."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest

from nas.evaluators import EVALUATORS, Evaluator, build_evaluator
from nas.metalearning import MetaWeights
from nas.spaces import SearchSpace
from nas.spec import ResolvedSpec
from nas.trial import TrialResult, TrialState
from workers.search import parse_spec


class EvaluatorContract:
    """Shared behaviour of all evaluators, on the spec's space and dataset."""

    #: A small spec for this evaluator; ``{table}`` in a string is the NB201 table path.
    spec: ClassVar[dict[str, Any]]
    #: How many architectures the batch tests evaluate.
    batch: ClassVar[int] = 3

    @pytest.fixture
    def resolved(self, nb201_table: Any) -> ResolvedSpec:
        return parse_spec(_fill(type(self).spec, str(nb201_table)))

    @pytest.fixture
    def built(self, resolved: ResolvedSpec) -> tuple[SearchSpace, Evaluator]:
        return build_evaluator(resolved)

    def _archs(self, space: SearchSpace, n: int, seed: int = 0) -> list[Any]:
        rng = np.random.default_rng(seed)
        return [space.sample(rng) for _ in range(n)]

    def test_is_registered_under_its_name_and_its_defaults_validate(
        self, built: tuple[SearchSpace, Evaluator]
    ) -> None:
        _, evaluator = built
        cls = type(evaluator)
        assert EVALUATORS.get(cls.name) is cls
        cls.Config()  # every parameter has a default
        assert cls.batch_size >= 1
        # (the instance's: an evaluator may report what its parameters name, e.g. columns)
        assert evaluator.metrics, "an evaluator lists the metrics it reports"

    def test_answers_one_result_per_architecture_in_order(
        self, built: tuple[SearchSpace, Evaluator]
    ) -> None:
        space, evaluator = built
        archs = self._archs(space, self.batch)
        results = evaluator.evaluate(archs, [{} for _ in archs])
        assert len(results) == len(archs)
        assert all(isinstance(r, TrialResult) for r in results)
        # The same architecture alone scores as it did inside the batch (no position effect
        # beyond the evaluator's own randomness, which is seeded per architecture or batch).
        for result in results:
            if result.state is TrialState.COMPLETE:
                assert result.objective is not None and math.isfinite(result.objective)
                assert result.cost_s >= 0

    def test_reports_the_metrics_it_declares(
        self, built: tuple[SearchSpace, Evaluator], resolved: ResolvedSpec
    ) -> None:
        space, evaluator = built
        results = evaluator.evaluate(self._archs(space, self.batch, seed=1))
        complete = [r for r in results if r.state is TrialState.COMPLETE]
        assert complete, results
        metric = resolved.spec.objective.metric
        for result in complete:
            assert metric in evaluator.metrics
            assert result.metrics.get(metric, result.objective) == result.objective
            assert set(result.metrics) <= {*evaluator.metrics, *_extra(result)}

    def test_trials_that_train_report_intermediate_values(
        self, built: tuple[SearchSpace, Evaluator]
    ) -> None:
        space, evaluator = built
        reports: list[tuple[int, int, dict[str, float]]] = []
        evaluator.report = lambda i, epoch, values: reports.append((i, epoch, dict(values)))
        archs = self._archs(space, 2, seed=2)
        evaluator.evaluate(archs, [{} for _ in archs])
        if evaluator.instant:
            assert reports == []  # instant answers have no running phase
        else:
            assert {i for i, _, _ in reports} == {0, 1}  # by index in the batch
            assert all(values for _, _, values in reports)

    def test_checks_each_constraint_it_declares_without_evaluating(
        self, built: tuple[SearchSpace, Evaluator]
    ) -> None:
        from nas.constraints import CONSTRAINTS

        space, evaluator = built
        archs = self._archs(space, 2, seed=3)
        for key in type(evaluator).constraint_keys:
            loose = evaluator.check_constraints(archs, {key: 1e18})
            assert [why for why, _ in loose] == [None, None]
            assert all(CONSTRAINTS[key] in figures for _, figures in loose)
            tight = evaluator.check_constraints(archs, {key: 1e-18})
            assert all(why is not None and key in why for why, _ in tight), tight

    def test_answers_for_its_own_spec_with_no_problem(self, resolved: ResolvedSpec) -> None:
        cls = EVALUATORS.get(resolved.spec.evaluator.name)
        assert cls.spec_problems(resolved.spec) == []

    def test_final_metrics_are_numbers(self, built: tuple[SearchSpace, Evaluator]) -> None:
        space, evaluator = built
        arch = self._archs(space, 1, seed=4)[0]
        metrics = evaluator.final_metrics(arch)
        assert all(isinstance(v, float | int) for v in metrics.values())
        # Weights the search learned itself (meta-learning): of that architecture, or none;
        # at hand once its final figures are (a Ctrl-C after them still keeps them)
        assert evaluator.learned_weights_ready(arch)
        learned = evaluator.learned_weights(arch)
        if learned is not None:
            assert MetaWeights.load(learned).architecture == arch.to_dict()


def _extra(result: TrialResult) -> set[str]:
    """Bookkeeping metrics an evaluator may add beyond its declared ones."""
    return {k for k in result.metrics if k.startswith(("lr_", "epochs", "pruned"))}


def _fill(spec: Any, table: str) -> Any:
    if isinstance(spec, dict):
        return {k: _fill(v, table) for k, v in spec.items()}
    if isinstance(spec, str):
        return spec.replace("{table}", table)
    return spec

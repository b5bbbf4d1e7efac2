"""Pareto fronts and 2-D hypervolume on known points, and against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nas.pareto import hypervolume_2d, non_dominated, objective_values, tie_break_key

ACC_PARAMS = ("maximize", "minimize")


def brute_front(points: np.ndarray, directions: tuple[str, ...]) -> list[int]:
    signs = np.array([1 if d == "maximize" else -1 for d in directions])
    v = points * signs
    return [
        i
        for i in range(len(v))
        if not any(np.all(v[j] >= v[i]) and np.any(v[j] > v[i]) for j in range(len(v)))
    ]


def test_known_front_accuracy_vs_parameters() -> None:
    points = [(90, 5), (80, 1), (85, 6), (90, 5), (70, 1), (95, 9), (95, 10)]
    # (85, 6) is dominated by (90, 5); (70, 1) by (80, 1); (95, 10) by (95, 9).
    # Equal points are both kept.
    assert non_dominated(points, ACC_PARAMS) == [0, 1, 3, 5]


def test_empty_single_and_all_equal() -> None:
    assert non_dominated([], ACC_PARAMS) == []
    assert non_dominated([(1, 1)], ACC_PARAMS) == [0]
    assert non_dominated([(1, 1)] * 3, ACC_PARAMS) == [0, 1, 2]


def test_three_objectives() -> None:
    points = [(1, 1, 1), (2, 1, 1), (0, 3, 0), (2, 1, 0)]
    directions = ("maximize", "maximize", "minimize")
    assert non_dominated(points, directions) == [2, 3]


@pytest.mark.parametrize("directions", list(itertools.product(("maximize", "minimize"), repeat=2)))
def test_two_objectives_match_brute_force(directions: tuple[str, str]) -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        points = rng.integers(0, 5, size=(int(rng.integers(1, 30)), 2)).astype(float)
        assert non_dominated(points, directions) == brute_front(points, directions)


@pytest.mark.parametrize("d", [3, 4])
def test_more_objectives_match_brute_force(d: int) -> None:
    """Three or more objectives sweep the distinct points (a front check per point, where
    comparing every pair was quadratic: 83 s for 15,625 points): the same front, equal
    points and missing values (the worst) included."""
    rng = np.random.default_rng(d)
    for directions in itertools.product(("maximize", "minimize"), repeat=d):
        for _ in range(10):
            points = rng.integers(0, 4, size=(int(rng.integers(1, 40)), d)).astype(float)
            points[rng.random(points.shape) < 0.05] = np.inf
            points[rng.random(points.shape) < 0.05] = -np.inf
            assert non_dominated(points, directions) == brute_front(points, directions)


@pytest.mark.parametrize("directions", list(itertools.product(("maximize", "minimize"), repeat=2)))
def test_missing_values_are_the_worst_and_the_front_stays_exact(
    directions: tuple[str, str],
) -> None:
    """A missing, NaN or infinite metric is the worst value of its objective (stored, an
    infinity is null, which SQL ranks last: an infinity that ranked first in memory made the
    job's best and its database ranking disagree). The 2-D sweep kept no point of the best
    first value whose second was the worst: it left the job's best off its own front."""
    objectives = list(zip(("a", "b"), directions, strict=True))
    worst = [-math.inf if d == "maximize" else math.inf for d in directions]
    assert objective_values({"a": 1.0}, objectives) == [1.0, worst[1]]
    for bad in (math.nan, math.inf, -math.inf, None, "x"):
        assert objective_values({"a": bad, "b": 2.0}, objectives) == [worst[0], 2.0]
        assert tie_break_key({"b": bad}, objectives[1:]) == (-math.inf,)
    assert tie_break_key({"b": 2.0}, objectives[1:]) == (
        2.0 if directions[1] == "maximize" else -2.0,
    )
    rng = np.random.default_rng(1)
    for _ in range(200):
        metrics = [
            {k: v for k, v in zip("ab", rng.integers(0, 4, 2).tolist(), strict=True)
             if rng.random() > 0.2}
            for _ in range(int(rng.integers(1, 15)))
        ]  # fmt: skip
        points = np.array([objective_values(m, objectives) for m in metrics])
        assert non_dominated(points, directions) == brute_front(points, directions)


def test_bad_direction_is_an_error() -> None:
    with pytest.raises(ValueError, match="maximize"):
        non_dominated([(1, 2)], ("up", "down"))


def test_hypervolume_of_known_staircases() -> None:
    assert hypervolume_2d([(1, 1)], (0, 2), ACC_PARAMS) == 1.0
    # Two steps: (3 - 0) * (4 - 3) + (2 - 0) * (3 - 1) = 3 + 4 = 7 with reference (0, 4).
    assert hypervolume_2d([(3, 3), (2, 1)], (0, 4), ACC_PARAMS) == pytest.approx(7.0)
    # A dominated point and a point beyond the reference add nothing.
    assert hypervolume_2d([(3, 3), (2, 1), (1, 2), (-1, 0)], (0, 4), ACC_PARAMS) == 7.0
    assert hypervolume_2d([], (0, 4), ACC_PARAMS) == 0.0


def test_hypervolume_matches_a_grid_count() -> None:
    rng = np.random.default_rng(1)
    points = rng.integers(1, 10, size=(12, 2)).astype(float)
    ref = (0.0, 0.0)
    area = sum(
        1
        for x, y in itertools.product(range(10), range(10))
        if any(px >= x + 1 and py >= y + 1 for px, py in points)
    )
    assert hypervolume_2d(points, ref, ("maximize", "maximize")) == pytest.approx(area)
    with pytest.raises(ValueError, match="two objectives"):
        hypervolume_2d([(1, 1, 1)], (0, 0, 0), ("maximize",) * 3)

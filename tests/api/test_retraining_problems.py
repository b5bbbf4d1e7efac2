"""Why a job cannot be retrained names what its dataset really is (a task distribution, a
benchmark table, NAS-Bench-201), not one message for all of them."""

from __future__ import annotations

from pathlib import Path

import yaml

from api.retraining import trainable_problem
from workers.search import parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _problem(example: str) -> str | None:
    doc = yaml.safe_load((EXAMPLES / example).read_text())
    return trainable_problem(parse_spec(doc))


def test_a_task_distribution_says_it_is_meta_trained_by_the_search() -> None:
    problem = _problem("sinusoid-maml.yaml")
    assert problem is not None
    assert "'sinusoid' is a task distribution for few-shot meta-learning" in problem
    assert "NAS-Bench-201" not in problem


def test_a_users_table_is_not_called_nas_bench_201() -> None:
    problem = _problem("table-nb201-cifar10.yaml")
    assert problem is not None
    assert "'table' is a benchmark table" in problem and "NAS-Bench-201" not in problem


def test_nb201_names_its_table_and_a_trainable_job_has_no_problem() -> None:
    problem = _problem("nb201-random.yaml")
    assert problem is not None and "NAS-Bench-201 table" in problem
    assert _problem("mnist1d-random.yaml") is None

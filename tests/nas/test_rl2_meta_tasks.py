"""``rl2-meta`` tasks from earlier jobs (issue 14): a job's completed trials, written into the
spec at submit as ``job_tasks``, are a task over the space's decisions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nas.errors import DatasetError, SpecError
from nas.evaluators.rl2_meta import Rl2MetaEvaluator
from nas.spaces.nb201 import Nb201Space
from workers.search import parse_spec


def test_a_jobs_trials_are_a_task_with_the_mean_of_repeated_architectures() -> None:
    space = Nb201Space()
    trials = [[0, 1, 2, 3, 4, 0], [0, 1, 2, 3, 4, 0], [4, 4, 4, 4, 4, 4], [1, 1, 1, 1, 1, 1]]
    evaluator = Rl2MetaEvaluator(
        space=space,
        jobs=[3, 5],
        job_tasks=[
            {"job": 3, "choices": trials[:3], "fitness": [70.0, 72.0, 50.0]},
            {"job": 5, "choices": trials[:1], "fitness": [40.0]},
        ],
    )
    (name3, fit3), (name5, fit5) = evaluator.task_fitness()
    assert (name3, name5) == ("job3", "job5") and fit3.shape == (15625,)
    code = int(np.ravel_multi_index(tuple(trials[0]), (5,) * 6))
    assert fit3[code] == 71.0 and fit5[code] == 40.0  # repeats: their mean
    assert np.isfinite(fit3).sum() == 2 and np.isfinite(fit5).sum() == 1  # NaN: not tried
    result = evaluator.evaluate([space.make(trials[0]), space.make(trials[3])])
    assert result[0].objective == (71.0 + 40.0) / 2  # the mean over the tasks that hold it
    assert result[1].state.value == "PRUNED"  # in none of the tasks
    assert math.isclose(evaluator.evaluate([space.make(trials[2])])[0].objective, 50.0)


def test_a_job_task_with_a_fitness_that_is_not_finite_is_refused_at_submit() -> None:
    """A job stored before the check (its tasks written with a NaN) still loads: the NaN
    counts as no result, as it did."""
    from nas.errors import AT_SUBMIT
    from nas.evaluators.rl2_meta import Rl2MetaConfig

    params = {
        "jobs": [3],
        "job_tasks": [{"job": 3, "choices": [[1] * 6, [2] * 6], "fitness": [1.0, math.nan]}],
    }
    with pytest.raises(ValueError, match="fitness values must be finite numbers; item 1"):
        Rl2MetaConfig.model_validate(params, context=AT_SUBMIT)
    evaluator = Rl2MetaEvaluator(space=Nb201Space(), **params)  # type: ignore[arg-type]
    ((_, fitness),) = evaluator.task_fitness()
    assert np.isfinite(fitness).sum() == 1


def test_unresolved_jobs_and_foreign_architectures_are_errors_at_their_fields() -> None:
    with pytest.raises(SpecError) as info:
        Rl2MetaEvaluator(space=Nb201Space(), jobs=[3])
    assert info.value.errors[0]["loc"] in (["evaluator", "jobs"], ("evaluator", "jobs"))
    with pytest.raises(DatasetError, match=r"^evaluator\.job_tasks\.0: job 3's trials are not"):
        Rl2MetaEvaluator(
            space=Nb201Space(),
            jobs=[3],
            job_tasks=[{"job": 3, "choices": [[5] * 6], "fitness": [1]}],
        )


@pytest.mark.parametrize(
    ("task", "loc", "message"),
    [
        ({"choices": [[9] * 6]}, ("evaluator", "job_tasks", 0), "trial 0 has choices [9, 9"),
        ({"choices": [[1] * 5]}, ("evaluator", "job_tasks", 0), "6 decisions of [5, 5"),
        (
            {"choices": [[1] * 6, [1] * 7], "fitness": [1.0, 2.0]},
            ("evaluator", "job_tasks", 0),
            "trial 1 has",
        ),
        ({"choices": [[-1] * 6]}, ("evaluator", "job_tasks", 0), "trial 0 has choices [-1"),
        ({"fitness": [math.inf]}, ("evaluator", "job_tasks", 0, "fitness", 0), "finite"),
        ({"fitness": [1.0, 2.0]}, ("evaluator", "job_tasks", 0), "one fitness per trial"),
    ],
)
def test_job_tasks_that_are_not_this_spaces_trials_are_refused_at_their_entry(
    task: dict[str, object], loc: tuple[object, ...], message: str
) -> None:
    """A client's ``job_tasks`` (a stored spec submitted again) were trusted: a choice out of
    range or a row of the wrong length failed the job when it started (or raised numpy's
    error), and a fitness of inf meta-trained on nothing."""
    from workers.loops import check_startable

    spec = {
        "name": "meta",
        "dataset": {"name": "nb201-imagenet16-120"},
        "space": {"name": "nb201"},
        "controller": {"name": "rl2"},
        "evaluator": {
            "name": "rl2-meta",
            "jobs": [3],
            "job_tasks": [{"job": 3, "choices": [[1] * 6], "fitness": [1.0], **task}],
        },
        "budget": {"minutes": 1},
    }
    with pytest.raises(SpecError) as info:
        check_startable(parse_spec(spec))
    [error] = info.value.errors
    assert tuple(error["loc"]) == loc and message in error["msg"], error


@pytest.mark.parametrize(
    ("evaluator", "loc", "message"),
    [
        ({"jobs": []}, "jobs", "is empty; name the tasks one way"),
        # job_tasks are written from jobs: without them they were an unchecked way in
        (
            {"jobs": [], "job_tasks": [{"job": 1, "choices": [[1] * 6], "fitness": [1.0]}]},
            "job_tasks",
            "written at submit from evaluator.jobs",
        ),
        ({"tables": []}, "tables", "is empty; name the tasks one way"),
        ({}, "tasks", "name the tasks one way"),
        ({"tasks": ["nb201-cifar10"], "jobs": [3]}, "jobs", "tasks and jobs both given"),
        # these were errors of the whole evaluator section
        ({"jobs": [1, 1]}, "jobs", "1 is given twice (items 0 and 1)"),
        ({"tasks": ["nb201-cifar10", "nb201-cifar10"]}, "tasks", "given twice"),
        ({"tasks": ["cifar10"]}, "tasks", "unknown NAS-Bench-201 task 'cifar10'"),
        # accepted and ignored before
        ({"jobs": [3], "table": "x.csv.gz"}, "table", "only with evaluator.tasks"),
    ],
)
def test_the_ways_of_naming_tasks_are_checked_at_the_field_written(
    evaluator: dict[str, object], loc: str, message: str
) -> None:
    spec = {
        "name": "meta",
        "dataset": {"name": "nb201-imagenet16-120"},
        "space": {"name": "nb201"},
        "controller": {"name": "rl2"},
        "evaluator": {"name": "rl2-meta", **evaluator},
        "budget": {"minutes": 1},
    }
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    errors = [e for e in info.value.errors if message in e["msg"]]
    assert errors and tuple(errors[0]["loc"]) == ("evaluator", loc), info.value.errors


def test_hparams_on_a_meta_training_job_are_refused() -> None:
    """They were stored and ignored: meta-training runs no trials."""
    spec = {
        "name": "meta",
        "dataset": {"name": "nb201-imagenet16-120"},
        "space": {"name": "nb201"},
        "controller": {"name": "rl2"},
        "evaluator": {"name": "rl2-meta", "tasks": ["nb201-cifar10"]},
        "hparams": {"tag": {"type": "categorical", "choices": ["a", "b"]}},
        "budget": {"minutes": 1},
    }
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    assert [tuple(e["loc"]) for e in info.value.errors] == [("hparams",)]


def test_an_iteration_too_large_for_memory_is_refused_at_submit() -> None:
    """10,000 steps x 1,024 episodes x a GRU of 1,024 was accepted (each bounded on its
    own) and grew the server by 17 GB in 35 s: their product is bounded by the memory an
    iteration holds (``MAX_ITERATION_BYTES``), at ``evaluator.batch``."""
    from nas.evaluators.rl2_meta import MAX_ITERATION_BYTES, iteration_bytes

    space = Nb201Space()
    cards = [d.num_choices for d in space.decisions()]
    huge = {"tasks": ["nb201-cifar10"], "steps": 10_000, "batch": 1024, "hidden": 1024}
    assert iteration_bytes(cards, steps=10_000, batch=1024, hidden=1024) > 100 * 2**30
    with pytest.raises(SpecError) as info:
        Rl2MetaEvaluator.check_files(
            space=space, params=huge, dataset="nb201-cifar10", dataset_params={}
        )
    [error] = info.value.errors
    assert tuple(error["loc"]) == ("evaluator", "batch") and "at most 2 GiB" in error["msg"]
    assert MAX_ITERATION_BYTES == 2**31
    for fine in ({}, {"steps": 10_000}, {"batch": 1024, "steps": 100}, {"hidden": 1024}):
        Rl2MetaEvaluator.check_files(
            space=space,
            params={"tasks": ["nb201-cifar10"], **fine},
            dataset="nb201-cifar10",
            dataset_params={},
        )


def test_a_file_named_as_the_nb201_table_is_read_no_further_than_the_table_is_long(
    tmp_path: Path,
) -> None:
    """It was read whole (every row as a dict) before being refused: a large file under the
    data roots named as evaluator.table cost its size in memory at submit."""
    from unittest import mock

    from nas.evaluators import tabular

    big = tmp_path / "big.csv"
    with big.open("w") as handle:
        handle.write("ops,arch_str,index\n")
        handle.writelines(f"000000,x,{i}\n" for i in range(tabular.NUM_ARCHS + 5000))
    rows_read = []
    real = tabular.csv.DictReader

    def counting(handle: Any) -> Any:
        for row in real(handle):
            rows_read.append(1)
            yield row

    refused = pytest.raises(DatasetError, match="expected the NAS-Bench-201 table")
    with mock.patch.object(tabular.csv, "DictReader", counting), refused:
        tabular.load_table.__wrapped__(big)
    assert len(rows_read) == tabular.NUM_ARCHS + 1


def test_a_table_of_one_endless_line_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    """``load_table`` read a file's line whole before looking at it: a 20 GiB file without a
    newline (or a small gzip that expands to one) grew the server by gigabytes, at submit
    and again when the job ran. Lines and text are bounded as the ``table`` space's are."""
    import gzip
    import tracemalloc

    from nas.evaluators import tabular

    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(b"ops,arch_str,index,")
        for _ in range(200):
            out.write(b"x" * 2**20)  # 200 MiB of one header line, about 200 KiB compressed
    sparse = tmp_path / "sparse.csv"
    with sparse.open("wb") as out:
        out.truncate(20 * 2**30)  # 20 GiB of no newline (a sparse file: no disk used)
    for path in (bomb, sparse):
        tracemalloc.start()
        try:
            with pytest.raises(DatasetError, match="larger than any such table may be"):
                tabular.load_table.__wrapped__(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 64 * 2**20, (path.name, peak)


@pytest.mark.parametrize("fault", ["ops twice", "a cell too many", "a cell too few", "bad ops"])
def test_a_table_whose_rows_are_not_one_architecture_each_is_refused_with_what_was_expected(
    tmp_path: Path, fault: str
) -> None:
    """Read at submit (a tabular search's table too), such a file raised IndexError or
    AttributeError there: a 500, or silently wrong rows."""
    import itertools

    from nas.evaluators import tabular

    lines = ["ops,arch_str,index,c10_val12"]
    for i, ops in enumerate(itertools.product("01234", repeat=6)):
        lines.append(f"{''.join(ops)},x,{i},50")
    if fault == "ops twice":
        lines[2] = lines[1]
    elif fault == "a cell too many":
        lines[1] += ",7"
    elif fault == "a cell too few":
        lines[5] = "000004,x"
    else:
        lines[3] = "0000x2,x,2,50"
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="expected the NAS-Bench-201 table"):
        tabular.load_table.__wrapped__(path)

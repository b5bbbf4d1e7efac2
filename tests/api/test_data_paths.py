"""``check_data_paths`` as the re-checks after submit use it: a stored job's controller file may
lie in that job's own files folder (its policy copy) and nowhere else outside the roots; only
the sections asked for are checked; the messages say what changed since submit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from api.services import check_data_paths, job_files_dir
from api.settings import Settings
from nas.errors import SpecError
from nas.spec import ResolvedSpec
from workers.search import parse_spec


def _rl2(policy: Path) -> ResolvedSpec:
    return parse_spec(
        {
            "name": "p",
            "dataset": {"name": "nb201-cifar10"},
            "space": {"name": "nb201"},
            "controller": {"name": "rl2", "policy": str(policy)},
            "evaluator": {"name": "tabular"},
            "budget": {"trials": 1},
        }
    )


def _npz(path: Path) -> ResolvedSpec:
    return parse_spec(
        {
            "name": "d",
            "dataset": {"name": "npz", "path": str(path)},
            "space": {"name": "enas-macro", "layers": 2, "channels": 4},
            "controller": {"name": "random"},
            "evaluator": {"name": "standalone"},
            "budget": {"trials": 1},
        }
    )


def _locs(call: Callable[[], None]) -> list[tuple[object, ...]]:
    with pytest.raises(SpecError) as err:
        call()
    return [tuple(e["loc"]) for e in err.value.errors]


def test_only_the_jobs_own_folder_and_only_for_its_controller_file(tmp_path: Path) -> None:
    roots = [tmp_path / "data"]
    roots[0].mkdir()
    # a symlinked, relative-looking artifacts folder: compared resolved
    (tmp_path / "real-artifacts").mkdir()
    (tmp_path / "artifacts").symlink_to(tmp_path / "real-artifacts")
    settings = Settings(data_dir=tmp_path / "data", artifacts_dir=tmp_path / "artifacts")
    own, other = job_files_dir(settings, 5), job_files_dir(settings, 6)
    for folder in (own, other):
        folder.mkdir(parents=True)
        (folder / "policy.pt").write_bytes(b"x")
        (folder / "data.npz").write_bytes(b"x")
    mine = tmp_path / "artifacts/jobs/5/files/policy.pt"  # as the stored spec spells it
    check_data_paths(_rl2(mine), roots, own_files=own, stored=True)
    theirs = tmp_path / "artifacts/jobs/6/files/policy.pt"
    assert _locs(lambda: check_data_paths(_rl2(theirs), roots, own_files=own, stored=True)) == [
        ("controller", "policy")
    ]
    data = tmp_path / "artifacts/jobs/5/files/data.npz"  # the folder is not a dataset's root
    assert _locs(lambda: check_data_paths(_npz(data), roots, own_files=own, stored=True)) == [
        ("dataset", "path")
    ]
    # without the job's folder, its own copy is outside the roots like any other file
    assert _locs(lambda: check_data_paths(_rl2(mine), roots, stored=True)) == [
        ("controller", "policy")
    ]


def test_only_the_sections_asked_for_and_messages_for_a_stored_job(tmp_path: Path) -> None:
    roots = [tmp_path / "data"]
    roots[0].mkdir()
    outside = _npz(tmp_path / "elsewhere.npz")
    check_data_paths(outside, roots, sections=("space",))  # the dataset is not checked
    with pytest.raises(SpecError) as moved:
        check_data_paths(outside, roots, sections=("dataset",), stored=True)
    assert "no longer lies under this server's data roots" in str(moved.value)
    with pytest.raises(SpecError) as gone:
        check_data_paths(_npz(roots[0] / "gone.npz"), roots, stored=True)
    assert "no such file under the data roots any more" in str(gone.value)
    with pytest.raises(SpecError) as at_submit:
        check_data_paths(outside, roots)
    assert "must name a file under this server's data roots" in str(at_submit.value)

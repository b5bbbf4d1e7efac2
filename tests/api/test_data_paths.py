"""``check_data_paths`` as the re-checks after submit use it: a stored job's controller file may
lie in that job's own files folder (its policy copy) and nowhere else outside the roots; only
the sections asked for are checked; the messages say what changed since submit."""

from __future__ import annotations

import os
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
    check_data_paths(_rl2(mine), roots, private=(), own_files=own, stored=True)
    theirs = tmp_path / "artifacts/jobs/6/files/policy.pt"
    assert _locs(
        lambda: check_data_paths(_rl2(theirs), roots, private=(), own_files=own, stored=True)
    ) == [("controller", "policy")]
    data = tmp_path / "artifacts/jobs/5/files/data.npz"  # the folder is not a dataset's root
    assert _locs(
        lambda: check_data_paths(_npz(data), roots, private=(), own_files=own, stored=True)
    ) == [("dataset", "path")]
    # without the job's folder, its own copy is outside the roots like any other file
    assert _locs(lambda: check_data_paths(_rl2(mine), roots, private=(), stored=True)) == [
        ("controller", "policy")
    ]


def test_only_the_sections_asked_for_and_messages_for_a_stored_job(tmp_path: Path) -> None:
    roots = [tmp_path / "data"]
    roots[0].mkdir()
    outside = _npz(tmp_path / "elsewhere.npz")
    check_data_paths(outside, roots, private=(), sections=("space",))  # the dataset is not checked
    with pytest.raises(SpecError) as moved:
        check_data_paths(outside, roots, private=(), sections=("dataset",), stored=True)
    assert "no longer lies under this server's data roots" in str(moved.value)
    with pytest.raises(SpecError) as gone:
        check_data_paths(_npz(roots[0] / "gone.npz"), roots, private=(), stored=True)
    assert "no such file under the data roots any more" in str(gone.value)
    # a folder under the roots is said to be one (it was 'no such file': the HPO probe)
    (roots[0] / "runs").mkdir()
    with pytest.raises(SpecError) as folder:
        check_data_paths(_npz(roots[0] / "runs"), roots, private=())
    assert f"a folder, not a file: name the file in it: '{roots[0] / 'runs'}'" in str(folder.value)
    # a named pipe is there, and no file (it was 'no such file': the security probe)
    os.mkfifo(roots[0] / "pipe.npz")
    with pytest.raises(SpecError) as pipe:
        check_data_paths(_npz(roots[0] / "pipe.npz"), roots, private=())
    assert "not a regular file (a pipe, socket or device)" in str(pipe.value)
    with pytest.raises(SpecError) as at_submit:
        check_data_paths(outside, roots, private=())
    assert "must name a file under this server's data roots" in str(at_submit.value)


def test_the_servers_own_files_under_its_data_dir_are_not_a_specs_files(tmp_path: Path) -> None:
    """The default root is the data folder, which also holds the database and the artifacts:
    another user's policy there ran as this user's, and the answers told which of their files
    existed (a policy file's type error against 'no such file')."""
    settings = Settings(data_dir=tmp_path / ".nas")
    roots, private = settings.resolved_data_roots(), settings.private_paths()
    own, other = job_files_dir(settings, 5), job_files_dir(settings, 6)
    for folder in (own, other):
        folder.mkdir(parents=True)
        (folder / "rl2-policy.pt").write_bytes(b"x")
    database = tmp_path / ".nas/nas.db"
    database.write_bytes(b"x")
    (tmp_path / ".nas/mine.npz").write_bytes(b"x")
    check_data_paths(_npz(tmp_path / ".nas/mine.npz"), roots, private=private)
    messages = []
    for spec in (
        _rl2(other / "rl2-policy.pt"),  # another job's policy
        _rl2(other / "missing.pt"),  # ... and one that is not there: the same answer
        _npz(database),
        _npz(tmp_path / ".nas/nas.db-wal"),
        _npz(own / "rl2-policy.pt"),  # the job's own folder holds no dataset
    ):
        with pytest.raises(SpecError) as refused:
            check_data_paths(spec, roots, private=private, own_files=own)
        (problem,) = refused.value.errors
        messages.append(problem["msg"])
    assert len(set(messages)) == 1
    assert "must name a file under this server's data roots" in messages[0]
    # the job's own copy of its policy still runs
    check_data_paths(_rl2(own / "rl2-policy.pt"), roots, private=private, own_files=own)

"""Dataset loaders: shapes, deterministic splits, the MNIST-1D cache, and npz validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mnist1d.data
import numpy as np
import pytest
from pydantic import ValidationError

import nas.datasets.base
from nas.datasets import (
    DATASETS,
    DatasetSplits,
    cache_dir,
    check_dataset,
    dataset_shape,
    load_dataset,
)
from nas.datasets.digits import digits_arrays, digits_file
from nas.errors import DatasetError, SpecError, UnknownNameError
from nas.spec import ResolvedSpec
from workers.search import parse_spec

SPLITS = ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test")


def assert_well_formed(data: DatasetSplits, example_shape: tuple[int, ...]) -> None:
    for part in ("train", "valid", "test"):
        x, y = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (len(y), *example_shape)
        assert y.min() >= 0 and y.max() < data.num_classes
    assert data.input_shape == example_shape


def assert_same_splits(a: DatasetSplits, b: DatasetSplits) -> None:
    for part in SPLITS:
        assert np.array_equal(getattr(a, part), getattr(b, part)), part


def sorted_rows(*parts: np.ndarray) -> np.ndarray:
    """The examples of ``parts`` as rows in lexicographic order (compares them as multisets)."""
    rows = np.concatenate(parts).reshape(sum(len(p) for p in parts), -1)
    return rows[np.lexsort(rows.T[::-1])]


# --- mnist1d -----------------------------------------------------------------------------------
# The session conftest points NAS_CACHE_DIR at one temporary cache, so the default dataset is
# generated once per test session.
def test_mnist1d_default_shapes_and_sizes() -> None:
    data = load_dataset("mnist1d")
    assert_well_formed(data, (1, 40))
    sizes = data.sizes()
    assert sizes["train"] + sizes["valid"] == 4000
    assert sizes["valid"] == 400  # valid_fraction 0.1
    assert sizes["test"] == 1000
    assert data.num_classes == 10
    assert set(np.unique(data.y_train)) == set(range(10))


def test_mnist1d_splits_are_deterministic_by_seed() -> None:
    a, b = load_dataset("mnist1d", seed=3), load_dataset("mnist1d", seed=3)
    assert_same_splits(a, b)
    c = load_dataset("mnist1d", seed=4)
    assert not np.array_equal(a.x_valid, c.x_valid)
    # Only the train/valid split moves: the same examples, the same fixed test set.
    assert np.array_equal(a.x_test, c.x_test)
    assert np.array_equal(sorted_rows(a.x_train, a.x_valid), sorted_rows(c.x_train, c.x_valid))


def test_mnist1d_valid_fraction() -> None:
    data = load_dataset("mnist1d", valid_fraction=0.25)
    assert data.sizes() == {"train": 3000, "valid": 1000, "test": 1000}


def test_mnist1d_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    first = load_dataset("mnist1d", num_samples=200)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("mnist1d-") and files[0].endswith(".npz")

    def no_generation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dataset was generated again instead of read from the cache")

    monkeypatch.setattr(mnist1d.data, "make_dataset", no_generation)
    assert_same_splits(load_dataset("mnist1d", num_samples=200), first)
    # Other generation parameters are another cache entry, not a stale hit.
    with pytest.raises(AssertionError, match="generated again"):
        load_dataset("mnist1d", num_samples=300)


def test_jobs_generating_datasets_at_once_each_get_the_right_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs are threads of one server: two generating MNIST-1D at once raced for one
    temporary file (one job FAILED with a FileNotFoundError) and interleaved their draws
    from NumPy's global random state, so the file both then read was not MNIST-1D (a tenth
    of its labels right)."""
    import threading

    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    sizes = (200, 300, 200, 300)
    loaded: dict[int, Any] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(sizes))

    def load(i: int) -> None:
        start.wait()
        try:
            loaded[i] = load_dataset("mnist1d", num_samples=sizes[i])
        except Exception as exc:  # noqa: BLE001 (the test reports what the thread raised)
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(sizes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".npz", ".npz"]
    for i, size in enumerate(sizes):  # against a generation alone, in a cache of its own
        monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / f"alone-{i}"))
        assert_same_splits(loaded[i], load_dataset("mnist1d", num_samples=size))


def test_cache_dir_defaults_to_the_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NAS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "nas-service"


# --- digits ------------------------------------------------------------------------------------
def test_digits_shapes() -> None:
    data = load_dataset("digits", seed=1)
    assert_well_formed(data, (1, 8, 8))
    assert sum(data.sizes().values()) == 1797
    assert data.num_classes == 10
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert_same_splits(data, load_dataset("digits", seed=1))


def test_digits_are_scikit_learns_read_from_its_file_without_importing_it() -> None:
    """The digits come from scikit-learn's own file (importing ``sklearn.datasets`` cost 1.1 s
    of CPU in every process that trained on them), and are exactly what it gives."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    assert digits_file() is not None  # a scikit-learn that moved it would import it again
    pixels, labels = digits_arrays()
    reference = load_digits()
    assert np.array_equal(pixels, reference.data) and np.array_equal(labels, reference.target)
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys; from nas.datasets import load_dataset; "
                "load_dataset('digits', seed=0); print('sklearn' in sys.modules)"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert imported.stdout.strip() == "False", imported.stderr


# --- npz ---------------------------------------------------------------------------------------
def write_npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return str(path)


def signals(
    n: int, length: int = 16, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, length)), np.arange(n) % classes


def test_npz_adds_a_channel_to_2d_inputs(tmp_path: Path) -> None:
    x, y = signals(100)
    data = load_dataset("npz", path=write_npz(tmp_path / "d.npz", x=x, y=y), seed=2)
    assert_well_formed(data, (1, 16))
    assert data.sizes() == {"train": 72, "valid": 8, "test": 20}  # test 0.2, then valid 0.1
    assert data.num_classes == 3
    # Every example lands in exactly one split, unchanged.
    assert np.array_equal(
        sorted_rows(data.x_train, data.x_valid, data.x_test), sorted_rows(x.astype(np.float32))
    )


def test_npz_with_a_test_set_keeps_it(tmp_path: Path) -> None:
    x, y = signals(50)
    x_test, y_test = signals(10, seed=1)
    path = write_npz(tmp_path / "d.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    data = load_dataset("npz", path=path)
    assert np.array_equal(data.x_test[:, 0, :], x_test.astype(np.float32))
    assert np.array_equal(data.y_test, y_test)
    assert data.sizes() == {"train": 45, "valid": 5, "test": 10}


def test_npz_keeps_image_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = write_npz(tmp_path / "d.npz", x=rng.normal(size=(40, 3, 5, 5)), y=np.arange(40) % 4)
    data = load_dataset("npz", path=path)
    assert_well_formed(data, (3, 5, 5))
    assert data.num_classes == 4


def test_npz_images_stored_channels_last_are_refused_unless_said_to_be_channels_first(
    tmp_path: Path,
) -> None:
    """(N, 28, 28, 1) was read as 28 channels of 28 x 1 images and trained, badly, without a
    word (a user's probe). Refused at submit (from the headers) and at load, saying how to
    store the file; a file that only looks so is taken with the check off."""
    rng = np.random.default_rng(0)
    last = write_npz(tmp_path / "last.npz", x=rng.normal(size=(40, 8, 8, 3)), y=np.arange(40) % 8)
    for call in (check_dataset, load_dataset):
        with pytest.raises(DatasetError, match=r"x looks channels-last.*np\.moveaxis\(x, -1, 1\)"):
            call("npz", path=last, channels_last_check=True)
    data = load_dataset("npz", path=last, channels_last_check=False)
    assert_well_formed(data, (8, 8, 3))
    moved = np.moveaxis(np.load(last)["x"], -1, 1)
    fixed = write_npz(tmp_path / "first.npz", x=moved, y=np.arange(40) % 8)
    assert_well_formed(load_dataset("npz", path=fixed), (3, 8, 8))
    # as an episodes source too
    with pytest.raises(DatasetError, match="x looks channels-last"):
        check_dataset("episodes", source="npz", path=last, ways=2, channels_last_check=True)
    check_dataset("episodes", source="npz", path=last, ways=2, channels_last_check=False)
    # on at submit, as the stored spec then says; a spec stored before the setting has
    # none and reads its file as its job did (told to set it off, which a stored job
    # cannot, its retraining failed: the review)
    spec = {
        "name": "cl", "dataset": {"name": "npz", "path": last},
        "space": {"name": "mlp"}, "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1}, "budget": {"trials": 1},
    }  # fmt: skip
    resolved = parse_spec(spec)
    assert resolved.dataset_params["channels_last_check"] is True
    stored = resolved.to_dict()
    del stored["dataset"]["channels_last_check"]
    before = ResolvedSpec.from_stored(stored).dataset_params
    assert "channels_last_check" not in before
    assert_well_formed(load_dataset("npz", **before), (8, 8, 3))
    # (N, 1, 28, 28) and small images with few channels, (N, 4, 3, 3), are channels-first
    for shape in ((40, 1, 28, 28), (40, 4, 3, 3), (40, 3, 5, 4)):
        ok = write_npz(tmp_path / "ok.npz", x=np.zeros(shape), y=np.arange(40) % 4)
        check_dataset("npz", path=ok)


def test_npz_splits_are_deterministic_by_seed(tmp_path: Path) -> None:
    x, y = signals(100)
    path = write_npz(tmp_path / "d.npz", x=x, y=y)
    assert_same_splits(
        load_dataset("npz", path=path, seed=5), load_dataset("npz", path=path, seed=5)
    )
    # the test split is the same for every seed (held-out figures compare across seeds); the
    # validation split follows the seed
    five, six = (load_dataset("npz", path=path, seed=s, test_split_seed=0) for s in (5, 6))
    assert np.array_equal(five.x_test, six.x_test) and np.array_equal(five.y_test, six.y_test)
    assert not np.array_equal(five.x_valid, six.x_valid)


def test_digits_test_split_is_the_same_for_every_seed() -> None:
    """It followed the job's seed: 267 of seed 0's 359 test digits were training examples
    at seed 1 (the probe of the evaluators). A spec fills test_split_seed in at submit; a
    job stored before the setting (none in its spec) splits by its seed, as it did."""
    from workers.search import parse_spec

    spec = {
        "name": "split",
        "dataset": {"name": "digits"},
        "space": {"name": "enas-macro", "layers": 2, "channels": 4},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1},
        "budget": {"trials": 1},
    }
    params = parse_spec(spec).dataset_params
    assert params["test_split_seed"] == 0
    zero, one = (load_dataset("digits", seed=s, **params) for s in (0, 1))
    assert np.array_equal(zero.x_test, one.x_test) and np.array_equal(zero.y_test, one.y_test)
    assert not np.array_equal(zero.x_valid, one.x_valid)
    test = {x.tobytes() for x in zero.x_test}
    assert not test & {x.tobytes() for x in np.concatenate([one.x_train, one.x_valid])}
    # stored before: the job's own seed
    stored = {k: v for k, v in params.items() if k != "test_split_seed"}
    assert not np.array_equal(load_dataset("digits", seed=1, **stored).x_test, zero.x_test)
    assert np.array_equal(load_dataset("digits", seed=0, **stored).x_test, zero.x_test)


def _bad_npz_cases() -> list[object]:
    x, y = signals(20)
    return [
        pytest.param({"x": x}, ["x or y is missing", "arrays x, y"], id="missing-y"),
        pytest.param({"y": y}, ["x or y is missing"], id="missing-x"),
        pytest.param(
            {"x": x, "y": y[:15]},
            ["y must be 1-D labels, one per example of x"],
            id="length-mismatch",
        ),
        pytest.param(
            {"x": x, "y": y, "x_test": x}, ["x_test and y_test go together"], id="x_test-alone"
        ),
        pytest.param(
            {"x": x, "y": y, "y_test": y}, ["x_test and y_test go together"], id="y_test-alone"
        ),
        pytest.param(
            {"x": x, "y": y, "x_test": x[:, :8], "y_test": y},
            ["x_test examples must have the shape of x examples"],
            id="x_test-shape",
        ),
        pytest.param(
            {"x": x, "y": y, "x_test": x, "y_test": y[:3]},
            ["y_test must be 1-D labels, one per example of x_test"],
            id="test-length-mismatch",
        ),
        pytest.param(
            {"x": x, "y": y + 0.5}, ["y must hold integer class labels"], id="float-labels"
        ),
        pytest.param(
            {"x": x, "y": y - 1}, ["y must hold integer class labels"], id="negative-labels"
        ),
        pytest.param(
            {"x": x, "y": y + 10**6}, ["class labels 0..K-1, K at most 100000"], id="huge-labels"
        ),
        # (a 7-way network trained on 4 classes, tested on the 3 others)
        pytest.param(
            {"x": x, "y": y, "x_test": x, "y_test": y + 3},
            ["y_test must hold only classes that y holds"],
            id="test-classes-past-y",
        ),
        # (a K+1-way network trained with class 0 empty, without a word)
        pytest.param(
            {"x": x, "y": y + 1},
            ["class 0 among them", "relabel y (and y_test) from 0"],
            id="one-based-labels",
        ),
        pytest.param(
            {"x": x[:, :0], "y": y}, ["x examples must have every dimension at least 1"], id="flat"
        ),
        pytest.param({"x": x[:2], "y": y[:2]}, ["x holds too few examples"], id="two-examples"),
        pytest.param({"x": x, "y": y[:, None]}, ["y must be 1-D labels"], id="2d-labels"),
        pytest.param(
            {"x": x[:, 0], "y": y},
            ["x must be an array of real numbers of shape (N, L)"],
            id="1d-inputs",
        ),
        pytest.param(
            {"x": x.astype(str), "y": y}, ["x must be an array of real numbers"], id="string-inputs"
        ),
        # (their imaginary parts were dropped with a warning in the server's log)
        pytest.param(
            {"x": x.astype(np.complex64), "y": y},
            ["x must be an array of real numbers"],
            id="complex-inputs",
        ),
    ]


@pytest.mark.parametrize(("arrays", "messages"), _bad_npz_cases())
def test_npz_errors_say_what_is_wrong(
    tmp_path: Path, arrays: dict[str, np.ndarray], messages: list[str]
) -> None:
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError) as info:
        load_dataset("npz", path=path)
    for message in messages:
        assert message in str(info.value)
    assert str(info.value).startswith("dataset.path: ")


def test_npz_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    with pytest.raises(DatasetError, match="no such file") as info:
        load_dataset("npz", path=str(missing))
    assert str(missing) in str(info.value)


def test_npz_not_an_npz_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.npz"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(DatasetError, match="expected an .npz file"):
        load_dataset("npz", path=str(path))


@pytest.mark.parametrize("damage", ["encrypted", "compression 99"])
def test_an_npz_whose_members_zip_cannot_open_is_said_to_be_none(
    tmp_path: Path, damage: str
) -> None:
    """Members flagged encrypted (zipfile's RuntimeError) or compressed by a method zipfile
    lacks (NotImplementedError) went through both the submit's check and the loader as
    500s."""
    path = write_npz(tmp_path / "d.npz", x=np.zeros((20, 4)), y=np.arange(20) % 2)
    data = bytearray(Path(path).read_bytes())
    for signature, flags, method in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.find(signature)
        while at >= 0:
            if damage == "encrypted":
                data[at + flags] |= 1
            else:
                data[at + method : at + method + 2] = (99).to_bytes(2, "little")
            at = data.find(signature, at + 4)
    Path(path).write_bytes(bytes(data))
    for call in (check_dataset, load_dataset):
        with pytest.raises(DatasetError, match="expected an .npz file"):
            call("npz", path=path)


def test_npz_examples_past_the_size_limit_are_refused_from_their_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1.3 MB archive of zeros held 1.28 GB of examples: accepted, its job took the server
    to 4 GB (and an episodes submit read it all, 68 s). Past the limit (here lowered to
    what 100 float32 values take) the headers say so, at submit and at load, before the
    arrays are read."""
    import nas.datasets.npz

    monkeypatch.setattr(nas.datasets.npz, "MAX_EXAMPLE_BYTES", 400)
    fits = write_npz(tmp_path / "fits.npz", x=np.zeros((25, 4), np.uint8), y=np.arange(25) % 2)
    check_dataset("npz", path=fits)
    load_dataset("npz", path=fits)
    big = write_npz(tmp_path / "big.npz", x=np.zeros((26, 4), np.uint8), y=np.arange(26) % 2)
    for call in (check_dataset, load_dataset):
        with pytest.raises(DatasetError, match=r"hold 104 values, .* at most 0 GiB"):
            call("npz", path=big)
    with pytest.raises(DatasetError, match="hold 104 values"):
        check_dataset("episodes", source="npz", path=big, ways=2)


def test_a_dataset_file_changed_in_place_gives_its_new_shape(tmp_path: Path) -> None:
    """The shape was cached per path for the process: once the file changed, exports built
    the old network (64 inputs, 10 classes) while a retraining trained the new (32, 5)."""
    import os

    path = write_npz(tmp_path / "d.npz", x=np.zeros((20, 4)), y=np.arange(20) % 2)
    assert dataset_shape("npz", {"path": path}) == ((1, 4), 2)
    write_npz(tmp_path / "d.npz", x=np.zeros((30, 6)), y=np.arange(30) % 3)
    os.utime(path, ns=(1, 1))  # (another time whatever the clock's resolution)
    assert dataset_shape("npz", {"path": path}) == ((1, 6), 3)


def test_npz_given_an_npy_file(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((10, 4)))
    with pytest.raises(DatasetError):
        load_dataset("npz", path=str(path))


def test_npz_with_object_arrays(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "o.npz", x=np.array([{}] * 10, dtype=object), y=np.arange(10))
    with pytest.raises(DatasetError):
        load_dataset("npz", path=path)


def test_npz_test_classes_that_y_skips_are_found_when_loading(tmp_path: Path) -> None:
    """Within y's range but not in y (classes 0 and 2 trained, 1 tested): the headers' label
    ranges cannot tell, loading does."""
    x, y = signals(30)
    path = write_npz(tmp_path / "gap.npz", x=x, y=y // 2 * 2, x_test=x, y_test=y)
    check_dataset("npz", path=path)
    with pytest.raises(DatasetError, match="y_test must hold only classes that y holds"):
        load_dataset("npz", path=path)


def test_npz_too_few_examples_to_split(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "one.npz", x=np.zeros((1, 4)), y=np.zeros(1, dtype=np.int64))
    with pytest.raises(DatasetError, match="cannot split 1 examples"):
        load_dataset("npz", path=path)


@pytest.mark.parametrize(("arrays", "messages"), _bad_npz_cases())
def test_npz_check_reads_the_headers_and_finds_what_loading_would(
    tmp_path: Path, arrays: dict[str, np.ndarray], messages: list[str]
) -> None:
    """A service's submit check: the same error as loading, from the arrays' headers and the
    labels (negative ones, or 10^9 ones, failed the job at its start)."""
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError) as info:
        check_dataset("npz", path=path)
    with pytest.raises(DatasetError) as loaded:
        load_dataset("npz", path=path)
    assert str(info.value) == str(loaded.value)
    for message in messages:
        assert message in str(info.value)


def test_npz_check_passes_good_files_and_refuses_what_is_no_npz(tmp_path: Path) -> None:
    x, y = signals(30)
    check_dataset("npz", path=write_npz(tmp_path / "d.npz", x=x, y=y, x_test=x, y_test=y))
    check_dataset("npz", path=write_npz(tmp_path / "i.npz", x=np.zeros((4, 3, 5, 5)), y=y[:4] % 4))
    np.savez_compressed(tmp_path / "c.npz", x=x, y=y)  # compressed members read alike
    check_dataset("npz", path=str(tmp_path / "c.npz"))
    (tmp_path / "notes.npz").write_text("x,y\n1,2\n")
    np.save(tmp_path / "x.npy", np.zeros((10, 4)))
    objects = write_npz(tmp_path / "o.npz", x=np.array([{}] * 10, dtype=object), y=np.arange(10))
    for path in (str(tmp_path / "notes.npz"), str(tmp_path / "x.npy"), objects):
        with pytest.raises(DatasetError, match=r"^dataset\.path: "):
            check_dataset("npz", path=path)
    with pytest.raises(DatasetError, match="no such file"):
        check_dataset("npz", path=str(tmp_path / "nope.npz"))
    check_dataset("mnist1d")  # a dataset with nothing to check: nothing read


def test_episodes_over_an_npz_file_check_that_file(tmp_path: Path) -> None:
    x, y = signals(60, classes=10)
    good = write_npz(tmp_path / "d.npz", x=x, y=y)
    check_dataset("episodes", source="npz", path=good, ways=2)
    bad = write_npz(tmp_path / "bad.npz", x=x)
    with pytest.raises(DatasetError, match=r"^dataset\.path: .*x or y is missing"):
        check_dataset("episodes", source="npz", path=bad, ways=2)
    # its labels are read: 10 classes split 6/2/2 cannot hold 3-way tasks
    with pytest.raises(DatasetError, match=r"^dataset\.ways: 3-way tasks need at least 3"):
        check_dataset("episodes", source="npz", path=good, ways=3)


# --- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["nb201-cifar10", "nb201-cifar100", "nb201-imagenet16-120"])
def test_tabular_datasets_have_no_arrays(name: str) -> None:
    assert DATASETS.get(name).tabular is not None
    with pytest.raises(DatasetError, match=f"{name!r} is a tabular benchmark"):
        load_dataset(name)


@pytest.mark.parametrize(
    ("name", "shape", "classes"),
    [
        ("nb201-cifar10", (3, 32, 32), 10),
        ("nb201-cifar100", (3, 32, 32), 100),
        ("nb201-imagenet16-120", (3, 16, 16), 120),
    ],
)
def test_tabular_datasets_know_their_shape_without_data(
    name: str, shape: tuple[int, ...], classes: int
) -> None:
    assert (DATASETS.get(name).input_shape, DATASETS.get(name).num_classes) == (shape, classes)
    assert dataset_shape(name) == (shape, classes)


def test_dataset_shape_of_arrays_comes_from_the_data_loaded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []

    def counted(name: str, **kwargs: object) -> DatasetSplits:
        loads.append(name)
        return load_dataset(name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nas.datasets.base, "load_dataset", counted)
    nas.datasets.base._loaded_shape.cache_clear()
    params = {"test_fraction": 0.3, "valid_fraction": 0.15}
    assert dataset_shape("digits", params, seed=5) == ((1, 8, 8), 10)
    assert dataset_shape("digits", dict(reversed(params.items())), seed=5) == ((1, 8, 8), 10)
    assert loads == ["digits"]
    dataset_shape("digits", params, seed=6)  # another split: loaded again
    assert loads == ["digits", "digits"]


def test_unknown_dataset_lists_the_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_dataset("cifar11")
    assert info.value.name == "cifar11"
    for name in ("digits", "mnist1d", "nb201-cifar10", "npz"):
        assert name in info.value.valid
        assert name in str(info.value)


def test_npz_labels_are_checked_at_submit_by_their_range_streamed(tmp_path: Path) -> None:
    """Labels are read at submit for their range only, a chunk at a time (the whole array
    was read: a 1 MB compressed file can hold 10^8 labels); sparse class ids are fine."""
    n = (1 << 20) + 1000  # past the first chunk
    y = np.zeros(n, dtype=np.int64)
    y[-1] = -1  # only the last chunk tells
    np.savez_compressed(tmp_path / "late.npz", x=np.zeros((n, 1), np.float32), y=y)
    with pytest.raises(DatasetError, match="y must hold integer class labels 0..K-1"):
        check_dataset("npz", path=str(tmp_path / "late.npz"))
    sparse = write_npz(tmp_path / "sparse.npz", x=np.zeros((20, 4)), y=np.arange(20) * 9)
    check_dataset("npz", path=sparse)  # classes 0, 9, ..., 171: K = 172 > 20 examples


@pytest.mark.parametrize(
    ("dataset", "loc", "says"),
    [
        # each was accepted and failed the job at its start (numpy's or our own message)
        ({"name": "mnist1d", "generation_seed": -1}, ("dataset", "generation_seed"), "greater"),
        ({"name": "mnist1d", "generation_seed": 2**40}, ("dataset", "generation_seed"), "less"),
        (
            {"name": "digits", "test_fraction": 0.9999},
            ("dataset", "test_fraction"),
            "cannot split 1797 examples with fraction 0.9999",
        ),
        (
            {"name": "digits", "valid_fraction": 0.9999},
            ("dataset", "valid_fraction"),
            "cannot split 1438 examples",
        ),
        (
            {"name": "sinusoid", "x_range": [-1e308, 1e308]},
            ("dataset",),
            "x_range must be finite with low < high and a finite width",
        ),
    ],
)
def test_dataset_settings_a_job_could_not_load_are_refused_at_their_field(
    dataset: dict[str, Any], loc: tuple[str, ...], says: str
) -> None:
    config = DATASETS.get(dataset["name"]).config
    with pytest.raises(ValidationError):
        config.model_validate({k: v for k, v in dataset.items() if k != "name"})
    spec = {
        "name": "d",
        "dataset": dataset,
        "space": {"name": "mlp"},
        "controller": {"name": "random"},
        "evaluator": {"name": "standalone", "epochs": 1},
        "budget": {"trials": 1},
    }
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    found = {tuple(e["loc"]): e["msg"] for e in info.value.errors}
    assert loc in found and says in found[loc], found


def test_npz_data_no_result_can_be_had_from_is_refused(tmp_path: Path) -> None:
    """The probe of own data: an empty x_test reported a test accuracy of 0 %, one class a
    trivial 100 %, both without a word; a NaN or inf (or a float64 past float32's range) in
    x failed every trial as "diverged", blaming the model, and in x_test was scored."""
    x, y = signals(30)
    refused_at_submit = {
        "empty test": (
            {"x": x, "y": y, "x_test": x[:0], "y_test": y[:0]},
            "x_test holds no example",
        ),
        "one class": ({"x": x, "y": np.zeros(30, np.int64)}, "y holds one class only"),
    }
    for case, (arrays, says) in refused_at_submit.items():
        path = write_npz(tmp_path / f"{case}.npz", **arrays)
        for read in (check_dataset, load_dataset):
            with pytest.raises(DatasetError, match=says):
                read("npz", path=path)
    bad = x.copy()
    bad[5, 3] = np.nan
    huge = x * 1e300  # float64: inf as float32
    for name, arrays in {
        "x": {"x": bad, "y": y},
        "x_test": {"x": x, "y": y, "x_test": bad, "y_test": y},
        "x huge": {"x": huge, "y": y},
    }.items():
        path = write_npz(tmp_path / f"{name}.npz", **arrays)
        check_dataset("npz", path=path)  # (the headers cannot tell: loading does)
        with pytest.raises(DatasetError, match=f"{name.split()[0]} holds values that are not"):
            load_dataset("npz", path=path)
    load_dataset("npz", path=write_npz(tmp_path / "fine.npz", x=x.astype(np.float16), y=y))

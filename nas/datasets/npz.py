"""The user's own data: an ``.npz`` file with arrays ``x``, ``y`` and optionally ``x_test``,
``y_test``; every problem with the file is reported at ``dataset.path``. ``check_npz`` finds
the problems that the arrays' headers show (a service checks them at submit) without reading
the arrays; loading finds the rest (label values)."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from nas.datasets.base import (
    FILE_PARAM,
    DatasetEntry,
    DatasetSplits,
    HeldOutConfig,
    finish_splits,
    held_out_seed,
    split_off,
    split_size,
    with_channels,
)
from nas.errors import DatasetError, at_submit
from nas.paths import spec_path

_ARRAYS = ("x", "y", "x_test", "y_test")
_EXPECTED = "expected an .npz file of numeric arrays x, y (optionally x_test, y_test)"


class NpzConfig(HeldOutConfig):
    path: str = Field(
        description="an .npz file with arrays x, y and optionally x_test, y_test",
        json_schema_extra=FILE_PARAM,
    )
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="share held out for testing when the file has no x_test"
    )
    channels_last_check: bool | None = Field(
        None,
        validate_default=True,
        description="refuse images that look channels-last, (N, H, W, C) with C 1, 3 or 4 "
        "and H over 4 (the networks take (N, C, H, W) and would read rows as channels); "
        "false for a file whose (N, C, H, W) examples only look so. Unset: true for a spec "
        "submitted now (stored so); a job stored before this setting reads its file as it did",
        json_schema_extra={"default": True},
    )

    @field_validator("channels_last_check")
    @classmethod
    def _unchecked_when_stored_before(cls, value: bool | None, info: ValidationInfo) -> bool:
        return channels_last_default(value, info)


#: What reading an archive that is not a valid .npz raises: a corrupt or truncated file, an
#: .npy, pickled object arrays, and (a 500 before) members flagged encrypted
#: (RuntimeError), an unknown compression method (NotImplementedError), a header whose
#: shape is too large to hold (MemoryError).
_UNREADABLE = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    zipfile.BadZipFile,
    RuntimeError,
    NotImplementedError,
    MemoryError,
)


def channels_last_default(value: bool | None, info: ValidationInfo) -> bool:
    """``channels_last_check`` unset: on at submit (the stored spec then says so); off for a
    spec stored before the setting, as its job trained on the file then (it was told to set
    the check off, which a stored job cannot, and its retraining failed)."""
    return at_submit(info.context) if value is None else value


def load_npz(
    *,
    name: str,
    seed: int,
    valid_fraction: float,
    test_fraction: float,
    path: str,
    test_split_seed: int | None = None,
    pooled_classes: bool = False,
    channels_last_check: bool = True,
) -> DatasetSplits:
    """Read the file. Errors say what the file must hold, never what it does hold (a service
    must not tell a client about files it reads). ``pooled_classes``: the caller pools y and
    y_test and splits their classes itself (episodes), so y's classes are not the network's:
    class 0 may be absent from y and y_test may hold classes y does not."""
    file = _file(path)
    headers, _ = _read_headers(file)  # (its size before its arrays are read: changed since?)
    if headers:
        _check_size(headers)
    try:
        data = np.load(file, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single array")  # noqa: TRY004 (answered below as a bad file)
        with data:
            arrays = {k: data[k] for k in data.files if k in _ARRAYS}
    except _UNREADABLE:  # corrupt, .npy, pickled object arrays
        raise DatasetError(f"dataset.path: {_EXPECTED}; this file is not one") from None
    _check_arrays({k: (a.shape, a.dtype) for k, a in arrays.items()}, channels_last_check)
    x, y = arrays["x"], arrays["y"]
    _check_splits(len(y), "y_test" in arrays, valid_fraction, test_fraction)
    for key in ("y", "y_test"):
        if key in arrays and len(arrays[key]):
            _check_label_range(key, int(arrays[key].min()), int(arrays[key].max()))
            if key == "y" and not pooled_classes:
                _check_class_zero(int(arrays[key].min()))
                _check_classes(int(arrays[key].min()), int(arrays[key].max()))
    for key in ("x", "x_test"):
        if key in arrays:
            _check_finite(key, arrays[key])
    # (every class, not only the range the submit check reads: the same message)
    test = arrays.get("y_test") if not pooled_classes else None
    if test is not None and len(y) and not np.isin(np.unique(test), np.unique(y)).all():
        raise DatasetError(f"dataset.path: {_TEST_CLASSES}")
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        x_train, y_train = x, y
    else:
        x_train, y_train, x_test, y_test = split_off(
            x, y, test_fraction, held_out_seed(seed, test_split_seed), 0
        )
    return finish_splits(
        name,
        with_channels(x_train),
        y_train,
        with_channels(x_test),
        y_test,
        seed=seed,
        valid_fraction=valid_fraction,
    )


def check_npz(
    *,
    path: str,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.2,
    pooled_classes: bool = False,
    channels_last_check: bool = True,
    **_: Any,
) -> None:
    """What the file's array headers and labels tell, without reading the examples: an .npz
    archive holding x and y (and x_test with y_test) of numeric types, ranks and lengths that
    fit, enough examples for the splits, labels 0..K-1 (K at most ``MAX_CLASSES``). The
    labels are streamed for their range, never held whole. Raises the ``DatasetError`` that
    loading it would (``pooled_classes``: as ``load_npz``'s)."""
    file = _file(path)
    headers, ranges = _read_headers(file, ranges_of=("y", "y_test"))
    if headers is None:  # a newer format: loading will tell
        return
    _check_arrays(headers, channels_last_check)
    _check_size(headers)
    _check_splits(headers["y"][0][0], "y_test" in headers, valid_fraction, test_fraction)
    for key, extent in ranges.items():
        if extent is not None:
            _check_label_range(key, *extent)
    y_range, test_range = ranges.get("y"), ranges.get("y_test")
    if y_range is not None and not pooled_classes:
        _check_class_zero(y_range[0])
        _check_classes(*y_range)
        if test_range is not None:
            _check_test_classes(y_range[1], test_range[1])


def npz_example_shape(*, path: str, **_: Any) -> tuple[int, ...] | None:
    """One example's shape as the networks take it (a 1-D example given a channel axis),
    from ``x``'s header; ``None`` for a format newer than this reads."""
    headers, _ = _read_headers(_file(path))
    if headers is None or "x" not in headers:
        return None
    example = headers["x"][0][1:]
    return (1, *example) if len(example) == 1 else example


def _read_headers(
    file: Path, ranges_of: tuple[str, ...] = ()
) -> tuple[dict[str, tuple[tuple[int, ...], np.dtype]] | None, dict[str, tuple[int, int] | None]]:
    """The arrays' ``(shape, dtype)`` by name from their headers (``None``: a format newer
    than this reads), and the value range of the integer arrays named in ``ranges_of``,
    streamed."""
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    ranges: dict[str, tuple[int, int] | None] = {}
    try:
        with zipfile.ZipFile(file) as archive:
            members = {n.removesuffix(".npy"): n for n in archive.namelist() if n.endswith(".npy")}
            for key in _ARRAYS:
                if key not in members:
                    continue
                with archive.open(members[key]) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                    else:
                        return None, {}
                    headers[key] = (tuple(shape), np.dtype(dtype))
                    if key in ranges_of and np.issubdtype(np.dtype(dtype), np.integer):
                        ranges[key] = _streamed_range(member, np.dtype(dtype))
    except _UNREADABLE:
        raise DatasetError(f"dataset.path: {_EXPECTED}; this file is not one") from None
    return headers, ranges


def _streamed_range(member: Any, dtype: np.dtype, chunk: int = 1 << 20) -> tuple[int, int] | None:
    """``(min, max)`` of the integers left in ``member``, read ``chunk`` at a time (None: no
    values)."""
    low = high = None
    while data := member.read(chunk * dtype.itemsize):
        values = np.frombuffer(data[: len(data) - len(data) % dtype.itemsize], dtype=dtype)
        if len(values):
            lo, hi = int(values.min()), int(values.max())
            low, high = (lo, hi) if low is None else (min(low, lo), max(high, hi))
    return None if low is None else (low, high)


def _check_size(arrays: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """The examples within ``MAX_EXAMPLE_BYTES`` as float32 (their headers' shapes)."""
    values = sum(math.prod(arrays[k][0]) for k in ("x", "x_test") if k in arrays)
    if 4 * values > MAX_EXAMPLE_BYTES:
        raise DatasetError(
            f"dataset.path: the examples (x, x_test) hold {values:,} values, "
            f"{4 * values / (1 << 30):.2f} GiB as float32; at most {MAX_EXAMPLE_BYTES >> 30} "
            "GiB: train on a subset or at a lower resolution"
        )


def _check_splits(n: int, has_test: bool, valid_fraction: float, test_fraction: float) -> None:
    """Enough examples in x for the test split (without x_test) and the validation split."""
    try:
        if not has_test:
            n -= split_size(n, test_fraction)
        split_size(n, valid_fraction)
    except DatasetError as exc:
        raise DatasetError(f"dataset.path: x holds too few examples: {exc}") from None


def _file(path: str) -> Path:
    file = spec_path(path)
    if not file.is_file():
        raise DatasetError(f"dataset.path: no such file {str(file)!r}")
    return file


def _check_arrays(
    arrays: dict[str, tuple[tuple[int, ...], np.dtype]], channels_last_check: bool = True
) -> None:
    """The arrays' presence, types, ranks and lengths, from ``(shape, dtype)`` of each."""
    if "x" not in arrays or "y" not in arrays:
        raise DatasetError(f"dataset.path: {_EXPECTED}; x or y is missing")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError("dataset.path: x_test and y_test go together; one is missing")
    _check_pair("x", "y", arrays["x"], arrays["y"])
    if "x_test" in arrays:
        _check_pair("x_test", "y_test", arrays["x_test"], arrays["y_test"])
        if arrays["x_test"][0][1:] != arrays["x"][0][1:]:
            raise DatasetError("dataset.path: x_test examples must have the shape of x examples")
        if arrays["x_test"][0][0] == 0:  # (a test accuracy of 0 % was reported for none)
            raise DatasetError(
                "dataset.path: x_test holds no example: give test examples, or leave x_test "
                "and y_test out for a test split of x"
            )
    if channels_last_check:
        _check_channels_first(arrays["x"][0])


def _check_channels_first(shape: tuple[int, ...]) -> None:
    """Images stored channels-last, ``(N, 28, 28, 1)`` or ``(N, 32, 32, 3)``, were taken as
    28 channels of 28 x 1 images: they trained, badly, without a word. Such a shape (last
    axis 1, 3 or 4, the first of the example over 4) is refused, saying how to store it."""
    if len(shape) == 4 and shape[-1] in (1, 3, 4) and shape[1] > 4:
        raise DatasetError(
            "dataset.path: x looks channels-last, (N, H, W, C) with C 1, 3 or 4; the networks "
            "take (N, C, H, W): store np.moveaxis(x, -1, 1) as x (and x_test likewise); if its "
            "examples really are (C, H, W) with W 1, 3 or 4, set "
            "dataset.channels_last_check: false"
        )


def _check_pair(
    xname: str,
    yname: str,
    x: tuple[tuple[int, ...], np.dtype],
    y: tuple[tuple[int, ...], np.dtype],
) -> None:
    (x_shape, x_dtype), (y_shape, y_dtype) = x, y
    # (complex numbers are numbers: their imaginary parts were dropped with a warning)
    real = np.issubdtype(x_dtype, np.number) and not np.issubdtype(x_dtype, np.complexfloating)
    if len(x_shape) not in (2, 3, 4) or not real:
        raise DatasetError(
            f"dataset.path: {xname} must be an array of real numbers of shape (N, L), "
            "(N, C, L) or (N, C, H, W)"
        )
    if min(x_shape[1:]) < 1:
        raise DatasetError(
            f"dataset.path: {xname} examples must have every dimension at least 1 (L, C, H, "
            "W); one is 0"
        )
    if len(y_shape) != 1 or x_shape[0] != y_shape[0]:
        raise DatasetError(f"dataset.path: {yname} must be 1-D labels, one per example of {xname}")
    if not np.issubdtype(y_dtype, np.integer):
        raise DatasetError(f"dataset.path: {yname} must hold integer class labels 0..K-1")


#: The most classes a dataset's labels may name: a label of 10^9 would make a network of
#: 10^9 outputs.
MAX_CLASSES = 100_000
#: The most the examples (``x`` and ``x_test``) may hold as float32, as training takes them:
#: a 1.3 MB archive of zeros held 1.28 GB and took a server to 4 GB at submit. CIFAR-10
#: (50,000 x 3 x 32 x 32) is 0.6 GiB.
MAX_EXAMPLE_BYTES = 1 << 30


def _check_label_range(yname: str, low: int, high: int) -> None:
    if low < 0 or high >= MAX_CLASSES:
        raise DatasetError(
            f"dataset.path: {yname} must hold integer class labels 0..K-1, K at most {MAX_CLASSES}"
        )


def _check_class_zero(low: int) -> None:
    """y's smallest label is 0: labels 1..K trained a K+1-way network whose class 0 had no
    example, without a word."""
    if low > 0:
        raise DatasetError(
            "dataset.path: y must hold class labels 0..K-1 with class 0 among them; labels "
            "that start above 0 leave the classes below without examples: relabel y (and "
            "y_test) from 0, e.g. subtract 1 from labels 1..K"
        )


#: Test labels of classes the training labels never hold: the network grew outputs it never
#: trained, and tested on them (7 outputs for 4 trained classes, a test accuracy of 4.5 %).
_TEST_CLASSES = (
    "y_test must hold only classes that y holds: a class without training examples is "
    "never learned; relabel y_test as y is labelled"
)


def _check_classes(low: int, high: int) -> None:
    """y holds at least two classes (its labels' range says so): one class alone scored a
    trivial 100 % without a word (the probe of own data). (Sparse class ids, 0, 9, 18, are
    taken: the network has an output per id up to the largest.)"""
    if low == high:
        raise DatasetError(
            "dataset.path: y holds one class only: a classifier needs examples of at least two"
        )


def _check_finite(name: str, x: np.ndarray) -> None:
    """Examples of finite numbers within float32's range, as training takes them: a NaN or
    inf (or a float64 past float32's 3.4e38) failed every trial as "diverged: loss became
    nan", blaming the model; in the test split it was scored without a word."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    limit = np.finfo(np.float32).max
    for start in range(0, len(x), 4096):  # (in slices: no second copy of the whole array)
        part = x[start : start + 4096]
        if not np.isfinite(part).all() or (x.dtype.itemsize > 4 and np.abs(part).max() > limit):
            raise DatasetError(
                f"dataset.path: {name} holds values that are not finite numbers (NaN, inf, "
                "or beyond float32's 3.4e38): replace or drop those examples"
            )


def _check_test_classes(y_high: int, y_test_high: int) -> None:
    """What the labels' ranges tell of ``_TEST_CLASSES`` (loading checks every class)."""
    if y_test_high > y_high:
        raise DatasetError(f"dataset.path: {_TEST_CLASSES}")


ENTRIES = {
    "npz": DatasetEntry(
        NpzConfig,
        load_npz,
        check=check_npz,
        example_shape=npz_example_shape,
        inputs="the file's x examples as they are (nothing is scaled here), as float32, a 1-D "
        "example given a channel axis (L -> 1 x L); labels as in its y: prepare new inputs "
        "the way the file's were",
    )
}

"""The user's own data: an ``.npz`` file with arrays ``x``, ``y`` and optionally ``x_test``,
``y_test``; every problem with the file is reported at ``dataset.path``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from nas.datasets.base import (
    FILE_PARAM,
    DatasetConfig,
    DatasetEntry,
    DatasetSplits,
    finish_splits,
    split_off,
    with_channels,
)
from nas.errors import DatasetError

_ARRAYS = ("x", "y", "x_test", "y_test")
_EXPECTED = "expected an .npz file of numeric arrays x, y (optionally x_test, y_test)"


class NpzConfig(DatasetConfig):
    path: str = Field(
        description="an .npz file with arrays x, y and optionally x_test, y_test",
        json_schema_extra=FILE_PARAM,
    )
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="share held out for testing when the file has no x_test"
    )


def load_npz(
    *, name: str, seed: int, valid_fraction: float, test_fraction: float, path: str
) -> DatasetSplits:
    """Read the file. Errors say what the file must hold, never what it does hold (a service
    must not tell a client about files it reads)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DatasetError(f"dataset.path: no such file {str(file)!r}")
    try:
        data = np.load(file, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single array")
        with data:
            arrays = {k: data[k] for k in data.files if k in _ARRAYS}
    except (OSError, ValueError, EOFError, KeyError):  # corrupt, .npy, pickled object arrays
        raise DatasetError(f"dataset.path: {_EXPECTED}; this file is not one") from None
    if "x" not in arrays or "y" not in arrays:
        raise DatasetError(f"dataset.path: {_EXPECTED}; x or y is missing")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DatasetError("dataset.path: x_test and y_test go together; one is missing")
    x, y = arrays["x"], arrays["y"]
    _check_pair("x", "y", x, y)
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        _check_pair("x_test", "y_test", x_test, y_test)
        if x_test.shape[1:] != x.shape[1:]:
            raise DatasetError("dataset.path: x_test examples must have the shape of x examples")
        x_train, y_train = x, y
    else:
        x_train, y_train, x_test, y_test = split_off(x, y, test_fraction, seed, 0)
    return finish_splits(
        name,
        with_channels(x_train),
        y_train,
        with_channels(x_test),
        y_test,
        seed=seed,
        valid_fraction=valid_fraction,
    )


def _check_pair(xname: str, yname: str, x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim not in (2, 3, 4) or not np.issubdtype(x.dtype, np.number):
        raise DatasetError(
            f"dataset.path: {xname} must be a numeric array of shape (N, L), (N, C, L) or "
            "(N, C, H, W)"
        )
    if y.ndim != 1 or len(x) != len(y):
        raise DatasetError(f"dataset.path: {yname} must be 1-D labels, one per example of {xname}")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DatasetError(f"dataset.path: {yname} must hold integer class labels 0..K-1")


ENTRIES = {"npz": DatasetEntry(NpzConfig, load_npz)}

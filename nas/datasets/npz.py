"""The user's own data: an ``.npz`` file with arrays ``x``, ``y`` and optionally ``x_test``,
``y_test``; every problem with the file is reported at ``dataset.path``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from nas.datasets.base import (
    DatasetConfig,
    DatasetEntry,
    DatasetSplits,
    finish_splits,
    split_off,
    with_channels,
)
from nas.errors import DatasetError


class NpzConfig(DatasetConfig):
    path: str = Field(description="an .npz file with arrays x, y and optionally x_test, y_test")
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="share held out for testing when the file has no x_test"
    )


def load_npz(
    *, name: str, seed: int, valid_fraction: float, test_fraction: float, path: str
) -> DatasetSplits:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DatasetError(f"dataset.path: no such file {str(file)!r}")
    try:
        data = np.load(file, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array (.npy), not named arrays")
        with data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:  # corrupt, .npy, pickled object arrays
        raise DatasetError(
            f"dataset.path: {str(file)!r} is not a readable .npz file of numeric arrays ({exc})"
        ) from None
    for required in ("x", "y"):
        if required not in arrays:
            raise DatasetError(
                f"dataset.path: {file.name} has no array {required!r}; it has "
                f"{sorted(arrays) or 'none'} and needs x, y (optionally x_test, y_test)"
            )
    if ("x_test" in arrays) != ("y_test" in arrays):
        present, absent = ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
        raise DatasetError(f"dataset.path: {file.name} has {present} but no {absent}")
    x, y = arrays["x"], arrays["y"]
    _check_pair(file.name, "x", "y", x, y)
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        _check_pair(file.name, "x_test", "y_test", x_test, y_test)
        if x_test.shape[1:] != x.shape[1:]:
            raise DatasetError(
                f"dataset.path: x_test examples have shape {x_test.shape[1:]}, x examples "
                f"{x.shape[1:]}; they must match"
            )
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


def _check_pair(file: str, xname: str, yname: str, x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim not in (2, 3, 4):
        raise DatasetError(
            f"dataset.path: {file}:{xname} has shape {x.shape}; expected (N, L), (N, C, L) or "
            f"(N, C, H, W)"
        )
    if not np.issubdtype(x.dtype, np.number):
        raise DatasetError(f"dataset.path: {file}:{xname} must be numeric, got {x.dtype}")
    if y.ndim != 1:
        raise DatasetError(f"dataset.path: {file}:{yname} must be 1-D labels, got shape {y.shape}")
    if len(x) != len(y):
        raise DatasetError(
            f"dataset.path: {file}:{xname} has {len(x)} examples but {yname} has {len(y)}"
        )
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DatasetError(
            f"dataset.path: {file}:{yname} must hold integer class labels 0..K-1, got {y.dtype}"
        )


ENTRIES = {"npz": DatasetEntry(NpzConfig, load_npz)}

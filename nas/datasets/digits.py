"""scikit-learn's 8x8 handwritten digits (ships with scikit-learn), as 1x8x8 images."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from nas.datasets.base import (
    DatasetEntry,
    DatasetSplits,
    HeldOutConfig,
    finish_splits,
    held_out_seed,
    split_off,
    split_size,
)
from nas.errors import DatasetError

#: Examples in scikit-learn's digits.
DIGITS_EXAMPLES = 1797


class DigitsConfig(HeldOutConfig):
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share held out for testing")

    @model_validator(mode="after")
    def _splits_hold_examples(self) -> DigitsConfig:
        """Test, validation and training examples each (else the job failed at start)."""
        try:
            test = split_size(DIGITS_EXAMPLES, self.test_fraction, "test_fraction")
            split_size(DIGITS_EXAMPLES - test, self.valid_fraction, "valid_fraction")
        except DatasetError as exc:
            raise ValueError(str(exc)) from None
        return self


def digits_file() -> Path | None:
    """scikit-learn's own copy of the digits, ``sklearn/datasets/data/digits.csv.gz``, found
    without importing scikit-learn; ``None`` where this scikit-learn keeps it elsewhere."""
    spec = importlib.util.find_spec("sklearn")  # a top-level package: nothing is imported
    folders = (spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        file = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if file.is_file():
            return file
    return None


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as scikit-learn's ``load_digits()`` gives them: 64 pixels (0..16) and
    the label of each, read from its file. Importing ``sklearn.datasets`` (scipy and more)
    cost 1.1 s of CPU in every process that trained on the digits: each Ray worker, each
    server; reading the file takes 20 ms."""
    file = digits_file()
    if file is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data, digits.target
    with gzip.open(file, "rt", encoding="utf-8") as text:
        table = np.loadtxt(text, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def load_digits(
    *,
    name: str,
    seed: int,
    valid_fraction: float,
    test_fraction: float,
    test_split_seed: int | None = None,
) -> DatasetSplits:
    pixels, labels = digits_arrays()
    x = (pixels.reshape(-1, 8, 8) / 16.0).astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8)
    y = labels.astype(np.int64)
    x_train, y_train, x_test, y_test = split_off(
        x, y, test_fraction, held_out_seed(seed, test_split_seed), 0
    )
    return finish_splits(
        name, x_train, y_train, x_test, y_test, seed=seed, valid_fraction=valid_fraction
    )


ENTRIES = {
    "digits": DatasetEntry(
        DigitsConfig,
        load_digits,
        inputs="scikit-learn's load_digits() images divided by 16 (pixels 0..1), float32, "
        "shape (1, 8, 8); labels 0-9",
    )
}

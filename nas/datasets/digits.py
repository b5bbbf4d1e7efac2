"""scikit-learn's 8x8 handwritten digits (ships with scikit-learn), as 1x8x8 images."""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from nas.datasets.base import (
    DatasetConfig,
    DatasetEntry,
    DatasetSplits,
    finish_splits,
    split_off,
    split_size,
)
from nas.errors import DatasetError

#: Examples in scikit-learn's digits.
DIGITS_EXAMPLES = 1797


class DigitsConfig(DatasetConfig):
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


def load_digits(
    *, name: str, seed: int, valid_fraction: float, test_fraction: float
) -> DatasetSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()  # ships with scikit-learn
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, y_train, x_test, y_test = split_off(x, y, test_fraction, seed, 0)
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

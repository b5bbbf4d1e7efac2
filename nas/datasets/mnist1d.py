"""MNIST-1D (Greydanus 2020): 1-D signals of 10 digit templates, generated locally by the
``mnist1d`` package and cached under ``cache_dir()``; never downloaded."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from pydantic import Field, model_validator

from nas.datasets.base import (
    DatasetConfig,
    DatasetEntry,
    DatasetSplits,
    cache_dir,
    cached_arrays,
    finish_splits,
    split_size,
    with_channels,
)
from nas.errors import DatasetError


class Mnist1dConfig(DatasetConfig):
    num_samples: int = Field(5000, ge=100, le=1_000_000, description="train + test examples")
    train_split: float = Field(0.8, gt=0.0, lt=1.0, description="share of examples for training")
    generation_seed: int = Field(
        42,
        ge=0,
        le=2**32 - 1,
        description="seed of the generator; 42 gives the standard MNIST-1D dataset",
    )

    @model_validator(mode="after")
    def _splits_hold_examples(self) -> Mnist1dConfig:
        """Training, validation and test examples each, as the generator splits them (the
        first ``int(num_samples * train_split)`` for training), else the job failed at start."""
        train = int(self.num_samples * self.train_split)
        if train < 2 or train >= self.num_samples:
            raise ValueError(
                f"train_split {self.train_split} of num_samples {self.num_samples} leaves "
                f"{train} training and {self.num_samples - train} test examples; it needs at "
                "least 2 training and 1 test example"
            )
        try:
            split_size(train, self.valid_fraction)
        except DatasetError as exc:
            raise ValueError(f"valid_fraction of the {train} training examples: {exc}") from None
        return self


def load_mnist1d(
    *,
    name: str,
    seed: int,
    valid_fraction: float,
    num_samples: int,
    train_split: float,
    generation_seed: int,
) -> DatasetSplits:
    params = {"num_samples": num_samples, "train_split": train_split, "seed": generation_seed}
    # (cache version 2: a file of version 1 may hold the draws of two generations at once)
    cached = {**params, "cache_version": 2}
    digest = hashlib.sha256(json.dumps(cached, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist1d-{digest}.npz"

    def make() -> dict[str, np.ndarray]:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        for key, value in params.items():
            setattr(args, key, value)
        made = make_dataset(args)  # generated locally; never downloaded
        return {k: np.asarray(made[k]) for k in ("x", "y", "x_test", "y_test")}

    arrays = cached_arrays(path, make)
    return finish_splits(
        name,
        with_channels(arrays["x"]),
        arrays["y"],
        with_channels(arrays["x_test"]),
        arrays["y_test"],
        seed=seed,
        valid_fraction=valid_fraction,
    )


ENTRIES = {
    "mnist1d": DatasetEntry(
        Mnist1dConfig,
        load_mnist1d,
        inputs="MNIST-1D signals as the mnist1d package's make_dataset generates them (no "
        "further scaling), float32, shape (1, 40); labels 0-9",
    )
}

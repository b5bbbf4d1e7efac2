"""Datasets, registered by the name a job spec uses (``dataset: {name: ...}``).

Every loader returns a ``DatasetSplits``: float32 inputs shaped ``(N, C, L)`` or
``(N, C, H, W)``, int64 labels, split deterministically by ``seed`` into train / valid / test.
Nothing is downloaded: MNIST-1D is generated locally by the ``mnist1d`` package and cached,
``digits`` ships with scikit-learn, ``npz`` is the user's own file. The NAS-Bench-201 datasets
(``nb201-cifar10`` ...) have no arrays: they name a column group of the benchmark table.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from nas.errors import DatasetError
from nas.registry import Registry

__all__ = [
    "DATASETS",
    "NB201_DATASETS",
    "DatasetSplits",
    "cache_dir",
    "dataset_shape",
    "load_dataset",
]


@dataclass(frozen=True)
class DatasetSplits:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-example shape: (C, L) for signals, (C, H, W) for images."""
        return tuple(self.x_train.shape[1:])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "valid": len(self.y_valid), "test": len(self.y_test)}


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    valid_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="share of the training data held out for validation"
    )


class Mnist1dConfig(DatasetConfig):
    num_samples: int = Field(5000, ge=100, le=1_000_000, description="train + test examples")
    train_split: float = Field(0.8, gt=0.0, lt=1.0, description="share of examples for training")
    generation_seed: int = Field(
        42, description="seed of the generator; 42 gives the standard MNIST-1D dataset"
    )


class DigitsConfig(DatasetConfig):
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share held out for testing")


class NpzConfig(DatasetConfig):
    path: str = Field(description="an .npz file with arrays x, y and optionally x_test, y_test")
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="share held out for testing when the file has no x_test"
    )


class Nb201DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class DatasetEntry:
    config: type[BaseModel]
    load: Callable[..., DatasetSplits] | None  # None: a tabular benchmark, no arrays
    tabular: str | None = None  # the NAS-Bench-201 column prefix
    #: Input shape (one example) and classes where they are fixed: a tabular benchmark has no
    #: arrays to read them from. ``None``: they come from the loaded data.
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None


DATASETS: Registry[DatasetEntry] = Registry("dataset")
#: spec name -> NAS-Bench-201 table column prefix
NB201_DATASETS = {"nb201-cifar10": "c10", "nb201-cifar100": "c100", "nb201-imagenet16-120": "in16"}
#: spec name -> input shape and classes of the NAS-Bench-201 datasets: CIFAR-10/100 images are
#: 32x32, ImageNet16-120 images 16x16.
_NB201_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "nb201-cifar10": ((3, 32, 32), 10),
    "nb201-cifar100": ((3, 32, 32), 100),
    "nb201-imagenet16-120": ((3, 16, 16), 120),
}


def cache_dir() -> Path:
    """Where generated datasets are cached: ``$NAS_CACHE_DIR`` or the user's cache dir."""
    root = os.environ.get("NAS_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nas-service"


def load_dataset(name: str, *, seed: int = 0, **config: Any) -> DatasetSplits:
    """Load a registered dataset with its spec parameters, split by ``seed``."""
    entry = DATASETS.get(name)
    if entry.load is None:
        raise DatasetError(f"dataset {name!r} is a tabular benchmark; it has no arrays to load")
    params = entry.config.model_validate(config)
    return entry.load(name=name, seed=seed, **params.model_dump())


def dataset_shape(
    name: str, params: Mapping[str, Any] | None = None, seed: int = 0
) -> tuple[tuple[int, ...], int]:
    """Input shape (one example: (C, L) or (C, H, W)) and number of classes of a registered
    dataset with its spec parameters: from the registry entry where they are fixed, else from
    the data, loaded once per (name, params, seed) in this process."""
    entry = DATASETS.get(name)
    if entry.input_shape is not None and entry.num_classes is not None:
        return entry.input_shape, entry.num_classes
    return _loaded_shape(name, json.dumps(dict(params or {}), sort_keys=True, default=str), seed)


@lru_cache(maxsize=32)
def _loaded_shape(name: str, params_json: str, seed: int) -> tuple[tuple[int, ...], int]:
    data = load_dataset(name, seed=seed, **json.loads(params_json))
    return tuple(int(v) for v in data.input_shape), int(data.num_classes)


# --- splitting -----------------------------------------------------------------------------
def _split_off(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, salt: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``fraction`` of the examples off, by a permutation seeded from ``seed``."""
    order = np.random.default_rng([seed, salt]).permutation(len(y))
    n_off = max(1, int(round(len(y) * fraction)))
    if n_off >= len(y):
        raise DatasetError(f"cannot split {len(y)} examples with fraction {fraction}")
    keep, off = order[n_off:], order[:n_off]
    return x[keep], y[keep], x[off], y[off]


def _finish(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int,
    valid_fraction: float,
) -> DatasetSplits:
    x_train, y_train, x_valid, y_valid = _split_off(x_train, y_train, valid_fraction, seed, 1)
    labels = np.concatenate([y_train, y_valid, y_test])
    return DatasetSplits(
        name=name,
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=y_train.astype(np.int64),
        x_valid=np.ascontiguousarray(x_valid, dtype=np.float32),
        y_valid=y_valid.astype(np.int64),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=y_test.astype(np.int64),
        num_classes=int(labels.max()) + 1,
    )


def _with_channels(x: np.ndarray) -> np.ndarray:
    """(N, L) -> (N, 1, L); (N, H, W) stays images only if the caller says so (npz: below)."""
    return x[:, None, :] if x.ndim == 2 else x


# --- mnist1d -------------------------------------------------------------------------------
def _load_mnist1d(
    *,
    name: str,
    seed: int,
    valid_fraction: float,
    num_samples: int,
    train_split: float,
    generation_seed: int,
) -> DatasetSplits:
    params = {"num_samples": num_samples, "train_split": train_split, "seed": generation_seed}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist1d-{digest}.npz"
    if path.exists():
        with np.load(path) as data:
            arrays = {k: data[k] for k in ("x", "y", "x_test", "y_test")}
    else:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        for key, value in params.items():
            setattr(args, key, value)
        made = make_dataset(args)  # generated locally; never downloaded
        arrays = {k: np.asarray(made[k]) for k in ("x", "y", "x_test", "y_test")}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, path)  # atomic: concurrent writers cannot leave a torn file
    return _finish(
        name,
        _with_channels(arrays["x"]),
        arrays["y"],
        _with_channels(arrays["x_test"]),
        arrays["y_test"],
        seed=seed,
        valid_fraction=valid_fraction,
    )


# --- digits --------------------------------------------------------------------------------
def _load_digits(
    *, name: str, seed: int, valid_fraction: float, test_fraction: float
) -> DatasetSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()  # ships with scikit-learn
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, y_train, x_test, y_test = _split_off(x, y, test_fraction, seed, 0)
    return _finish(name, x_train, y_train, x_test, y_test, seed=seed, valid_fraction=valid_fraction)


# --- npz -----------------------------------------------------------------------------------
def _load_npz(
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
        x_train, y_train, x_test, y_test = _split_off(x, y, test_fraction, seed, 0)
    return _finish(
        name,
        _with_channels(x_train),
        y_train,
        _with_channels(x_test),
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


DATASETS.register("mnist1d")(DatasetEntry(Mnist1dConfig, _load_mnist1d))
DATASETS.register("digits")(DatasetEntry(DigitsConfig, _load_digits))
DATASETS.register("npz")(DatasetEntry(NpzConfig, _load_npz))
for _name, _prefix in NB201_DATASETS.items():
    _shape, _classes = _NB201_SHAPES[_name]
    DATASETS.register(_name)(
        DatasetEntry(
            Nb201DatasetConfig, None, tabular=_prefix, input_shape=_shape, num_classes=_classes
        )
    )

"""What every dataset shares: the splits a loader returns, the registry entry, loading by
name, and the splitting helpers the loaders use.

Every loader returns a ``DatasetSplits``: float32 inputs shaped ``(N, C, L)`` or
``(N, C, H, W)``, int64 labels, split deterministically by ``seed`` into train / valid / test.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from nas.errors import DatasetError, at_submit
from nas.registry import Registry

if TYPE_CHECKING:
    from nas.datasets.tasks import TaskDistribution


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


@dataclass(frozen=True)
class DatasetEntry:
    config: type[BaseModel]
    load: Callable[..., DatasetSplits] | None  # None: no arrays (a table, a task distribution)
    #: Not None: a benchmark table, no arrays to train on (for NAS-Bench-201, the table's
    #: column prefix; ``table``: the user's own table).
    tabular: str | None = None
    #: Input shape (one example) and classes where they are fixed: a tabular benchmark has no
    #: arrays to read them from. ``None``: they come from the loaded data.
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    #: Not None: a task distribution for few-shot meta-learning (``nas.datasets.tasks``),
    #: built from the spec's parameters; no arrays (``load`` is None), and only the
    #: meta-learning evaluators take it.
    tasks: Callable[..., TaskDistribution] | None = None
    #: How the task distribution's tasks are scored, known without building it: ``mse``
    #: (regression) or ``cross_entropy`` (N-way classification episodes, scored by accuracy).
    task_loss: str = "mse"
    #: A task distribution's example shape and outputs from its spec parameters without
    #: building it (no data generated or read), or ``None`` where only its data tells.
    task_shape: Callable[..., tuple[tuple[int, ...], int] | None] | None = None
    #: Classification episodes: the examples of each class, from the spec's parameters
    #: without building the distribution (``None`` where only its data tells): a task takes
    #: support + query examples of each of its classes.
    task_class_examples: Callable[..., int | None] | None = None
    #: Classification episodes: the examples of the smallest class and a sentence saying so
    #: (which class, where, what to do), read from the data (a file's labels only). Only
    #: ``check_startable`` calls it, once a file is confined to the data roots.
    task_smallest_class: Callable[..., tuple[int, str] | None] | None = None
    #: Not None: checks, with the spec's parameters, what a submit can afford to check of a
    #: file the dataset reads (its structure, not its data), raising the ``DatasetError``
    #: that loading it would.
    check: Callable[..., None] | None = None
    #: Not None: one example's shape as the networks take it, from the file's headers
    #: without reading its arrays (``None`` from it: only loading tells), for the checks at
    #: submit that need the input (MetaQNN's ``input_size``). Only ``check_startable`` calls
    #: it, after ``check``.
    example_shape: Callable[..., tuple[int, ...] | None] | None = None
    #: What one input is as the networks take it: the data and its preprocessing, which a
    #: user of an exported model must repeat (the exports say it). ``None``: no network input;
    #: a callable: the text from the spec's dataset parameters (``inputs_for``), where they
    #: set what the inputs are (a generated distribution's ranges, an image's size).
    inputs: str | Callable[..., str] | None = None

    def inputs_for(self, params: Mapping[str, Any]) -> str | None:
        """``inputs`` for a job whose dataset section has ``params``."""
        return self.inputs(**params) if callable(self.inputs) else self.inputs


DATASETS: Registry[DatasetEntry] = Registry("dataset")

#: Marks a component parameter that names a file the job reads
#: (``Field(json_schema_extra=FILE_PARAM)``). A service confines such paths to its data roots
#: (``ResolvedSpec.file_params`` finds them); the OpenAPI schema shows the mark.
FILE_PARAM: dict[str, Any] = {"x-nas-file": True}


def is_file_param(field: Any) -> bool:
    """Whether a pydantic field is marked ``FILE_PARAM`` (a path to a file)."""
    extra = field.json_schema_extra
    return isinstance(extra, dict) and all(extra.get(k) == v for k, v in FILE_PARAM.items())


def cache_dir() -> Path:
    """Where generated datasets are cached: ``$NAS_CACHE_DIR`` or the user's cache dir."""
    root = os.environ.get("NAS_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "nas-service"


#: Held while a dataset is generated into the cache: jobs are threads of one server, and
#: two generating at once (the same file, or MNIST-1D's generator, which draws from NumPy's
#: global random state) interleaved their draws into a wrong dataset and raced for one
#: temporary file.
_GENERATING = threading.Lock()


def cached_arrays(
    path: Path, make: Callable[[], Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays of the cache file ``path``, made by ``make`` (one generation at a time in
    this process) and stored there when it does not exist yet. The file is written under a
    name of its own first and then moved into place: processes that make it at once (Ray
    workers) each write whole files, and a reader never sees a torn one."""
    if not path.exists():
        with _GENERATING:
            if not path.exists():  # (made meanwhile by the thread before this one)
                arrays = {k: np.asarray(v) for k, v in make().items()}
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=".tmp")
                try:
                    with os.fdopen(fd, "wb") as file:
                        np.savez_compressed(file, **arrays)
                    os.replace(tmp, path)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                return arrays
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def load_dataset(name: str, *, seed: int = 0, **config: Any) -> DatasetSplits:
    """Load a registered dataset with its spec parameters, split by ``seed``."""
    entry = DATASETS.get(name)
    if entry.load is None:
        what = "a task distribution" if entry.tasks is not None else "a tabular benchmark"
        raise DatasetError(f"dataset {name!r} is {what}; it has no arrays to load")
    params = entry.config.model_validate(config)
    return entry.load(name=name, seed=seed, **params.model_dump())


def check_dataset(name: str, **config: Any) -> None:
    """``DatasetEntry.check`` of a registered dataset with its spec parameters (nothing for a
    dataset without one)."""
    entry = DATASETS.get(name)
    if entry.check is not None:
        entry.check(**entry.config.model_validate(config).model_dump())


def load_tasks(name: str, **config: Any) -> TaskDistribution:
    """The task distribution of a registered dataset with its spec parameters (few-shot
    meta-learning: ``DatasetEntry.tasks``)."""
    entry = DATASETS.get(name)
    if entry.tasks is None:
        raise DatasetError(f"dataset {name!r} is not a task distribution")
    return entry.tasks(**config)


def dataset_shape(
    name: str, params: Mapping[str, Any] | None = None, seed: int = 0
) -> tuple[tuple[int, ...], int]:
    """Input shape (one example: (C, L) or (C, H, W)) and number of classes of a registered
    dataset with its spec parameters: from the registry entry where they are fixed, else from
    the data, loaded once per (name, params, seed) in this process (a task distribution:
    its examples' shape and its network's outputs, N for N-way episodes)."""
    entry = DATASETS.get(name)
    if entry.input_shape is not None and entry.num_classes is not None:
        return entry.input_shape, entry.num_classes
    if entry.tasks is not None:  # a task distribution: its input and its network's outputs
        known = entry.task_shape(**dict(params or {})) if entry.task_shape is not None else None
        if known is not None:
            return known
        return _task_shape(
            name, json.dumps(dict(params or {}), sort_keys=True, default=str), _stamp(params)
        )
    return _loaded_shape(
        name, json.dumps(dict(params or {}), sort_keys=True, default=str), seed, _stamp(params)
    )


def _stamp(params: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """The modification time and size of the file a dataset's ``path`` names: a file
    changed in place (other columns, other classes) is loaded again, not answered from the
    cache (exports built the old shape while a retraining trained the new)."""
    from nas.paths import spec_path

    path = (params or {}).get("path")
    if not isinstance(path, str):
        return None
    try:
        stat = spec_path(path).stat()
    except (OSError, ValueError, RuntimeError):
        return None
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=32)
def _loaded_shape(
    name: str, params_json: str, seed: int, stamp: tuple[int, int] | None = None
) -> tuple[tuple[int, ...], int]:
    data = load_dataset(name, seed=seed, **json.loads(params_json))
    return tuple(int(v) for v in data.input_shape), int(data.num_classes)


@lru_cache(maxsize=32)
def _task_shape(
    name: str, params_json: str, stamp: tuple[int, int] | None = None
) -> tuple[tuple[int, ...], int]:
    tasks = load_tasks(name, **json.loads(params_json))
    return tuple(int(v) for v in tasks.input_shape), int(tasks.outputs)


# --- for loaders ---------------------------------------------------------------------------
def split_size(n: int, fraction: float, where: str = "") -> int:
    """How many of ``n`` examples ``split_off`` takes off (at least one, and not all);
    ``DatasetError`` (prefixed by the field ``where``) when that leaves none."""
    n_off = max(1, round(n * fraction))
    if n_off >= n:
        at = f"{where}: " if where else ""
        raise DatasetError(
            f"{at}cannot split {n} examples with fraction {fraction}: it would leave none"
        )
    return n_off


#: The seed of the test split of a dataset that has none of its own (digits, an npz file
#: without ``x_test``) when the spec does not set ``test_split_seed``: the same for every
#: job, whatever its seed. With the job's seed, the test examples of one seed were training
#: examples of another (267 of digits' 359 between seeds 0 and 1): held-out figures did not
#: compare across seeds, and a warm start from another seed's job ranked on this one's test
#: examples. The validation split follows the job's seed. (Seed 0 splits as before.)
TEST_SPLIT_SEED = 0


class HeldOutConfig(DatasetConfig):
    """A dataset whose test split is cut from its examples."""

    test_split_seed: int | None = Field(
        None,
        ge=0,
        lt=2**63,
        description="seed of the test split, the same for every job seed (0 unless set); "
        "a job stored before this setting has none and splits by its own seed, as it did",
    )

    @model_validator(mode="before")
    @classmethod
    def _a_fixed_test_split(cls, data: Any, info: ValidationInfo) -> Any:
        """Filled in at submit, so the stored spec says it; a spec stored before it keeps
        null (its job's seed), so that a resumed or retrained job splits as it did."""
        fill = isinstance(data, dict) and data.get("test_split_seed") is None
        return (
            {**data, "test_split_seed": TEST_SPLIT_SEED}
            if fill and at_submit(info.context)
            else data
        )


def held_out_seed(job_seed: int, test_split_seed: int | None) -> int:
    """The seed that cuts the test split: the spec's, or a job stored before the setting's
    own seed."""
    return job_seed if test_split_seed is None else test_split_seed


def split_off(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, salt: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``fraction`` of the examples off, by a permutation seeded from ``seed``."""
    order = np.random.default_rng([seed, salt]).permutation(len(y))
    n_off = split_size(len(y), fraction)
    keep, off = order[n_off:], order[:n_off]
    return x[keep], y[keep], x[off], y[off]


def finish_splits(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int,
    valid_fraction: float,
) -> DatasetSplits:
    x_train, y_train, x_valid, y_valid = split_off(x_train, y_train, valid_fraction, seed, 1)
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


def with_channels(x: np.ndarray) -> np.ndarray:
    """(N, L) -> (N, 1, L); (N, H, W) stays images only if the caller says so (npz: below)."""
    return x[:, None, :] if x.ndim == 2 else x

"""``episodes``: N-way K-shot classification tasks over a labelled dataset (``mnist1d``,
``digits`` or the user's ``npz`` file), for the meta-learning evaluators.

The dataset's classes (all its examples, whatever their train/test split) are split into
disjoint meta-train, meta-validation and meta-test classes (``class_split``: the shares,
by a permutation seeded with ``split_seed``), so a meta-validation or meta-test task only
holds classes that meta-training never saw. A task (an episode) draws ``ways`` classes of
its split, assigns them the labels ``0..N-1`` in the order drawn, and ``K`` support and
``Q`` query examples of each class without replacement (``K`` and ``Q`` are the evaluator's
``shots`` / ``queries``; the meta-validation and meta-test tasks have ``eval_shots`` and
``eval_points`` per class). Tasks come from the split's stream (``nas.datasets.tasks``):
every split and every episode is reproducible from ``split_seed`` and the job's seed.

``EpisodeTasks`` is the task distribution over any arrays; the generated ``glyphs``
benchmark (``nas.datasets.glyphs``) uses it too.

Example:
    >>> tasks = load_tasks("episodes", source="digits", ways=2)
    >>> batch = tasks.sample(tasks.stream("train", 0), n_tasks=4, shots=1, queries=15)
    >>> batch.support_x.shape, batch.query_y.shape
    (torch.Size([4, 2, 1, 8, 8]), torch.Size([4, 30]))
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nas.datasets.base import FILE_PARAM, DatasetEntry, load_dataset
from nas.datasets.npz import NpzConfig, channels_last_default, check_npz, load_npz
from nas.datasets.tasks import SPLITS, TaskBatch, TaskDistribution
from nas.errors import DatasetError
from nas.paths import spec_path

__all__ = ["ENTRIES", "EpisodeTasks", "EpisodesConfig", "split_classes"]

#: Classes of the built-in sources (``npz``: read from the file).
SOURCE_CLASSES: dict[str, int] = {"mnist1d": 10, "digits": 10}
#: Salt of the class permutation's seed.
_CLASS_SALT = 0x5EC1A55


def split_classes(
    classes: np.ndarray, shares: tuple[float, float, float], seed: int
) -> dict[str, np.ndarray]:
    """The classes of each split (``train``, ``valid``, ``test``): a permutation seeded by
    ``seed``; meta-validation and meta-test get ``round(share * C)`` classes (at least one
    each), meta-training the rest (at least one)."""
    counts = split_counts(len(classes), shares)
    order = np.random.default_rng([_CLASS_SALT, int(seed)]).permutation(np.asarray(classes))
    train, valid = counts["train"], counts["valid"]
    return {
        "train": np.sort(order[:train]),
        "valid": np.sort(order[train : train + valid]),
        "test": np.sort(order[train + valid :]),
    }


def split_counts(n_classes: int, shares: tuple[float, float, float]) -> dict[str, int]:
    """How many classes each split gets out of ``n_classes`` (see ``split_classes``)."""
    valid = max(1, round(shares[1] * n_classes))
    test = max(1, round(shares[2] * n_classes))
    train = n_classes - valid - test
    if train < 1:
        raise DatasetError(
            f"class_split {list(shares)} leaves no meta-training class out of {n_classes}"
        )
    return {"train": train, "valid": valid, "test": test}


class EpisodeTasks(TaskDistribution):
    """N-way K-shot episodes over arrays ``x`` (``(M, C, L)`` or ``(M, C, H, W)``) with
    integer labels ``y``, the classes split into disjoint meta-train / meta-validation /
    meta-test sets.

    Example:
        >>> x, y = np.random.rand(100, 1, 4, 4), np.repeat(np.arange(10), 10)
        >>> tasks = EpisodeTasks(x, y, ways=2, class_split=(0.6, 0.2, 0.2), name="toy")
        >>> tasks.sample(tasks.stream("valid", 0), n_tasks=3, shots=2, queries=1).support_y[0]
        tensor([0, 0, 1, 1])
    """

    loss = "cross_entropy"

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        ways: int,
        class_split: tuple[float, float, float] = (0.6, 0.2, 0.2),
        split_seed: int = 0,
        name: str = "episodes",
    ) -> None:
        if len(x) != len(y) or x.ndim not in (3, 4):
            raise DatasetError(
                f"{name}: expected x of shape (M, C, L) or (M, C, H, W) and one label each, "
                f"got x {tuple(x.shape)} and {len(y)} labels"
            )
        labels = np.asarray(y).astype(np.int64)
        classes = np.unique(labels)
        self.name = name
        self.ways = int(ways)
        self.class_split = tuple(float(s) for s in class_split)
        self.split_seed = int(split_seed)
        problem = ways_problem(len(classes), self.ways, self.class_split, name)  # type: ignore[arg-type]
        if problem is not None:
            raise DatasetError(f"dataset.ways: {problem}")
        self.splits = split_classes(classes, self.class_split, split_seed)  # type: ignore[arg-type]
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        self.labels = labels
        self.by_class = {int(c): np.flatnonzero(labels == c) for c in classes}
        self.input_shape = tuple(int(v) for v in x.shape[1:])
        self.outputs = self.ways

    def sample(
        self,
        rng: np.random.Generator,
        *,
        n_tasks: int,
        shots: int,
        queries: int,
        grid_queries: bool = False,
        split: str = "train",
    ) -> TaskBatch:
        if split not in SPLITS:
            raise ValueError(f"unknown task split {split!r}; valid: {', '.join(SPLITS)}")
        classes, per_class = self.splits[split], shots + queries
        index = np.empty((n_tasks, self.ways, per_class), dtype=np.int64)
        for task in range(n_tasks):
            chosen = rng.choice(classes, self.ways, replace=False)
            for label, cls in enumerate(chosen):
                pool = self.by_class[int(cls)]
                if len(pool) < per_class:
                    raise DatasetError(
                        f"{self.name}: class {int(cls)} has {len(pool)} examples; a task needs "
                        f"{shots} support + {queries} query examples of each class"
                    )
                index[task, label] = pool[rng.choice(len(pool), per_class, replace=False)]
        support = torch.from_numpy(index[:, :, :shots].reshape(n_tasks, -1))
        query = torch.from_numpy(index[:, :, shots:].reshape(n_tasks, -1))
        labels = torch.arange(self.ways)
        return TaskBatch(
            self.x[support],
            labels.repeat_interleave(shots).expand(n_tasks, -1).contiguous(),
            self.x[query],
            labels.repeat_interleave(queries).expand(n_tasks, -1).contiguous(),
        )

    def split_arrays(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """All examples of ``split``'s classes with labels ``0..C-1`` in the order of its
        classes (pretraining on every meta-training class: the baseline)."""
        classes = self.splits[split]
        keep = np.isin(self.labels, classes)
        relabel = np.searchsorted(classes, self.labels[keep])
        return self.x[torch.from_numpy(np.flatnonzero(keep))], torch.from_numpy(relabel)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ways": self.ways,
            "classes": {s: len(c) for s, c in self.splits.items()},
            "class_split": list(self.class_split),
            "split_seed": self.split_seed,
        }


class EpisodesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Literal["mnist1d", "digits", "npz"] = Field(
        description="the labelled dataset whose classes the episodes draw"
    )
    path: str | None = Field(
        None,
        description="source npz: the file (x, y[, x_test, y_test])",
        json_schema_extra=FILE_PARAM,
    )
    ways: int = Field(5, ge=2, le=1000, description="N: classes per task")
    class_split: tuple[float, float, float] = Field(
        (0.6, 0.2, 0.2), description="shares of the classes for meta-train, -validation, -test"
    )
    split_seed: int = Field(0, ge=0, description="seed of the class split")
    channels_last_check: bool | None = Field(
        None,
        validate_default=True,
        description="source npz: as the npz dataset's (refuse images that look (N, H, W, C))",
        json_schema_extra={"default": True},
    )

    # (a field's validator: a model's "before" one made the JSON arrays of class_split
    # Python lists, which strict validation refuses as its tuple)
    @field_validator("channels_last_check")
    @classmethod
    def _unchecked_when_stored_before(cls, value: bool | None, info: ValidationInfo) -> bool:
        return channels_last_default(value, info)

    @model_validator(mode="after")
    def _check(self) -> EpisodesConfig:
        check_split(self.class_split)
        if (self.source == "npz") != (self.path is not None):
            raise ValueError("path is the source npz file: set it for source npz, and only then")
        known = SOURCE_CLASSES.get(self.source)
        if known is not None:
            problem = ways_problem(known, self.ways, self.class_split, self.source)
            if problem is not None:
                raise ValueError(problem)
        return self


def ways_problem(
    n_classes: int, ways: int, shares: tuple[float, float, float], name: str
) -> str | None:
    """What is wrong when ``n_classes`` split by ``shares`` leave a split with fewer than
    ``ways`` classes (``None`` when nothing is)."""
    counts = split_counts(n_classes, shares)
    if min(counts.values()) >= ways:
        return None
    return (
        f"{ways}-way tasks need at least {ways} classes in each split; {name} has "
        f"{n_classes} classes, split {counts['train']}/{counts['valid']}/{counts['test']} "
        f"(meta-train/valid/test) by class_split {list(shares)}: lower ways or change "
        "class_split"
    )


def check_split(shares: tuple[float, float, float]) -> None:
    """Three positive shares that sum to 1."""
    if any(not (math.isfinite(s) and s > 0) for s in shares) or abs(sum(shares) - 1) > 1e-6:
        raise ValueError(f"class_split {list(shares)} must be three positive shares summing to 1")


def _tasks(**config: Any) -> EpisodeTasks:
    params = EpisodesConfig.model_validate(config)
    if params.source == "npz" and params.path is not None:
        # (its classes are pooled and split here: y need not hold class 0, nor y_test only
        # y's classes, as Omniglot's background and evaluation alphabets do not)
        npz = NpzConfig(
            path=params.path, channels_last_check=params.channels_last_check
        ).model_dump()
        data = load_npz(name="npz", seed=0, **npz, pooled_classes=True)
    else:
        data = load_dataset(params.source, seed=0)
    x = np.concatenate([data.x_train, data.x_valid, data.x_test])
    y = np.concatenate([data.y_train, data.y_valid, data.y_test])
    return EpisodeTasks(
        x,
        y,
        ways=params.ways,
        class_split=params.class_split,
        split_seed=params.split_seed,
        name=f"episodes over {params.source}",
    )


#: The example shapes of the built-in sources (``npz``: read from the file).
SOURCE_SHAPES: dict[str, tuple[int, ...]] = {"mnist1d": (1, 40), "digits": (1, 8, 8)}


def _shape(**config: Any) -> tuple[tuple[int, ...], int] | None:
    params = EpisodesConfig.model_validate(config)
    shape = SOURCE_SHAPES.get(params.source)
    return None if shape is None else (shape, params.ways)


def _npz_labels(path: str) -> list[np.ndarray]:
    """An npz file's labels (``y``, and ``y_test`` when it has one), read alone."""
    with np.load(spec_path(path), allow_pickle=False) as data:
        return [np.asarray(data[k]).ravel() for k in ("y", "y_test") if k in data.files]


def _smallest_class(**config: Any) -> tuple[int, str] | None:
    """The examples of the source's smallest class, and what to say of it: an npz file's
    labels read alone, a built-in source's as it loads (from its cache once generated)."""
    params = EpisodesConfig.model_validate(config)
    if params.source == "npz" and params.path is not None:
        labels = _npz_labels(params.path)
        where, remedy = "dataset.path", "lower them, or leave that class out of the file"
    else:
        data = load_dataset(params.source, seed=0)
        labels = [data.y_train, data.y_valid, data.y_test]
        where, remedy = params.source, "lower them"
    classes, counts = np.unique(np.concatenate(labels), return_counts=True)
    if not len(classes):
        return None
    at = int(np.argmin(counts))
    count = int(counts[at])
    return count, f"class {int(classes[at])} of {where} has only {count} (its smallest): {remedy}"


def _check(**config: Any) -> None:
    """The source npz file's arrays, as their headers tell (``nas.datasets.npz.check_npz``),
    and its classes (its labels alone are read): enough for ``ways`` in each split."""
    params = EpisodesConfig.model_validate(config)
    if params.source != "npz" or params.path is None:
        return
    npz = NpzConfig(path=params.path, channels_last_check=params.channels_last_check)
    check_npz(**npz.model_dump(), pooled_classes=True)
    labels = _npz_labels(params.path)
    name = f"episodes over {params.source}"
    problem = ways_problem(
        len(np.unique(np.concatenate(labels))), params.ways, params.class_split, name
    )
    if problem is not None:
        raise DatasetError(f"dataset.ways: {problem}")


ENTRIES = {
    "episodes": DatasetEntry(
        EpisodesConfig,
        None,
        tasks=_tasks,
        task_loss="cross_entropy",
        task_shape=_shape,
        task_smallest_class=_smallest_class,
        check=_check,
        inputs="examples of the source dataset as that dataset gives them (digits: pixels / "
        "16; mnist1d: as generated; npz: the file's x as it is); a task's N classes are "
        "labelled 0..N-1 in the order it drew them",
    )
}

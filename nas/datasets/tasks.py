"""Task distributions: the datasets of few-shot meta-learning (``DatasetEntry.tasks``).

A task distribution has no arrays to train on: it draws tasks, each a small support set to
adapt on and a query set to score the adapted model on. Draws come from three streams with
disjoint seeds, so meta-training never sees a meta-validation or meta-test task and every
split is reproducible from the job's seed:

- ``train``: a fresh batch of tasks per meta-iteration (``stream("train", seed, ...)``);
- ``valid``: a fixed set of tasks that scores every trial the same way (the reward);
- ``test``: a fixed set that only the search's final figures look at.

Example:
    >>> tasks = load_tasks("sinusoid")
    >>> batch = tasks.sample(tasks.stream("train", 0), n_tasks=25, shots=10, queries=10)
    >>> batch.support_x.shape, batch.query_y.shape
    (torch.Size([25, 10, 1]), torch.Size([25, 10, 1]))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

__all__ = ["SPLITS", "TaskBatch", "TaskDistribution"]

#: The three task streams and the salt that keeps their seeds disjoint.
SPLITS: dict[str, int] = {"train": 0x7A5C_0001, "valid": 0x7A5C_0002, "test": 0x7A5C_0003}


@dataclass(frozen=True)
class TaskBatch:
    """``T`` tasks stacked along the first dimension: ``support_x`` is ``(T, K, *input)``,
    ``support_y`` ``(T, K, outputs)`` for regression; the query set likewise with ``Q``
    examples per task. Classification (N-way K-shot episodes): ``support_x`` is
    ``(T, N*K, *input)`` and ``support_y`` ``(T, N*K)`` int64 labels ``0..N-1`` (a task's
    own labels: which class is 0 is drawn per task), the query set likewise with ``N*Q``."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def __len__(self) -> int:
        return int(self.support_x.shape[0])

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(
            self.support_x.to(device),
            self.support_y.to(device),
            self.query_x.to(device),
            self.query_y.to(device),
        )

    def take(self, index: slice) -> TaskBatch:
        """Tasks ``index`` of the batch (a slice along the task dimension)."""
        return TaskBatch(
            self.support_x[index], self.support_y[index], self.query_x[index], self.query_y[index]
        )


class TaskDistribution(ABC):
    """Draws few-shot tasks. Subclasses set ``loss``, ``input_shape`` and ``outputs`` and
    implement ``sample``."""

    #: How a task's predictions are scored: ``mse`` (regression) or ``cross_entropy``
    #: (N-way classification: ``outputs`` is N, scored by accuracy).
    loss: ClassVar[Literal["mse", "cross_entropy"]] = "mse"
    #: One example's input shape and the network's output width.
    input_shape: tuple[int, ...]
    outputs: int

    def stream(self, split: str, seed: int, *extra: int) -> np.random.Generator:
        """The random stream of ``split`` (``train``, ``valid``, ``test``) for ``seed``;
        ``extra`` integers (e.g. a trial's seed) give further independent streams of it. The
        splits' seeds never coincide: each is salted with its own constant."""
        if split not in SPLITS:
            raise ValueError(f"unknown task split {split!r}; valid: {', '.join(SPLITS)}")
        return np.random.default_rng([SPLITS[split], int(seed), *(int(e) for e in extra)])

    @abstractmethod
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
        """``n_tasks`` tasks drawn from ``rng`` only, with ``shots`` support and ``queries``
        query examples each (classification: per class); ``grid_queries``: query inputs
        evenly spaced over the input range (a lower-variance score) where the distribution
        has one, else random. ``split``: whose tasks (classification episodes draw from the
        split's own classes; a distribution whose splits differ only by their streams'
        seeds, as sinusoid's, ignores it)."""

    def fixed(
        self, split: str, seed: int, *, n_tasks: int, shots: int, queries: int, grid: bool
    ) -> TaskBatch:
        """The fixed task set of ``split`` (``valid`` or ``test``) for ``seed``: the same
        tasks on every call, whatever else was drawn."""
        return self.sample(
            self.stream(split, seed),
            n_tasks=n_tasks,
            shots=shots,
            queries=queries,
            grid_queries=grid,
            split=split,
        )

    def fixed_batches(
        self,
        split: str,
        seed: int,
        *,
        n_tasks: int,
        shots: int,
        queries: int,
        grid: bool,
        chunk: int = 100,
    ) -> Iterator[TaskBatch]:
        """The fixed task set of ``split`` drawn ``chunk`` tasks at a time from its stream
        (the same tasks on every call with the same ``chunk``), so that 600 image tasks are
        never all in memory at once."""
        rng = self.stream(split, seed)
        for start in range(0, n_tasks, chunk):
            yield self.sample(
                rng,
                n_tasks=min(chunk, n_tasks - start),
                shots=shots,
                queries=queries,
                grid_queries=grid,
                split=split,
            )

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """The distribution's parameters, for reports."""

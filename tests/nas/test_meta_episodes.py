"""Classification task distributions: ``episodes`` over a labelled dataset and the
generated ``glyphs`` benchmark (disjoint class splits, N-way K-shot episodes, seeds)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from nas.datasets import DATASETS, cache_dir, dataset_shape, load_tasks
from nas.datasets.episodes import EpisodesConfig, EpisodeTasks
from nas.datasets.glyphs import GlyphsConfig, generate_glyphs
from nas.errors import DatasetError

TINY_GLYPHS: dict[str, Any] = {"classes": 15, "samples": 6, "size": 10, "ways": 3}


def _labelled(n_classes: int = 10, per_class: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Each example's single pixel holds its class, so a task's content names its classes."""
    y = np.repeat(np.arange(n_classes), per_class)
    x = y[:, None, None] + 0.01 * np.tile(np.arange(per_class), n_classes)[:, None, None]
    return x.astype(np.float32), y


def test_episodes_are_n_way_k_shot_with_the_splits_classes_only() -> None:
    x, y = _labelled()
    tasks = EpisodeTasks(x, y, ways=2, class_split=(0.6, 0.2, 0.2), split_seed=3)
    splits = {s: set(c.tolist()) for s, c in tasks.splits.items()}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [6, 2, 2]
    assert set.union(*splits.values()) == set(range(10))
    assert not splits["train"] & splits["valid"] and not splits["valid"] & splits["test"]
    assert not splits["train"] & splits["test"]
    for split in ("train", "valid", "test"):
        batch = tasks.sample(tasks.stream(split, 0), n_tasks=20, shots=3, queries=4, split=split)
        assert batch.support_x.shape == (20, 6, 1, 1) and batch.query_x.shape == (20, 8, 1, 1)
        assert batch.support_y[0].tolist() == [0, 0, 0, 1, 1, 1]
        classes = batch.support_x.floor().long().flatten(1)  # the class of each example
        query = batch.query_x.floor().long().flatten(1)
        assert set(classes.unique().tolist()) <= splits[split]
        for task in range(20):
            for label in range(2):
                # one class per label, the same in support and query; K + Q distinct examples
                own = classes[task][batch.support_y[task] == label].unique()
                assert len(own) == 1
                assert set(query[task][batch.query_y[task] == label].tolist()) == set(own.tolist())
            examples = torch.cat([batch.support_x[task], batch.query_x[task]]).flatten()
            assert len(examples.unique()) == 14
    # which class gets label 0 is drawn per task
    firsts = tasks.sample(tasks.stream("train", 0), n_tasks=30, shots=1, queries=1).support_x
    assert len(firsts[:, 0].floor().unique()) > 2


def test_episodes_are_reproducible_and_the_streams_differ() -> None:
    x, y = _labelled()
    tasks = EpisodeTasks(x, y, ways=2)
    again = EpisodeTasks(x, y, ways=2)
    a = tasks.fixed("test", 5, n_tasks=10, shots=2, queries=2, grid=True)
    b = again.fixed("test", 5, n_tasks=10, shots=2, queries=2, grid=True)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    other = again.fixed("test", 6, n_tasks=10, shots=2, queries=2, grid=True)
    assert not torch.equal(a.support_x, other.support_x)
    chunks = list(
        tasks.fixed_batches("test", 5, n_tasks=10, shots=2, queries=2, grid=True, chunk=4)
    )
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert torch.equal(torch.cat([c.support_x for c in chunks]), a.support_x)
    moved = EpisodeTasks(x, y, ways=2, split_seed=1)
    assert any(
        not np.array_equal(moved.splits[s], tasks.splits[s]) for s in ("train", "valid", "test")
    )


def test_pretraining_arrays_are_the_meta_training_classes_relabelled() -> None:
    x, y = _labelled()
    tasks = EpisodeTasks(x, y, ways=2)
    xs, ys = tasks.split_arrays("train")
    assert len(ys) == 6 * 8 and sorted(ys.unique().tolist()) == list(range(6))
    original = xs.flatten().floor().long()
    assert torch.equal(torch.from_numpy(tasks.splits["train"])[ys], original)


def test_episodes_over_a_registered_dataset_and_their_checks() -> None:
    tasks = load_tasks("episodes", source="digits", ways=2)
    assert tasks.input_shape == (1, 8, 8) and tasks.outputs == 2
    assert dataset_shape("episodes", {"source": "digits", "ways": 2}) == ((1, 8, 8), 2)
    assert DATASETS.get("episodes").task_loss == "cross_entropy"
    with pytest.raises(ValidationError, match="5-way tasks need at least 5 classes in each split"):
        EpisodesConfig(source="digits", ways=5)
    with pytest.raises(ValidationError, match="path is the source npz file"):
        EpisodesConfig(source="npz")
    with pytest.raises(ValidationError, match="three positive shares summing to 1"):
        EpisodesConfig(source="digits", ways=2, class_split=(0.5, 0.2, 0.2))
    x, y = _labelled(per_class=3)
    few = EpisodeTasks(x, y, ways=2)
    with pytest.raises(DatasetError, match="has 3 examples; a task needs 2 support \\+ 2 query"):
        few.sample(few.stream("train", 0), n_tasks=1, shots=2, queries=2)


def test_episodes_over_an_npz_file(tmp_path: Path) -> None:
    x, y = _labelled(n_classes=12, per_class=5)
    path = tmp_path / "data.npz"
    np.savez(path, x=x[:, 0, 0][:, None].repeat(4, axis=1), y=y)
    tasks = load_tasks("episodes", source="npz", path=str(path), ways=2)
    assert tasks.input_shape == (1, 4) and [len(c) for c in tasks.splits.values()] == [8, 2, 2]
    # Omniglot's layout: background classes in y, evaluation classes in y_test, labels from 1;
    # episodes pool and split the classes themselves, so the rules a classifier's labels
    # follow (class 0 in y, y_test's classes among y's) do not apply (they refused this)
    signals = x[:, 0, 0][:, None].repeat(4, axis=1)
    apart = tmp_path / "apart.npz"
    np.savez(apart, x=signals[:30], y=y[:30] + 1, x_test=signals[30:], y_test=y[30:] + 1)
    check = DATASETS.get("episodes").check
    assert check is not None
    check(source="npz", path=str(apart), ways=2)
    tasks = load_tasks("episodes", source="npz", path=str(apart), ways=2)
    assert sorted(int(c) for split in tasks.splits.values() for c in split) == list(range(1, 13))


def test_glyphs_are_generated_once_cached_and_classes_are_distinct() -> None:
    tasks = load_tasks("glyphs", **TINY_GLYPHS)
    assert tasks.input_shape == (1, 10, 10) and tasks.outputs == 3
    assert [len(c) for c in tasks.splits.values()] == [9, 3, 3]
    cached = list(cache_dir().glob("glyphs-*.npz"))
    assert cached, "the generated images are cached"
    again = load_tasks("glyphs", **TINY_GLYPHS)
    assert torch.equal(again.x, tasks.x)
    # a drawing is nearer its own character's other drawings than other characters'
    x, y = generate_glyphs(
        classes=20, samples=6, size=16, jitter=0.03, rotation=15.0, noise=0.05, generation_seed=0
    )
    flat = x.reshape(len(x), -1)
    d = ((flat[:, None] - flat[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = y[d.argmin(axis=1)]
    assert (nearest == y).mean() > 0.5  # chance: 1/20
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.shape == (120, 1, 16, 16)
    # the drawings of generator version 1, as cached (8-bit), whatever the code computing
    # them: caches keep them under the version, so a faster distance computation must draw
    # the same pixels
    cached_pixels = np.round(x * 255.0).astype(np.uint8).tobytes()
    assert hashlib.sha256(cached_pixels).hexdigest()[:16] == "930d6dc1ed1d69b7"
    with pytest.raises(ValidationError, match="5-way tasks need at least 5 classes") as info:
        GlyphsConfig(classes=10, ways=5)
    assert "glyphs has 10 classes" in str(info.value)  # as the episodes say it, with what to do
    assert "lower ways or change class_split" in str(info.value)
    # generated whole: 153 GiB of pixels was accepted and failed the job at start
    with pytest.raises(ValidationError, match=r"is 40,960,000,000 pixels \(152.6 GiB\)"):
        GlyphsConfig(classes=10_000, samples=1000, size=64)
    GlyphsConfig(classes=10_000, samples=20, size=28)  # 157 M pixels: generated
    # a spec's shapes are known without generating anything
    assert dataset_shape("glyphs", {"size": 12, "ways": 4}) == ((1, 12, 12), 4)
    assert not list(cache_dir().glob("glyphs-*.tmp.npz"))

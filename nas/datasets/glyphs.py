"""``glyphs``: a generated few-shot classification benchmark in the manner of Omniglot
(Lake et al. 2015): ``classes`` (200) characters, ``samples`` (20) drawings of each, as
``size`` x ``size`` (28) grey images. Generated locally from ``generation_seed`` and cached
under ``cache_dir()`` (``$NAS_CACHE_DIR``) like MNIST-1D; nothing is downloaded.

A character is a template of one to three pen strokes, each a cubic Bezier curve through
four random control points in the unit square. A drawing of it moves every control point
by a small random offset (``jitter``, a local elastic distortion: each drawing's strokes
bend differently), applies a random affine map (rotation up to ``rotation`` degrees,
scale 0.85..1.1 per axis, shear up to 0.15, shift up to 0.06 of the side), renders the
strokes with a random pen width (anti-aliased: ink is 1, paper 0) and adds Gaussian pixel
noise (``noise``). The classes are split into disjoint meta-train / meta-validation /
meta-test characters and drawn as N-way K-shot episodes exactly as the ``episodes``
dataset does (``nas.datasets.episodes.EpisodeTasks``).

Example:
    >>> tasks = load_tasks("glyphs", classes=20, samples=4, size=12, ways=3)
    >>> tasks.sample(tasks.stream("test", 0), n_tasks=2, shots=1, queries=3).query_x.shape
    torch.Size([2, 9, 1, 12, 12])
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nas.datasets.base import DatasetEntry, cache_dir, cached_arrays
from nas.datasets.episodes import EpisodeTasks, check_split, ways_problem

__all__ = ["ENTRIES", "GlyphsConfig", "generate_glyphs"]

#: Points along each stroke where the ink is laid (dense enough for the thinnest pen).
_POINTS = 48
#: Generator version: part of the cache key, bumped when drawings change.
_VERSION = 1
#: The most pixels a glyphs dataset may have (1 GiB of float32), all generated at once.
MAX_PIXELS = 2**28


class GlyphsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    classes: int = Field(200, ge=6, le=10_000, description="characters (classes)")
    samples: int = Field(20, ge=2, le=1000, description="drawings of each character")
    size: int = Field(28, ge=8, le=64, description="image side in pixels")
    jitter: float = Field(0.03, ge=0, le=0.3, description="std of a control point's offset")
    rotation: float = Field(15.0, ge=0, le=180, description="largest rotation, degrees")
    noise: float = Field(0.05, ge=0, le=1, description="std of the pixel noise")
    generation_seed: int = Field(0, ge=0, description="seed of the characters and drawings")
    ways: int = Field(5, ge=2, le=1000, description="N: classes per task")
    class_split: tuple[float, float, float] = Field(
        (0.6, 0.2, 0.2), description="shares of the classes for meta-train, -validation, -test"
    )
    split_seed: int = Field(0, ge=0, description="seed of the class split")

    @model_validator(mode="after")
    def _check(self) -> GlyphsConfig:
        check_split(self.class_split)
        pixels = self.classes * self.samples * self.size**2
        if pixels > MAX_PIXELS:
            raise ValueError(
                f"samples: {self.classes} classes x {self.samples} samples of {self.size}x"
                f"{self.size} pixels is {pixels:,} pixels ({pixels * 4 / 2**30:.1f} GiB), "
                f"generated and held whole; at most {MAX_PIXELS:,} (lower classes, samples "
                "or size)"
            )
        # (the episodes' message: it lacked what to change)
        problem = ways_problem(self.classes, self.ways, self.class_split, "glyphs")
        if problem is not None:
            raise ValueError(problem)
        return self


def _bezier(control: np.ndarray) -> np.ndarray:
    """Points along cubic Bezier curves: ``control`` ``(..., 4, 2)`` -> ``(..., P, 2)``."""
    t = np.linspace(0.0, 1.0, _POINTS)[:, None]
    p0, p1, p2, p3 = (control[..., i : i + 1, :] for i in range(4))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def generate_glyphs(
    *,
    classes: int,
    samples: int,
    size: int,
    jitter: float,
    rotation: float,
    noise: float,
    generation_seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(classes * samples, 1, size, size)`` float32 images in [0, 1] and their int64
    labels (see the module docstring)."""
    rng = np.random.default_rng([_VERSION, generation_seed])
    strokes = rng.integers(1, 4, size=classes)  # 1..3 strokes per character
    templates = rng.uniform(0.15, 0.85, size=(classes, 3, 4, 2))
    grid = (np.arange(size) + 0.5) / size
    pixels = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)  # (y, x)
    images = np.empty((classes, samples, size * size), dtype=np.float32)
    for c in range(classes):
        control = templates[c, : strokes[c]] + rng.normal(
            0.0, jitter, size=(samples, strokes[c], 4, 2)
        )
        angle = np.deg2rad(rng.uniform(-rotation, rotation, size=samples))
        scale = rng.uniform(0.85, 1.1, size=(samples, 2))
        shear = rng.uniform(-0.15, 0.15, size=samples)
        shift = rng.uniform(-0.06, 0.06, size=(samples, 2))
        cos, sin = np.cos(angle), np.sin(angle)
        rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
        shr = np.tile(np.eye(2), (samples, 1, 1))
        shr[:, 0, 1] = shear
        affine = rot @ shr * scale[:, None, :]
        points = _bezier(control).reshape(samples, -1, 2) - 0.5  # (S, strokes * P, 2)
        points = np.einsum("sij,spj->spi", affine, points) + 0.5 + shift[:, None, :]
        # Squared distances per axis, in place: the same values as squaring and summing the
        # (S, pixels, points, 2) differences, 4-5x faster (generation took 27 s of 200
        # characters, a cancel unseen meanwhile).
        dy = pixels[None, :, None, 0] - points[:, None, :, 0]
        dx = pixels[None, :, None, 1] - points[:, None, :, 1]
        dy *= dy
        dx *= dx
        dy += dx
        distance = np.sqrt(dy.min(-1))  # (S, pixels)
        width = rng.uniform(0.03, 0.05, size=(samples, 1))
        ink = np.clip((width - distance) * size + 0.5, 0.0, 1.0)
        images[c] = ink + rng.normal(0.0, noise, size=ink.shape)
    x = np.clip(images, 0.0, 1.0).reshape(classes * samples, 1, size, size)
    y = np.repeat(np.arange(classes, dtype=np.int64), samples)
    return x, y


def load_glyphs(**params: Any) -> tuple[np.ndarray, np.ndarray]:
    """The generated images and labels, from the cache when they were made before."""
    digest = hashlib.sha256(
        json.dumps({**params, "version": _VERSION}, sort_keys=True).encode()
    ).hexdigest()[:12]
    path = cache_dir() / f"glyphs-{digest}.npz"

    def make() -> dict[str, np.ndarray]:
        x, y = generate_glyphs(**params)
        return {"x": np.round(x * 255.0).astype(np.uint8), "y": y}

    arrays = cached_arrays(path, make)
    return arrays["x"].astype(np.float32) / 255.0, arrays["y"]  # the cached values, first time too


def _tasks(**config: Any) -> EpisodeTasks:
    params = GlyphsConfig.model_validate(config)
    generation = params.model_dump(exclude={"ways", "class_split", "split_seed"})
    x, y = load_glyphs(**generation)
    return EpisodeTasks(
        x,
        y,
        ways=params.ways,
        class_split=params.class_split,
        split_seed=params.split_seed,
        name="glyphs",
    )


def _shape(**config: Any) -> tuple[tuple[int, ...], int]:
    params = GlyphsConfig.model_validate(config)
    return (1, params.size, params.size), params.ways


def _inputs(**config: Any) -> str:
    size = GlyphsConfig.model_validate(config).size
    return (
        "generated glyph drawings, ink 1 on paper 0 plus Gaussian pixel noise, float32, "
        f"shape (1, {size}, {size}); a task's N classes are labelled 0..N-1 in the order it "
        "drew them"
    )


ENTRIES = {
    "glyphs": DatasetEntry(
        GlyphsConfig,
        None,
        tasks=_tasks,
        task_loss="cross_entropy",
        task_shape=_shape,
        task_class_examples=lambda **config: GlyphsConfig.model_validate(config).samples,
        inputs=_inputs,
    )
}

"""``sinusoid``: few-shot regression of MAML section 5.1 (Finn et al. 2017).

Each task is a sine wave ``y = A sin(x - phi)`` with amplitude ``A ~ U[0.1, 5.0]`` and phase
``phi ~ U[0, pi]``; its examples have ``x ~ U[-5, 5]``, scored by mean squared error. A
K-shot task gives K support points to adapt on and query points to score the adapted model
on. There are no arrays: the dataset is a task distribution (``DatasetEntry.tasks``), which
the meta-learning evaluators (``maml``, ``fomaml``, ``reptile``, ``metasgd``) draw from
(meta-train, meta-validation and meta-test streams with disjoint seeds, see
``nas.datasets.tasks``); evaluators that train on arrays refuse it.

Meta-validation and meta-test tasks score on ``queries`` points evenly spaced over the
input range when asked (``grid_queries``), the whole curve rather than a few random points.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nas.datasets.base import DatasetEntry
from nas.datasets.tasks import TaskBatch, TaskDistribution

__all__ = ["ENTRIES", "SinusoidConfig", "SinusoidTasks"]


#: The largest amplitude and |x| of the tasks: float32 squared errors stay finite.
MAX_AMPLITUDE = 1e4
MAX_X = 1e4


class SinusoidConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    amplitude: tuple[float, float] = Field(
        (0.1, 5.0), description="amplitude range [low, high] (MAML: 0.1, 5.0)"
    )
    phase: tuple[float, float] = Field((0.0, math.pi), description="phase range (MAML: 0, pi)")
    x_range: tuple[float, float] = Field((-5.0, 5.0), description="input range (MAML: -5, 5)")

    @model_validator(mode="after")
    def _ranges(self) -> SinusoidConfig:
        for name in ("amplitude", "phase", "x_range"):
            low, high = getattr(self, name)
            if not (math.isfinite(high - low) and low < high):  # (inf - x is not finite)
                raise ValueError(
                    f"{name} must be finite with low < high and a finite width, got [{low}, {high}]"
                )
        if self.amplitude[0] < 0:
            raise ValueError(f"amplitude must be non-negative, got {list(self.amplitude)}")
        for name, bound in (("amplitude", MAX_AMPLITUDE), ("x_range", MAX_X)):
            if max(abs(v) for v in getattr(self, name)) > bound:
                # float32 losses of larger targets or inputs overflow to inf / NaN
                raise ValueError(
                    f"{name}: {list(getattr(self, name))} reaches past {bound:g}; "
                    f"each end within [-{bound:g}, {bound:g}]"
                )
        return self


class SinusoidTasks(TaskDistribution):
    """Sine-wave regression tasks.

    Example:
        >>> tasks = SinusoidTasks()
        >>> batch = tasks.sample(tasks.stream("valid", 0), n_tasks=2, shots=5, queries=100,
        ...                      grid_queries=True)
        >>> batch.query_x[0, :3, 0]
        tensor([-5.0000, -4.8990, -4.7980])
    """

    loss = "mse"

    def __init__(
        self,
        *,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        self.amplitude = (float(amplitude[0]), float(amplitude[1]))
        self.phase = (float(phase[0]), float(phase[1]))
        self.x_range = (float(x_range[0]), float(x_range[1]))
        self.input_shape = (1,)
        self.outputs = 1

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
        # The splits differ by their streams' seeds only (``split`` is not needed here).
        amp = rng.uniform(*self.amplitude, size=(n_tasks, 1, 1))
        phase = rng.uniform(*self.phase, size=(n_tasks, 1, 1))
        support = rng.uniform(*self.x_range, size=(n_tasks, shots, 1))
        if grid_queries:
            grid = np.linspace(*self.x_range, queries)
            query = np.broadcast_to(grid[None, :, None], (n_tasks, queries, 1))
        else:
            query = rng.uniform(*self.x_range, size=(n_tasks, queries, 1))

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

        return TaskBatch(
            tensor(support),
            tensor(amp * np.sin(support - phase)),
            tensor(query),
            tensor(amp * np.sin(query - phase)),
        )

    def describe(self) -> dict[str, object]:
        return {
            "amplitude": list(self.amplitude),
            "phase": list(self.phase),
            "x_range": list(self.x_range),
        }


def _tasks(**config: object) -> SinusoidTasks:
    return SinusoidTasks(**SinusoidConfig.model_validate(config).model_dump())


def _inputs(config: SinusoidConfig) -> str:
    """The exports' input text: the job's own ranges (a model meta-trained on x in [0, 2]
    said "x in [-5, 5]", the defaults: the probe of a few-shot researcher)."""
    (x_low, x_high), (a_low, a_high), (p_low, p_high) = (
        config.x_range,
        config.amplitude,
        config.phase,
    )
    return (
        f"one number x in [{x_low:.12g}, {x_high:.12g}], shape (1,); the one output is a "
        f"task's y = A sin(x - phi) (A in [{a_low:.12g}, {a_high:.12g}], phi in "
        f"[{p_low:.12g}, {p_high:.12g}]), "
        "regressed (mean squared error) after adapting to its support points"
    )


# One input, one output (``num_classes`` is the network's output width here).
ENTRIES = {
    "sinusoid": DatasetEntry(
        SinusoidConfig,
        None,
        tasks=_tasks,
        input_shape=(1,),
        num_classes=1,
        inputs=lambda **config: _inputs(SinusoidConfig.model_validate(config)),
    )
}

"""``rl2-meta``: the search tasks an RL² policy is meta-trained on (a meta-training job).

A job with this evaluator does not search: its loop (``workers.meta_train``, the ``meta-train``
entry of ``workers.loops.LOOPS``) meta-trains the ``rl2`` controller's recurrent policy over
many search episodes on these tasks and stores the policy, which later jobs name
(``controller: {name: rl2, policy_job: ID}``). The evaluator's part is the tasks: the fitness
of every architecture of the job's space on each task, from

- ``tasks``: NAS-Bench-201 datasets (space ``nb201``; fitness the 12-epoch validation
  accuracy, the protocol's, reported as ``val_accuracy``), read from the NAS-Bench-201 table
  (``table``, as the ``tabular`` evaluator finds it); or
- ``tables``: benchmark tables of your own, or earlier results exported as tables (space
  ``table``; each file a CSV, CSV.gz or Parquet file with the space's decision columns and the
  ``fitness`` column). A combination a table does not hold has no fitness there (in an
  episode: a proposal that scores nothing, as a PRUNED trial at search time); or
- ``jobs``: earlier jobs of the service on the same space (any space of at most
  ``MAX_ARCHITECTURES`` architectures), each a table of its completed trials over the space's
  decisions: an architecture's fitness is the mean of its trials' ``fitness`` metric. The
  service reads them at submit into ``job_tasks`` (``{job, choices, fitness}``, one entry per
  job) in the stored spec, so the job needs nothing of its sources afterwards, like a warm
  start's priors (``api.policies.resolve_meta_jobs``).

``objective.direction: minimize`` turns a fitness to minimise (an error) into one to
maximise (``workers.meta_train`` negates it); left out, it is the fitness's own direction
(``metric_direction``: an error or a loss is minimised). ``evaluate`` answers an
architecture's mean fitness over the tasks (the metric named by the fitness), which is what
the contract asks of every evaluator; a meta-training job never calls it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from nas.architecture import Architecture
from nas.datasets import FILE_PARAM, NB201_DATASETS
from nas.datasets.table import NotANumber, data_row, read_table
from nas.errors import DatasetError, SpecError, at_submit
from nas.evaluators.base import Evaluator, EvaluatorConfig
from nas.evaluators.tabular import load_table, resolve_table_path
from nas.paths import spec_path
from nas.spaces.base import SearchSpace
from nas.spaces.table import TableSpace
from nas.trial import TrialResult, TrialState

if TYPE_CHECKING:
    from nas.spec import JobSpec, SpecProblem

__all__ = [
    "MAX_ARCHITECTURES",
    "MAX_ITERATION_BYTES",
    "MAX_JOB_TRIALS",
    "JobTask",
    "Rl2MetaConfig",
    "Rl2MetaEvaluator",
    "iteration_bytes",
]

#: The largest space meta-training plays episodes in (it keeps a table of every
#: architecture's fitness per episode of a batch).
MAX_ARCHITECTURES = 200_000
NB201_FITNESS = "val_accuracy"
#: The most memory one meta-training iteration may hold (``iteration_bytes``): 2 GiB.
MAX_ITERATION_BYTES = 2**31
#: The most completed trials a job gives as a task (``jobs``), best first.
MAX_JOB_TRIALS = 10_000


def iteration_bytes(cardinalities: Sequence[int], *, steps: int, batch: int, hidden: int) -> int:
    """About the memory one meta-training iteration (``controllers.rl2.MetaTrainer``) holds,
    in bytes: the steps of ``batch`` episodes run through the policy's GRU and are all kept
    for one backpropagation through the episodes, 12 x ``hidden`` + 8 x (the decisions'
    choices + 2) float32 per episode step (gates, states, one-hot inputs, logits and their
    softmaxes: 7.3 and 4 saved by autograd, the rest what the allocator holds around them,
    as measured); each episode's copy of its task's table and its visited mask (5 bytes an
    architecture); the policy's weights, their gradients and Adam's two moments."""
    inputs = sum(cardinalities) + 2
    per_step = 12 * hidden + 8 * inputs
    weights = 3 * hidden * (inputs + hidden + 2) + (hidden + 1) * (inputs - 2)
    return 4 * steps * batch * per_step + 5 * batch * math.prod(cardinalities) + 16 * weights


class JobTask(BaseModel):
    """An earlier job's completed trials as a task (written at submit from ``jobs``): each
    trial's architecture choices (indices into the space's decisions) and its fitness."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: int
    choices: list[list[int]] = Field(max_length=MAX_JOB_TRIALS)
    fitness: list[float] = Field(max_length=MAX_JOB_TRIALS)

    @field_validator("fitness")
    @classmethod
    def _finite(cls, fitness: list[float], info: ValidationInfo) -> list[float]:
        """At submit (a job stored before this check, whose tasks may hold NaN, still
        loads: a value that is not finite counts as no result there)."""
        bad = next((i for i, value in enumerate(fitness) if not math.isfinite(value)), None)
        if bad is not None and at_submit(info.context):
            raise ValueError(f"fitness values must be finite numbers; item {bad} is not")
        return fitness

    @model_validator(mode="after")
    def _aligned(self) -> JobTask:
        if len(self.choices) != len(self.fitness) or not self.choices:
            raise ValueError("one fitness per trial's choices, at least one trial")
        return self


class Rl2MetaConfig(EvaluatorConfig):
    tasks: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="NAS-Bench-201 datasets to meta-train on (space nb201): "
        + ", ".join(NB201_DATASETS),
    )
    tables: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="benchmark tables to meta-train on (space table): CSV, CSV.gz or Parquet "
        "files with the space's decision columns and the fitness column",
        json_schema_extra=FILE_PARAM,
    )
    jobs: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(
        default_factory=list,
        max_length=16,
        description="service: earlier jobs of yours on this space to meta-train on (their "
        "completed trials' fitness metric per architecture), read at submit into job_tasks",
    )
    job_tasks: list[JobTask] | None = Field(
        None,
        max_length=16,
        description="written at submit from jobs: each job's completed trials (choices, fitness)",
    )
    fitness: str = Field(
        NB201_FITNESS,
        min_length=1,
        description="the tables' fitness column (objective.metric names it); NAS-Bench-201 "
        "tasks: val_accuracy, the 12-epoch validation accuracy",
    )
    table: str | None = Field(
        None,
        description="NAS-Bench-201 tasks: the path of nb201_tabular.csv.gz (default as for the "
        "tabular evaluator)",
        json_schema_extra=FILE_PARAM,
    )
    iterations: int = Field(
        1500,
        ge=1,
        le=10**6,
        description="meta-training iterations (budget.minutes may stop it first)",
    )
    steps: int = Field(100, ge=2, le=10_000, description="proposals per search episode")
    batch: int = Field(32, ge=2, le=1024, description="episodes per iteration")
    hidden: int = Field(64, ge=4, le=1024, description="the policy's GRU width")
    lr: float = Field(3e-3, gt=0, le=1, description="Adam's learning rate")
    entropy_weight: float = Field(0.01, ge=0, le=10)
    record_every: int = Field(
        10,
        ge=1,
        le=10**6,
        description="iterations per recorded curve point and checkpoint",
    )

    @field_validator("tasks")
    @classmethod
    def _known(cls, tasks: list[str]) -> list[str]:
        unknown = [t for t in tasks if t not in NB201_DATASETS]
        if unknown:
            raise ValueError(
                f"unknown NAS-Bench-201 task {unknown[0]!r}; valid: {', '.join(NB201_DATASETS)}"
            )
        return tasks

    @field_validator("tasks", "tables", "jobs")
    @classmethod
    def _once_each(cls, values: list[Any]) -> list[Any]:
        """At the list's field (it was the whole evaluator section's error)."""
        seen: dict[Any, int] = {}
        for i, value in enumerate(values):
            if value in seen:
                raise ValueError(
                    f"{value!r} is given twice (items {seen[value]} and {i}); each task may "
                    "appear once"
                )
            seen[value] = i
        return values


class Rl2MetaEvaluator(Evaluator):
    """The fitness of every architecture on each meta-training task.

    Example:
        >>> ev = Rl2MetaEvaluator(space=Nb201Space(), tasks=["nb201-cifar10", "nb201-cifar100"])
        >>> [(name, fitness.shape) for name, fitness in ev.task_fitness()]
        [('nb201-cifar10', (15625,)), ('nb201-cifar100', (15625,))]
    """

    name = "rl2-meta"
    Config = Rl2MetaConfig
    metrics: ClassVar[tuple[str, ...]] = (NB201_FITNESS,)
    batch_size = 256
    instant = True
    trains_networks = False
    multi_objective = False
    search = "meta-train"
    metric_notes: ClassVar[Mapping[str, str]] = {
        **Evaluator.metric_notes,
        "mean_best_z": "meta-training: the episodes' final best fitness, standardised per task",
        "auc_z": "meta-training: the mean best-so-far fitness over an episode's steps "
        "(standardised per task), the area meta-training maximises",
    }

    # --- the spec ------------------------------------------------------------------------
    @classmethod
    def spec_metrics(cls, spec: JobSpec) -> tuple[str, ...]:
        return (Rl2MetaConfig.model_validate(spec.evaluator.params).fitness,)

    @classmethod
    def default_objective(
        cls, dataset: str, params: Mapping[str, Any]
    ) -> tuple[str, Literal["maximize", "minimize"]]:
        """The tasks' ``fitness``, in its known direction (``metric_direction``): a loss or an
        error (``meta_val_mse`` of earlier few-shot jobs) minimized, else maximized."""
        given = params.get("fitness")
        fitness = given if isinstance(given, str) and given else NB201_FITNESS
        return fitness, cls.metric_direction(fitness) or "maximize"

    @classmethod
    def metric_direction(cls, metric: str) -> Literal["maximize", "minimize"] | None:
        """The fitness is any evaluator's metric (the earlier jobs' or the tables'): its
        direction as the evaluators know it, or a loss's or an error's by its name
        (``nas.evaluators.known_direction``): maximizing an MSE would meta-train a policy
        that finds the worst architectures."""
        from nas.evaluators import known_direction

        return known_direction(metric)

    @classmethod
    def data_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """NAS-Bench-201 tasks on space ``nb201``, tables on space ``table``; the controller
        is the one meta-trained (``rl2``); the dataset is a table (not read: the tasks are)."""
        from nas.datasets import DATASETS

        config = Rl2MetaConfig.model_validate(spec.evaluator.params)
        problems: list[SpecProblem] = []
        ways = {
            "tasks": bool(config.tasks),
            "tables": bool(config.tables),
            "jobs": bool(config.jobs or config.job_tasks),
        }
        named = [way for way, given in ways.items() if given]
        if len(named) != 1:
            one_way = (
                "name the tasks one way: tasks (NAS-Bench-201 datasets, space nb201), "
                "tables (files, space table) or jobs (earlier jobs on this space)"
            )
            written = [way for way in ways if way in spec.evaluator.params]
            if named:  # at the second way named: the first is what it contradicts
                where, what = named[1], f"{named[0]} and {named[1]} both given; {one_way}"
            elif written:  # written, but empty
                where, what = written[0], f"is empty; {one_way}"
            else:
                where, what = "tasks", one_way
            problems.append((("evaluator", where), what))
        needed = "nb201" if config.tasks else TableSpace.name
        if (config.tasks or config.tables) and spec.space.name != needed:
            problems.append(
                (
                    ("space", "name"),
                    (
                        f"evaluator.{'tasks' if config.tasks else 'tables'} are searches of space "
                        f"{needed}; got {spec.space.name!r}"
                    ),
                )
            )
        if DATASETS.get(spec.dataset.name).tabular is None:
            problems.append(
                (
                    ("dataset", "name"),
                    (
                        f"meta-training reads its tasks' tables; use dataset table (or a "
                        f"NAS-Bench-201 one), got {spec.dataset.name!r}"
                    ),
                )
            )
        if spec.controller.name != "rl2":
            problems.append(
                (
                    ("controller", "name"),
                    (
                        f"evaluator {cls.name!r} meta-trains the rl2 controller's policy; "
                        f"got {spec.controller.name!r}"
                    ),
                )
            )
        if spec.budget.trials is not None:
            problems.append(
                (
                    ("budget", "trials"),
                    (
                        "a meta-training job runs no trials: set evaluator.iterations (and "
                        "budget.minutes to cap its time)"
                    ),
                )
            )
        if spec.final is not None:
            problems.append((("final",), "a meta-training job has no architecture to retrain"))
        if spec.warm_start is not None:
            problems.append(
                (("warm_start",), "a meta-training job learns from its tasks, not from priors")
            )
        if spec.hparams:  # (stored and ignored: it searches no trial's hyperparameters)
            problems.append(
                (("hparams",), "a meta-training job runs no trials to search hyperparameters of")
            )
        if config.tasks and config.fitness != NB201_FITNESS:
            problems.append(
                (
                    ("evaluator", "fitness"),
                    (
                        f"the fitness column of evaluator.tables (or the metric read from "
                        f"evaluator.jobs); NAS-Bench-201 tasks are scored by {NB201_FITNESS} "
                        f"(the 12-epoch validation accuracy): leave it out, got "
                        f"{config.fitness!r}"
                    ),
                )
            )
        if config.job_tasks is not None and not config.jobs:
            problems.append(
                (
                    ("evaluator", "job_tasks"),
                    (
                        "written at submit from evaluator.jobs: name the jobs they were read "
                        "from (tables take results of your own)"
                    ),
                )
            )
        if config.table is not None and not config.tasks:
            problems.append(
                (
                    ("evaluator", "table"),
                    (
                        "the NAS-Bench-201 table of tasks: only with evaluator.tasks (tables "
                        "and jobs name their own data)"
                    ),
                )
            )
        return problems

    @classmethod
    def from_spec(
        cls,
        *,
        dataset: str,
        dataset_params: Mapping[str, Any],
        space: SearchSpace,
        params: Mapping[str, Any],
        seed: int,
    ) -> Rl2MetaEvaluator:
        return cls(space=space, **params)

    @classmethod
    def check_files(
        cls,
        *,
        space: SearchSpace,
        params: Mapping[str, Any],
        dataset: str,
        dataset_params: Mapping[str, Any],
    ) -> None:
        """The evaluator as the job builds it when it starts: the memory an iteration
        would hold in this space (``check_size``, first), then the tasks read: the
        NAS-Bench-201 table (``tasks``: ``table`` or the default one), the tables' columns
        and fitness (``tables``), the jobs' trials (``job_tasks``: architectures of this
        space)."""
        cls(space=space, **params)

    @staticmethod
    def check_size(space: SearchSpace, config: Rl2MetaConfig) -> None:
        """A space too large to play episodes in (at ``space``) or an iteration too large
        to hold in memory (``MAX_ITERATION_BYTES``, at ``evaluator.batch``)."""
        cardinalities = [d.num_choices for d in space.decisions()]
        size = math.prod(cardinalities)
        if size > MAX_ARCHITECTURES:
            raise SpecError.at(
                ["space"],
                f"meta-training plays episodes in spaces of at most {MAX_ARCHITECTURES:,} "
                f"architectures; this one has {size:,}",
            )
        need = iteration_bytes(
            cardinalities, steps=config.steps, batch=config.batch, hidden=config.hidden
        )
        if need > MAX_ITERATION_BYTES:
            raise SpecError.at(
                ["evaluator", "batch"],
                f"an iteration of {config.batch} episodes x {config.steps} steps with a GRU of "
                f"{config.hidden} in this space ({sum(cardinalities)} choices, {size:,} "
                f"architectures) holds about {need / 2**30:,.1f} GiB for backpropagation "
                f"through the episodes; at most {MAX_ITERATION_BYTES / 2**30:g} GiB: lower "
                "batch, steps or hidden",
            )

    # --- the tasks -----------------------------------------------------------------------
    def __init__(self, *, space: SearchSpace, **params: Any) -> None:
        self.config = Rl2MetaConfig.model_validate(params)
        self.space = space
        self.metrics = (self.config.fitness,)  # type: ignore[misc]
        self.check_size(space, self.config)
        self.cardinalities = [d.num_choices for d in space.decisions()]
        size = math.prod(self.cardinalities)
        if self.config.tasks:
            self._tasks = self._nb201_tasks()
        elif self.config.tables:
            self._tasks = self._table_tasks(size)
        else:
            self._tasks = self._job_tasks(size)
        stacked = np.stack([f for _, f in self._tasks])
        known = np.isfinite(stacked)
        count = known.sum(0)
        total = np.where(known, stacked, 0.0).sum(0)
        self._mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def task_fitness(self) -> list[tuple[str, np.ndarray]]:
        """``(name, fitness)`` per task: one value per architecture of the space, by
        mixed-radix code of its choices; NaN where the task has none."""
        return list(self._tasks)

    def _nb201_tasks(self) -> list[tuple[str, np.ndarray]]:
        table = load_table(resolve_table_path(self.config.table))
        return [
            (name, np.asarray(table.column(f"{NB201_DATASETS[name]}_val12"), dtype=np.float64))
            for name in self.config.tasks
        ]

    def _table_tasks(self, size: int) -> list[tuple[str, np.ndarray]]:
        decisions = self.space.decisions()
        if self.config.fitness in {d.name for d in decisions}:
            raise DatasetError(
                f"evaluator.fitness: {self.config.fitness!r} is a decision column of the "
                "space, not a result; name a metric column of the tables"
            )
        radix = np.cumprod([1, *self.cardinalities[::-1]])[:-1][::-1]
        tasks = []
        files: dict[Path, int] = {}
        for i, path in enumerate(self.config.tables):
            where = f"evaluator.tables.{i}"
            table = read_table(path, where=where)
            # The same file under two paths (a link) would be one task counted twice.
            real = spec_path(path).resolve()
            if real in files:
                raise DatasetError(
                    f"{where}: the same file as evaluator.tables.{files[real]} (under another "
                    "path); each task may appear once"
                )
            files[real] = i
            codes = np.zeros(table.rows, dtype=np.int64)
            for decision, r in zip(decisions, radix, strict=True):
                position = {c: k for k, c in enumerate(decision.choices)}
                try:
                    cells = np.char.strip(table.text(decision.name)).tolist()
                except KeyError:
                    raise DatasetError(
                        f"{where}: the table has no column {decision.name!r} (a decision of "
                        "the space)"
                    ) from None
                if any(c not in position for c in cells):
                    raise DatasetError(
                        f"{where}: column {decision.name!r} holds a value that is not one of "
                        "the decision's choices in the space's table"
                    )
                codes += r * np.array([position[c] for c in cells], dtype=np.int64)
            try:
                values = table.numbers(self.config.fitness)
            except KeyError:
                raise DatasetError(
                    f"evaluator.fitness: table {i} has no column {self.config.fitness!r}"
                ) from None
            except NotANumber as exc:  # (text, nan or inf: as a table search refuses it)
                raise DatasetError(
                    f"{where}: column {self.config.fitness!r} must be numeric (a finite number, "
                    f"or an empty cell for a missing value, in every row); {exc}"
                ) from None
            _, first, counts = np.unique(codes, return_index=True, return_counts=True)
            if (counts > 1).any():  # (named, as a table search names them)
                code = codes[first[np.argmax(counts > 1)]]
                same = np.flatnonzero(codes == code)[:2].tolist()
                raise DatasetError(
                    f"{where}: {data_row(*same)} have the same values in "
                    "every decision column (one row per combination: average a benchmark's "
                    "seeds first)"
                )
            fitness = np.full(size, np.nan)
            fitness[codes] = values
            if not np.isfinite(fitness).any():
                raise DatasetError(f"{where}: no row has a fitness")
            tasks.append((f"table{i}", fitness))
        return tasks

    def _job_tasks(self, size: int) -> list[tuple[str, np.ndarray]]:
        if self.config.job_tasks is None:
            raise SpecError.at(
                ["evaluator", "jobs"],
                "the jobs were not read into job_tasks (submit the job to the service; "
                "nas search reads tables)",
            )
        cards = self.cardinalities
        tasks = []
        for i, task in enumerate(self.config.job_tasks):
            for k, row in enumerate(task.choices):
                if len(row) != len(cards) or any(not 0 <= c < n for c, n in zip(row, cards)):
                    raise DatasetError(
                        f"evaluator.job_tasks.{i}: job {task.job}'s trials are not "
                        f"architectures of this space: trial {k} has choices {row[:8]}; "
                        f"the space has {len(cards)} decisions of {cards} choices"
                    )
            choices = np.asarray(task.choices, dtype=np.int64).reshape(-1, len(cards))
            codes = np.ravel_multi_index(tuple(choices.T), tuple(cards))
            values = np.asarray(task.fitness, dtype=np.float64)
            ok = np.isfinite(values)
            # An architecture the job tried several times (other hyperparameters, a repeat):
            # the mean of its results.
            total = np.bincount(codes[ok], weights=values[ok], minlength=size)
            count = np.bincount(codes[ok], minlength=size)
            fitness = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            tasks.append((f"job{task.job}", fitness))
        return tasks

    def _code(self, arch: Architecture) -> int:
        self.space.validate(arch)
        return int(np.ravel_multi_index(tuple(arch.choices), self.cardinalities))

    def evaluate(
        self,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TrialResult]:
        """Each architecture's mean fitness over the tasks that hold it."""
        results = []
        for arch in archs:
            value = float(self._mean[self._code(arch)])
            if math.isnan(value):
                results.append(TrialResult(TrialState.PRUNED, error="in none of the tasks"))
                continue
            results.append(
                TrialResult(
                    TrialState.COMPLETE, objective=value, metrics={self.config.fitness: value}
                )
            )
        return results

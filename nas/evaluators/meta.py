"""Meta-learning evaluators: ``maml``, ``fomaml``, ``reptile`` and ``metasgd`` score an
architecture by how well its network learns a new task from a few examples. The shared base
(``MetaEvaluator``, and ``MetricEvaluator`` for the metric-based ``protonet`` and
``matching``, each in its own module) also serves the ``pretrain`` baseline.

One module with a shared base (``MetaEvaluator``) because the four differ only in the
meta-gradient rule, which lives in ``nas.metalearning`` (one ``algorithm`` name each);
drawing tasks, the meta-training loop, intermediate values, the meta-validation reward,
constraints and the meta-test figures are the same code for all of them. Each is still its
own registry entry with its own parameters (``Config``) and ``hparam_keys``.

Per trial: build the architecture's network (seeded by job seed and architecture), meta-train
it for ``meta_iterations`` on ``meta_batch`` fresh tasks each (``shots`` support and
``queries`` query examples per task, ``inner_steps`` inner steps of ``inner_lr``, Adam with
``outer_lr`` outside) from the dataset's ``train`` task stream, then adapt it to each of
``val_tasks`` fixed meta-validation tasks (``eval_shots`` support examples, ``eval_steps``
steps of ``eval_lr``, default ``inner_lr``; Meta-SGD: its learned rates) and score the mean
squared error on ``eval_points`` query points evenly spaced over the input range: the
objective ``meta_val_mse`` (minimize). Intermediate values (``meta_train_loss``) are
reported ten times per trial.

``final_metrics`` (the search's best architecture only): the mean and 95% confidence
interval (1.96 standard errors) over ``test_tasks`` (600) meta-test tasks of the MSE after
each of ``final_steps`` (1, 5, 10) steps: ``meta_test_mse_5step``,
``meta_test_mse_5step_ci95`` (from the tasks' sample standard deviation; none with one task). It uses the meta-learned weights of the architecture's
best trial when this evaluator ran it (``nas search``, the inline backend); elsewhere (a
Ray worker ran the trial, or another process before a resume) it meta-trains the
architecture again with that trial's ``hparams`` from the same seeds (the same tasks and
initial weights as the trial). A step count at which some task's loss is not
finite (Meta-SGD's learned rates can overshoot beyond the steps they were trained for)
reports ``meta_test_diverged_<k>step``, the share of such tasks, instead of a mean.
``learned_weights`` then answers the weights those figures are of (the meta-learned
initialisation, Meta-SGD's rates, the test-time adaptation settings) as a ``MetaWeights``
file, which the search keeps and exports (``model.py``'s ``adapt``; for the metric-based
learners and pretrain, the embedding and ``model.py``'s ``classify``).

Classification episodes (a task distribution whose ``task_loss`` is ``cross_entropy``:
``episodes``, ``glyphs``): the network has N outputs and the task loss is the
cross-entropy; the objective is ``meta_val_accuracy`` (%, maximize) after ``eval_steps``
steps, on ``eval_points`` (default 15) query examples per class; ``final_metrics`` are
``meta_test_accuracy`` (after ``eval_steps``) and ``meta_test_accuracy_<k>step`` for each of
``final_steps``, each with its ``_ci95``. The 600 meta-test tasks are drawn and scored in
chunks (``TaskDistribution.fixed_batches``) so image tasks never all sit in memory.

Resuming part-way (``trial_checkpoint``, ``resume_trial``): at the end of each meta-epoch
(each ``meta_train_loss`` report) the trial's meta-training state can be taken: the
learner's weights (Meta-SGD's rates, a metric learner's extra parameters), Adam's moments,
the meta-training task stream's position and the losses reported so far. A search loop
checkpoints it (``workers.search``); restored into a fresh evaluator, the same candidate (same
architecture and settings) continues from there and ends with exactly the figures of the
uninterrupted trial. Meta-training draws from the task stream only (no other randomness).

Joint search: ``hparams:`` entries named ``inner_lr``, ``inner_steps``, ``meta_batch``,
``outer_lr`` (and ``first_order`` for ``maml`` and ``metasgd``) override these parameters
per trial (``nas.hparams.META_HPARAMS``).
"""

from __future__ import annotations

import functools
import io
import math
import re
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
import torch
from pydantic import Field, ValidationInfo, model_validator

from nas.architecture import Architecture
from nas.datasets import DATASETS, dataset_shape, load_tasks
from nas.datasets.tasks import TaskBatch, TaskDistribution
from nas.errors import DatasetError, SpecError, at_submit
from nas.evaluators.base import Evaluator, EvaluatorConfig, ReportFn
from nas.hparams import META_HPARAMS, HparamSpace
from nas.metalearning import Algorithm, FunctionalNet, MetaLearner, MetaWeights, MetricLearner
from nas.models import build_model, count_parameters
from nas.spaces.base import SearchSpace
from nas.spec import DeviceSetting
from nas.training import DivergedError, configure_cpu_threads, forked_rng, select_device
from nas.trial import TrialResult, TrialState

if TYPE_CHECKING:
    from nas.spec import JobSpec, SpecProblem

__all__ = [
    "FewShotConfig",
    "FewShotLearner",
    "FomamlEvaluator",
    "MamlEvaluator",
    "MetaConfig",
    "MetaEvaluator",
    "MetaSgdEvaluator",
    "MetricEvaluator",
    "ReptileEvaluator",
]

#: Intermediate values per trial.
_REPORTS = 10
#: Meta-validation/test query examples per class of a classification task, by default.
_CLASS_QUERIES = 15
#: Regression: query points per meta-validation/test task, by default.
_GRID_POINTS = 100
#: The meta-test metrics ``final_metrics`` names (``metric_description``).
_META_TEST = re.compile(
    r"meta_test_(?P<kind>accuracy|mse|diverged)(?:_(?P<steps>\d+)step)?(?P<ci>_ci95)?"
)
#: The most examples one meta-batch may hold (tasks x classes x support + query examples).
MAX_BATCH_EXAMPLES = 2**20
#: The most numbers a meta-validation or meta-test set may hold (1 GiB of float32).
MAX_SET_VALUES = 2**28
#: Examples (support and query of all tasks) scored in one ``vmap`` call at test time.
_EVAL_EXAMPLES = 1000


class FewShotLearner(Protocol):
    """What the evaluators need of a meta-learner: ``MetaLearner`` (MAML, Reptile,
    Meta-SGD) and the metric-based learners (``nas.evaluators.protonet``, ``matching``)
    alike."""

    @property
    def module(self) -> torch.nn.Module:
        """The network being meta-trained (for its parameter count)."""

    def step(self, tasks: Any) -> float:
        """One meta-iteration; its training loss (``DivergedError`` if not finite)."""

    def scores(
        self, tasks: TaskBatch, steps: Sequence[int], lr: float | None = None, *, chunk: int = 200
    ) -> torch.Tensor:
        """``(len(tasks), len(steps), 2)``: per task the query loss and accuracy (%) after
        each count of ``steps`` adaptation steps (metric-based: no steps; every column is
        the same)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class FewShotConfig(EvaluatorConfig):
    """What every few-shot evaluator takes: tasks, budget, the outer optimiser, the
    meta-validation and meta-test sets."""

    meta_iterations: int = Field(1000, ge=1, le=10_000_000, description="outer updates")
    meta_batch: int = Field(25, ge=1, le=4096, description="tasks per meta-iteration")
    shots: int = Field(
        10, ge=1, le=10_000, description="K: support examples per task (classification: per class)"
    )
    queries: int | None = Field(
        None, ge=1, le=10_000, description="query examples per meta-training task (default K)"
    )
    outer_lr: float = Field(1e-3, gt=0, le=10, description="Adam's meta learning rate")
    eval_shots: int = Field(5, ge=1, le=10_000, description="K of meta-validation/test tasks")
    eval_points: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="query examples per meta-val/test task: regression 100 evenly spaced "
        "points, classification 15 per class (default)",
    )
    val_tasks: int = Field(100, ge=1, le=100_000, description="meta-validation tasks")
    test_tasks: int = Field(600, ge=1, le=100_000, description="meta-test tasks")
    device: DeviceSetting = "auto"


class MetaConfig(FewShotConfig):
    inner_steps: int = Field(1, ge=0, le=100, description="inner gradient steps per task")
    inner_lr: float = Field(0.01, gt=0, le=10, description="inner step size alpha")
    eval_steps: int = Field(
        10, ge=0, le=100, description="steps before meta_val_mse / meta_val_accuracy is read"
    )
    eval_lr: float | None = Field(
        None, gt=0, le=10, description="test-time step size (default inner_lr)"
    )
    final_steps: list[int] = Field(
        [1, 5, 10], min_length=1, description="step counts of the meta-test figures"
    )

    @model_validator(mode="after")
    def _steps(self) -> MetaConfig:
        if any(not 0 <= s <= 100 for s in self.final_steps):
            raise ValueError(f"final_steps: {self.final_steps}: each must be 0..100")
        if len(set(self.final_steps)) != len(self.final_steps):
            # (each names a metric, meta_test_*_<n>step: a repeat would be one metric twice)
            raise ValueError(f"final_steps: {self.final_steps} names a step count twice")
        return self


class MamlConfig(MetaConfig):
    first_order: bool = Field(False, description="first-order MAML: no second derivatives")


class MetaSgdConfig(MetaConfig):
    inner_lr: float = Field(
        0.01, gt=0, le=10, description="initial value of every learned inner learning rate"
    )
    first_order: bool = Field(False, description="no second derivatives for the parameters")
    eval_steps: int | None = Field(  # type: ignore[assignment]
        None,
        ge=0,
        le=100,
        description="steps before meta_val_mse / meta_val_accuracy is read (default "
        "inner_steps: the steps its rates were learned for; more can overshoot)",
    )

    @model_validator(mode="after")
    def _no_eval_lr(self, info: ValidationInfo) -> MetaSgdConfig:
        if at_submit(info.context) and self.eval_lr is not None:  # (a stored job still loads)
            raise ValueError(
                f"eval_lr: Meta-SGD adapts with the rates it learned, so eval_lr would not "
                f"be used; leave it out (got {self.eval_lr})"
            )
        return self


class ReptileConfig(MetaConfig):
    inner_steps: int = Field(
        5, ge=1, le=100, description="SGD steps on each task's examples (support and query)"
    )


def _hparam_keys(config: type[FewShotConfig]) -> tuple[str, ...]:
    return tuple(name for name in META_HPARAMS if name in config.model_fields)


def _largest_searched(
    spec: JobSpec, sizes: Mapping[str, int], keys: Sequence[str]
) -> dict[str, int]:
    """Of ``sizes`` (their values as the evaluator's parameters set them), those the spec's
    ``hparams`` search (names the evaluator sets per trial, ``keys``) up to a larger value:
    that value."""
    if not spec.hparams:
        return {}
    space, _ = HparamSpace.parse(spec.hparams)  # (its problems are reported at hparams)
    out: dict[str, int] = {}
    for name, fixed in sizes.items():
        if name in keys and name in space.params:
            largest = space.largest(name)
            if largest is not None and largest > fixed:
                out[name] = int(largest)
    return out


class MetaEvaluator(Evaluator):
    """Meta-trains each candidate's network on a task distribution and scores how well it
    adapts to new tasks (see the module docstring). Subclasses set ``name``, ``Config``
    and ``algorithm`` (``first_order_only``: first-order MAML)."""

    algorithm: ClassVar[Algorithm]
    first_order_only: ClassVar[bool] = False
    #: Adapts by gradient steps (``eval_steps``, ``final_steps``); False: metric-based.
    adapts_by_steps: ClassVar[bool] = True
    #: Works on regression task distributions too (False: classification episodes only).
    regression: ClassVar[bool] = True
    Config: ClassVar[type[EvaluatorConfig]] = MetaConfig
    metrics = ("meta_val_mse", "meta_train_loss", "params")
    #: (a classification task distribution's trials report accuracy instead)
    extra_metrics = ("meta_val_accuracy",)
    dataset_metrics = ("meta_val_mse", "meta_val_accuracy")
    #: What a classification task distribution makes it report.
    classification_metrics: ClassVar[tuple[str, ...]] = (
        "meta_val_accuracy",
        "meta_train_loss",
        "params",
    )
    constraint_keys = ("max_params", "max_flops", "max_latency_ms")
    meta_learning = True
    #: (not the metric-based learners and pretrain: theirs is an embedding, whose classifier
    #: they never train)
    learns_weights = True
    #: Meta-training draws episodes of ``meta_batch`` tasks with ``shots`` and ``queries``
    #: examples per class (pretrain draws plain minibatches: they do not apply).
    trains_on_episodes: ClassVar[bool] = True
    metric_notes: ClassVar[Mapping[str, str]] = {
        **Evaluator.metric_notes,
        "meta_val_mse": (
            "mean squared error on the query points of the meta-validation tasks after "
            "adapting to their support sets (eval_shots examples, eval_steps steps): the "
            "search's reward"
        ),
        # (one meaning per name, whichever evaluator reports it: the model card looks a
        # metric up by name)
        "meta_train_loss": (
            "mean meta-training loss of the last tenth of meta-training (post-adaptation "
            "query loss; Reptile: loss on the task's examples after adapting; protonet, "
            "matching: query cross-entropy, labelled from the support set; pretrain: "
            "cross-entropy over every meta-training class)"
        ),
        "params": (
            "parameters of the network the trial trained (protonet, matching: its embedding, "
            "without the N-way classifier an export adds; pretrain: with a classifier over "
            "every meta-training class instead of it)"
        ),
        "meta_val_accuracy": (
            "accuracy (%) on the query examples of the meta-validation tasks (N-way episodes "
            "of classes meta-training never saw) after adapting to their support sets: the "
            "search's reward"
        ),
    }

    def __init__(
        self,
        *,
        space: SearchSpace,
        tasks: TaskDistribution,
        config: FewShotConfig,
        seed: int = 0,
        report: ReportFn | None = None,
    ) -> None:
        self.space = space
        self.tasks = tasks
        self.config = config
        self.seed = seed
        self.report = report
        self.classification = tasks.loss == "cross_entropy"
        if self.classification:
            self.metrics = self.classification_metrics  # type: ignore[misc]
        elif not self.regression:
            raise DatasetError(f"evaluator {self.name!r} needs classification episodes")
        self.eval_queries = config.eval_points or (
            _CLASS_QUERIES if self.classification else _GRID_POINTS
        )
        self.device = select_device(config.device)
        if self.device.type == "cpu":
            # One thread unless told (NAS_TORCH_THREADS, OMP_NUM_THREADS): a meta-batch's
            # operations are small, and threads that wait on each other cost far more than
            # they share (20x slower with 2 threads on 2 busy cores).
            configure_cpu_threads()
        self._val = tasks.fixed(
            "valid",
            seed,
            n_tasks=config.val_tasks,
            shots=config.eval_shots,
            queries=self.eval_queries,
            grid=True,
        ).to(self.device)
        per_task = (config.eval_shots + self.eval_queries) * (
            self.tasks.outputs if self.classification else 1
        )
        #: Tasks per ``vmap`` call at test time: bounded memory for image tasks.
        self.eval_chunk = 200 if not self.classification else max(1, _EVAL_EXAMPLES // per_task)
        #: architecture key -> (objective, learned state, settings) of its best trial here
        self._learned: dict[str, tuple[float, dict[str, Any], Any]] = {}
        #: (architecture key, learner, settings) that ``final_metrics`` last scored
        self._final: tuple[str, FewShotLearner, Any] | None = None
        #: The running trial's ``trial_checkpoint`` while it reports; a checkpoint to resume.
        self._checkpoint: Callable[[], bytes] | None = None
        self._resume: dict[str, Any] | None = None

    @classmethod
    def from_spec(
        cls,
        *,
        dataset: str,
        dataset_params: Mapping[str, Any],
        space: SearchSpace,
        params: Mapping[str, Any],
        seed: int,
    ) -> MetaEvaluator:
        return cls(
            space=space,
            tasks=load_tasks(dataset, **dataset_params),
            config=cls.Config.model_validate(dict(params)),  # type: ignore[arg-type]
            seed=seed,
        )

    # --- what it can work with -------------------------------------------------------------
    @classmethod
    def _episode_problems(
        cls, params: Mapping[str, Any], per_class: int, have: str
    ) -> list[SpecProblem]:
        """A task's support + query examples of a class (meta-training's, and evaluation's)
        above the ``per_class`` examples a class has (``have`` says so, and what to do)."""
        config = cls.Config.model_validate(dict(params))
        # Each as (shots' field, the query count's field, shots, queries, whether the query
        # count is its default): the error names the larger of the two (queries 10 with
        # shots 1 named shots; eval_shots 1 beside eval_points' default 15 named eval_shots,
        # which was already at its least: the few-shot probe).
        sizes = [
            (
                "eval_shots",
                "eval_points",
                config.eval_shots,
                config.eval_points or _CLASS_QUERIES,
                not config.eval_points,
            )
        ]
        if cls.trains_on_episodes:
            sizes.insert(
                0,
                ("shots", "queries", config.shots, config.queries or config.shots, False),
            )
        return [
            (
                ("evaluator", query_field if queries > shots else field),
                f"a task takes {shots} support + {queries} query examples of each class"
                + (f" ({query_field} unset: {queries})" if default and queries > shots else "")
                + f"; {have}",
            )
            for field, query_field, shots, queries, default in sizes
            if shots + queries > per_class
        ]

    @classmethod
    def _size_problems(cls, spec: JobSpec, classification: bool) -> list[SpecProblem]:
        """Sizes that cannot fit in memory: a meta-batch above ``MAX_BATCH_EXAMPLES``
        examples (each also runs through the network, second-order gradients and all), a
        meta-validation or meta-test set above ``MAX_SET_VALUES`` numbers (both are held
        whole; a 100,000-task set of 100,000 points asked for 37 GiB)."""
        try:
            config = cls.Config.model_validate(spec.evaluator.params)
            shape, outputs = dataset_shape(spec.dataset.name, spec.dataset.params)
        except (DatasetError, ValueError, OSError):  # (pydantic's errors are ValueErrors)
            return []  # (reported where they are read)
        ways = outputs if classification else 1
        values = math.prod(shape) + 1  # an example's inputs and its label or target
        queries = config.eval_points or (_CLASS_QUERIES if classification else _GRID_POINTS)
        problems: list[SpecProblem] = []

        def examples(tasks: int, shots: int, queries: int) -> tuple[int, str]:
            per_class = f"({shots} + {queries}) examples"
            what = (
                f"{tasks} tasks x {ways} classes x {per_class}"
                if classification
                else (f"{tasks} tasks x ({shots} + {queries}) points")
            )
            return tasks * ways * (shots + queries), what

        sizes = {
            "meta_batch": config.meta_batch,
            "shots": config.shots,
            "queries": config.queries or config.shots,
        }
        batch, what = examples(*sizes.values())
        # A size searched in hparams takes values up to its largest in some trial: the limit
        # holds for those too (else the trial that draws one fails), at the hparam's field.
        searched = _largest_searched(spec, sizes, cls.hparam_keys)
        most, most_what = examples(*{**sizes, **searched}.values())
        if batch > MAX_BATCH_EXAMPLES and cls.trains_on_episodes:
            problems.append(
                (
                    ("evaluator", "meta_batch"),
                    (
                        f"a meta-batch of {what} is {batch:,} examples; at most "
                        f"{MAX_BATCH_EXAMPLES:,} (lower meta_batch, shots or queries)"
                    ),
                )
            )
        elif most > MAX_BATCH_EXAMPLES and cls.trains_on_episodes:
            ranges = " and ".join(f"{name} up to {value}" for name, value in searched.items())
            problems.append(
                (
                    ("hparams", next(iter(searched))),
                    (
                        f"{ranges}: a meta-batch of {most_what} is {most:,} examples; at most "
                        f"{MAX_BATCH_EXAMPLES:,} (lower the highest value searched, or the "
                        "evaluator's shots or queries)"
                    ),
                )
            )
        for loc, tasks in (("val_tasks", config.val_tasks), ("test_tasks", config.test_tasks)):
            count, what = examples(tasks, config.eval_shots, queries)
            size = count * values
            if size > MAX_SET_VALUES:
                problems.append(
                    (
                        ("evaluator", loc),
                        (
                            f"{what} of {values} numbers each is {size:,} numbers "
                            f"({size * 4 / 2**30:.1f} GiB), held whole; at most "
                            f"{MAX_SET_VALUES:,} (lower {loc}, eval_shots or eval_points)"
                        ),
                    )
                )
        return problems

    @classmethod
    def check_files(
        cls,
        *,
        space: SearchSpace,
        params: Mapping[str, Any],
        dataset: str,
        dataset_params: Mapping[str, Any],
    ) -> None:
        """Episodes over data: its smallest class holds each task's examples of a class."""
        smallest = DATASETS.get(dataset).task_smallest_class
        found = None if smallest is None else smallest(**dataset_params)
        if found is None:
            return
        count, have = found
        for loc, message in cls._episode_problems(params, count, have):
            raise SpecError.at(list(loc), message)

    @classmethod
    def data_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """A task distribution, a trainable space whose networks take its inputs, and no
        ``final:`` retraining (not supported yet)."""
        from nas.spaces import SPACES

        problems: list[SpecProblem] = []
        dataset = DATASETS.get(spec.dataset.name)
        if dataset.tasks is None:
            distributions = [n for n in DATASETS if DATASETS.get(n).tasks is not None]
            problems.append(
                (
                    ("dataset", "name"),
                    (
                        f"evaluator {cls.name!r} meta-trains on a task distribution; "
                        f"{spec.dataset.name!r} is not one (valid: {', '.join(distributions)})"
                    ),
                )
            )
        space_cls = SPACES.get(spec.space.name)
        if not space_cls.trainable:
            trainable = [n for n in SPACES if SPACES.get(n).trainable]
            if dataset.tasks is not None and (shape := _task_input(spec)) is not None:
                # those that take these inputs (all trainable ones named mlp's rivals for
                # sinusoid, which then refused the inputs in a second answer)
                trainable = [n for n in trainable if _default_takes(SPACES.get(n), shape)]
            problems.append(
                (
                    ("space", "name"),
                    (
                        f"evaluator {cls.name!r} trains networks; space {space_cls.name!r} has "
                        f"no trainable network here (valid: {', '.join(trainable)})"
                    ),
                )
            )
        elif dataset.tasks is not None and (shape := _task_input(spec)) is not None:
            problem = space_cls.from_config(spec.space.params).input_shape_problem(shape)
            if problem is not None:
                able = [
                    n
                    for n in SPACES
                    if SPACES.get(n).trainable and _default_takes(SPACES.get(n), shape)
                ]
                problems.append(
                    (
                        ("space", "name"),
                        (
                            f"space {space_cls.name!r} cannot take the inputs of "
                            f"{spec.dataset.name!r} ({problem}); spaces that can: "
                            f"{', '.join(able)}"
                        ),
                    )
                )
        if (
            dataset.tasks is not None
            and dataset.task_loss != "cross_entropy"
            and not cls.regression
        ):
            episodes = [n for n in DATASETS if DATASETS.get(n).task_loss == "cross_entropy"]
            problems.append(
                (
                    ("dataset", "name"),
                    (
                        f"evaluator {cls.name!r} classifies: it needs N-way classification "
                        f"episodes (valid: {', '.join(episodes)}); {spec.dataset.name!r} is a "
                        "regression task distribution"
                    ),
                )
            )
        per_class = (
            dataset.task_class_examples(**spec.dataset.params)
            if dataset.task_class_examples is not None and dataset.task_loss == "cross_entropy"
            else None
        )
        if per_class is not None:
            problems += cls._episode_problems(
                spec.evaluator.params,
                per_class,
                f"{spec.dataset.name!r} has {per_class} of each (its samples): lower them, or "
                "raise the dataset's samples",
            )
        if dataset.tasks is not None:
            problems += cls._size_problems(spec, dataset.task_loss == "cross_entropy")
        if spec.final is not None:
            problems.append(
                (
                    ("final",),
                    (
                        f"retraining (final:) after a {cls.name} search is not supported yet: "
                        "remove final:; the best architecture's meta-test figures are its "
                        "final_metrics (from the weights its search meta-learned)"
                    ),
                )
            )
        return problems

    @classmethod
    def spec_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """The base checks, a loss as objective must be minimized, an accuracy maximized."""
        problems = super().spec_problems(spec)
        objective = spec.objective
        pairs = (
            [(objective.metric, objective.direction, ("objective", "direction"))]
            if objective.metrics is None
            else [
                (m, d, ("objective", "directions", i))
                for i, (m, d) in enumerate(
                    zip(objective.metrics, objective.directions or [], strict=False)
                )
            ]
        )
        for metric, direction, loc in pairs:
            if metric in ("meta_val_mse", "meta_train_loss") and direction != "minimize":
                problems.append((loc, f"{metric} is an error: its direction is minimize"))
            if metric == "meta_val_accuracy" and direction != "maximize":
                problems.append((loc, f"{metric} is an accuracy: its direction is maximize"))
        return problems

    @classmethod
    def metric_description(cls, name: str, params: Mapping[str, Any]) -> str | None:
        """The meta-test figures of this job's settings: its ``test_tasks``, any step count
        of ``final_steps``, and the share of tasks that diverged."""
        found = _META_TEST.fullmatch(name)
        if found is None:
            return super().metric_description(name, params)
        kind, steps, ci = found.group("kind"), found.group("steps"), found.group("ci")
        tasks = params.get("test_tasks", FewShotConfig.model_fields["test_tasks"].default)
        after = (
            f"after {steps} adaptation step(s) from the meta-learned weights"
            if steps is not None
            else "after adapting as for meta_val_accuracy"
        )
        if kind == "diverged":
            return (
                f"share (0..1) of the {tasks} meta-test tasks whose loss was not finite {after} "
                "(no mean is reported at that step count)"
            )
        what = "accuracy (%)" if kind == "accuracy" else "mean squared error"
        unseen = (
            " (classes never seen in meta-training or meta-validation)"
            if kind == "accuracy"
            else ""
        )
        if ci:
            return (
                f"95% confidence half-width of the {what} over {tasks} meta-test "
                f"tasks{unseen}, {after}"
            )
        return f"{what}, mean over {tasks} meta-test tasks{unseen}, {after}"

    metric_directions: ClassVar[Mapping[str, Literal["maximize", "minimize"]]] = {
        "meta_val_mse": "minimize",
        "meta_val_accuracy": "maximize",
        "meta_train_loss": "minimize",
        "params": "minimize",
    }

    @classmethod
    def default_objective(
        cls, dataset: str, params: Mapping[str, Any]
    ) -> tuple[str, Literal["maximize", "minimize"]]:
        """``meta_val_accuracy`` (maximize) on classification episodes, ``meta_val_mse``
        (minimize) on regression tasks."""
        entry = DATASETS.get(dataset) if dataset in DATASETS else None
        if entry is not None and entry.tasks is not None and entry.task_loss != "cross_entropy":
            return "meta_val_mse", "minimize"
        return "meta_val_accuracy", "maximize"

    @classmethod
    def spec_metrics(cls, spec: JobSpec) -> tuple[str, ...]:
        """``meta_val_mse`` ... on regression tasks, ``meta_val_accuracy`` ... on
        classification episodes."""
        entry = DATASETS.get(spec.dataset.name)
        if entry.tasks is not None and entry.task_loss == "cross_entropy":
            return cls.classification_metrics
        return cls.metrics

    @classmethod
    def listed_metrics(
        cls, params: Mapping[str, Any], dataset: str | None = None
    ) -> tuple[str, ...]:
        """``trial_metrics`` less the ``dataset_metrics`` the dataset's trials do not hold (a
        classification job's ``meta_val_mse``)."""
        metrics = cls.trial_metrics()
        if dataset is None or dataset not in DATASETS:
            return metrics
        entry = DATASETS.get(dataset)
        classification = entry.tasks is not None and entry.task_loss == "cross_entropy"
        held = cls.classification_metrics if classification else cls.metrics
        return tuple(m for m in metrics if m not in cls.dataset_metrics or m in held)

    # --- evaluation ------------------------------------------------------------------------
    def trial_seed(self, arch: Architecture) -> int:
        """Deterministic per (job seed, architecture): the same architecture starts from the
        same weights and sees the same meta-training tasks."""
        return zlib.crc32(f"{self.seed}:{arch.key}".encode())

    def settings(self, hparams: Mapping[str, Any] | None) -> Any:
        """This evaluator's parameters with the trial's meta-training ``hparams`` set."""
        changes: dict[str, Any] = {}
        for name, value in (hparams or {}).items():
            key = META_HPARAMS.get(name)
            if key is None or name not in type(self).hparam_keys:
                continue
            cast = {"number": float, "integer": int, "flag": bool}[key.kind]
            changes[name] = cast(value)
        return self.config.model_copy(update=changes) if changes else self.config

    def evaluate(
        self,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TrialResult]:
        per_trial = list(hparams) if hparams is not None else [{}] * len(archs)
        if len(per_trial) != len(archs):
            raise ValueError(f"{len(archs)} architectures but {len(per_trial)} hparams")
        return [
            self._evaluate_one(i, arch, self.settings(hp))
            for i, (arch, hp) in enumerate(zip(archs, per_trial, strict=True))
        ]

    def constraint_figures(
        self, archs: Sequence[Architecture], figures: Sequence[str]
    ) -> list[dict[str, float]]:
        """Builds each untrained network (global RNG untouched) and measures it here."""
        from nas.constraints import measure_model

        out = []
        for arch in archs:
            self.space.validate(arch)
            with forked_rng(device=self.device):
                model = self._network(arch)
            out.append(measure_model(model, self.tasks.input_shape, self.device, figures))
        return out

    def _network(self, arch: Architecture) -> torch.nn.Module:
        return build_model(self.space, arch, self.tasks.input_shape, self.tasks.outputs).to(
            self.device
        )

    def _learner(self, arch: Architecture, settings: Any) -> FewShotLearner:
        with forked_rng(self.trial_seed(arch), device=self.device):
            model = self._network(arch)
        first_order = self.first_order_only or bool(getattr(settings, "first_order", False))
        return MetaLearner(
            FunctionalNet(model, self.tasks.loss),
            algorithm=self.algorithm,
            inner_steps=settings.inner_steps,
            inner_lr=settings.inner_lr,
            first_order=first_order,
            outer_lr=settings.outer_lr,
        )

    def _meta_train(
        self, arch: Architecture, settings: Any, index: int | None
    ) -> tuple[FewShotLearner, float]:
        """The meta-trained learner and the mean loss of the last report window; reports
        each window's mean loss as ``meta_train_loss`` when ``index`` is given."""
        learner = self._learner(arch, settings)
        stream = self.tasks.stream("train", self.seed, self.trial_seed(arch))
        total = settings.meta_iterations
        window = max(1, total // _REPORTS)
        losses: list[float] = []
        reported: list[float] = []  # each finished meta-epoch's mean loss
        start = 0
        resume, self._resume = self._resume, None
        if index is not None and resume is not None and self._resumes(resume, arch, settings):
            start, reported = self._restore(resume, learner, stream)
            # what the lost process had reported (steps are meta-epochs done: 1, 2, ...)
            for epoch, value in enumerate(reported, start=1):
                if self.report is not None:
                    self.report(index, epoch, {"meta_train_loss": value})
        last = reported[-1] if reported else math.nan
        for iteration in range(start, total):
            if self.poll is not None:  # (a meta-epoch of a large network takes minutes)
                self.poll()
            losses.append(learner.step(self._draw(stream, settings)))
            if len(losses) == window or iteration == total - 1:
                last = sum(losses) / len(losses)
                reported.append(last)
                losses = []
                if index is not None and self.report is not None:
                    self._checkpoint = functools.partial(
                        self._snapshot, arch, settings, learner, stream, iteration + 1, reported
                    )
                    try:
                        self.report(index, len(reported), {"meta_train_loss": last})
                    finally:
                        self._checkpoint = None
        return learner, last

    # --- resuming a trial part-way (Evaluator.trial_checkpoint) ----------------------------
    def trial_checkpoint(self) -> bytes | None:
        """At the end of each meta-epoch (a ``meta_train_loss`` report): the trial's
        meta-training state (the learner's weights and Adam's moments, the task stream's
        position, the meta-epochs' losses), from which ``resume_trial`` goes on exactly as
        the uninterrupted trial would have."""
        return self._checkpoint() if self._checkpoint is not None else None

    def resume_trial(self, data: bytes) -> None:
        self._resume = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def _snapshot(
        self,
        arch: Architecture,
        settings: Any,
        learner: FewShotLearner,
        stream: np.random.Generator,
        iteration: int,
        reported: list[float],
    ) -> bytes:
        optimizer = getattr(learner, "optimizer", None)
        buffer = io.BytesIO()
        torch.save(
            {
                "architecture": arch.key,
                "settings": settings.model_dump(),
                "iteration": iteration,
                "reported": list(reported),
                "stream": stream.bit_generator.state,
                "learner": learner.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
            },
            buffer,
        )
        return buffer.getvalue()

    def _resumes(self, state: Mapping[str, Any], arch: Architecture, settings: Any) -> bool:
        """Whether a ``trial_checkpoint`` is of this trial (architecture and settings)."""
        return state.get("architecture") == arch.key and state.get("settings") == (
            settings.model_dump()
        )

    def _restore(
        self, state: Mapping[str, Any], learner: FewShotLearner, stream: np.random.Generator
    ) -> tuple[int, list[float]]:
        """Load a ``trial_checkpoint`` into a fresh learner and stream; its iteration and
        reported losses."""
        learner.load_state_dict(_to_device(state["learner"], self.device))
        optimizer = getattr(learner, "optimizer", None)
        if optimizer is not None and state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])  # moved to the parameters' device
        stream.bit_generator.state = state["stream"]
        return int(state["iteration"]), [float(v) for v in state["reported"]]

    def _draw(self, stream: np.random.Generator, settings: Any) -> Any:
        """One meta-iteration's batch: ``meta_batch`` meta-training tasks."""
        return self.tasks.sample(
            stream,
            n_tasks=settings.meta_batch,
            shots=settings.shots,
            queries=settings.queries or settings.shots,
        ).to(self.device)

    def _eval_lr(self, settings: Any) -> float | None:
        """The test-time step size; ``None``: the learner's own (Meta-SGD's learned rates;
        metric-based learners take no steps)."""
        if not self.adapts_by_steps or self.algorithm == "metasgd":
            return None
        return settings.eval_lr if settings.eval_lr is not None else settings.inner_lr

    def _eval_steps(self, settings: Any) -> int:
        """Adaptation steps before the meta-validation score is read (0: metric-based;
        Meta-SGD's default: its ``inner_steps``, what its rates were learned for)."""
        if not self.adapts_by_steps:
            return 0
        return int(settings.inner_steps if settings.eval_steps is None else settings.eval_steps)

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.classification else value < than

    def _evaluate_one(self, index: int, arch: Architecture, settings: Any) -> TrialResult:
        started = time.perf_counter()
        try:
            learner, train_loss = self._meta_train(arch, settings, index)
        except DivergedError as exc:
            return TrialResult.failed(f"diverged: {exc}", cost_s=time.perf_counter() - started)
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            return TrialResult.failed(f"out of memory: {exc}", cost_s=time.perf_counter() - started)
        steps = self._eval_steps(settings)
        scores = learner.scores(
            self._val, [steps], lr=self._eval_lr(settings), chunk=self.eval_chunk
        )
        # classification: the accuracy (a finite loss is checked beside it); regression: MSE
        val = float(scores[:, 0, 1 if self.classification else 0].mean())
        loss = float(scores[:, 0, 0].mean())
        what = "loss" if self.classification else "MSE"
        if not (math.isfinite(val) and math.isfinite(loss)):
            return TrialResult.failed(
                f"diverged: meta-validation {what} {loss} after {steps} steps",
                cost_s=time.perf_counter() - started,
            )
        best = self._learned.get(arch.key)
        if best is None or self._better(val, best[0]):
            self._learned[arch.key] = (val, learner.state_dict(), settings)
            if self._final is not None and self._final[0] == arch.key:
                self._final = None  # final_metrics scores the new best next time
        metric = "meta_val_accuracy" if self.classification else "meta_val_mse"
        return TrialResult(
            TrialState.COMPLETE,
            objective=val,
            metrics={
                metric: val,
                "meta_train_loss": train_loss,
                "params": float(count_parameters(learner.module)),
            },
            cost_s=time.perf_counter() - started,
        )

    def _final_learner(
        self, arch: Architecture, hparams: Mapping[str, Any] | None = None
    ) -> tuple[FewShotLearner, Any]:
        """The architecture's best meta-learned learner here, else meta-trained again with
        ``hparams`` (the best trial's: the same seeds, so the same weights as that trial),
        and its settings; kept for ``learned_weights``."""
        self.space.validate(arch)
        if self._final is not None and self._final[0] == arch.key:
            return self._final[1], self._final[2]
        known = self._learned.get(arch.key)
        if known is not None:
            _, state, settings = known
            learner = self._learner(arch, settings)
            learner.load_state_dict(state)
        else:
            settings = self.settings(hparams)
            learner, _ = self._meta_train(arch, settings, None)
        self._final = (arch.key, learner, settings)
        return learner, settings

    def learned_weights_ready(self, arch: Architecture) -> bool:
        """The architecture's learner is at hand (the meta-test's, or a trial's state kept
        here): no meta-training again."""
        final = self._final is not None and self._final[0] == arch.key
        return final or arch.key in self._learned

    def _embedding_file(
        self,
        arch: Architecture,
        learned: Mapping[str, torch.Tensor],
        comparison: dict[str, Any],
        extra: Mapping[str, torch.Tensor] | None = None,
    ) -> bytes:
        """A ``MetaWeights`` file of an embedding (the metric-based learners', pretrain's):
        the whole N-way network ``model.py`` builds, built under the trial's seed (its
        classifier as initialised: the methods never use it), with the ``learned`` weights
        of the rest in place; the learner's ``comparison`` and its own weights (``extra``)."""
        with forked_rng(self.trial_seed(arch), device=self.device):
            model = MetaEvaluator._network(self, arch)  # with its classifier
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        unknown = sorted(set(learned) - set(weights))
        if unknown:
            raise RuntimeError(f"embedding weights not in the whole network: {unknown}")
        weights.update({k: v.detach().cpu().clone() for k, v in learned.items()})
        return MetaWeights(
            architecture=arch.to_dict(),
            algorithm=self.name,
            loss="cross_entropy",
            steps=0,
            lr=None,
            weights=weights,
            comparison=comparison,
            extra={k: v.detach().cpu().clone() for k, v in (extra or {}).items()} or None,
        ).to_bytes()

    def learned_weights(
        self, arch: Architecture, hparams: Mapping[str, Any] | None = None
    ) -> bytes | None:
        """The meta-learned initialisation of the weights ``final_metrics`` scored (and
        Meta-SGD's learned rates) with the test-time adaptation settings, as a
        ``MetaWeights`` file; ``None`` for learners that do not adapt by gradient steps
        (the metric-based learners and pretrain answer their embedding:
        ``_embedding_file``)."""
        learner, settings = self._final_learner(arch, hparams)
        if not isinstance(learner, MetaLearner):
            return None
        with forked_rng(self.trial_seed(arch), device=self.device):
            model = self._network(arch)  # for the buffers a strict load needs
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        weights.update({k: v.cpu().clone() for k, v in learner.current().items()})
        rate = learner.step_size()
        return MetaWeights(
            architecture=arch.to_dict(),
            algorithm=self.name,
            loss=self.tasks.loss,
            steps=self._eval_steps(settings),
            lr=self._eval_lr(settings),
            weights=weights,
            rates={k: v.cpu().clone() for k, v in rate.items()} if isinstance(rate, dict) else None,
        ).to_bytes()

    def final_metrics_work(self) -> str | None:
        # (on glyphs it took longer than a short search, the bar at 100 % all along)
        return f"meta-testing the best architecture on {self.config.test_tasks} tasks"

    def final_metrics(
        self, arch: Architecture, hparams: Mapping[str, Any] | None = None
    ) -> dict[str, float]:
        """Meta-test figures (mean, 95% interval) on ``test_tasks`` tasks, from the
        architecture's best meta-learned weights here (else meta-trained again with
        ``hparams``, the best trial's): regression the MSE after each of ``final_steps`` steps;
        classification the accuracy after ``eval_steps`` steps (``meta_test_accuracy``)
        and, for learners that adapt by steps, after each of ``final_steps``."""
        learner, settings = self._final_learner(arch, hparams)
        eval_steps = self._eval_steps(settings)
        final_steps = list(getattr(self.config, "final_steps", [])) if self.adapts_by_steps else []
        steps = [eval_steps, *final_steps] if self.classification else final_steps
        parts = []
        for batch in self.tasks.fixed_batches(
            "test",
            self.seed,
            n_tasks=self.config.test_tasks,
            shots=self.config.eval_shots,
            queries=self.eval_queries,
            grid=True,
        ):
            if self.poll is not None:  # (600 tasks on glyphs: a minute, deaf to a cancel)
                self.poll()
            parts.append(
                learner.scores(
                    batch.to(self.device), steps, lr=self._eval_lr(settings), chunk=self.eval_chunk
                )
            )
        scores = torch.cat(parts)
        column = 1 if self.classification else 0
        names = (
            ["meta_test_accuracy", *(f"meta_test_accuracy_{k}step" for k in final_steps)]
            if self.classification
            else [f"meta_test_mse_{k}step" for k in final_steps]
        )
        out: dict[str, float] = {}
        for index, (name, k) in enumerate(zip(names, steps, strict=True)):
            values = scores[:, index, column].double()
            finite = torch.isfinite(values) & torch.isfinite(scores[:, index, 0].double())
            if bool(finite.all()):
                out[name] = float(values.mean())
                if len(values) > 1:  # one task has no spread to tell (it said +- 0)
                    # the sample's standard deviation: over N, small test sets were too sure
                    half = 1.96 * float(values.std(unbiased=True)) / math.sqrt(len(values))
                    out[f"{name}_ci95"] = half
            else:
                out[f"meta_test_diverged_{k}step"] = float(1.0 - finite.double().mean())
        return out


class MamlEvaluator(MetaEvaluator):
    """MAML (Finn et al. 2017) with second-order meta-gradients through ``torch.func``
    (``first_order: true``: first-order MAML)."""

    name = "maml"
    algorithm = "maml"
    Config = MamlConfig
    hparam_keys = _hparam_keys(MamlConfig)


class FomamlEvaluator(MetaEvaluator):
    """First-order MAML: the meta-gradient is the query loss's gradient at the adapted
    parameters."""

    name = "fomaml"
    algorithm = "maml"
    first_order_only = True
    Config = MetaConfig
    hparam_keys = _hparam_keys(MetaConfig)


class ReptileEvaluator(MetaEvaluator):
    """Reptile (Nichol et al. 2018): move the initialisation toward each task's adapted
    weights (Adam on the difference)."""

    name = "reptile"
    algorithm = "reptile"
    Config = ReptileConfig
    hparam_keys = _hparam_keys(ReptileConfig)


class MetaSgdEvaluator(MetaEvaluator):
    """Meta-SGD (Li et al. 2017): MAML that also learns one inner learning rate per
    parameter (the learned optimizer); adapts with those rates at test time."""

    name = "metasgd"
    algorithm = "metasgd"
    Config = MetaSgdConfig
    hparam_keys = _hparam_keys(MetaSgdConfig)


class MetricEvaluator(MetaEvaluator):
    """Base of the metric-based evaluators (``protonet``, ``matching``): the candidate's
    network without its classifier (``SpaceNetwork.drop_classifier``) is the embedding,
    trained end to end on classification episodes; no adaptation steps (``eval_steps``,
    ``final_steps`` do not apply). Subclasses build their learner in ``_metric_learner``."""

    adapts_by_steps = False
    learns_weights = False
    regression = False
    dataset_metrics = ()  # (classification episodes only)
    Config: ClassVar[type[EvaluatorConfig]] = FewShotConfig

    @classmethod
    def learns_graph(cls, params: Mapping[str, Any]) -> bool:
        return True  # the embedding

    hparam_keys = _hparam_keys(FewShotConfig)
    metrics = ("meta_val_accuracy", "meta_train_loss", "params")

    def _network(self, arch: Architecture) -> torch.nn.Module:
        model = super()._network(arch)
        model.drop_classifier()  # type: ignore[operator]
        return model

    def _learner(self, arch: Architecture, settings: Any) -> FewShotLearner:
        with forked_rng(self.trial_seed(arch), device=self.device):
            model = self._network(arch)
            return self._metric_learner(FunctionalNet(model, "cross_entropy"), settings)

    def _metric_learner(self, net: FunctionalNet, settings: Any) -> FewShotLearner:
        raise NotImplementedError

    def learned_weights(
        self, arch: Architecture, hparams: Mapping[str, Any] | None = None
    ) -> bytes | None:
        """The meta-learned embedding ``final_metrics`` scored, as a ``MetaWeights`` file of
        the whole network (its classifier as initialised, unused) with the learner's
        ``comparison`` and its own weights besides the network (``extra``: Matching
        Networks' full-context LSTMs)."""
        learner, _ = self._final_learner(arch, hparams)
        if not isinstance(learner, MetricLearner):
            return None
        return self._embedding_file(arch, learner.params, learner.comparison(), learner.extra)


def _to_device(value: Any, device: torch.device) -> Any:
    """``value`` (tensors in dicts) with every tensor on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def _task_input(spec: JobSpec) -> tuple[int, ...] | None:
    """The input shape of the spec's task distribution with its parameters; ``None`` when
    it cannot be read here (its data is refused when the job builds it, with the reason)."""
    try:
        return dataset_shape(spec.dataset.name, spec.dataset.params)[0]
    except (DatasetError, ValueError, OSError):
        return None


def _default_takes(space_cls: type[SearchSpace], input_shape: tuple[int, ...]) -> bool:
    """Whether a (trainable) space with its default parameters builds networks for
    ``input_shape``."""
    return space_cls.from_config({}).input_shape_problem(input_shape) is None

"""The ``Evaluator`` contract: architectures in, ``TrialResult``s out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from nas.architecture import Architecture
from nas.constraints import CONSTRAINTS
from nas.spaces.base import SearchSpace
from nas.trial import TrialResult

#: What a retraining's trial holds (``POST /jobs/{id}/retrain``: the architecture trained
#: from scratch, scored on the test split).
RETRAINING_METRICS: tuple[str, ...] = (
    "test_accuracy",
    "train_loss",
    "params",
    "flops",
    "train_seconds",
)

if TYPE_CHECKING:
    from nas.spec import JobSpec, SpecProblem

#: ``report(trial_index_in_batch, epoch, values)``: an intermediate value of a running trial.
ReportFn = Callable[[int, int, Mapping[str, float]], None]


class EvaluatorConfig(BaseModel):
    """Base of each evaluator's parameters (the spec's ``evaluator:`` section less ``name``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Evaluator(ABC):
    """Scores architectures. Knows nothing of controllers, databases or Ray.

    ``metrics`` lists what ``TrialResult.metrics`` will hold, so a spec's objective can be
    checked before anything runs. ``evaluate`` takes a batch: cheap evaluators (tables,
    shared weights) answer a whole batch in one call, never one call per lookup.
    """

    name: ClassVar[str]
    Config: ClassVar[type[EvaluatorConfig]] = EvaluatorConfig
    metrics: ClassVar[tuple[str, ...]] = ()
    #: Metrics some of its trials hold beyond ``metrics``, which an objective cannot name
    #: but a trial listing sorts by (a pruned trial's epochs, a retraining's test accuracy).
    extra_metrics: ClassVar[tuple[str, ...]] = ()
    #: Metrics of those that only some datasets' trials hold (a meta-learner's
    #: ``meta_val_mse`` on regression tasks, ``meta_val_accuracy`` on classification
    #: episodes): a trial listing sorted by one reads the job's dataset (``listed_metrics``).
    dataset_metrics: ClassVar[tuple[str, ...]] = ()
    #: How many candidates a search loop should gather per ``evaluate`` call.
    batch_size: ClassVar[int] = 1
    #: True when ``evaluate`` answers without training (a table lookup, a shared-weight
    #: minibatch): the service then does not show its trials as RUNNING first.
    instant: ClassVar[bool] = False
    #: The ``hparams:`` names that set this evaluator's training procedure per trial (see
    #: ``nas.hparams.TRAINING_HPARAMS``); a spec that searches another of them is rejected.
    hparam_keys: ClassVar[tuple[str, ...]] = ()
    #: The ``objective.constraints`` keys this evaluator can check before evaluating (see
    #: ``nas.constraints``); a spec that sets another is rejected.
    constraint_keys: ClassVar[tuple[str, ...]] = ()
    #: Trains networks of the space on a dataset's arrays (the space must be trainable, the
    #: dataset not a table). False for evaluators that answer from a table.
    trains_networks: ClassVar[bool] = True
    #: Needs the space's shared-weight supernet.
    needs_supernet: ClassVar[bool] = False
    #: Meta-trains networks on a task distribution (a dataset with ``tasks``: few-shot
    #: meta-learning) instead of training them on arrays.
    meta_learning: ClassVar[bool] = False
    #: Can score several objectives (a Pareto front); False: ranks by one reward.
    multi_objective: ClassVar[bool] = True
    #: Results carry a simulated training cost (``budget.simulated_seconds`` applies).
    simulates_cost: ClassVar[bool] = False
    #: The search loop that drives this evaluator (``workers`` maps the name to its loop):
    #: ``trials`` (ask, evaluate a batch, tell) or ``supernet`` (train shared weights and
    #: reward candidates epoch by epoch).
    search: ClassVar[str] = "trials"
    #: What each metric this evaluator reports (trial and ``final_metrics``) is, with its
    #: unit and where it was measured, for readers of exports (the model card). The names
    #: here mean the same for every evaluator; a subclass adds the names of its own.
    metric_notes: ClassVar[Mapping[str, str]] = {
        "val_accuracy": "validation accuracy (%): the search's estimate",
        "test_accuracy": "test accuracy (%) on held-out data the search never saw",
        "train_loss": "mean training loss of the last epoch",
    }
    #: The search itself learns the weights of the architecture it returns, its forward pass
    #: included (``learned_weights`` answers them: the gradient-based meta-learners);
    #: otherwise only a retraining does. (The metric-based learners' and pretrain's
    #: ``learned_weights`` are an embedding: the network less its N-way classifier, which
    #: they never train.)
    learns_weights: ClassVar[bool] = False
    #: Intermediate values of running trials go here when set (the service stores them);
    #: evaluators that train per trial call it after each epoch.
    report: ReportFn | None = None
    #: Called between the steps of a long training (each meta-iteration) when set: the
    #: search loop's raises when the search must stop now (a cancel, a server shutdown),
    #: so that a trial stops within a step rather than at its next ``report``.
    poll: Callable[[], None] | None = None

    @classmethod
    def learns_graph(cls, params: Mapping[str, Any]) -> bool:
        """Whether a search with these evaluator ``params`` learns weights that a graph
        export (TorchScript, ONNX) holds: the network's forward pass (``learns_weights``),
        or an embedding that each example passes through on its own (the metric-based
        learners and pretrain; not Matching Networks' full-context embeddings, whose LSTMs
        read a whole support set). A retraining's weights are another matter."""
        return cls.learns_weights

    @classmethod
    def spec_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """What in ``spec`` this evaluator cannot work with: its dataset and space (see
        ``data_problems``), objective metrics it does not report, constraints it cannot
        check, several objectives, a simulated-time budget."""
        from nas.evaluators import EVALUATORS

        problems = cls.data_problems(spec)
        reported = cls.spec_metrics(spec)
        objective = spec.objective
        metrics: list[tuple[tuple[Any, ...], str]] = (
            [(("objective", "metric"), objective.metric)]
            if objective.metrics is None
            else [(("objective", "metrics", i), m) for i, m in enumerate(objective.metrics)]
        )
        # What it reports depends on the dataset: with one it cannot take, a metric is
        # checked against all it may report (MAML's default objective on mnist1d was said
        # not reported, valid: meta_val_mse..., a list for a dataset the user never wrote).
        if any(loc[:1] == ("dataset",) for loc, _ in problems):
            reported = list(dict.fromkeys((*reported, *cls.trial_metrics())))
        for loc, metric in metrics:
            if metric not in reported:
                problems.append(
                    (
                        loc,
                        (
                            f"evaluator {cls.name!r} does not report {metric!r}; "
                            f"valid: {', '.join(reported)}"
                        ),
                    )
                )
        if objective.constraints is not None:
            for key in objective.constraints.limits():
                if key not in cls.constraint_keys:
                    able = [n for n in EVALUATORS if key in EVALUATORS.get(n).constraint_keys]
                    can = ", ".join(cls.constraint_keys) or "none"
                    problems.append(
                        (
                            ("objective", "constraints", key),
                            (
                                f"evaluator {cls.name!r} cannot check {key} before training "
                                f"(it can check: {can}); evaluators that can: {', '.join(able)}"
                            ),
                        )
                    )
        if objective.is_multi and not cls.multi_objective:
            able = [n for n in EVALUATORS if EVALUATORS.get(n).multi_objective]
            problems.append(
                (
                    ("objective", "metrics"),
                    (
                        f"evaluator {cls.name!r} ranks architectures by one reward; several "
                        f"objectives need evaluator {' or '.join(able)}"
                    ),
                )
            )
        if spec.budget.simulated_seconds is not None and not cls.simulates_cost:
            able = [n for n in EVALUATORS if EVALUATORS.get(n).simulates_cost]
            problems.append(
                (
                    ("budget", "simulated_seconds"),
                    f"only {' and '.join(able)} evaluators simulate training time",
                )
            )
        return problems

    @classmethod
    def metric_description(cls, name: str, params: Mapping[str, Any]) -> str | None:
        """What the metric ``name`` of a job with evaluator parameters ``params`` is (unit,
        where measured); ``None`` when this evaluator does not describe it. The default:
        ``metric_notes``."""
        return cls.metric_notes.get(name)

    #: The direction of the metrics whose better end is known (a spec that names the
    #: metric but no direction takes it; ``metric_direction``).
    metric_directions: ClassVar[Mapping[str, Literal["maximize", "minimize"]]] = {
        "val_accuracy": "maximize",
        "test_accuracy": "maximize",
        "train_loss": "minimize",
        "params": "minimize",
        "flops": "minimize",
    }

    @classmethod
    def default_objective(
        cls, dataset: str, params: Mapping[str, Any]
    ) -> tuple[str, Literal["maximize", "minimize"]]:
        """The objective of a spec that names none (``metric``, ``direction``): this
        evaluator's reward on ``dataset`` with its (unvalidated) ``params``. The default:
        validation accuracy, maximized."""
        return "val_accuracy", "maximize"

    @classmethod
    def metric_direction(cls, metric: str) -> Literal["maximize", "minimize"] | None:
        """Which end of ``metric`` is better, where known (``metric_directions``)."""
        return cls.metric_directions.get(metric)

    @classmethod
    def spec_metrics(cls, spec: JobSpec) -> tuple[str, ...]:
        """The metrics this evaluator reports for ``spec``: ``metrics``, unless its
        parameters choose them (the ``table`` evaluator reports the columns it is given)."""
        return cls.metrics

    @classmethod
    def trial_metrics(cls) -> tuple[str, ...]:
        """The metric names its trials may hold whatever the spec: ``metrics``,
        ``extra_metrics`` and the figures of its ``constraint_keys`` (what a trial pruned by
        a constraint holds), each once."""
        figures = (CONSTRAINTS[key] for key in cls.constraint_keys)
        return tuple(dict.fromkeys((*cls.metrics, *cls.extra_metrics, *figures)))

    @classmethod
    def listed_metrics(
        cls, params: Mapping[str, Any], dataset: str | None = None
    ) -> tuple[str, ...]:
        """The metric names a trial may hold with these (stored) evaluator ``params`` on
        ``dataset`` (``None``: any), what a trial listing sorts by: ``trial_metrics``, unless
        the parameters or the dataset choose them."""
        return cls.trial_metrics()

    @classmethod
    def data_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """The dataset and space this evaluator cannot work with. The default is that of an
        evaluator that trains networks: a dataset with arrays, a trainable space (with a
        supernet when ``needs_supernet``)."""
        from nas.datasets import DATASETS
        from nas.evaluators import EVALUATORS
        from nas.spaces import SPACES

        problems: list[SpecProblem] = []
        dataset, space = spec.dataset.name, SPACES.get(spec.space.name)
        if DATASETS.get(dataset).tabular is not None:
            readers = [n for n in EVALUATORS if not EVALUATORS.get(n).trains_networks]
            problems.append(
                (
                    ("dataset", "name"),
                    f"{dataset!r} is a table; use evaluator {' or '.join(readers)}",
                )
            )
        elif DATASETS.get(dataset).tasks is not None:
            learners = [n for n in EVALUATORS if EVALUATORS.get(n).meta_learning]
            problems.append(
                (
                    ("dataset", "name"),
                    (
                        f"{dataset!r} is a task distribution for few-shot meta-learning, not "
                        f"arrays to train on; use evaluator {', '.join(learners)}"
                    ),
                )
            )
        if not space.trainable:
            trainable = [n for n in SPACES if SPACES.get(n).trainable]
            problems.append(
                (
                    ("space", "name"),
                    (
                        f"evaluator {cls.name!r} trains networks; space {space.name!r} has no "
                        f"trainable network here (valid: {', '.join(trainable)})"
                    ),
                )
            )
        elif cls.needs_supernet and not space.has_supernet:
            with_supernet = [n for n in SPACES if SPACES.get(n).has_supernet]
            without = [
                n
                for n in EVALUATORS
                if EVALUATORS.get(n).trains_networks and not EVALUATORS.get(n).needs_supernet
            ]
            problems.append(
                (
                    ("evaluator", "name"),
                    (
                        f"space {space.name!r} has no shared-weight supernet; use evaluator "
                        f"{' or '.join(without)}, or a space with one: {', '.join(with_supernet)}"
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
        """What a submit can afford to check of the files this evaluator reads with these
        (validated ``evaluator:``) parameters, or of the dataset's files as this evaluator
        uses them, raising the error the job would meet when it starts. The default: nothing
        to check."""

    @classmethod
    @abstractmethod
    def from_spec(
        cls,
        *,
        dataset: str,
        dataset_params: Mapping[str, Any],
        space: SearchSpace,
        params: Mapping[str, Any],
        seed: int,
    ) -> Evaluator:
        """Build from a resolved job spec (``params`` is the validated ``evaluator:`` section)."""

    @abstractmethod
    def evaluate(
        self,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TrialResult]:
        """One result per architecture, in order."""

    @property
    def deterministic(self) -> bool:
        """True when this evaluator gives the same result every time for the same
        architecture and hyperparameters (in one job: same seed, same data), so a controller
        may reuse a told result instead of asking for it again
        (``Controller.deterministic_evaluator``). False unless an evaluator declares it."""
        return False

    def constraint_figures(
        self, archs: Sequence[Architecture], figures: Sequence[str]
    ) -> list[dict[str, float]]:
        """``figures`` (``params``, ``flops``, ``latency_ms``: see ``nas.constraints``) of each
        architecture, found without training it. Evaluators that list ``constraint_keys``
        implement this."""
        raise NotImplementedError(f"evaluator {self.name!r} cannot check constraints")

    def check_constraints(
        self, archs: Sequence[Architecture], constraints: Mapping[str, float | None]
    ) -> list[tuple[str | None, dict[str, float]]]:
        """For each architecture: ``None`` when it satisfies ``constraints`` (the spec's
        ``objective.constraints``, unset ones ``None``), else why not; with the figures
        measured. Runs before ``evaluate``, so an infeasible candidate costs no training."""
        active = {k: v for k, v in constraints.items() if v is not None}
        if not active or not archs:
            return [(None, {}) for _ in archs]
        from nas.constraints import CONSTRAINTS, verdict

        needed = sorted({CONSTRAINTS[k] for k in active})
        measured = self.constraint_figures(archs, needed)
        return [(verdict(figures, active), figures) for figures in measured]

    def final_metrics(
        self, arch: Architecture, hparams: Mapping[str, Any] | None = None
    ) -> dict[str, float]:
        """Held-out figures (test accuracy) for the architecture a search returns, with the
        ``hparams`` of the trial that made it the best (evaluators whose figures depend on
        them: the meta-learning ones). Never shown to a controller."""
        return {}

    def final_metrics_work(self) -> str | None:
        """What ``final_metrics`` does when it takes a while, as a phrase for the job's
        reason and ``nas search``'s output while it runs; ``None`` (the default) when it is
        a look-up."""
        return None

    def learned_weights(
        self, arch: Architecture, hparams: Mapping[str, Any] | None = None
    ) -> bytes | None:
        """The weights the search itself learned for the architecture it returns, as a
        file's bytes, or ``None`` (the default: weights come from a ``final:`` retraining).
        The gradient-based meta-learning evaluators answer the meta-learned initialisation
        (``nas.metalearning.MetaWeights``), which the search stores as a file of its run
        and its exports use; called after ``final_metrics`` for the same architecture."""
        return None

    def learned_weights_ready(self, arch: Architecture) -> bool:
        """Whether ``learned_weights(arch)`` answers at once, without learning anything
        again (what a search stopped by Ctrl-C may still ask for); the default's ``None``
        always does."""
        return True

    def memory(self) -> list[dict[str, Any]] | None:
        """What this evaluator keeps from the trials it evaluated that judges later ones (a
        pruner's record of each: its verdict and intermediate values), one plain-data entry
        per trial in the order evaluated; ``None`` (the default) when it keeps nothing. The
        search loop checkpoints it and hands it back with ``restore_memory`` on resume, and
        gives its copy to each Ray task, so a trial is judged against the same earlier
        trials wherever it runs."""
        return None

    def restore_memory(self, memory: Sequence[Mapping[str, Any]]) -> None:
        """Make the evaluator's memory exactly ``memory`` (an earlier ``memory()``)."""
        if memory:
            raise ValueError(f"evaluator {self.name!r} keeps no memory of its trials")

    def trial_checkpoint(self) -> bytes | None:
        """Asked from inside ``report`` while a trial runs in this process: the trial's state
        as it is now, from which ``resume_trial`` makes a later evaluation of the same
        candidate go on instead of starting over (the meta-learning evaluators: at the end
        of each meta-epoch). ``None`` (the default): the trial cannot be resumed part-way;
        after a crash it is redone whole."""
        return None

    def resume_trial(self, data: bytes) -> None:
        """Make the next ``evaluate`` of the candidate whose ``trial_checkpoint`` was ``data``
        continue from it (another candidate starts from scratch)."""
        raise ValueError(f"evaluator {self.name!r} does not resume trials part-way")

"""``StandaloneEvaluator``: train each candidate from scratch and score it on validation data."""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field

from nas.architecture import Architecture
from nas.datasets import DatasetSplits, load_dataset
from nas.evaluators.base import RETRAINING_METRICS, Evaluator, EvaluatorConfig, ReportFn
from nas.hparams import TRAINING_HPARAMS
from nas.models import count_parameters
from nas.pruning import PrunerConfig, Pruning, PruningTrial, TrialPruned
from nas.spaces.base import SearchSpace
from nas.spec import DeviceSetting
from nas.training import (
    DEPENDENT_SETTINGS,
    DivergedError,
    TrainRecipe,
    accuracy,
    configure_cpu_threads,
    count_flops,
    select_device,
    to_tensors,
    train_from_scratch,
    unused_settings,
)
from nas.trial import TrialResult, TrialState

if TYPE_CHECKING:
    from nas.spec import JobSpec, SpecProblem


class StandaloneConfig(EvaluatorConfig):
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(128, ge=1, le=65_536)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(0.0, ge=0, le=1)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    momentum: float = Field(0.9, ge=0, le=1, description="SGD's momentum (Nesterov when > 0)")
    loss: Literal["cross_entropy", "label_smoothing", "focal"] = "cross_entropy"
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="cross-entropy's smoothing (loss label_smoothing: 0.1 if 0)"
    )
    focal_gamma: float = Field(2.0, ge=0, le=20, description="loss focal's gamma")
    device: DeviceSetting = "auto"
    #: MetaQNN's recipe: a model no better than chance after its first epoch is trained again
    #: from the start with the learning rate times ``restart_factor``, at most
    #: ``max_restarts`` times (Baker et al. 2017: 0.4 and 5).
    restart_below_chance: bool = False
    restart_factor: float = Field(0.4, gt=0, lt=1)
    max_restarts: int = Field(5, ge=0, le=20)
    #: Early stopping by an Optuna pruner from each epoch's validation accuracy
    #: (``nas.pruning``); unset or ``{name: none}``: every trial trains all its epochs.
    pruner: PrunerConfig | None = None


def _out_of_cpu_memory(exc: BaseException) -> bool:
    """``exc`` says that memory ran out on the CPU (torch's allocator, or Python's), or
    would have (``nas.training.TooLargeError``, a ``MemoryError``)."""
    return isinstance(exc, MemoryError) or "can't allocate memory" in str(exc)


class _BelowChance(Exception):
    """The first epoch ended no better than chance: restart with a smaller learning rate."""


class StandaloneEvaluator(Evaluator):
    """Builds each architecture as a standalone network, trains it for ``epochs`` on the
    training split and reports validation accuracy (percent), parameters and FLOPs.

    A trial whose loss diverges or that runs out of memory becomes a FAIL result with its
    cause; the search goes on.

    Joint search: a candidate's hyperparameters named in ``nas.hparams.TRAINING_HPARAMS``
    (optimizer, lr, lr_schedule, weight_decay, momentum, batch_size, epochs, loss,
    label_smoothing, focal_gamma) override this evaluator's recipe for that trial; other
    names are the user's own and only recorded. The per-trial seed depends on the
    architecture alone, so two trials of one architecture differ only by their recipes.
    """

    name = "standalone"
    Config = StandaloneConfig
    metrics = ("val_accuracy", "train_loss", "params", "flops")
    extra_metrics = ("lr_restarts", "epochs_trained", *RETRAINING_METRICS)
    hparam_keys = tuple(TRAINING_HPARAMS)
    constraint_keys = ("max_params", "max_flops", "max_latency_ms")
    metric_notes: ClassVar[Mapping[str, str]] = {
        **Evaluator.metric_notes,
        "params": (
            "parameters of the network the trial trained (protonet, matching: its embedding, "
            "without the N-way classifier an export adds; pretrain: with a classifier over "
            "every meta-training class instead of it)"
        ),
        "flops": (
            "FLOPs per example of the trial's network (multiplies and adds counted "
            "separately: twice its MACs)"
        ),
        "lr_restarts": "times the trial restarted training with a lower learning rate",
        "epochs_trained": "epochs trained before the trial was pruned",
    }

    def __init__(
        self,
        *,
        space: SearchSpace,
        data: DatasetSplits,
        recipe: TrainRecipe,
        device: str = "auto",
        seed: int = 0,
        report: ReportFn | None = None,
        restart_below_chance: bool = False,
        restart_factor: float = 0.4,
        max_restarts: int = 5,
        pruner: PrunerConfig | None = None,
    ) -> None:
        self.space = space
        self.restart_below_chance = restart_below_chance
        self.restart_factor = restart_factor
        self.max_restarts = max_restarts
        self.data = data
        self.recipe = recipe
        self.device = select_device(device)
        if self.device.type == "cpu":
            configure_cpu_threads()
        self.seed = seed
        self.report = report
        self.pruning = (
            Pruning(pruner, max_resource=recipe.epochs, seed=seed)
            if pruner is not None and pruner.name != "none"
            else None
        )
        self._train = to_tensors(data.x_train, data.y_train, self.device)
        self._valid = to_tensors(data.x_valid, data.y_valid, self.device)

    @classmethod
    def from_spec(
        cls,
        *,
        dataset: str,
        dataset_params: Mapping[str, Any],
        space: SearchSpace,
        params: Mapping[str, Any],
        seed: int,
    ) -> StandaloneEvaluator:
        params = dict(params)
        device = params.pop("device", "auto")
        pruner = params.pop("pruner", None)
        restart = {
            key: params.pop(key)
            for key in ("restart_below_chance", "restart_factor", "max_restarts")
            if key in params
        }
        data = load_dataset(dataset, seed=seed, **dataset_params)
        return cls(
            space=space,
            data=data,
            recipe=TrainRecipe(**params),
            device=device,
            seed=seed,
            pruner=PrunerConfig.model_validate(pruner) if pruner is not None else None,
            **restart,
        )

    @classmethod
    def spec_problems(cls, spec: JobSpec) -> list[SpecProblem]:
        """The base checks, and settings that the rest of the recipe would ignore: a
        ``focal_gamma`` without the focal loss, smoothing with it, ``momentum`` without SGD,
        restart settings without ``restart_below_chance``, a pruner whose epochs lie past the
        trials' (unless the ``hparams:`` section searches what they depend on). A value
        equal to its default passes: a stored spec, defaults filled in, submits again."""
        problems = super().spec_problems(spec)
        config = StandaloneConfig.model_validate(spec.evaluator.params)
        searched = set(spec.hparams or ())
        default = {name: f.default for name, f in StandaloneConfig.model_fields.items()}

        def ignored(name: str, because: str) -> None:
            if getattr(config, name) != default[name]:
                problems.append((("evaluator", name), f"{because}; got {getattr(config, name)}"))

        for name, because in unused_settings(config, searched):
            ignored(name, because)
        # A searched setting that no trial's recipe would use (momentum with every trial on
        # adam): accepted, recorded per trial, and never used (the probe of the evaluators).
        for name, (parent, uses, because) in DEPENDENT_SETTINGS.items():
            values = _parent_values(spec.hparams, name, parent, getattr(config, parent))
            if name in searched and values is not None and not values & uses:
                told = ", ".join(str(v) for v in sorted(values, key=str))
                text = (
                    f"{because}, and the trials' {parent} is {told}: every trial would ignore "
                    f"the {name} searched; search {parent} too, with "
                    f"{' or '.join(sorted(uses))} among its choices, or set evaluator.{parent}"
                )
                problems.append((("hparams", name), text))
        if not config.restart_below_chance:
            for name in ("restart_factor", "max_restarts"):
                ignored(name, f"{name} applies with restart_below_chance: true only")
        pruner, epochs = config.pruner, config.epochs
        objective = spec.objective
        if (
            pruner is not None
            and pruner.name != "none"
            and (
                objective.is_multi
                or objective.metric != "val_accuracy"
                or objective.direction != "maximize"
            )
        ):
            # (with direction minimize, or objective params, it pruned the trials the
            # search was after, and the job said nothing)
            sought = ", ".join(f"{m} ({d})" for m, d in objective.objectives)
            problems.append(
                (
                    ("evaluator", "pruner"),
                    (
                        f"a pruner stops trials whose validation accuracy lags, higher being "
                        f"better; this job seeks {sought}: it would stop the trials sought. "
                        "Use the pruner with objective val_accuracy, maximize, or leave it out"
                    ),
                )
            )
        # With epochs searched (hparams), against the most epochs a trial may train: a
        # pruner that none of them reaches was accepted without a word.
        most, searched_epochs = epochs, "epochs" in searched
        if searched_epochs:
            most = _most_epochs(spec.hparams)
        if pruner is not None and most is not None:
            epochs = most
            of = f"epochs ({epochs}{', the most hparams.epochs takes' if searched_epochs else ''})"
            if pruner.min_resource is not None and pruner.min_resource > epochs:
                problems.append(
                    (
                        ("evaluator", "pruner", "min_resource"),
                        (
                            f"{pruner.min_resource} exceeds {of}: no trial would reach the "
                            f"first rung; at most {epochs}"
                        ),
                    )
                )
            if pruner.max_resource is not None and pruner.max_resource > epochs:
                problems.append(
                    (
                        ("evaluator", "pruner", "max_resource"),
                        (
                            f"{pruner.max_resource} is beyond the trials' {of}: Hyperband "
                            f"would plan rungs no trial reaches; at most {epochs}"
                        ),
                    )
                )
            if pruner.n_warmup_steps is not None and pruner.n_warmup_steps >= epochs:
                problems.append(
                    (
                        ("evaluator", "pruner", "n_warmup_steps"),
                        (
                            f"{pruner.n_warmup_steps} warm-up epochs of {of}: the pruner would "
                            f"never prune; at most {epochs - 1}"
                        ),
                    )
                )
        return problems

    @property
    def deterministic(self) -> bool:
        """A trial's weights, minibatch order and dropout follow from (job seed,
        architecture) and its recipe from its hyperparameters, so one configuration trains
        the same every time (up to the order of floating-point sums: thread count, GPU
        kernels); not with a pruner, which judges a trial against those told before it."""
        return self.pruning is None

    def memory(self) -> list[dict[str, Any]] | None:
        """The pruner's record of the trials it judged (``Pruning.memory``); none without."""
        return self.pruning.memory() if self.pruning is not None else None

    def restore_memory(self, memory: Sequence[Mapping[str, Any]]) -> None:
        if self.pruning is None:
            super().restore_memory(memory)
        else:
            self.pruning.restore(memory)

    def trial_seed(self, arch: Architecture) -> int:
        """Deterministic per (job seed, architecture): the same architecture trains the same."""
        return zlib.crc32(f"{self.seed}:{arch.key}".encode())

    def evaluate(
        self,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[TrialResult]:
        per_trial = list(hparams) if hparams is not None else [{}] * len(archs)
        if len(per_trial) != len(archs):
            raise ValueError(f"{len(archs)} architectures but {len(per_trial)} hparams")
        return [
            self._evaluate_one(i, arch, self.recipe.with_hparams(hp))
            for i, (arch, hp) in enumerate(zip(archs, per_trial, strict=True))
        ]

    def constraint_figures(
        self, archs: Sequence[Architecture], figures: Sequence[str]
    ) -> list[dict[str, float]]:
        """Builds each untrained network (global RNG untouched) and measures it on this
        evaluator's device: parameters, FLOPs and batch-1 latency (``nas.constraints``)."""
        from nas.constraints import measure_architectures

        return measure_architectures(
            self.space, archs, self.data.input_shape, self.data.num_classes, self.device, figures
        )

    def _evaluate_one(self, index: int, arch: Architecture, recipe: TrainRecipe) -> TrialResult:
        if self.device.type == "cpu":
            configure_cpu_threads()  # the cores free now (measured at most every 30 s)
        started = time.perf_counter()
        pruning = self.pruning.begin() if self.pruning is not None else None
        try:
            result = self._train_one(index, arch, recipe, started, pruning)
        except BaseException:
            if pruning is not None:
                pruning.fail()
            raise
        if pruning is not None:
            if result.state is TrialState.COMPLETE:
                assert result.objective is not None
                pruning.complete(result.objective)
            else:
                pruning.fail()  # a no-op when the pruner itself stopped the trial
        return result

    def _train_one(
        self,
        index: int,
        arch: Architecture,
        recipe: TrainRecipe,
        started: float,
        pruning: PruningTrial | None,
    ) -> TrialResult:
        last: dict[str, Any] = {}

        # Intermediate values' and the pruner's steps are epochs trained (1, 2, ...);
        # ``epoch`` counts from 0.
        def on_epoch(epoch: int, loss: float) -> None:
            last["loss"] = loss
            if self.report is not None and pruning is None:
                self.report(index, epoch + 1, {"train_loss": loss})

        # Chance: always answering the most frequent validation class.
        labels = self._valid[1]
        chance = 100.0 * float(torch.bincount(labels).max()) / max(1, len(labels))
        restarts = 0
        may_restart = False

        def check(epoch: int, model: torch.nn.Module) -> None:
            if pruning is None:
                if epoch == 0 and accuracy(model, *self._valid) <= chance:
                    raise _BelowChance
                return
            acc = accuracy(model, *self._valid)
            if self.report is not None:
                self.report(index, epoch + 1, {"val_accuracy": acc, "train_loss": last["loss"]})
            if may_restart and epoch == 0 and acc <= chance:
                raise _BelowChance  # before the pruner hears of this run
            last["model"] = model
            # A trial that trained all its epochs completes: the pruner is not asked then.
            pruning.report(epoch + 1, acc, final=epoch + 1 == recipe.epochs)

        try:
            while True:
                may_restart = self.restart_below_chance and restarts < self.max_restarts
                try:
                    model, loss = train_from_scratch(
                        self.space,
                        arch,
                        self.data.input_shape,
                        self.data.num_classes,
                        self._train,
                        recipe,
                        seed=self.trial_seed(arch),
                        device=self.device,
                        on_epoch=on_epoch,
                        check_epoch=check if may_restart or pruning is not None else None,
                    )
                    break
                except _BelowChance:
                    restarts += 1
                    recipe = replace(recipe, lr=recipe.lr * self.restart_factor)
        except TrialPruned as exc:
            model = last["model"]
            model.eval()
            assert pruning is not None and pruning.last_value is not None
            return TrialResult(
                TrialState.PRUNED,
                metrics={
                    "val_accuracy": pruning.last_value,
                    "train_loss": last["loss"],
                    "params": float(count_parameters(model)),
                    "lr_restarts": float(restarts),
                    "flops": float(count_flops(model, self.data.input_shape, self.device)),
                    "epochs_trained": float(exc.step),
                },
                cost_s=time.perf_counter() - started,
                error=str(exc),
            )
        except DivergedError as exc:
            return TrialResult.failed(f"diverged: {exc}", cost_s=time.perf_counter() - started)
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            return TrialResult.failed(f"out of memory: {exc}", cost_s=time.perf_counter() - started)
        except (RuntimeError, MemoryError) as exc:
            # The CPU's allocator raises a plain RuntimeError: it failed the whole job (and
            # `nas search` with a traceback) where the trial alone should have
            if not _out_of_cpu_memory(exc):
                raise
            return TrialResult.failed(f"out of memory: {exc}", cost_s=time.perf_counter() - started)
        val = accuracy(model, *self._valid)
        return TrialResult(
            TrialState.COMPLETE,
            objective=val,
            metrics={
                "val_accuracy": val,
                "train_loss": loss,
                "params": float(count_parameters(model)),
                "lr_restarts": float(restarts),
                "flops": float(count_flops(model, self.data.input_shape, self.device)),
            },
            cost_s=time.perf_counter() - started,
        )


def _parent_values(
    hparams: Mapping[str, Any] | None, name: str, parent: str, fixed: Any
) -> set[Any] | None:
    """The values the recipe's ``parent`` (``fixed``, the evaluator's, unless ``hparams``
    searches it) takes in the trials where the searched ``name`` is active (a condition on
    ``parent`` narrows them); ``None`` when the section is invalid (said at its own fields)
    or ``name`` is not searched."""
    from nas.hparams import CategoricalParam, HparamSpace

    space, problems = HparamSpace.parse(hparams or {})
    if problems or name not in space.params:
        return None
    target = space.params.get(parent)
    if target is None:
        values = {fixed}
    elif isinstance(target, CategoricalParam):
        values = set(target.choices)
        if target.condition is not None:  # where it is inactive, the evaluator's holds
            values.add(fixed)
    else:
        return None
    condition = space.params[name].condition
    if condition is not None and condition.param == parent:
        values &= set(condition.values)
    return values


def _most_epochs(hparams: Mapping[str, Any] | None) -> int | None:
    """The most epochs ``hparams.epochs`` lets a trial train (``None`` when the section is
    invalid, which is said at its own fields)."""
    from nas.hparams import CategoricalParam, HparamSpace

    space, problems = HparamSpace.parse(hparams or {})
    param = None if problems else space.params.get("epochs")
    if param is None:
        return None
    if isinstance(param, CategoricalParam):
        numbers = [c for c in param.choices if isinstance(c, int) and not isinstance(c, bool)]
        return max(numbers) if numbers else None
    return int(param.high)

"""Early stopping of trained trials from their intermediate values, by Optuna's pruners.

A ``Pruning`` keeps an in-memory Optuna study (maximize; the configured pruner; a
``RandomSampler`` that never suggests anything): each evaluated trial is one ``study.ask()``,
each epoch's validation accuracy one ``trial.report(value, step)`` then ``should_prune()``;
a completed trial is told its final accuracy, a pruned one PRUNED, a failed one FAIL.

Steps are epochs trained (1, 2, ...), so a pruner's resources are epochs: successive halving
and Hyperband with ``min_resource`` 1 judge a trial first after its first epoch. The median
pruner's ``n_warmup_steps`` is the number of epochs during which it never prunes (0: it may
prune after the first epoch).

The study lives in memory, in the evaluator, one per search. Its record of the trials told
(``memory``: each trial's verdict, intermediate values and the pruner's own marks, as plain
data) is what the search loop checkpoints and hands back (``restore``) when the search
resumes, and what a Ray task's evaluator is given before it trains, so a trial is judged
against the same earlier trials whichever process runs it and however often the search
stopped.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["PRUNERS", "PrunerConfig", "Pruning", "PruningTrial", "TrialMemory", "TrialPruned"]

#: One told trial as the pruner reads it (``Pruning.memory``): ``state`` (COMPLETE, PRUNED,
#: FAIL), a completed trial's ``value`` and (median) its ``steps`` (``[[epoch, value],
#: ...]``), and the pruner's ``marks`` (Optuna system attributes: successive halving's and
#: Hyperband's completed rungs).
TrialMemory = dict[str, Any]

PrunerName = Literal["median", "successive_halving", "hyperband", "none"]

#: The options each pruner takes (others set in the spec are an error).
PRUNERS: dict[str, tuple[str, ...]] = {
    "median": ("n_startup_trials", "n_warmup_steps"),
    "successive_halving": ("min_resource", "reduction_factor"),
    "hyperband": ("min_resource", "max_resource", "reduction_factor"),
    "none": (),
}


class PrunerConfig(BaseModel):
    """The standalone evaluator's ``pruner:`` section. Unset options take these defaults:
    median ``n_startup_trials`` 5, ``n_warmup_steps`` 0; successive halving ``min_resource``
    1, ``reduction_factor`` 4; Hyperband ``min_resource`` 1, ``max_resource`` the
    evaluator's ``epochs``, ``reduction_factor`` 3."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PrunerName
    n_startup_trials: int | None = Field(
        None, ge=0, le=100_000, description="median: completed trials before it prunes"
    )
    n_warmup_steps: int | None = Field(
        None, ge=0, le=10_000, description="median: epochs of each trial it never prunes"
    )
    min_resource: int | None = Field(
        None, ge=1, le=10_000, description="successive halving / Hyperband: first rung (epochs)"
    )
    max_resource: int | None = Field(
        None, ge=1, le=10_000, description="Hyperband: most epochs (default: epochs)"
    )
    reduction_factor: int | None = Field(
        None, ge=2, le=100, description="successive halving / Hyperband: rung ratio"
    )

    @model_validator(mode="after")
    def _options_fit(self) -> PrunerConfig:
        allowed = PRUNERS[self.name]
        stray = [k for k in PRUNERS["hyperband"] + PRUNERS["median"] if k not in allowed]
        stray = [k for k in stray if getattr(self, k) is not None]
        if stray:
            takes = ", ".join(allowed) or "no options"
            raise ValueError(
                f"{', '.join(stray)} do(es) not apply to the {self.name} pruner (it takes: {takes})"
            )
        if (
            self.min_resource is not None
            and self.max_resource is not None
            and self.min_resource > self.max_resource
        ):
            raise ValueError("min_resource must not exceed max_resource")
        return self


class TrialPruned(Exception):
    """The pruner stopped this trial after ``step`` epochs."""

    def __init__(self, step: int, pruner: str) -> None:
        super().__init__(f"pruned at epoch {step} by the {pruner.replace('_', ' ')} pruner")
        self.step = step
        self.pruner = pruner


@contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's INFO logs and experimental-feature warnings, silenced."""
    import optuna

    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        logger.setLevel(level)


class PruningTrial:
    """One evaluated trial's handle: ``report`` each epoch, then exactly one of
    ``complete``, ``pruned`` (done by ``report`` itself when it raises) or ``fail``."""

    def __init__(self, owner: Pruning, trial: Any) -> None:
        self._owner = owner
        self._trial = trial
        self._done = False
        self.last_value: float | None = None
        self.last_step = 0

    def report(self, step: int, value: float, *, final: bool = False) -> None:
        """Report the value after ``step`` epochs; raises ``TrialPruned`` (and tells the study
        PRUNED) when the pruner stops the trial here. ``final``: the trial's last epoch, after
        which it completes whatever the pruner would say (nothing is left to save), so the
        pruner is not asked."""
        if self._done:
            return
        self.last_value = float(value)
        self.last_step = step
        with _quiet():
            self._trial.report(float(value), step)
            prune = not final and self._trial.should_prune()
        if prune:
            self._tell("PRUNED")
            raise TrialPruned(step, self._owner.name)

    def complete(self, value: float) -> None:
        self._tell("COMPLETE", float(value))

    def fail(self) -> None:
        self._tell("FAIL")

    def _tell(self, state: str, value: float | None = None) -> None:
        if self._done:
            return
        from optuna.trial import TrialState as OptunaState

        self._done = True
        with _quiet():
            if state == "COMPLETE":
                told = self._owner.study.tell(self._trial, value)
            else:
                told = self._owner.study.tell(self._trial, state=getattr(OptunaState, state))
        self._owner._remember(told)


class Pruning:
    """The pruner bridge: one in-memory study per evaluator (see the module's docstring)."""

    def __init__(self, config: PrunerConfig, *, max_resource: int, seed: int = 0) -> None:
        if config.name == "none":
            raise ValueError("pruner 'none' prunes nothing: build no Pruning")
        self.name = config.name
        self.config = config
        self._max_resource = max_resource
        self._seed = seed
        self._memory: list[TrialMemory] = []
        self._study: Any = None  # built from ``_memory`` when first needed

    @property
    def study(self) -> Any:
        """The Optuna study holding every trial of ``memory`` (rebuilt after ``restore``)."""
        if self._study is None:
            import optuna

            with _quiet():
                # A fixed name: Hyperband assigns brackets by a hash of name and trial number.
                study = optuna.create_study(
                    study_name="nas-pruning",
                    direction="maximize",
                    pruner=self._make_pruner(self.config, self._max_resource),
                    sampler=optuna.samplers.RandomSampler(seed=self._seed),
                )
                study.add_trials([_frozen(m) for m in self._memory])
            self._study = study
        return self._study

    def memory(self) -> list[TrialMemory]:
        """Every trial told so far, in order, as plain data (see ``TrialMemory``)."""
        return list(self._memory)

    def restore(self, memory: Sequence[Mapping[str, Any]]) -> None:
        """Make the study hold exactly ``memory``'s trials (a checkpoint's, or the search
        loop's copy handed to a Ray task); nothing is rebuilt when it already does."""
        memory = [dict(m) for m in memory]
        if memory != self._memory:
            self._memory = memory
            self._study = None

    def _remember(self, trial: Any) -> None:
        """Keep what the pruner reads of a told trial, and no more (the memory is stored
        with every checkpoint): the median pruner reads the intermediate values of
        completed trials only, successive halving and Hyperband their marks (each rung's
        value) of every trial, none the value of a trial that did not complete."""
        memory: TrialMemory = {"state": trial.state.name}
        if trial.state.name == "COMPLETE":
            memory["value"] = float(trial.value)
            if self.name == "median":
                steps = sorted(trial.intermediate_values.items())
                memory["steps"] = [[int(k), float(v)] for k, v in steps]
        if trial.system_attrs:
            memory["marks"] = dict(trial.system_attrs)
        self._memory.append(memory)

    @staticmethod
    def _make_pruner(config: PrunerConfig, max_resource: int) -> Any:
        import optuna

        def opt(key: str, default: int) -> int:
            value = getattr(config, key)
            return default if value is None else value

        if config.name == "median":
            # Optuna's steps here are epochs trained (from 1): ``step < n_warmup_steps + 1``
            # keeps the first ``n_warmup_steps`` epochs unpruned.
            return optuna.pruners.MedianPruner(
                n_startup_trials=opt("n_startup_trials", 5),
                n_warmup_steps=opt("n_warmup_steps", 0) + 1,
            )
        if config.name == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=opt("min_resource", 1),
                reduction_factor=opt("reduction_factor", 4),
            )
        min_resource = opt("min_resource", 1)
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource,
            max_resource=max(min_resource, opt("max_resource", max_resource)),
            reduction_factor=opt("reduction_factor", 3),
        )

    def begin(self) -> PruningTrial:
        """A new trial of the study (nothing is suggested in it)."""
        with _quiet():
            return PruningTrial(self, self.study.ask())


def _frozen(memory: Mapping[str, Any]) -> Any:
    """A remembered trial as Optuna's ``FrozenTrial``, to add to a rebuilt study."""
    from optuna.trial import TrialState as OptunaState
    from optuna.trial import create_trial

    state = getattr(OptunaState, str(memory["state"]))
    value = memory.get("value")
    return create_trial(
        state=state,
        value=None if state is OptunaState.FAIL or value is None else float(value),
        intermediate_values={int(k): float(v) for k, v in memory.get("steps", ())},
        system_attrs=dict(memory.get("marks") or {}),
    )

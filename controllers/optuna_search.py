"""Optuna samplers behind the ask/tell contract: ``tpe``, ``cmaes``, ``gp``, ``nsga2``, ``qmc``,
``grid``.

Each architecture decision becomes one Optuna parameter named after the decision, over the
choice indices ``0..k-1``: a ``CategoricalDistribution`` for ``tpe``, ``gp`` (Hamming-type
kernel on categoricals), ``nsga2`` and ``grid``; an ``IntDistribution`` for ``cmaes`` (Optuna's
CMA-ES skips categoricals and would sample them at random; with ``with_margin`` its integer
handling does not get stuck on one value) and ``qmc`` (one QMC coordinate per decision, the
same uniform cut into ``k`` bins either way, and supported by every Optuna version).
``_propose`` is ``study.ask(fixed_distributions)``, ``_observe`` is ``study.tell`` with the
base class's larger-is-better score (the study maximizes); a failed or infeasible trial is
told as worse than every completed one (``_penalty``), a pruner's PRUNED trial as PRUNED.

Determinism and checkpoints: an ``optuna.Study`` is not plain data, so ``state_dict`` keeps
what Optuna's own storage keeps: every trial in order (choices, state, value and Optuna's
system attributes: CMA-ES's optimizer, NSGA-II's generation, GP's relative parameters...)
plus the study's system attributes (NSGA-II's parent populations, QMC's sample counter) and
the sampler seed. ``load_state_dict`` rebuilds an in-memory study from them with
``create_trial`` + ``add_trial``. (CMA-ES's optimizer is a hex-encoded pickle there, as in any
Optuna storage: load only checkpoints this service wrote.) Samplers also hold state outside
the storage (their RNGs, GP's kernel-fit warm start, TPE's search-space caches), which Optuna
cannot export; so each ask (and each tell) builds a fresh sampler seeded from (sampler seed,
trial number), and a restored controller asks exactly the candidates that the original
would. The cost: GP fits its kernel from the default start every time rather than from the
previous fit. ``qmc`` and ``grid`` keep one seed for the whole search (the scrambled
sequence, the grid's shuffled order), and their fresh samplers draw the same sequence from
where the study left it.

Joint search (an ``hparams`` space): the hyperparameters are suggested in the same Optuna
trial as the architecture, after it, named ``hparam:<name>``, each with its own distribution
(float / int with log scale and step, categorical); a conditional one is suggested only when
its condition holds, so the samplers see a define-by-run space (Optuna samples parameters
outside the common search space independently). ``grid`` cannot grid continuous values: it
grids the architectures and samples hyperparameters uniformly per candidate.

Repeats: where the evaluator is deterministic (``deterministic_evaluator``), a proposal whose
configuration completed before is told its recorded result at once (a study trial marked
``REUSED_ATTR``, no candidate) and the sampler asks again; after ``max_reuses_per_ask``
repeats in a row the study's next trial is a uniform architecture not yet evaluated
(``_fallback``), and a space whose every architecture completed is finished. So trial
numbers and candidate ids part (``_trial_of``); ``reused`` counts the repeats. On ``metaqnn``
many drawn combinations are one legal architecture: ``gp`` proposed one of them 13 times in
30 trials.

``max_pending`` bounds the candidates out at once (see ``controllers.evolution``): 1 for the
learning samplers, so each proposal sees every earlier result; unbounded for ``qmc`` and
``grid``, which learn nothing from results. Optuna's log messages and experimental-feature
warnings are silenced while these controllers call Optuna.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import TrialState as OptunaState
from optuna.trial import create_trial
from pydantic import Field

from controllers.base import Candidate, Controller, ControllerConfig, config_key
from nas.architecture import Architecture
from nas.trial import TrialResult, TrialState

#: Optuna parameter names of hyperparameters: ``hparam:lr`` (never an architecture decision's).
HP_PREFIX = "hparam:"
#: Where Optuna's samplers keep their ``IntersectionSearchSpace`` (``_keep_intersection``):
#: NSGA-II, TPE (multivariate) and CMA-ES ``_search_space``, GP the other.
_INTERSECTION_ATTRS = ("_search_space", "_intersection_search_space")
#: The system attribute of a study trial told a penalty (``OptunaSearch._penalty``): it failed.
PENALTY_ATTR = "nas:penalty"
#: The system attribute of a study trial answered from a told result (a deterministic
#: evaluator's repeat): no candidate, no trial of the job (``OptunaController._ask``).
REUSED_ATTR = "nas:reused"

#: The most values of one integer (or stepped float) hyperparameter ``gp`` takes: Optuna's
#: GPSampler lists every one at each proposal (a range of 10^12 asked for 7 TiB).
GP_MAX_VALUES = 10_000_000
#: How far from 0, in steps, ``cmaes`` with margin takes an integer (or stepped float)
#: hyperparameter: past some 2^52 a float cannot hold the half steps its margin works with,
#: and ``cmaes`` failed on an assertion (values past 1e32) a few dozen trials in.
CMAES_MARGIN_MAX_STEPS = 2**50


def _discrete_hparams(spec: Any) -> Iterator[tuple[str, float, float, float]]:
    """The spec's integer and stepped float hyperparameters: name, low, high, step (none
    when its hparams section is invalid: that is said at its own fields)."""
    from nas.hparams import FloatParam, HparamSpace, IntParam

    if not spec.hparams:
        return
    space, problems = HparamSpace.parse(spec.hparams)
    if problems:
        return
    for name, p in space.params.items():
        if isinstance(p, IntParam) or (isinstance(p, FloatParam) and p.step is not None):
            yield name, p.low, p.high, p.step


_STATES = {
    "COMPLETE": OptunaState.COMPLETE,
    "FAIL": OptunaState.FAIL,
    "PRUNED": OptunaState.PRUNED,
    "RUNNING": OptunaState.RUNNING,
}


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's logger (below ERROR) and its experimental-feature warnings.

    Not thread-safe (logger levels and warning filters are process-wide), like controllers.
    """
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # scipy's Sobol engine warns when a sample count is not a power of two.
            warnings.filterwarnings("ignore", message=".*balance properties of Sobol")
            yield
    finally:
        logger.setLevel(level)


class OptunaConfig(ControllerConfig):
    max_pending: int | None = Field(
        1,
        ge=1,
        le=100_000,
        description="candidates out at once before ask answers 'not now'; null is unbounded",
    )


class OptunaController(Controller):
    """Base of the Optuna-backed controllers: subclasses set ``name``, ``Config``,
    ``integer_params`` and implement ``_make_sampler``."""

    #: IntDistribution (ordered) rather than CategoricalDistribution for every decision.
    integer_params: ClassVar[bool] = False
    #: Hyperparameters are Optuna parameters of the trial (else sampled by ``ask``).
    suggests_hparams: ClassVar[bool] = True

    def __init__(self, *, max_pending: int | None = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_pending is not None and max_pending < 1:
            raise ValueError(f"max_pending must be at least 1 or None, got {max_pending}")
        self.max_pending = max_pending
        decisions = self.space.decisions()
        names = [d.name for d in decisions]
        if len(set(names)) != len(names):  # Optuna needs unique parameter names
            names = [f"{i}:{name}" for i, name in enumerate(names)]
        self._names = names
        self._distributions: dict[str, BaseDistribution] = {
            name: (
                IntDistribution(0, d.num_choices - 1)
                if self.integer_params
                else CategoricalDistribution(tuple(range(d.num_choices)))
            )
            for name, d in zip(names, decisions, strict=True)
        }
        self._hp_space = self.hparam_space if self.suggests_hparams else None
        self._hp_distributions: dict[str, BaseDistribution] = (
            {}
            if self._hp_space is None
            else {HP_PREFIX + n: d for n, d in self._hp_space.distributions().items()}
        )
        self.sampler_seed = int(self.rng.integers(2**32))
        self.study = self._new_study()
        #: The observations as Optuna trials (numbers 0..P-1, value = rank score), built once.
        self._pseudo: list[optuna.trial.FrozenTrial] = []
        #: The study trial of each pending candidate (a reused repeat is a trial, no candidate).
        self._trial_of: dict[int, int] = {}
        #: Completed configurations' told values (deterministic evaluators: ``_ask``).
        self._told: dict[str, float | list[float]] = {}
        self.reused = 0  # repeats answered from ``_told`` instead of being proposed

    # --- samplers --------------------------------------------------------------------------
    @abstractmethod
    def _make_sampler(self, seed: int) -> BaseSampler:
        """A new sampler; ``seed`` is derived from (sampler seed, trial number)."""

    def _seed_for(self, number: int) -> int:
        return int(np.random.SeedSequence([self.sampler_seed, number]).generate_state(1)[0])

    def _use_sampler(self, number: int) -> None:
        sampler = self._make_sampler(self._seed_for(number))
        if self._pseudo:
            sampler = _ObservingSampler(sampler, self._pseudo)
        else:
            self._keep_intersection(sampler)
        self.study.sampler = sampler

    def _keep_intersection(self, sampler: BaseSampler) -> None:
        """Hand the fresh sampler the study's intersection search space of the samplers
        before it. Optuna computes it incrementally, over the trials it has not seen; a
        fresh one per ask went over every trial each time, and a search of n trials took
        time in n^2 (``nsga2`` at 1,000 trials: 46 ms a trial against plain Optuna's 1.0,
        ``bench/optuna_ask.py``).
        It is a function of the study's finished trials alone, so the proposals stay
        those of a fresh one (and of a restored controller, whose new study starts a new
        one: ``_new_study``). Not with pseudo-observations, whose view of the trials moves."""
        for attr in _INTERSECTION_ATTRS:
            fresh = getattr(sampler, attr, None)
            if isinstance(fresh, IntersectionSearchSpace):
                setattr(sampler, attr, self._intersections.setdefault(attr, fresh))

    def _use_observations(self) -> None:
        """The sources' trials become pseudo-observations of the sampler (``models_observations``,
        one objective): each ask shows the sampler them before this job's trials, on one
        scale by rank (``_ObservingSampler``). They are not trials of the study, so the
        checkpoint's trials stay this job's."""
        self._pseudo = []
        if not self.models_observations or self._multi:
            return
        # Worst first: TPE weighs later trials more, and the sources' best should count most.
        for o in sorted(self._observations, key=lambda o: float(o["score"])):
            params: dict[str, Any] = dict(
                zip(self._names, o["architecture"]["choices"], strict=True)
            )
            hp = {HP_PREFIX + n: v for n, v in (o.get("hparams") or {}).items()}
            if self._hp_space is not None and not hp:
                continue  # an architecture alone: no point of this job's joint space
            params.update(hp)
            distributions = {**self._distributions, **{n: self._hp_distributions[n] for n in hp}}
            with quiet_optuna():
                trial = create_trial(
                    state=OptunaState.COMPLETE,
                    value=float(o["score"]),
                    params=params,
                    distributions=distributions,
                )
            trial.number = len(self._pseudo)
            trial._trial_id = -1 - trial.number
            self._pseudo.append(trial)

    def _n_trials(self) -> int:
        return self._storage.get_n_trials(self._study_id)  # study.trials would deep-copy all

    def _new_study(self) -> optuna.Study:
        self._intersections: dict[str, IntersectionSearchSpace] = {}  # (_keep_intersection)
        self._storage = optuna.storages.InMemoryStorage()
        with quiet_optuna():
            study = optuna.create_study(
                storage=self._storage,
                directions=["maximize"] * max(1, len(self.objectives)),
                sampler=optuna.samplers.RandomSampler(),
            )
        self._study_id = self._storage.get_study_id_from_name(study.study_name)
        return study

    # --- ask / tell ------------------------------------------------------------------------
    def pending_limit(self) -> tuple[int | None, str | None]:
        return self.max_pending, "max_pending"

    def _propose(self) -> Architecture | tuple[Architecture, Mapping[str, Any]] | None:
        return self._ask()

    def _ask(
        self, fixed: Mapping[str, Any] | None = None
    ) -> Architecture | tuple[Architecture, Mapping[str, Any]] | None:
        """The study's next trial; with ``fixed`` parameters (a warm start), that one."""
        if self.max_pending is not None and len(self._pending) >= self.max_pending:
            return None  # not now: tell pending results first
        if fixed is None and self._exhausted():
            # Every architecture has its result, and the evaluator would give it again.
            self._finished = not self._pending
            return None
        forced, repeats = fixed, 0
        while True:
            number = self._n_trials()
            if number != self._next_id + self.reused:  # every trial a candidate or a reuse
                raise RuntimeError(
                    f"study has {number} trials but candidate {self._next_id} is next after "
                    f"{self.reused} reused"
                )
            with quiet_optuna():
                self._use_sampler(number)
                if forced is not None:
                    self.study.enqueue_trial(dict(forced), skip_if_exists=False)
                trial = self.study.ask(self._distributions)
                hparams = (
                    None
                    if self._hp_space is None
                    else self._hp_space.suggest(trial, prefix=HP_PREFIX)
                )
            # (a space with rules between its decisions: the combination drawn stands for
            # the legal architecture it maps onto; the study keeps what was drawn)
            drawn = [int(trial.params[name]) for name in self._names]
            arch = self.space.make(self.space.legal_choices(drawn))
            told = None if forced is not None else self._told.get(self._key(arch, hparams))
            if told is None:
                break
            # Evaluated before, and the evaluator is deterministic: the study learns the
            # result again at no training cost, and asks again (as evolution and MetaQNN do).
            with quiet_optuna():
                self._use_sampler(number)
                self._storage.set_trial_system_attr(trial._trial_id, REUSED_ATTR, True)
                self.study.tell(number, told)
            self.reused += 1
            repeats += 1
            if repeats >= self.max_reuses_per_ask:
                # The sampler keeps to what it has: a uniform architecture instead, one not
                # evaluated where the space allows (as MetaQNN's fallback).
                forced = dict(zip(self._names, self._fallback().choices, strict=True))
        self._trial_of[self._next_id] = number
        return arch if hparams is None else (arch, hparams)

    #: Repeats answered from told results in a row before a uniform architecture is asked
    #: instead: each is a sampler's ask and a trial of the study (``gp`` fits its model to
    #: them all; at 20 a 72-architecture space searched to its end took it over 300 s).
    max_reuses_per_ask = 5

    def _fallback(self) -> Architecture:
        """A uniform architecture, one not evaluated unless 1,000 draws find none (or the
        job searches hyperparameters too, whose values the sampler then suggests)."""
        for _ in range(1000):
            arch = self.space.sample(self.rng)
            if self.hparam_space is not None or config_key(arch, {}) not in self._told:
                break
        return arch

    def _exhausted(self) -> bool:
        """Every architecture completed (no hyperparameters searched), and the evaluator is
        deterministic: nothing is left to learn."""
        return (
            self.deterministic_evaluator
            and self.hparam_space is None
            and len(self._told) >= self.space.size()
        )

    def _key(self, arch: Architecture, hparams: Mapping[str, Any] | None) -> str | None:
        """The configuration's key in ``_told``, ``None`` when nothing may be reused: the
        evaluator is not deterministic, or hyperparameters are sampled after the ask
        (``grid``'s)."""
        if not self.deterministic_evaluator:
            return None
        if hparams is None:
            if self.hparam_space is not None:
                return None
            hparams = {}
        elif self.hparam_space is not None:
            hparams = self.hparam_space.tidy(hparams)  # (as ask records them)
        return config_key(arch, hparams)

    def _propose_seed(
        self, architecture: Architecture, hparams: dict[str, Any]
    ) -> tuple[Architecture, Mapping[str, Any]] | None:
        """A warm-start configuration becomes the study's next trial (enqueued, then asked),
        so the sampler learns from it like from its own proposals."""
        params: dict[str, Any] = dict(zip(self._names, architecture.choices, strict=True))
        params.update({HP_PREFIX + name: value for name, value in hparams.items()})
        return self._ask(params)

    def _trial_hparams(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's hyperparameters (its ``hparam:`` parameters), in declaration order."""
        assert self._hp_space is not None
        return {n: params[HP_PREFIX + n] for n in self._hp_space if HP_PREFIX + n in params}

    @property
    def _multi(self) -> bool:
        return len(self.objectives) > 1

    def _values(self, result: TrialResult) -> list[float] | None:
        """Several objectives: each metric signed so that larger is better, or ``None`` when
        the trial did not complete or lacks one (told as FAIL / PRUNED)."""
        if result.state is not TrialState.COMPLETE:
            return None
        values = []
        for metric, direction in self.objectives:
            value = result.metrics.get(metric)
            if value is None or math.isnan(value):
                return None
            values.append(float(value) if direction == "maximize" else -float(value))
        return values

    def _observe(self, candidate: Candidate, result: TrialResult, score: float | None) -> None:
        # (a checkpoint from before reuses: trial number == candidate id)
        number = self._trial_of.pop(candidate.id, candidate.id)
        key = self._key(candidate.architecture, candidate.hparams)
        with quiet_optuna():
            self._use_sampler(number)
            values = self._values(result) if self._multi else None
            if values is not None:
                self.study.tell(number, values)
                if key is not None:
                    self._told[key] = values
            elif not self._multi and score is not None and not math.isnan(score):
                self.study.tell(number, score)
                if key is not None:
                    self._told[key] = score
            elif (penalty := self._penalty(result)) is not None:
                trial_id = self._storage.get_trial_id_from_study_id_trial_number(
                    self._study_id, number
                )
                self._storage.set_trial_system_attr(trial_id, PENALTY_ATTR, True)
                self.study.tell(number, penalty)
            else:
                pruned = result.state is TrialState.PRUNED
                self.study.tell(number, state=OptunaState.PRUNED if pruned else OptunaState.FAIL)

    def _penalty(self, result: TrialResult) -> float | list[float] | None:
        """What a failed or infeasible trial is told as: a value worse than every completed
        trial's so far (per objective: the worst less the spread, or less 1 where all are
        alike), ``None`` before one completed (then FAIL / PRUNED).

        Optuna's samplers skip FAIL trials, and ``cmaes`` and ``gp`` PRUNED ones too: to
        them a configuration that fails every time (an empty table cell, a recipe that
        diverges, a network past a constraint) stayed unexplored, and they proposed it
        again and again (``gp``: 8 of 20 trials, the two empty cells of a 3 x 3 table).
        Told as worse than any result, it is one to move away from. A pruner's PRUNED trial (it trained,
        at a cost) stays PRUNED: Optuna ranks those by their reported values. The penalty
        is the study's, not the job's: the trial stays FAIL / PRUNED in the job. It is taken
        from the trials that did complete (``PENALTY_ATTR`` marks the others): one from
        another penalty would double the spread at every failure."""
        infeasible = result.state is TrialState.PRUNED and result.cost_s == 0
        if result.state is not TrialState.FAIL and not infeasible:
            return None
        done = self._storage.get_all_trials(
            self._study_id, deepcopy=False, states=(OptunaState.COMPLETE,)
        )
        done = [t for t in done if not t.system_attrs.get(PENALTY_ATTR)]
        if not done:
            return None
        columns = zip(*(t.values for t in done), strict=True)
        penalty = [min(c) - ((max(c) - min(c)) or 1.0) for c in columns]
        return penalty if self._multi else penalty[0]

    # --- checkpoints -----------------------------------------------------------------------
    def _attrs_to_state(self, number: int, attrs: dict[str, Any]) -> dict[str, Any]:
        """The system attributes of trial ``number`` to keep in ``state_dict``."""
        return attrs

    def _attrs_from_state(self, number: int, attrs: dict[str, Any]) -> dict[str, Any]:
        """Inverse of ``_attrs_to_state``."""
        return attrs

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        trials = self._storage.get_all_trials(self._study_id, deepcopy=True)
        state["optuna"] = {
            "sampler_seed": self.sampler_seed,
            "trials": [
                {
                    "state": t.state.name,
                    "choices": [int(t.params[name]) for name in self._names],
                    **({"values": t.values} if self._multi else {"value": t.value}),
                    **(
                        {} if self._hp_space is None else {"hparams": self._trial_hparams(t.params)}
                    ),
                    "system_attrs": self._attrs_to_state(t.number, dict(t.system_attrs)),
                }
                for t in trials
            ],
            "study_system_attrs": copy.deepcopy(
                self._storage.get_study_system_attrs(self._study_id)
            ),
            "reused": self.reused,
            "trial_of": {str(c): n for c, n in self._trial_of.items()},
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state["optuna"]
        self.reused = int(saved.get("reused", 0))
        if len(saved["trials"]) != self._next_id + self.reused:
            raise ValueError(
                f"state_dict holds {len(saved['trials'])} Optuna trials for {self._next_id} "
                f"candidates and {self.reused} reused results; it is corrupt"
            )
        self._trial_of = {int(c): int(n) for c, n in saved.get("trial_of", {}).items()}
        self._told = {}
        self.sampler_seed = int(saved["sampler_seed"])
        self.study = self._new_study()
        for key, value in saved["study_system_attrs"].items():
            self._storage.set_study_system_attr(self._study_id, key, value)
        with quiet_optuna():
            for number, t in enumerate(saved["trials"]):
                trial_state = _STATES[t["state"]]
                complete = trial_state is OptunaState.COMPLETE
                params = dict(zip(self._names, t["choices"], strict=True))
                hp = {HP_PREFIX + n: v for n, v in (t.get("hparams") or {}).items()}
                self.study.add_trial(
                    create_trial(
                        state=trial_state,
                        value=t.get("value") if complete and not self._multi else None,
                        values=t.get("values") if complete and self._multi else None,
                        params={**params, **hp},
                        distributions={
                            **self._distributions,
                            **{n: self._hp_distributions[n] for n in hp},
                        },
                        system_attrs=self._attrs_from_state(number, t["system_attrs"]),
                    )
                )
                if complete and not t["system_attrs"].get(PENALTY_ATTR):
                    arch = self.space.make(self.space.legal_choices(t["choices"]))
                    key = self._key(arch, t.get("hparams") if self._hp_space else None)
                    if key is not None:
                        self._told[key] = t["values"] if self._multi else t["value"]


class _ObservingSampler(BaseSampler):
    """A sampler that sees a warm start's pseudo-observations before the study's trials.

    Transfer by rank: a pseudo-observation's value is its rank score in its source (1 = the
    source's best); this job's completed trials are put on that scale (``_StudyView``), so
    both are one scale whatever the sources' datasets; the order within this job is
    unchanged, which is all TPE uses (its good/bad split). The pseudo-observations come
    first (trial numbers 0..P-1, worst first; this job's follow), so TPE's weights, which
    favour recent trials, count the sources' best most among them and let this job's own
    results take over as they come. Everything else is the wrapped sampler's."""

    def __init__(
        self,
        inner: BaseSampler,
        pseudo: list[optuna.trial.FrozenTrial],
    ) -> None:
        self._inner = inner
        self._pseudo = pseudo

    def _view(self, study: optuna.Study) -> _StudyView:
        return _StudyView(study, self._pseudo)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(
            self._view(study), _shifted(trial, len(self._pseudo))
        )

    def sample_relative(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        return self._inner.sample_relative(
            self._view(study), _shifted(trial, len(self._pseudo)), search_space
        )

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._inner.sample_independent(
            self._view(study), _shifted(trial, len(self._pseudo)), param_name, param_distribution
        )

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._inner.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        self._inner.after_trial(study, trial, state, values)


def _shifted(trial: optuna.trial.FrozenTrial, by: int) -> optuna.trial.FrozenTrial:
    out = copy.copy(trial)
    out.number = trial.number + by
    return out


class _StudyView:
    """The study as ``_ObservingSampler``'s sampler sees it: its trial lists start with the
    pseudo-observations and give completed trials values on their scale; the rest is the
    study's.

    A configuration this job has evaluated (a prior, mostly) is an *anchor*: its source score
    and its value here. Its pseudo-observation is dropped (this job's result replaces the
    source's word on it), and this job's values are mapped onto the source scale through the
    anchors: a monotone (isotonic) fit of source score on value here, interpolated between
    anchors; above every anchor, halfway from the best fitted score to 1; below every anchor,
    the lowest fitted score times the value's mid-rank quantile among the values below. So
    priors that all do well here keep the high scores their sources gave them, instead of
    being spread over this job's quantiles (where the fifth-best of five good priors would
    count as this job's worst and push TPE away from a good region). Without an anchor, a
    value is its mid-rank quantile among this job's completed values."""

    def __init__(
        self,
        study: optuna.Study,
        pseudo: list[optuna.trial.FrozenTrial],
    ) -> None:
        self._study = study
        self._pseudo = pseudo
        self._cache: list[optuna.trial.FrozenTrial] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _all(self) -> list[optuna.trial.FrozenTrial]:
        if self._cache is None:
            real = self._study._get_trials(deepcopy=False, use_cache=False)
            told = [t for t in real if t.state is OptunaState.COMPLETE]
            # A FAIL or infeasible trial is told as COMPLETE with a penalty value: it is no
            # anchor (a failed prior took its source's high score, and counted as well as
            # the best), and its pseudo-observation goes too; it ranks below every value.
            failed = {_config_key(t) for t in told if t.system_attrs.get(PENALTY_ATTR)}
            done = {_config_key(t): t.value for t in told if not t.system_attrs.get(PENALTY_ATTR)}
            anchors = [(done[k], p.value) for p in self._pseudo if (k := _config_key(p)) in done]
            pseudo = []
            for p in self._pseudo:
                if _config_key(p) not in done and _config_key(p) not in failed:
                    view = copy.copy(p)
                    view.number = len(pseudo)
                    pseudo.append(view)
            values = np.sort(np.asarray(list(done.values()), dtype=float))
            to_scale = _anchored_scale(anchors, values)
            scaled = {id(t): to_scale(float(t.value)) for t in told if _config_key(t) in done}
            every = [*scaled.values(), *(p.value for p in pseudo)]
            lo, hi = (min(every), max(every)) if every else (0.0, 0.0)
            below = lo - (hi - lo) if hi > lo else lo - 1.0
            out = list(pseudo)
            for t in real:
                view = _shifted(t, len(pseudo))
                if t.state is OptunaState.COMPLETE:
                    view.value = scaled.get(id(t), below)
                out.append(view)
            self._cache = out
        return self._cache

    def _get_trials(
        self, deepcopy: bool = True, states: Any = None, use_cache: bool = False
    ) -> list[optuna.trial.FrozenTrial]:
        trials = self._all()
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    def get_trials(
        self, deepcopy: bool = True, states: Any = None
    ) -> list[optuna.trial.FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self._get_trials()


def _config_key(trial: optuna.trial.FrozenTrial) -> tuple[tuple[str, Any], ...]:
    """A trial's configuration (its parameters), comparable across trials."""
    return tuple(sorted(trial.params.items()))


def _mid_rank(sorted_values: np.ndarray, value: float) -> float:
    """The mid-rank quantile of ``value`` among ``sorted_values`` (0 when there are none)."""
    if len(sorted_values) == 0:
        return 0.0
    below = np.searchsorted(sorted_values, value, side="left")
    above = np.searchsorted(sorted_values, value, side="right")
    return float((below + above) / 2 / len(sorted_values))


def _anchored_scale(
    anchors: list[tuple[float, float]], values: np.ndarray
) -> Callable[[float], float]:
    """The map from this job's values (``values``: all its completed ones, sorted) to the
    sources' rank scale given ``anchors`` ``(value here, source score)`` (``_StudyView``)."""
    if not anchors:
        return lambda v: _mid_rank(values, v)
    # Isotonic fit (pool adjacent violators) of the source score on the value here.
    blocks: list[list[Any]] = []  # [mean score, count, values]
    for value, score in sorted(anchors):
        blocks.append([score, 1, [value]])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            last, prev = blocks.pop(), blocks.pop()
            n = prev[1] + last[1]
            blocks.append([(prev[0] * prev[1] + last[0] * last[1]) / n, n, prev[2] + last[2]])
    xs = np.asarray([x for _, _, members in blocks for x in members], dtype=float)
    ys = np.asarray([m for m, _, members in blocks for _ in members], dtype=float)
    low, high = xs[0], xs[-1]
    under = values[values < low]

    def to_scale(v: float) -> float:
        if v > high:
            return float(ys[-1] + (1.0 - ys[-1]) / 2)
        if v >= low:
            return float(np.interp(v, xs, ys))
        return float(ys[0] * _mid_rank(under, v))

    return to_scale


# --- the controllers ---------------------------------------------------------------------------
class TpeConfig(OptunaConfig):
    n_startup_trials: int = Field(10, ge=0, description="random trials first (Optuna: 10)")
    n_ei_candidates: int = Field(
        24, ge=1, le=10_000, description="candidates scored per ask (Optuna: 24)"
    )
    multivariate: bool = Field(True, description="joint Parzen estimator (Optuna 5 default)")
    constant_liar: bool = Field(
        True, description="treat pending trials as bad results (Optuna 5 default)"
    )


class TpeController(OptunaController):
    """Tree-structured Parzen estimator (Optuna's ``TPESampler``).

    Example:
        >>> controller = TpeController(space=Nb201Space(), seed=0)
        >>> candidate = controller.ask()
    """

    name = "tpe"
    Config = TpeConfig
    models_observations = True

    def __init__(
        self,
        *,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = True,
        constant_liar: bool = True,
        **kwargs: Any,
    ) -> None:
        self.n_startup_trials = n_startup_trials
        self.n_ei_candidates = n_ei_candidates
        self.multivariate = multivariate
        self.constant_liar = constant_liar
        super().__init__(**kwargs)

    def _make_sampler(self, seed: int) -> BaseSampler:
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=self.n_startup_trials,
            n_ei_candidates=self.n_ei_candidates,
            multivariate=self.multivariate,
            constant_liar=self.constant_liar,
        )


class CmaEsConfig(OptunaConfig):
    n_startup_trials: int = Field(1, ge=0, description="random trials first (Optuna: 1)")
    popsize: int | None = Field(None, ge=2, le=10_000, description="default 4 + floor(3 ln d)")
    sigma0: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="the initial step size; default: a sixth of the range (cmaes fails on "
        "values past 1e32)",
    )
    with_margin: bool = Field(
        True, description="CMA-ES with margin, for integer parameters (Optuna's default: off)"
    )


class CmaEsController(OptunaController):
    """CMA-ES over the choice indices as integers (Optuna's ``CmaEsSampler``; needs the
    ``cmaes`` package).

    Example:
        >>> controller = CmaEsController(space=Nb201Space(), seed=0)
    """

    name = "cmaes"
    Config = CmaEsConfig
    integer_params = True

    @classmethod
    def spec_problems(
        cls, spec: Any, params: Mapping[str, Any]
    ) -> list[tuple[tuple[Any, ...], str]]:
        """With margin (the default), integer and stepped hyperparameters within
        ``CMAES_MARGIN_MAX_STEPS`` steps of 0."""
        if params.get("with_margin", True) is False:
            return []
        problems = []
        for name, low, high, step in _discrete_hparams(spec):
            if max(abs(low), abs(high)) / step > CMAES_MARGIN_MAX_STEPS:
                why = (
                    f"controller 'cmaes' with with_margin (its default) takes integer and "
                    f"stepped values up to {CMAES_MARGIN_MAX_STEPS:,} steps from 0 (past that "
                    f"it fails a few dozen trials in): {name} spans {low}..{high} by {step}; a "
                    "smaller range, a larger step, or controller.with_margin: false"
                )
                problems.append((("hparams", name), why))
        return problems

    def __init__(
        self,
        *,
        n_startup_trials: int = 1,
        popsize: int | None = None,
        sigma0: float | None = None,
        with_margin: bool = True,
        **kwargs: Any,
    ) -> None:
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ImportError(
                "controller 'cmaes' needs the 'cmaes' package: pip install cmaes"
            ) from None
        self.n_startup_trials = n_startup_trials
        self.popsize = popsize
        self.sigma0 = sigma0
        self.with_margin = with_margin
        super().__init__(**kwargs)

    def _make_sampler(self, seed: int) -> BaseSampler:
        with warnings.catch_warnings():
            # Optuna 4.9 deprecates sigma0 (built once per ask: a warning each time)
            warnings.filterwarnings("ignore", message=".*sigma0.*", category=FutureWarning)
            sampler = _CmaEsSampler(
                seed=seed,
                n_startup_trials=self.n_startup_trials,
                popsize=self.popsize,
                sigma0=self.sigma0,
                with_margin=self.with_margin,
                warn_independent_sampling=False,
            )
        if self._hp_space is not None:
            sampler.independent = {HP_PREFIX + n for n in self._hp_space.conditional()}
        return sampler


class _CmaEsSampler(optuna.samplers.CmaEsSampler):
    """``CmaEsSampler`` that leaves the ``independent`` parameters (conditional
    hyperparameters) out of its search space. Optuna's takes the intersection of the
    completed trials' parameters, which shrinks once a trial lacks a conditional one; a
    CMA generation then mixes solutions of two dimensions and ``cmaes`` fails. Left out,
    they are sampled independently, as Optuna would after the shrink anyway."""

    independent: frozenset[str] | set[str] = frozenset()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = super().infer_relative_search_space(study, trial)
        return {k: v for k, v in space.items() if k not in self.independent}


class GpConfig(OptunaConfig):
    n_startup_trials: int = Field(10, ge=0, description="random trials first (Optuna: 10)")
    deterministic_objective: bool = Field(
        False, description="noise-free objective (a table lookup); not for real training"
    )


class GpController(OptunaController):
    """Gaussian-process Bayesian optimisation (Optuna's ``GPSampler``, log EI), with
    categorical decisions. Each ask fits the GP and optimises the acquisition: seconds, not
    milliseconds, once there are hundreds of trials.

    Example:
        >>> controller = GpController(space=Nb201Space(), seed=0)
    """

    name = "gp"
    #: A repeat told again does not move a GP's proposal (a point it has already sits at the
    #: top of its acquisition): after one, the uniform fallback (``OptunaController._ask``).
    max_reuses_per_ask = 1
    Config = GpConfig
    models_observations = True

    @classmethod
    def spec_problems(
        cls, spec: Any, params: Mapping[str, Any]
    ) -> list[tuple[tuple[Any, ...], str]]:
        """Integer and stepped hyperparameters of at most ``GP_MAX_VALUES`` values."""
        problems = []
        for name, low, high, step in _discrete_hparams(spec):
            count = math.floor((high - low) / step + 1e-9) + 1
            if count > GP_MAX_VALUES:
                why = (
                    "controller 'gp' lists every value of an integer or stepped hyperparameter "
                    f"at each proposal (Optuna's GPSampler): {name} has {count:,} ({low}..{high} "
                    f"by {step}), at most {GP_MAX_VALUES:,}: a larger step, type float without "
                    "a step, or another controller (tpe, cmaes, random)"
                )
                problems.append((("hparams", name), why))
        return problems

    def __init__(
        self, *, n_startup_trials: int = 10, deterministic_objective: bool = False, **kwargs: Any
    ) -> None:
        self.n_startup_trials = n_startup_trials
        self.deterministic_objective = deterministic_objective
        super().__init__(**kwargs)

    def _make_sampler(self, seed: int) -> BaseSampler:
        return optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=self.n_startup_trials,
            deterministic_objective=self.deterministic_objective,
        )


class Nsga2Config(OptunaConfig):
    population_size: int = Field(50, ge=2, le=100_000, description="generation size (Optuna: 50)")
    mutation_prob: float | None = Field(
        None, ge=0, le=1, description="per-decision mutation; default 1 / number of decisions"
    )
    crossover_prob: float = Field(0.9, ge=0, le=1)
    swapping_prob: float = Field(0.5, ge=0, le=1, description="uniform crossover's swap rate")


class Nsga2Controller(OptunaController):
    """NSGA-II (Optuna's ``NSGAIISampler``): with one objective, a generational genetic
    algorithm with uniform crossover and elitist selection; with several (``objectives``),
    truly multi-objective: the study has one direction per objective, each trial is told
    every objective's value (signed so larger is better), and parents are chosen by
    non-dominated rank and crowding distance. Trials that did not complete (FAIL, PRUNED:
    infeasible) never become parents.

    Example:
        >>> controller = Nsga2Controller(space=Nb201Space(), seed=0, population_size=20)
    """

    name = "nsga2"
    Config = Nsga2Config
    multi_objective = True

    def __init__(
        self,
        *,
        population_size: int = 50,
        mutation_prob: float | None = None,
        crossover_prob: float = 0.9,
        swapping_prob: float = 0.5,
        **kwargs: Any,
    ) -> None:
        self.population_size = population_size
        self.mutation_prob = mutation_prob
        self.crossover_prob = crossover_prob
        self.swapping_prob = swapping_prob
        super().__init__(**kwargs)

    def _make_sampler(self, seed: int) -> BaseSampler:
        return optuna.samplers.NSGAIISampler(
            seed=seed,
            population_size=self.population_size,
            mutation_prob=self.mutation_prob,
            crossover_prob=self.crossover_prob,
            swapping_prob=self.swapping_prob,
        )


class QmcConfig(OptunaConfig):
    max_pending: int | None = Field(None, ge=1, le=100_000, description="default unbounded")
    qmc_type: Literal["sobol", "halton"] = "sobol"
    scramble: bool = Field(
        True, description="randomised QMC: each seed its own sequence (Optuna's default: off)"
    )


class QmcController(OptunaController):
    """Quasi-Monte Carlo sampling (Optuna's ``QMCSampler``): an even, non-adaptive cover of the
    choice indices. The first trial is uniform (Optuna's QMC needs one to learn the space).

    Example:
        >>> controller = QmcController(space=Nb201Space(), seed=0)
    """

    name = "qmc"
    Config = QmcConfig
    integer_params = True

    def __init__(
        self,
        *,
        qmc_type: str = "sobol",
        scramble: bool = True,
        max_pending: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.qmc_type = qmc_type
        self.scramble = scramble
        super().__init__(max_pending=max_pending, **kwargs)

    def _make_sampler(self, seed: int) -> BaseSampler:
        # The sequence's seed is fixed for the search (the study counts the samples drawn);
        # the per-trial seed only feeds the uniform sampler of the first trial(s).
        return optuna.samplers.QMCSampler(
            qmc_type=self.qmc_type,
            scramble=self.scramble,
            seed=self.sampler_seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_asynchronous_seeding=False,
            warn_independent_sampling=False,
        )


class GridConfig(OptunaConfig):
    max_pending: int | None = Field(None, ge=1, le=100_000, description="default unbounded")
    max_size: int = Field(
        100_000,
        ge=1,
        le=1_000_000,
        description="refuse spaces with more architectures than this (the grid is built in "
        "memory: at most a million points)",
    )


class _GridSampler(optuna.samplers.GridSampler):
    """``GridSampler`` whose ``after_trial`` does not call ``study.stop()``, which raises
    outside ``study.optimize`` (the controller tracks exhaustion itself), and whose trials
    take the grid points in order from ``pick`` (the controller's cursor, which skips the
    points a warm start proposed): Optuna's gives trial ``n`` grid point ``n``, so each
    enqueued prior left one point out and the priors came round again."""

    def __init__(self, search_space: Mapping[str, Any], seed: int, pick: Callable[[], int]) -> None:
        super().__init__(search_space, seed=seed)
        self._pick = pick

    def grid_id(self, params: Mapping[str, Any]) -> int:
        """The grid point of ``params`` (all the grid's parameters)."""
        if not hasattr(self, "_ids"):
            self._ids = {grid: i for i, grid in enumerate(self._all_grids)}
        return self._ids[tuple(params[name] for name in self._param_names)]

    def before_trial(self, study: Any, trial: Any) -> None:
        if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        storage = study._storage
        storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        storage.set_trial_system_attr(trial._trial_id, "grid_id", self._pick())

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


class GridController(OptunaController):
    """Every architecture once, in an order shuffled by the seed (Optuna's ``GridSampler``).
    When all have been asked, ``ask`` answers ``None`` and ``finished`` is true.
    Hyperparameters (joint search) are sampled uniformly per candidate, not gridded.

    Example:
        >>> controller = GridController(space=MacroSpace(layers=2, channels=4), seed=0)
    """

    name = "grid"
    Config = GridConfig
    suggests_hparams = False  # a grid of continuous values is no grid: sampled by ask

    def __init__(
        self, *, max_size: int = 100_000, max_pending: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(max_pending=max_pending, **kwargs)
        size = self.space.size()
        if size > max_size:
            raise ValueError(  # (at the field in a spec error: nas.errors.spec_error_at_field)
                f"controller.max_size: grid search over space {self.space.name!r} would need "
                f"{size:,} architectures, "
                f"more than max_size={max_size:,}; use a smaller space, raise max_size, or "
                f"choose another controller"
            )
        combinations = math.prod(d.num_choices for d in self.space.decisions())
        if combinations != size:
            # (Optuna's grid is every combination: the first illegal one raised
            # InvalidArchitectureError from the job)
            raise ValueError(
                f"controller.name: grid search walks every combination of the decisions' "
                f"choices, and only {size:,} of the {combinations:,} of space "
                f"{self.space.name!r} are legal architectures; use random with unique: true "
                "to try each legal one once"
            )
        self.max_size = max_size
        self._grid = {
            name: list(range(d.num_choices))
            for name, d in zip(self._names, self.space.decisions(), strict=True)
        }
        self._sampler: _GridSampler | None = None
        self._sampler_for: int | None = None
        #: The next grid point to propose, and the points warm-start priors took.
        self._cursor = 0
        self._taken: set[int] = set()

    def _make_sampler(self, seed: int) -> _GridSampler:
        # One seed for the whole search: the sampler holds nothing else, so it is built once
        # (its shuffled grid is the expensive part) and rebuilt only if the seed changes.
        if self._sampler is None or self._sampler_for != self.sampler_seed:
            self._sampler = _GridSampler(self._grid, seed=self.sampler_seed, pick=self._pick)
            self._sampler_for = self.sampler_seed
        return self._sampler

    def _skip_taken(self) -> None:
        while self._cursor in self._taken:
            self._cursor += 1

    def _pick(self) -> int:
        self._skip_taken()
        self._cursor += 1
        return self._cursor - 1

    def _propose(self) -> Architecture | None:
        self._skip_taken()
        if self._cursor >= self.space.size():
            self._finished = True
            return None
        return super()._propose()

    def _propose_seed(
        self, architecture: Architecture, hparams: dict[str, Any]
    ) -> tuple[Architecture, Mapping[str, Any]] | None:
        """A warm-start prior, proposed as it is; its grid point is not proposed again."""
        sampler = self._make_sampler(self.sampler_seed)
        self._taken.add(sampler.grid_id(dict(zip(self._names, architecture.choices, strict=True))))
        return super()._propose_seed(architecture, hparams)

    # A trial's grid (the whole search space) is the controller's: kept out of the checkpoint.
    def _attrs_to_state(self, number: int, attrs: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in attrs.items() if k != "search_space"}

    def _attrs_from_state(self, number: int, attrs: dict[str, Any]) -> dict[str, Any]:
        if "fixed_params" in attrs:  # a warm-start prior: no grid point of its own
            return dict(attrs)
        # (checkpoints before the priors took points gave trial n grid point n)
        return {**attrs, "search_space": self._grid, "grid_id": attrs.get("grid_id", number)}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["grid"] = {"cursor": self._cursor, "taken": sorted(self._taken)}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        grid = state.get("grid") or {"cursor": len(state["optuna"]["trials"]), "taken": []}
        self._cursor, self._taken = int(grid["cursor"]), {int(i) for i in grid["taken"]}

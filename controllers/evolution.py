"""``evolution``: regularized (aging) evolution, REA (Real et al. 2019, Algorithm 1).

A population of the ``population_size`` most recently told architectures; each new candidate
is a one-decision mutation (``space.mutate``) of the best of ``sample_size`` members drawn at
random (with replacement, as in the reference code); every told result joins the population
and, once it is full, the oldest member leaves (aging, not the worst). The first
``population_size`` candidates are uniform samples (``space.sample``). Works on any space
that implements ``sample`` and ``mutate``.

Defaults are the NAS-Bench-201 paper's REA settings (D-X-Y/AutoDL-Projects,
``scripts-search/algos/R-EA.sh``: ``--ea_population 10 --ea_sample_size 3``); the paper's
CIFAR-10 figure at 12,000 simulated seconds is 93.92 +- 0.30 test accuracy.

Parallel asks: ``max_pending`` (default 1) bounds the candidates out at once; beyond it
``ask`` answers "not now", so each child is bred from every result told before it, as the
sequential algorithm does. (The search loop gathers up to an evaluator's ``batch_size``
asks before it tells: 256 on the NAS-Bench-201 table, more than a whole 12,000 s run, which
without the bound would be pure random search.) With ``max_pending`` null or above 1, asks
beyond the told results breed from the current population, or sample uniformly while the
initial random phase or an empty population leaves nothing to breed from.

Failed trials (score ``None``) join the population like any other and age out; they lose
every tournament against a scored member.

Repeats: when the evaluator declares itself deterministic (``deterministic_evaluator``: the
standalone evaluator without a pruner trains an architecture the same way every time for the
same hyperparameters and job seed), a child whose architecture and hyperparameters were told
before is not proposed again: its told score joins the population as a new member (it ages
like any other) and another child is bred, as MetaQNN reuses a trained model's reward (at
most ``max_reuses_per_ask`` times per ask; then the repeat is proposed). Only completed
results are reused; ``reused`` counts them. With any other evaluator every child is proposed.

Warm start: the priors (``Controller.warm_start``) are the first members of the initial
population, which the random phase only completes (a population of 10 with 10 priors breeds
from them at once; proposed after them, random samples would age them out before any child
was bred). The sources' other trials (``observations``) are not used: a prior over each
decision's operations learned from them was measured on NAS-Bench-201 and did not help
(BENCHMARKS.md).

Joint search (an ``hparams`` space): members carry their hyperparameters; initial candidates
sample them uniformly, and a child mutates either one architecture decision or one active
hyperparameter (``HparamSpace.mutate``), chosen in proportion to their numbers (the
architecture's decisions vs. the parent's active hyperparameters).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, model_validator

from controllers.base import Candidate, Controller, ControllerConfig, config_key
from nas.architecture import Architecture
from nas.trial import TrialResult


class EvolutionConfig(ControllerConfig):
    population_size: int = Field(
        10, ge=1, le=100_000, description="members kept (NAS-Bench-201 REA: 10)"
    )
    sample_size: int = Field(3, ge=1, description="tournament size (NAS-Bench-201 REA: 3)")
    max_pending: int | None = Field(
        1,
        ge=1,
        le=100_000,
        description="candidates out at once before ask answers 'not now'; 1 is the sequential "
        "algorithm, null is unbounded",
    )

    @model_validator(mode="after")
    def _sample_fits(self) -> EvolutionConfig:
        if self.sample_size > self.population_size:
            raise ValueError(
                f"sample_size ({self.sample_size}) must not exceed population_size "
                f"({self.population_size})"
            )
        return self


@dataclass(frozen=True)
class Member:
    """One population member: a told architecture (and hyperparameters, in joint search) and
    its score (``None``: failed)."""

    architecture: Architecture
    score: float | None
    hparams: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = {"architecture": self.architecture.to_dict(), "score": self.score}
        if self.hparams:
            data["hparams"] = dict(self.hparams)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Member:
        score = data["score"]
        return cls(
            Architecture.from_dict(data["architecture"]),
            None if score is None else float(score),
            dict(data.get("hparams") or {}),
        )


class RegularizedEvolution(Controller):
    """Aging evolution: tournament selection, one-decision mutation, remove the oldest.

    Example:
        >>> controller = RegularizedEvolution(space=Nb201Space(), seed=0)
        >>> candidate = controller.ask()
        >>> controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=91.0))
    """

    name = "evolution"
    Config = EvolutionConfig
    #: Repeats of told configurations reused in one ask before a repeat is proposed anyway
    #: (a nearly exhausted space must not stall the search).
    max_reuses_per_ask = 100

    def __init__(
        self,
        *,
        population_size: int = 10,
        sample_size: int = 3,
        max_pending: int | None = 1,
        **kwargs: Any,
    ) -> None:
        # The same checks as the Config, for direct construction.
        EvolutionConfig(
            population_size=population_size, sample_size=sample_size, max_pending=max_pending
        )
        super().__init__(**kwargs)
        self.population_size = population_size
        self.sample_size = sample_size
        self.max_pending = max_pending
        self.population: deque[Member] = deque()  # oldest first
        self._random_proposals = 0  # candidates of the initial random phase asked so far
        #: Told scores of completed configurations (deterministic evaluators only).
        self._told: dict[str, float] = {}
        self.reused = 0  # children answered from ``_told`` instead of being proposed

    def pending_limit(self) -> tuple[int | None, str | None]:
        return self.max_pending, "max_pending"

    def _propose(self) -> Architecture | tuple[Architecture, Mapping[str, Any]] | None:
        if self.max_pending is not None and len(self._pending) >= self.max_pending:
            return None  # not now: tell pending results first
        for _ in range(self.max_reuses_per_ask):
            proposal = self._breed()
            # An architecture alone gets fresh hyperparameters in ``ask``: not a repeat.
            arch, hparams = (
                proposal
                if isinstance(proposal, tuple)
                else (proposal, {} if self.hparam_space is None else None)
            )
            if hparams is None or (score := self._told.get(config_key(arch, hparams))) is None:
                return proposal
            # Trained before and deterministic: its result joins again, at no training cost.
            self.reused += 1
            self._join(Member(arch, score, dict(hparams)))
        return self._breed()

    def _propose_seed(
        self, architecture: Architecture, hparams: dict[str, Any]
    ) -> tuple[Architecture, Mapping[str, Any]] | None:
        """A warm-start configuration is one of the initial population: the random phase
        fills only what the priors leave (else the priors would age out before breeding)."""
        if self.max_pending is not None and len(self._pending) >= self.max_pending:
            return None
        self._random_proposals += 1
        return super()._propose_seed(architecture, hparams)

    def _breed(self) -> Architecture | tuple[Architecture, Mapping[str, Any]]:
        if self._random_proposals < self.population_size:
            self._random_proposals += 1
            return self.space.sample(self.rng)  # (ask samples hyperparameters)
        if not self.population:  # every initial candidate is still pending
            return self.space.sample(self.rng)
        members = list(self.population)
        picks = self.rng.integers(len(members), size=self.sample_size)
        contestants = [members[int(i)] for i in picks]
        # max keeps the first of equal scores, as the reference code; failures always lose.
        parent = max(contestants, key=lambda m: float("-inf") if m.score is None else m.score)
        if self.hparam_space is None:
            return self.space.mutate(parent.architecture, self.rng)
        decisions = len(self.space.decisions())
        if self.rng.integers(decisions + len(parent.hparams)) >= decisions:
            return parent.architecture, self.hparam_space.mutate(parent.hparams, self.rng)
        return self.space.mutate(parent.architecture, self.rng), dict(parent.hparams)

    def _observe(self, candidate: Candidate, result: TrialResult, score: float | None) -> None:
        if self.deterministic_evaluator and score is not None:
            self._told[config_key(candidate.architecture, candidate.hparams)] = score
        self._join(Member(candidate.architecture, score, dict(candidate.hparams)))

    def _join(self, member: Member) -> None:
        self.population.append(member)
        if len(self.population) > self.population_size:
            self.population.popleft()  # aging: the oldest leaves, whatever its score

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["population"] = [m.to_dict() for m in self.population]
        state["random_proposals"] = self._random_proposals
        state["told"] = dict(self._told)
        state["reused"] = self.reused
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = deque(Member.from_dict(m) for m in state["population"])
        self._random_proposals = int(state["random_proposals"])
        self._told = {str(k): float(v) for k, v in state.get("told", {}).items()}
        self.reused = int(state.get("reused", 0))

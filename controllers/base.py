"""The ``Controller`` contract: ask for candidates, tell results, checkpoint as plain data.

Modelled on Ray Tune's searcher contract: the caller runs trials; ``ask`` answers a candidate,
"not now" (``None`` while ``finished`` is false: tell pending results first) or "finished"
(``None`` with ``finished`` true: a finite space is exhausted); ``tell`` is idempotent.

Controllers are pure: no database, no Ray, no HTTP, no global random state. All randomness
comes from the generator made from ``seed`` (or injected as ``rng``), and ``state_dict()``
captures it, so a controller restored from a checkpoint asks exactly what the original would
have asked next. A controller is not thread-safe; the job runner calls it from one thread.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from nas.architecture import Architecture
from nas.errors import NasError
from nas.hparams import HparamSpace
from nas.spaces.base import SearchSpace
from nas.trial import TrialResult, TrialState


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run a small policy's torch ops on one thread: its ops are tiny, and extra intra-op
    threads only add wake-ups, which cost 100x on a loaded machine (measured: 3 ms vs 400 ms
    per ask+tell of ENAS on nb201 with 2 busy cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class UnknownCandidateError(NasError, KeyError):
    """``tell`` was called with an id that this controller never asked."""


@dataclass(frozen=True)
class Candidate:
    """One proposal: an architecture and (for joint search) hyperparameters."""

    id: int
    architecture: Architecture
    hparams: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "architecture": self.architecture.to_dict(),
            "hparams": dict(self.hparams),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        return cls(
            int(data["id"]), Architecture.from_dict(data["architecture"]), dict(data["hparams"])
        )


class ControllerConfig(BaseModel):
    """Base of each controller's parameters (the spec's ``controller:`` section less ``name``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Controller(ABC):
    """Base class: candidate ids, pending bookkeeping, idempotent tell, RNG checkpointing.

    Subclasses implement ``_propose`` (return an architecture, an (architecture,
    hyperparameters) pair, or ``None`` for "not now" / "finished") and ``_observe`` (learn from one told result), and extend ``state_dict`` /
    ``load_state_dict`` with their own plain-data state.

    Rewards: ``_observe`` gets ``score``: the objective signed so that larger is better
    (negated for ``direction="minimize"``), or ``None`` when the trial did not complete.
    """

    name: ClassVar[str]
    Config: ClassVar[type[ControllerConfig]] = ControllerConfig
    #: Handles several objectives (``objectives=``): it optimises them jointly (``nsga2``)
    #: or needs no values at all (``random``). Others take one objective and a spec with
    #: several is rejected for them.
    multi_objective: ClassVar[bool] = False
    #: It learns from a warm start's ``observations`` (the sources' trials, not proposed):
    #: the model-based samplers (``tpe``, ``gp``). For the others the
    #: service stores none (``workers.warmstart.models_observations``): priors only.
    models_observations: ClassVar[bool] = False
    #: Shared-weight search: rewards per supernet epoch this controller asks for (``None``:
    #: the search's default).
    rewards_per_epoch: int | None = None
    #: Shared-weight search: how many candidates to ask at once in the reward phase (a
    #: policy that learns changes only after this many rewards, so the group is what a
    #: sequential search would have sampled).
    reward_group: int = 20

    def __init__(
        self,
        *,
        space: SearchSpace,
        direction: str = "maximize",
        seed: int | None = None,
        rng: np.random.Generator | None = None,
        objectives: Sequence[tuple[str, str]] | None = None,
        hparams: HparamSpace | None = None,
        deterministic_evaluator: bool = False,
    ) -> None:
        """``objectives``: ``(metric, direction)`` of each objective when there are several
        (read from ``TrialResult.metrics``); ``direction`` is then the first one's.
        ``hparams``: the job's hyperparameter space (joint search): each candidate then
        carries values of its active parameters. Controllers that do not search them
        themselves sample them uniformly from ``rng`` (see ``_sample_hparams``).
        ``deterministic_evaluator``: the evaluator declares that the same architecture and
        hyperparameters always score the same (``Evaluator.deterministic``), so a controller
        may reuse a told result instead of proposing that configuration again (evolution)."""
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
        objectives = [(str(m), str(d)) for m, d in objectives or ()]
        if any(d not in ("maximize", "minimize") for _, d in objectives):
            raise ValueError(f"objective directions must be maximize or minimize: {objectives}")
        if len(objectives) > 1 and not self.multi_objective:
            raise ValueError(f"controller {self.name!r} optimises one objective")
        self.space = space
        self.direction = direction
        self.objectives = objectives
        self.hparam_space = hparams if hparams else None
        self.deterministic_evaluator = deterministic_evaluator
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self._next_id = 0
        self._pending: dict[int, Candidate] = {}
        self._finished = False
        #: Warm-start configurations still to propose, best first (``warm_start``).
        self._seeds: list[tuple[Architecture, dict[str, Any]]] = []
        #: The sources' trials as rank-scored observations (``warm_start``), plain data.
        self._observations: list[dict[str, Any]] = []

    # --- the contract ----------------------------------------------------------------------
    def warm_start(
        self,
        priors: Sequence[Mapping[str, Any]],
        *,
        observations: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Propose these configurations first, best ``score`` first (``nas.warmstart``:
        ``{architecture, hparams, score}``, validated against this space at submit). Each is
        then told like any proposal, so every controller learns from what the sources' best
        score here; after them it proposes as it would have. ``observations``: the sources'
        trials, scored by rank in their source (same form), which a model-based controller
        learns from before its first ask (``_use_observations``): they are not proposals and
        not trials of this job. Call before the first ``ask``; they are not in
        ``state_dict`` (they never change: a job's are in its spec, and a resume calls
        ``warm_start`` again before ``load_state_dict``, as ``build_components`` does)."""
        ordered = sorted(priors, key=lambda p: -float(p.get("score", 0.0)))
        self._seeds = [
            (Architecture.from_dict(p["architecture"]), dict(p.get("hparams") or {}))
            for p in ordered
        ]
        self._observations = [
            {
                "architecture": dict(o["architecture"]),
                "hparams": dict(o.get("hparams") or {}),
                "score": float(o["score"]),
            }
            for o in observations
        ]
        self._use_observations()

    #: Parameters a source job may differ in and still hand on its state
    #: (``transferable_state``): they shape how the state is used, not the state itself.
    transfer_ignores: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def transferable_state(cls, state: Mapping[str, Any]) -> dict[str, Any] | None:
        """What a warm-started job of this controller takes from a source job's last
        checkpoint (``state``: that job's ``state_dict()``, same controller, parameters and
        space): plain data for ``load_transferred``, or ``None`` when this controller takes
        nothing but the priors (the default). ENAS takes its policy, MetaQNN its Q-table."""
        return None

    def load_transferred(self, transferred: Mapping[str, Any]) -> None:
        """Start from what ``transferable_state`` took from a source. Call before the first
        ``ask`` (a checkpoint restored afterwards replaces it, so a resume is exact)."""
        raise ValueError(f"controller {self.name!r} takes no state from a source job")

    def ask(self) -> Candidate | None:
        """The next candidate, or ``None``: "not now" unless ``finished`` is true."""
        if self._finished:
            return None
        if self._seeds:
            # Priors are candidates like any: past the pending limit, "not now" (an rl2 job
            # handed out all its priors at once, an enas one past num_aggregate).
            limit, _ = self.pending_limit()
            if limit is not None and len(self._pending) >= limit:
                return None
            proposal = self._propose_seed(*self._seeds[0])
            if proposal is not None:
                self._seeds.pop(0)
        else:
            proposal = self._propose()
        if proposal is None:
            return None
        if isinstance(proposal, tuple):
            arch, hparams = proposal
        else:
            arch, hparams = proposal, self._sample_hparams()
        if self.hparam_space is not None:
            hparams = self.hparam_space.tidy(hparams)
        candidate = Candidate(self._next_id, arch, hparams)
        self._next_id += 1
        self._pending[candidate.id] = candidate
        return candidate

    def pending_limit(self) -> tuple[int | None, str | None]:
        """How many candidates this controller has out at once at most (past them ``ask``
        answers "not now", whatever the caller could run), ``None`` for no bound; and the
        ``controller:`` setting that sets the bound, ``None`` when none does. More trials
        than this cannot run side by side: a job whose ``resources.workers`` asks for more
        is refused (``workers.loops.check_startable``) rather than run fewer at a time."""
        return None, None

    def tell(self, candidate_id: int, result: TrialResult) -> None:
        """Report the result of a candidate. Telling the same id again is a no-op."""
        candidate = self._pending.pop(candidate_id, None)
        if candidate is None:
            if 0 <= candidate_id < self._next_id:
                return  # already told: idempotent
            raise UnknownCandidateError(f"candidate {candidate_id} was never asked")
        self._observe(candidate, result, self._score(result))

    def sample_for_training(self) -> Architecture:
        """An architecture to train shared weights on, without creating a candidate (the
        ENAS supernet phase). The default is a uniform sample: random weight sharing."""
        return self.space.sample(self.rng)

    def curve_stats(self, last: int) -> dict[str, float]:
        """Figures of the controller's own learning over its last ``last`` tells (the last
        one when ``last`` is 0), for the search's per-epoch curve: ENAS reports its policy's
        entropy and reward baseline. ``{}`` for controllers without such figures."""
        return {}

    @classmethod
    def state_curves(cls, state: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """The controller's own curves, read from its ``state_dict()`` (as a checkpoint
        holds it), by series: points with an integer ``epoch`` (their order) and values.
        MetaQNN reports its reward per epsilon stage. ``{}`` for controllers without such
        curves (per-epoch figures go through ``curve_stats`` instead)."""
        return {}

    @property
    def finished(self) -> bool:
        """True once the controller will never propose again (a finite space is exhausted)."""
        return self._finished

    @property
    def pending(self) -> list[Candidate]:
        """Candidates asked and not yet told, oldest first."""
        return list(self._pending.values())

    def state_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable) that restores this controller exactly."""
        return {
            "name": self.name,
            "next_id": self._next_id,
            "pending": [c.to_dict() for c in self._pending.values()],
            "finished": self._finished,
            "rng": self.rng.bit_generator.state,
            "seeds": [{"architecture": a.to_dict(), "hparams": h} for a, h in self._seeds],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(
                f"state_dict is for controller {state.get('name')!r}, not {self.name!r}"
            )
        self._next_id = int(state["next_id"])
        self._pending = {int(c["id"]): Candidate.from_dict(c) for c in state["pending"]}
        self._finished = bool(state["finished"])
        self.rng.bit_generator.state = state["rng"]
        self._seeds = [
            (Architecture.from_dict(s["architecture"]), dict(s["hparams"]))
            for s in state.get("seeds", [])
        ]

    # --- for subclasses --------------------------------------------------------------------
    def _sample_hparams(self) -> dict[str, Any]:
        """Uniform values of the active hyperparameters (``{}`` without an hparam space),
        drawn from ``rng`` after the architecture: what ``ask`` attaches to a proposal that
        is an architecture alone."""
        return {} if self.hparam_space is None else self.hparam_space.sample(self.rng)

    @abstractmethod
    def _propose(self) -> Architecture | tuple[Architecture, Mapping[str, Any]] | None: ...

    def _propose_seed(
        self, architecture: Architecture, hparams: dict[str, Any]
    ) -> tuple[Architecture, Mapping[str, Any]] | None:
        """Propose a warm-start configuration, or ``None`` for "not now". The default
        proposes it as it is; a controller that keeps its own record of proposals (Optuna's
        study) records it there too."""
        if not hparams and self.hparam_space is not None:
            hparams = self.hparam_space.sample(self.rng)
        return architecture, hparams

    def _use_observations(self) -> None:
        """Learn from ``self._observations`` (set by ``warm_start``). The
        default learns nothing from them: the priors are what it takes from the sources."""

    def _observe(self, candidate: Candidate, result: TrialResult, score: float | None) -> None:
        """Learn from a result. The default learns nothing (random search)."""

    def _score(self, result: TrialResult) -> float | None:
        if result.state is not TrialState.COMPLETE or result.objective is None:
            return None
        return result.objective if self.direction == "maximize" else -result.objective


def config_key(architecture: Architecture, hparams: Mapping[str, Any]) -> str:
    """One configuration (architecture and hyperparameters) as a plain-data key: a
    controller that reuses a deterministic evaluator's told results looks them up by it."""
    return architecture.key + "|" + json.dumps(dict(hparams), sort_keys=True)

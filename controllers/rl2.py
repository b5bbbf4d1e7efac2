"""``rl2``: a recurrent policy meta-trained across searches, that adapts within one (RL²,
Duan et al. 2016; Wang et al. 2016, "learning to reinforcement learn").

At each step the policy (a GRU) sees the previous proposal (one-hot per decision) and how it
scored relative to everything seen so far in this search (its percentile, 0..1; 0 for a
failed trial), updates its hidden state, and proposes the next architecture (one categorical
head per decision). The hidden state runs through the whole search: what it learnt from the
first results steers the next proposals, without any gradient step at search time.

Meta-training (``meta_train``) runs many search episodes on tables of known results (for
example two NAS-Bench-201 datasets) and trains the policy with REINFORCE to maximise the area
under each episode's best-so-far curve (best fitness so far, standardised per task): good
architectures found early are worth more, and a late improvement still counts. The percentile
input is scale-free, so a policy trained on CIFAR-10 and CIFAR-100 tables runs on
ImageNet16-120. The result is a policy file that a job names: ``controller: {name: rl2,
policy: path}``.

Checkpoints: the hidden state, the previous proposal and signal, the scores seen and the RNG
are plain data, so a resumed search proposes exactly what the original would have.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from controllers.base import Candidate, Controller, ControllerConfig, one_torch_thread
from nas.architecture import Architecture
from nas.datasets import FILE_PARAM
from nas.errors import NasError
from nas.paths import spec_path
from nas.rng import forked_rng
from nas.spaces.base import SearchSpace
from nas.trial import TrialResult

POLICY_FORMAT = "nas-rl2-policy"
#: How many times a repeated proposal is resampled before it is accepted (``unique``).
RESAMPLES = 20


class PolicyFileError(NasError, ValueError):
    """A policy file that is not an rl2 policy for this space."""


class Rl2Policy(nn.Module):
    """GRU over steps; input: previous proposal (one-hot per decision), its percentile signal,
    a first-step flag; output: logits of each decision's choices."""

    def __init__(self, cardinalities: Sequence[int], hidden: int = 64) -> None:
        super().__init__()
        self.cardinalities = [int(c) for c in cardinalities]
        self.hidden = hidden
        self.cell = nn.GRUCell(sum(self.cardinalities) + 2, hidden)
        self.heads = nn.Linear(hidden, sum(self.cardinalities))
        self._offsets = np.cumsum([0, *self.cardinalities])

    def encode(self, prev: torch.Tensor | None, signal: torch.Tensor, batch: int) -> torch.Tensor:
        """``prev``: (B, D) choice indices or ``None`` at the first step; ``signal``: (B,)."""
        if prev is None:
            x = torch.zeros(batch, int(self._offsets[-1]) + 2)
            x[:, -1] = 1.0
            return x
        onehots = [
            nn.functional.one_hot(prev[:, d], c).float() for d, c in enumerate(self.cardinalities)
        ]
        return torch.cat([*onehots, signal[:, None], torch.zeros(batch, 1)], 1)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        h = self.cell(x, h)
        logits = self.heads(h)
        split = [
            logits[:, self._offsets[d] : self._offsets[d + 1]]
            for d in range(len(self.cardinalities))
        ]
        return split, h


def save_policy(policy: Rl2Policy, path: str | Path | io.BytesIO, meta: Mapping[str, Any]) -> None:
    torch.save(
        {
            "format": POLICY_FORMAT,
            "version": 1,
            "cardinalities": policy.cardinalities,
            "hidden": policy.hidden,
            "state_dict": policy.state_dict(),
            "meta": dict(meta),
        },
        path if isinstance(path, io.BytesIO) else Path(path),
    )


def load_policy(path: str | Path | io.BytesIO) -> tuple[Rl2Policy, dict[str, Any]]:
    source = path if isinstance(path, io.BytesIO) else spec_path(path)
    try:
        data = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an untrusted file: torch.load raises many kinds
        raise PolicyFileError(
            f"controller.policy: not a readable rl2 policy file ({type(exc).__name__})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != POLICY_FORMAT:
        raise PolicyFileError(
            "controller.policy: expected a policy file written by rl2 meta-training"
        )
    try:
        policy = Rl2Policy(data["cardinalities"], int(data["hidden"]))
        policy.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise PolicyFileError(
            "controller.policy: expected a policy file written by rl2 meta-training"
        ) from None
    policy.eval()
    return policy, dict(data.get("meta") or {})


def space_mismatch(meta: Mapping[str, Any], space: SearchSpace) -> str | None:
    """How a policy's space (``meta["space"]``, as meta-training records it) differs from
    ``space``: ``None`` when their names and decisions (names and choices) are the same, or
    when the file records no space (a policy saved by hand: its choice counts still count)."""
    trained_for = meta.get("space")
    if not isinstance(trained_for, Mapping):
        return None
    decisions = [[d.name, list(d.choices)] for d in space.decisions()]
    if trained_for.get("name") == space.name and trained_for.get("decisions") == decisions:
        return None
    trained, shape = trained_for.get("decisions"), _shape(decisions)
    differ = ""
    if _shape(trained) == shape and trained_for.get("name") == space.name:
        # (alike by name and number of choices: say which decision's choices differ, e.g.
        # the mlp space's widths, where the two lists read the same)
        names = [d[0] for d, ours in zip(trained, decisions, strict=True) if list(d[1]) != ours[1]]
        differ = f" (the choices of {', '.join(names)} differ)" if names else ""
    return (
        f"was trained for the decisions of space {trained_for.get('name')!r} "
        f"{_shape(trained)}; this job's space {space.name!r} has {shape}{differ}: "
        "meta-train on this space's tasks"
    )


def _shape(decisions: Any) -> str:
    """Decisions as ``name(choices)`` for a message (no cell values of a user's table)."""
    if not isinstance(decisions, list):
        return "(unknown)"
    return "[" + ", ".join(f"{d[0]}({len(d[1])})" for d in decisions) + "]"


def percentile(value: float | None, seen: Sequence[float]) -> float:
    """The signal of a result: the share of earlier scores it beats (ties count half), 0.5
    for the first one, 0 for a failed trial."""
    if value is None:
        return 0.0
    if not seen:
        return 0.5
    below = sum(1.0 if s < value else 0.5 if s == value else 0.0 for s in seen)
    return below / len(seen)


class Rl2Config(ControllerConfig):
    policy: str | None = Field(
        None,
        description="the meta-trained policy file (an rl2-meta job or nas search writes it); "
        "the service writes a policy_job's copy here at submit",
        json_schema_extra=FILE_PARAM,
    )
    policy_job: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="service: the id of a finished rl2-meta job whose policy this job runs "
        "(copied at submit, so deleting that job later changes nothing)",
    )
    unique: bool = Field(True, description="resample an architecture already proposed")


#: The evaluator whose loop meta-trains the policy (``nas.evaluators.rl2_meta``).
META_EVALUATOR = "rl2-meta"


class Rl2Controller(Controller):
    """Runs a meta-trained recurrent policy; learns within the search through its hidden
    state only. One proposal at a time (each sees the previous result).

    Example:
        >>> controller = Rl2Controller(space=Nb201Space(), policy="rl2-nb201.pt", seed=0)
    """

    name = "rl2"
    Config = Rl2Config

    @classmethod
    def spec_problems(
        cls, spec: Any, params: Mapping[str, Any]
    ) -> list[tuple[tuple[Any, ...], str]]:
        """A search names its policy (one way); a meta-training job (evaluator ``rl2-meta``)
        trains one and names none."""
        named = [k for k in ("policy", "policy_job") if params.get(k) is not None]
        if spec.evaluator.name == META_EVALUATOR:
            return [
                (("controller", k), "a meta-training job trains the policy; leave it out")
                for k in named
            ]
        if not named:
            return [
                (
                    ("controller", "policy"),
                    (
                        "name the meta-trained policy: policy (a policy file) or policy_job (the "
                        f"id of a finished {META_EVALUATOR} job, service)"
                    ),
                )
            ]
        if len(named) > 1:
            return [(("controller", "policy_job"), "name the policy one way: policy or policy_job")]
        return []

    def __init__(
        self,
        *,
        policy: str | Rl2Policy | None = None,
        policy_job: int | None = None,
        unique: bool = True,
        **kwargs: Any,
    ) -> None:
        """``policy``: the policy file, or the policy itself (meta-training's, in training)."""
        super().__init__(**kwargs)
        if policy is None:
            raise PolicyFileError(
                "controller.policy: no policy file (a policy_job is resolved to one when the "
                "service accepts the job)"
            )
        if isinstance(policy, Rl2Policy):
            self.policy, self.policy_meta = policy, {}
        else:
            self.policy, self.policy_meta = load_policy(policy)
            mismatch = space_mismatch(self.policy_meta, self.space)
            if mismatch is not None:
                raise PolicyFileError(f"controller.policy: the policy {mismatch}")
        cards = [d.num_choices for d in self.space.decisions()]
        if cards != self.policy.cardinalities:
            raise PolicyFileError(
                f"controller.policy: the policy was trained for decisions with "
                f"{self.policy.cardinalities} choices; space {self.space.name!r} has {cards}"
            )
        self.unique = unique
        self._h = torch.zeros(1, self.policy.hidden)
        self._prev: list[int] | None = None
        self._signal = 0.0
        self._scores: list[float] = []
        self._seen: set[tuple[int, ...]] = set()

    def pending_limit(self) -> tuple[int | None, str | None]:
        return 1, None  # each proposal follows the previous result

    def _step(self) -> list[np.ndarray]:
        """One step of the episode: the recurrent state takes in the previous proposal and
        its reward; the policy's choice probabilities for the next proposal."""
        prev = None if self._prev is None else torch.tensor([self._prev])
        with torch.no_grad(), one_torch_thread():
            x = self.policy.encode(prev, torch.tensor([self._signal]), 1)
            logits, self._h = self.policy.step(x, self._h)
            return [torch.softmax(lg[0].double(), 0).numpy() for lg in logits]

    def _propose_seed(
        self, architecture: Architecture, hparams: dict[str, Any]
    ) -> tuple[Architecture, Mapping[str, Any]] | None:
        """A warm-start prior is a step of the episode as a proposal is, the prior in the
        sampled action's place: its result reaches the recurrent state at the next step
        (the state skipped priors, so that it saw only the last one's), and ``unique``
        never proposes it again."""
        if self._pending:
            return None  # each proposal follows the previous result
        self._step()
        self._seen.add(architecture.choices)
        return super()._propose_seed(architecture, hparams)

    def _propose(self) -> Architecture | None:
        if self._pending:
            return None  # each proposal follows the previous result
        probs = self._step()
        for _ in range(RESAMPLES):
            choices = tuple(int(self.rng.choice(len(p), p=p / p.sum())) for p in probs)
            if not self.unique or choices not in self._seen:
                break
        self._seen.add(choices)
        return self.space.make(choices)

    def _observe(self, candidate: Candidate, result: TrialResult, score: float | None) -> None:
        self._signal = percentile(score, self._scores)
        if score is not None:
            self._scores.append(float(score))
        self._prev = list(candidate.architecture.choices)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["rl2"] = {
            "h": self._h[0].tolist(),
            "prev": self._prev,
            "signal": self._signal,
            "scores": list(self._scores),
            "seen": [list(s) for s in self._seen],
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        own = state["rl2"]
        self._h = torch.tensor([own["h"]], dtype=torch.float32)
        self._prev = None if own["prev"] is None else [int(c) for c in own["prev"]]
        self._signal = float(own["signal"])
        self._scores = [float(s) for s in own["scores"]]
        self._seen = {tuple(int(c) for c in s) for s in own["seen"]}


# --- meta-training -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """A search task for meta-training: the fitness of every architecture of a finite space,
    by mixed-radix code of its choices (``np.ravel_multi_index``), larger is better; NaN
    where the task has no result (a combination its table does not hold: at search time a
    PRUNED trial, here a proposal with signal 0 that improves nothing)."""

    name: str
    fitness: np.ndarray

    @property
    def standardised(self) -> np.ndarray:
        known = self.fitness[np.isfinite(self.fitness)]
        if known.size == 0:
            raise ValueError(f"task {self.name}: no architecture has a fitness")
        return (self.fitness - known.mean()) / (known.std() + 1e-12)


class MetaTrainer:
    """RL² meta-training, one iteration per ``step``: ``batch`` search episodes of ``steps``
    proposals, each on a task drawn uniformly, and one REINFORCE update; the return of a
    step is the sum of the standardised best-so-far fitness from it to the episode's end,
    less the batch mean at that step. Repeats are resampled as at search time.

    Pure and resumable: all randomness comes from its own generators (numpy for the tasks,
    ``torch.Generator`` for the samples; the global RNGs are untouched), and ``state_dict``
    holds the policy, the optimizer and both generators, so ``load_state_dict`` into a
    trainer built with the same arguments continues exactly as the original would have.

    Example:
        >>> trainer = MetaTrainer(tasks, [5] * 6, seed=0)
        >>> while trainer.iterations < 100:
        ...     stats = trainer.step()  # {'iteration', 'mean_best_z', 'auc_z', ...}
        >>> save_policy(trainer.policy, "rl2.pt", trainer.summary())
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        cardinalities: Sequence[int],
        *,
        steps: int = 100,
        batch: int = 32,
        hidden: int = 64,
        lr: float = 3e-3,
        entropy_weight: float = 0.01,
        seed: int = 0,
    ) -> None:
        if not tasks:
            raise ValueError("meta-training needs at least one task")
        self.cards = [int(c) for c in cardinalities]
        self.size = int(np.prod(self.cards))
        self.task_names = [t.name for t in tasks]
        self.steps, self.batch, self.entropy_weight = steps, batch, entropy_weight
        tables = []
        for task in tasks:
            values = np.asarray(task.standardised, dtype=np.float64)
            if values.size != self.size:
                raise ValueError(
                    f"task {task.name}: {values.size} values for {self.size} architectures"
                )
            tables.append(torch.tensor(values, dtype=torch.float32))
        self._tables = tables
        #: Where a task has no result (NaN): never the best, signal 0.
        self._floors = [float(t[torch.isfinite(t)].min()) for t in tables]
        self._radix = torch.tensor(
            np.cumprod([1, *self.cards[::-1]])[:-1][::-1].copy(), dtype=torch.long
        )
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        with forked_rng(seed):  # safe beside other threads' use of torch's RNG
            self.policy = Rl2Policy(self.cards, hidden)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.iterations = 0
        self.seconds = 0.0
        self.last: dict[str, float] = {}

    def step(self, *, stop: Callable[[], bool] | None = None) -> dict[str, float] | None:
        """One meta-training iteration; its figures: ``mean_best_z`` (the episodes' final
        best, standardised per task), ``auc_z`` (mean best-so-far over the episode's steps:
        the area under the curve it maximises), ``mean_return``, ``entropy``, ``loss``.

        ``stop`` is asked before each step of the episodes (a large iteration runs for
        minutes): when it answers true the iteration is abandoned and ``None`` returned,
        with the trainer exactly as before it (its generators rewound), so a checkpoint of
        it still resumes exactly."""
        started = time.perf_counter()
        rng_state, generator_state = self.rng.bit_generator.state, self.generator.get_state()
        with one_torch_thread():
            stats = self._iteration(stop)
        if stats is None:
            self.rng.bit_generator.state = rng_state
            self.generator.set_state(generator_state)
            return None
        self.iterations += 1
        self.seconds += time.perf_counter() - started
        self.last = {"iteration": self.iterations, **stats}
        return dict(self.last)

    def _sample(self, logits: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(
            [
                torch.multinomial(torch.softmax(lg, 1), 1, generator=self.generator)[:, 0]
                for lg in logits
            ],
            1,
        )

    def _iteration(self, stop: Callable[[], bool] | None) -> dict[str, float] | None:
        policy, batch, radix = self.policy, self.batch, self._radix
        policy.train()
        which = self.rng.integers(len(self._tables), size=batch)
        values = torch.stack([self._tables[i] for i in which])  # (B, N)
        floors = torch.tensor([self._floors[i] for i in which])
        h = torch.zeros(batch, policy.hidden)
        prev: torch.Tensor | None = None
        signal = torch.zeros(batch)
        visited = torch.zeros(batch, self.size, dtype=torch.bool)
        rows = torch.arange(batch)
        # Every step's score (NaN: none), filled as the episodes go, and one buffer for the
        # comparisons with them: a step allocates nothing the size of the history (a column
        # concatenated per step, and the masks made per step, fragmented the heap into
        # gigabytes over a few thousand steps).
        history = torch.full((self.steps, batch), torch.nan)
        compared = torch.empty((self.steps, batch))  # (float: summed without a copy)
        count = torch.zeros(batch)
        best = floors.clone()
        log_probs, entropies, bests = [], [], []
        for t in range(self.steps):
            if stop is not None and stop():
                return None  # (the graph built so far is freed with this frame)
            scores = history[:t]
            logits, h = policy.step(policy.encode(prev, signal, batch), h)
            logps = [torch.log_softmax(lg, 1) for lg in logits]
            choices = self._sample(logits)
            codes = (choices * radix).sum(1)
            for _ in range(RESAMPLES):  # resample repeats, as the controller does
                repeat = visited[rows, codes]
                if not bool(repeat.any()):
                    break
                again = self._sample(logits)
                choices = torch.where(repeat[:, None], again, choices)
                codes = (choices * radix).sum(1)
            visited[rows, codes] = True
            log_probs.append(
                sum(lp.gather(1, choices[:, i : i + 1])[:, 0] for i, lp in enumerate(logps))
            )
            entropies.append(sum(-(lp.exp() * lp).sum(1) for lp in logps))
            fitness = values[rows, codes]
            known = torch.isfinite(fitness)
            # The share of the episode's earlier scores below this one, ties half (NaN
            # compares false: steps without a score do not count).
            lower = torch.lt(scores, fitness, out=compared[:t]).sum(0)
            ties = torch.eq(scores, fitness, out=compared[:t]).sum(0)
            below = lower + 0.5 * ties
            signal = torch.where(count > 0, below / count.clamp(min=1), 0.5)
            signal = torch.where(known, signal, 0.0)
            history[t] = torch.where(known, fitness, torch.nan)
            count += known
            best = torch.where(known, torch.maximum(best, fitness), best)
            bests.append(best.clone())
            prev = choices
        rewards = torch.stack(bests, 1)  # (B, T)
        returns = rewards.flip(1).cumsum(1).flip(1)
        advantage = returns - returns.mean(0, keepdim=True)
        advantage = advantage / (advantage.std() + 1e-8)
        entropy = torch.stack(entropies, 1).mean()
        loss = -(torch.stack(log_probs, 1) * advantage).mean() - self.entropy_weight * entropy
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), 5.0)
        self.optimizer.step()
        policy.eval()
        return {
            "mean_best_z": float(rewards[:, -1].mean()),
            "auc_z": float(rewards.mean()),
            "mean_return": float(returns[:, 0].mean()),
            "entropy": float(entropy.detach()),
            "loss": float(loss.detach()),
        }

    def summary(self) -> dict[str, Any]:
        """What the policy file and a job's summary record about this meta-training."""
        return {
            "iterations": self.iterations,
            "seconds": round(self.seconds, 1),
            "steps": self.steps,
            "batch": self.batch,
            "tasks": list(self.task_names),
            "final_mean_best_z": self.last.get("mean_best_z", float("nan")),
        }

    def state_dict(self) -> dict[str, Any]:
        """Policy, optimizer, both generators and the counters (``torch.save``-able with
        ``weights_only`` loading)."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "rng": self.rng.bit_generator.state,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "last": dict(self.last),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.iterations = int(state["iterations"])
        self.seconds = float(state["seconds"])
        self.last = {k: float(v) for k, v in state["last"].items()}


def policy_bytes(policy: Rl2Policy, meta: Mapping[str, Any]) -> bytes:
    """The policy file's content (``save_policy`` to memory)."""
    buffer = io.BytesIO()
    save_policy(policy, buffer, meta)
    return buffer.getvalue()


def meta_train(
    tasks: Sequence[Task],
    cardinalities: Sequence[int],
    *,
    steps: int = 100,
    batch: int = 32,
    iterations: int = 1500,
    seconds: float | None = None,
    hidden: int = 64,
    lr: float = 3e-3,
    entropy_weight: float = 0.01,
    seed: int = 0,
    log: Callable[[int, float, float], None] | None = None,
) -> tuple[Rl2Policy, dict[str, Any]]:
    """``MetaTrainer`` run to ``iterations`` or ``seconds`` in one call (the bench's way; the
    service steps it as a job, checkpointing between steps). Returns the policy and a
    summary (iterations, seconds, last mean best)."""
    trainer = MetaTrainer(
        tasks,
        cardinalities,
        steps=steps,
        batch=batch,
        hidden=hidden,
        lr=lr,
        entropy_weight=entropy_weight,
        seed=seed,
    )
    started = time.perf_counter()
    while trainer.iterations < iterations and (
        seconds is None or time.perf_counter() - started < seconds
    ):
        stats = trainer.step()
        if log is not None and stats is not None:  # (None only when asked to stop)
            log(trainer.iterations, stats["mean_best_z"], stats["entropy"])
    return trainer.policy, trainer.summary()

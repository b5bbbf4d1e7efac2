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

import pickle
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


def save_policy(policy: Rl2Policy, path: str | Path, meta: Mapping[str, Any]) -> None:
    torch.save(
        {
            "format": POLICY_FORMAT,
            "version": 1,
            "cardinalities": policy.cardinalities,
            "hidden": policy.hidden,
            "state_dict": policy.state_dict(),
            "meta": dict(meta),
        },
        Path(path),
    )


def load_policy(path: str | Path) -> tuple[Rl2Policy, dict[str, Any]]:
    try:
        data = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise PolicyFileError(
            f"controller.policy: not a readable rl2 policy file ({type(exc).__name__})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != POLICY_FORMAT:
        raise PolicyFileError(
            "controller.policy: expected a policy file written by rl2 meta-training"
        )
    policy = Rl2Policy(data["cardinalities"], int(data["hidden"]))
    policy.load_state_dict(data["state_dict"])
    policy.eval()
    return policy, dict(data.get("meta") or {})


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
    policy: str = Field(
        description="the meta-trained policy file (rl2 meta-training writes it)",
        json_schema_extra=FILE_PARAM,
    )
    unique: bool = Field(True, description="resample an architecture already proposed")


class Rl2Controller(Controller):
    """Runs a meta-trained recurrent policy; learns within the search through its hidden
    state only. One proposal at a time (each sees the previous result).

    Example:
        >>> controller = Rl2Controller(space=Nb201Space(), policy="rl2-nb201.pt", seed=0)
    """

    name = "rl2"
    Config = Rl2Config

    def __init__(self, *, policy: str, unique: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy, self.policy_meta = load_policy(policy)
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

    def _propose(self) -> Architecture | None:
        if self._pending:
            return None  # each proposal follows the previous result
        prev = None if self._prev is None else torch.tensor([self._prev])
        with torch.no_grad(), one_torch_thread():
            x = self.policy.encode(prev, torch.tensor([self._signal]), 1)
            logits, self._h = self.policy.step(x, self._h)
            probs = [torch.softmax(lg[0].double(), 0).numpy() for lg in logits]
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
    by mixed-radix code of its choices (``np.ravel_multi_index``), larger is better."""

    name: str
    fitness: np.ndarray

    @property
    def standardised(self) -> np.ndarray:
        return (self.fitness - self.fitness.mean()) / (self.fitness.std() + 1e-12)


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
    """Train a policy by REINFORCE over ``batch`` episodes of ``steps`` proposals per
    iteration, each on a task drawn uniformly; the return of a step is the sum of the
    standardised best-so-far fitness from it to the episode's end, less the batch mean at
    that step. Stops after ``iterations`` or ``seconds``. Repeats are resampled as at search
    time. Returns the policy and a summary (iterations, seconds, last mean best)."""
    with one_torch_thread():
        return _meta_train(
            tasks,
            cardinalities,
            steps,
            batch,
            iterations,
            seconds,
            hidden,
            lr,
            entropy_weight,
            seed,
            log,
        )


def _meta_train(
    tasks: Sequence[Task],
    cardinalities: Sequence[int],
    steps: int,
    batch: int,
    iterations: int,
    seconds: float | None,
    hidden: int,
    lr: float,
    entropy_weight: float,
    seed: int,
    log: Callable[[int, float, float], None] | None,
) -> tuple[Rl2Policy, dict[str, Any]]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cards = [int(c) for c in cardinalities]
    tables = [torch.tensor(t.standardised, dtype=torch.float32) for t in tasks]
    for task, table in zip(tasks, tables, strict=True):
        if table.numel() != int(np.prod(cards)):
            raise ValueError(
                f"task {task.name}: {table.numel()} values for {np.prod(cards)} architectures"
            )
    radix = torch.tensor(np.cumprod([1, *cards[::-1]])[:-1][::-1].copy(), dtype=torch.long)
    policy = Rl2Policy(cards, hidden)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    started = time.perf_counter()
    done = 0
    last_best = float("nan")
    while done < iterations and (seconds is None or time.perf_counter() - started < seconds):
        which = rng.integers(len(tables), size=batch)
        values = torch.stack([tables[i] for i in which])  # (B, N)
        h = torch.zeros(batch, hidden)
        prev: torch.Tensor | None = None
        signal = torch.zeros(batch)
        visited = torch.zeros(batch, tables[0].numel(), dtype=torch.bool)
        rows = torch.arange(batch)
        scores = torch.empty(batch, 0)
        best = torch.full((batch,), -float("inf"))
        log_probs, entropies, bests = [], [], []
        for _ in range(steps):
            logits, h = policy.step(policy.encode(prev, signal, batch), h)
            dists = [
                torch.distributions.Categorical(logits=lg, validate_args=False) for lg in logits
            ]
            choices = torch.stack([d.sample() for d in dists], 1)
            codes = (choices * radix).sum(1)
            for _ in range(RESAMPLES):  # resample repeats, as the controller does
                repeat = visited[rows, codes]
                if not bool(repeat.any()):
                    break
                again = torch.stack([d.sample() for d in dists], 1)
                choices = torch.where(repeat[:, None], again, choices)
                codes = (choices * radix).sum(1)
            visited[rows, codes] = True
            log_probs.append(sum(d.log_prob(choices[:, i]) for i, d in enumerate(dists)))
            entropies.append(sum(d.entropy() for d in dists))
            fitness = values[rows, codes]
            if scores.shape[1] == 0:
                signal = torch.full((batch,), 0.5)
            else:
                below = (scores < fitness[:, None]).float() + 0.5 * (
                    scores == fitness[:, None]
                ).float()
                signal = below.mean(1)
            scores = torch.cat([scores, fitness[:, None]], 1)
            best = torch.maximum(best, fitness)
            bests.append(best.clone())
            prev = choices
        rewards = torch.stack(bests, 1)  # (B, T)
        returns = rewards.flip(1).cumsum(1).flip(1)
        advantage = returns - returns.mean(0, keepdim=True)
        advantage = advantage / (advantage.std() + 1e-8)
        loss = (
            -(torch.stack(log_probs, 1) * advantage).mean()
            - entropy_weight * torch.stack(entropies, 1).mean()
        )
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), 5.0)
        optimizer.step()
        done += 1
        last_best = float(rewards[:, -1].mean())
        if log is not None:
            log(done, last_best, float(torch.stack(entropies).mean()))
    policy.eval()
    summary = {
        "iterations": done,
        "seconds": round(time.perf_counter() - started, 1),
        "steps": steps,
        "batch": batch,
        "tasks": [t.name for t in tasks],
        "final_mean_best_z": last_best,
    }
    return policy, summary

"""``metaqnn``: tabular Q-learning of layer sequences (Baker et al. 2017, "Designing neural
network architectures using reinforcement learning", algorithm 1).

The agent walks from the input state to a terminal action, choosing each step
epsilon-greedily over the legal actions: with probability epsilon uniformly, else the action
of largest Q value (ties broken at random). Only the terminal transition is rewarded, with
the trained network's validation accuracy as a fraction (``score * reward_scale``; the
standalone evaluator reports percent, hence 0.01). After each told result the result joins
the replay memory and ``replay_size`` (paper: 100) memories, drawn uniformly with
replacement, are replayed: along each one's trajectory, from the end,

    Q(s_T, a_T) <- (1 - alpha) Q(s_T, a_T) + alpha r
    Q(s_i, a_i) <- (1 - alpha) Q(s_i, a_i) + alpha gamma max_{a' legal in s_{i+1}} Q(s_{i+1}, a')

with alpha 0.01, gamma 1 and Q initialised to 0.5, as in the paper.

States: on the ``metaqnn`` space a state is (layer depth, the last layer's type and
parameters, representation-size bin), the paper's state; the legal actions come from the
space (``MetaQNNSpace.legal_actions``). On any other space (``nb201``, ``enas-macro``, ...)
each decision is one step and the state is (decision index, previous choice): a generic
fallback, as every combination of such a space is legal.

Epsilon schedule: the paper trains 1500 models at epsilon 1.0, then 100-150 at each of 0.9,
0.8, ..., 0.1 (``PAPER_SCHEDULE``, 2700 models). Here it scales to ``total_models`` (set it to
the job's trial budget): ``explore_fraction`` (0.5) of the models at epsilon 1.0, the rest
split evenly over ``epsilons`` (0.9 ... 0.1; a remainder goes to the last stages, which the
paper also gives more). ``schedule: [[epsilon, models], ...]`` replaces that rule outright.
Models beyond the schedule use its last epsilon. The schedule counts trained models, i.e.
candidates asked.

Repeats: a walk that ends in an architecture already in the replay memory is not trained
again; its stored reward updates Q along the walk and the agent walks again (at most
``duplicate_retries`` times; a walk that ends in a pending architecture is retried without
an update). After that many repeats the candidate is a uniform sample of the space that was
never asked; once every architecture of the space has been asked, the controller is
finished.

Joint search (an ``hparams`` space): the Q-table covers the architecture only; each
candidate's hyperparameters are sampled uniformly after its walk (``Controller._sample_hparams``)
and repeats are still judged by architecture.

``epsilon`` (the current one) and ``reward_curve`` (per schedule stage: epsilon, models told,
mean and best reward) are there for benchmarks; ``greedy()`` is the walk at epsilon 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationInfo, model_validator

from controllers.base import Candidate, Controller, ControllerConfig
from nas.architecture import Architecture
from nas.errors import at_submit
from nas.spaces.base import SearchSpace
from nas.spaces.metaqnn import LayerState, MetaQNNSpace
from nas.trial import TrialResult

#: Epsilon and number of models per stage as we read the paper's table 2 (CIFAR-10, SVHN).
PAPER_SCHEDULE: tuple[tuple[float, int], ...] = (
    (1.0, 1500),
    (0.9, 100),
    (0.8, 100),
    (0.7, 100),
    (0.6, 150),
    (0.5, 150),
    (0.4, 150),
    (0.3, 150),
    (0.2, 150),
    (0.1, 150),
)
DEFAULT_EPSILONS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
#: The most models a schedule may span (``total_models``).
MAX_MODELS = 10_000_000


class MetaQNNControllerConfig(ControllerConfig):
    total_models: int = Field(
        100,
        ge=1,
        le=MAX_MODELS,
        description="models the schedule spans: the trial budget (default: budget.trials "
        "when the spec has one, else 100)",
    )
    explore_fraction: float = Field(
        0.5, ge=0, le=1, description="share of total_models at epsilon 1.0 (paper: 1500/2700)"
    )
    epsilons: list[float] = Field(
        list(DEFAULT_EPSILONS),
        min_length=1,
        description="the stages after the epsilon-1.0 one; the rest of the models split evenly",
    )
    schedule: list[tuple[float, int]] | None = Field(
        None,
        description="explicit [[epsilon, models], ...] stages, replacing total_models, "
        "explore_fraction and epsilons",
    )
    alpha: float = Field(0.01, gt=0, le=1, description="Q-learning rate (paper: 0.01)")
    gamma: float = Field(1.0, ge=0, le=1, description="discount (paper: 1)")
    q_init: float = Field(0.5, description="initial Q value (paper: 0.5)")
    replay_size: int = Field(100, ge=0, le=100_000, description="replays per result (paper: 100)")
    reward_scale: float = Field(0.01, gt=0, description="score -> reward (percent -> fraction)")
    failure_reward: float = Field(0.0, description="reward of a failed trial")
    duplicate_retries: int = Field(
        100, ge=0, le=100_000, description="walks that may repeat a trained model per ask"
    )

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> MetaQNNControllerConfig:
        for eps in self.epsilons:
            if not 0 <= eps <= 1:
                raise ValueError(f"epsilons {self.epsilons} must lie in 0..1")
        if self.schedule is not None:
            if not self.schedule:
                raise ValueError("schedule must have at least one [epsilon, models] stage")
            for eps, models in self.schedule:
                if not 0 <= eps <= 1 or models < 1:
                    raise ValueError(
                        f"schedule stage [{eps}, {models}]: epsilon in 0..1, models >= 1"
                    )
            fields = type(self).model_fields
            for name in ("total_models", "explore_fraction", "epsilons"):
                # at submit only (a job stored before still loads); a default passes (a
                # stored spec has every default filled in)
                if at_submit(info.context) and getattr(self, name) != fields[name].default:
                    raise ValueError(
                        f"{name}: the schedule replaces total_models, explore_fraction and "
                        f"epsilons; give either the schedule or these, got both"
                    )
        return self


def scaled_schedule(
    total_models: int, explore_fraction: float = 0.5, epsilons: Sequence[float] = DEFAULT_EPSILONS
) -> list[tuple[float, int]]:
    """The paper's schedule shape scaled to ``total_models``: ``explore_fraction`` of them at
    epsilon 1.0, the rest split evenly over ``epsilons`` (the remainder to the last stages);
    stages of no models are left out.

    Example:
        >>> scaled_schedule(40)
        [(1.0, 20), (0.9, 2), (0.8, 2), (0.7, 2), (0.6, 2), (0.5, 2), (0.4, 2), (0.3, 2), (0.2, 3), (0.1, 3)]
    """
    explore = round(total_models * explore_fraction)
    rest = total_models - explore
    per, extra = divmod(rest, len(epsilons))
    stages = [(1.0, explore)]
    for i, eps in enumerate(epsilons):
        stages.append((float(eps), per + (1 if i >= len(epsilons) - extra else 0)))
    return [(eps, n) for eps, n in stages if n > 0]


# --- environments: what a step is on each kind of space ----------------------------------------
Step = tuple[str, int]  # (state key, action)


@dataclass(frozen=True)
class Trajectory:
    """The Q-table entries of one architecture: per step the state key and action, and the
    keys of the legal actions of the state after it (``None`` after the terminal step)."""

    steps: tuple[Step, ...]
    next_legal: tuple[tuple[str, tuple[int, ...]] | None, ...]


class _LayerEnv:
    """The MetaQNN state machine of a ``metaqnn`` space."""

    def __init__(self, space: MetaQNNSpace) -> None:
        self.space = space

    def start(self) -> LayerState:
        return self.space.initial_state()

    def key(self, state: LayerState) -> str:
        return f"{state.depth}|{state.label}|R{self.space.size_bin(state.size)}"

    def legal(self, state: LayerState) -> list[int]:
        return self.space.legal_actions(state)

    def advance(self, state: LayerState, action: int) -> LayerState | None:
        nxt = self.space.next_state(state, action)
        return None if nxt.terminated else nxt

    def finish(self, actions: list[int]) -> Architecture:
        pad = [self.space.pad] * (self.space.max_layers + 1 - len(actions))
        return Architecture(self.space.name, (*actions, *pad), self.space.version)

    def actions_of(self, arch: Architecture) -> list[int]:
        return list(arch.choices[: len(self.space.states(arch))])


class _DecisionEnv:
    """Any fixed-decision space: a step per decision, state (decision index, previous choice)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.sizes = [d.num_choices for d in space.decisions()]

    def start(self) -> tuple[int, int]:
        return (0, -1)

    def key(self, state: tuple[int, int]) -> str:
        return f"{state[0]}|{state[1]}"

    def legal(self, state: tuple[int, int]) -> list[int]:
        return list(range(self.sizes[state[0]]))

    def advance(self, state: tuple[int, int], action: int) -> tuple[int, int] | None:
        step = state[0] + 1
        return None if step >= len(self.sizes) else (step, action)

    def finish(self, actions: list[int]) -> Architecture:
        return self.space.make(actions)  # validated: a space with constraints fails loudly

    def actions_of(self, arch: Architecture) -> list[int]:
        self.space.validate(arch)
        return list(arch.choices)


def _reward_curve(
    schedule: Sequence[tuple[float, int]], stages: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    out = []
    for (eps, planned), stats in zip(schedule, stages, strict=True):
        models = int(stats["models"])
        out.append(
            {
                "epsilon": eps,
                "planned": planned,
                "models": models,
                "mean_reward": float(stats["sum"]) / models if models else None,
                "best_reward": None if stats["best"] is None else float(stats["best"]),
            }
        )
    return out


class MetaQNN(Controller):
    """MetaQNN's epsilon-greedy tabular Q-learning with experience replay.

    Example:
        >>> controller = MetaQNN(space=MetaQNNSpace(max_layers=4), seed=0, total_models=20)
        >>> candidate = controller.ask()
        >>> controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=81.0))
    """

    name = "metaqnn"
    Config = MetaQNNControllerConfig
    #: The Q-table does not depend on the epsilon schedule (whose length is the budget's).
    transfer_ignores = frozenset({"total_models", "explore_fraction", "epsilons", "schedule"})

    @classmethod
    def spec_defaults(
        cls, spec: Any, given: Mapping[str, Any], params: dict[str, Any]
    ) -> dict[str, Any]:
        """``total_models`` defaults to the spec's ``budget.trials``: with the fixed 100 a
        30-trial search never left epsilon 1.0 (it was random search)."""
        trials = spec.budget.trials
        if "total_models" in given or "schedule" in given or trials is None:
            return params
        return {**params, "total_models": min(int(trials), MAX_MODELS)}

    def __init__(
        self,
        *,
        total_models: int = 100,
        explore_fraction: float = 0.5,
        epsilons: Sequence[float] = DEFAULT_EPSILONS,
        schedule: Sequence[Sequence[float]] | None = None,
        alpha: float = 0.01,
        gamma: float = 1.0,
        q_init: float = 0.5,
        replay_size: int = 100,
        reward_scale: float = 0.01,
        failure_reward: float = 0.0,
        duplicate_retries: int = 100,
        **kwargs: Any,
    ) -> None:
        config = MetaQNNControllerConfig(
            total_models=total_models,
            explore_fraction=explore_fraction,
            epsilons=list(epsilons),
            schedule=None if schedule is None else [tuple(s) for s in schedule],  # type: ignore[misc]
            alpha=alpha,
            gamma=gamma,
            q_init=q_init,
            replay_size=replay_size,
            reward_scale=reward_scale,
            failure_reward=failure_reward,
            duplicate_retries=duplicate_retries,
        )
        super().__init__(**kwargs)
        self.schedule: list[tuple[float, int]] = (
            [(float(e), int(n)) for e, n in config.schedule]
            if config.schedule is not None
            else scaled_schedule(total_models, explore_fraction, config.epsilons)
        )
        self.alpha = alpha
        self.gamma = gamma
        self.q_init = q_init
        self.replay_size = replay_size
        self.reward_scale = reward_scale
        self.failure_reward = failure_reward
        self.duplicate_retries = duplicate_retries
        self.env: _LayerEnv | _DecisionEnv = (
            _LayerEnv(self.space)
            if isinstance(self.space, MetaQNNSpace)
            else _DecisionEnv(self.space)
        )
        self.q: dict[str, dict[str, float]] = {}
        self.memory: list[tuple[tuple[int, ...], float]] = []  # (choices, reward), in told order
        self._rewards: dict[tuple[int, ...], float] = {}  # latest reward per architecture
        self._asked = 0  # models asked: the schedule position
        self._stage_of: dict[int, int] = {}  # pending candidate id -> schedule stage
        self._stages = [{"models": 0, "sum": 0.0, "best": None} for _ in self.schedule]
        self.duplicates = 0  # walks that repeated a trained model (reward reused)
        self.fallbacks = 0  # asks answered by a uniform sample after too many repeats
        self._trajectories: dict[tuple[int, ...], Trajectory] = {}  # cache, not state

    # --- schedule --------------------------------------------------------------------------
    def _stage(self, models: int) -> int:
        """The schedule stage of the model with index ``models`` (0-based)."""
        for index, (_, n) in enumerate(self.schedule):
            if models < n:
                return index
            models -= n
        return len(self.schedule) - 1

    @property
    def epsilon(self) -> float:
        """The epsilon of the next candidate."""
        return self.schedule[self._stage(self._asked)][0]

    @property
    def reward_curve(self) -> list[dict[str, Any]]:
        """Per schedule stage: epsilon, planned models, models told, mean and best reward."""
        return _reward_curve(self.schedule, self._stages)

    @classmethod
    def state_curves(cls, state: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """``epsilon_stages``: ``reward_curve`` of the checkpointed controller, one point
        per schedule stage (``epoch``: the stage's index)."""
        data = state.get("metaqnn")
        if not isinstance(data, Mapping):
            return {}
        curve = _reward_curve(
            [(float(e), int(n)) for e, n in data["schedule"]], list(data["stages"])
        )
        return {"epsilon_stages": [{"epoch": i, **point} for i, point in enumerate(curve)]}

    # --- Q table ---------------------------------------------------------------------------
    def q_value(self, key: str, action: int) -> float:
        return self.q.get(key, {}).get(str(action), self.q_init)

    def _walk(self, epsilon: float, *, random_ties: bool = True) -> list[int]:
        env, state, actions = self.env, self.env.start(), []
        while state is not None:
            legal = env.legal(state)
            if epsilon > 0 and self.rng.random() < epsilon:
                action = legal[int(self.rng.integers(len(legal)))]
            else:
                key = env.key(state)
                values = [self.q_value(key, a) for a in legal]
                top = max(values)
                best = [a for a, v in zip(legal, values, strict=True) if v == top]
                pick = int(self.rng.integers(len(best))) if random_ties and len(best) > 1 else 0
                action = best[pick]
            actions.append(action)
            state = env.advance(state, action)  # type: ignore[arg-type]
        return actions

    def greedy(self) -> Architecture:
        """The architecture of largest Q value at every step (ties: the first action); draws
        nothing from the generator."""
        return self.env.finish(self._walk(0.0, random_ties=False))

    def _trajectory(self, choices: tuple[int, ...]) -> Trajectory:
        cached = self._trajectories.get(choices)
        if cached is not None:
            return cached
        env = self.env
        arch = Architecture(self.space.name, choices, self.space.version)
        state = env.start()
        steps: list[Step] = []
        nexts: list[tuple[str, tuple[int, ...]] | None] = []
        for action in env.actions_of(arch):
            steps.append((env.key(state), action))  # type: ignore[arg-type]
            state = env.advance(state, action)  # type: ignore[arg-type]
            nexts.append(None if state is None else (env.key(state), tuple(env.legal(state))))  # type: ignore[arg-type]
        trajectory = Trajectory(tuple(steps), tuple(nexts))
        self._trajectories[choices] = trajectory
        return trajectory

    def _update(self, choices: tuple[int, ...], reward: float) -> None:
        """One backward pass of the Q update along the architecture's trajectory."""
        trajectory = self._trajectory(choices)
        for (key, action), nxt in zip(
            reversed(trajectory.steps), reversed(trajectory.next_legal), strict=True
        ):
            if nxt is None:
                target = reward
            else:
                next_key, legal = nxt
                target = self.gamma * max(self.q_value(next_key, a) for a in legal)
            old = self.q_value(key, action)
            self.q.setdefault(key, {})[str(action)] = (1 - self.alpha) * old + self.alpha * target

    # --- ask / tell ------------------------------------------------------------------------
    def _propose(self) -> Architecture | None:
        pending = {c.architecture.choices for c in self._pending.values()}
        epsilon = self.epsilon
        arch: Architecture | None = None
        for _ in range(self.duplicate_retries + 1):
            choices = tuple(self.env.finish(self._walk(epsilon)).choices)
            if choices in self._rewards:  # trained before: reuse its reward, walk again
                self.duplicates += 1
                self._update(choices, self._rewards[choices])
                continue
            if choices in pending:
                continue
            arch = Architecture(self.space.name, choices, self.space.version)
            break
        if arch is None:
            arch = self._fallback(pending)
            if arch is None:
                return None
        self._stage_of[self._next_id] = self._stage(self._asked)
        self._asked += 1
        return arch

    def _propose_seed(
        self, architecture: Architecture, hparams: dict[str, Any]
    ) -> tuple[Architecture, Mapping[str, Any]] | None:
        """A warm-start prior takes a model's place in the epsilon schedule (its result is
        counted in the stage it ran in), so that the schedule spans every trial of the job:
        priors used to leave it behind (20 trials with 5 priors ended at epsilon 0.5) and
        were counted in the last stage's models (epsilon 0.1) before it had begun."""
        self._stage_of[self._next_id] = self._stage(self._asked)
        self._asked += 1
        return super()._propose_seed(architecture, hparams)

    def _fallback(self, pending: set[tuple[int, ...]]) -> Architecture | None:
        """A uniform sample never asked before, after ``duplicate_retries`` repeats; ``None``
        once the space is exhausted (finished, or "not now" while results are pending)."""
        seen = set(self._rewards) | pending
        if len(seen) >= self.space.size():
            if not pending:
                self._finished = True
            return None
        self.fallbacks += 1
        for _ in range(10_000):
            arch = self.space.sample(self.rng)
            if arch.choices not in seen:
                return arch
        return arch  # the space is nearly exhausted: train a repeat rather than stall

    def _observe(self, candidate: Candidate, result: TrialResult, score: float | None) -> None:
        reward = self.failure_reward if score is None else score * self.reward_scale
        choices = candidate.architecture.choices
        self.memory.append((choices, reward))
        self._rewards[choices] = reward
        stats = self._stages[self._stage_of.pop(candidate.id, len(self._stages) - 1)]
        stats["models"] += 1
        stats["sum"] += reward
        stats["best"] = reward if stats["best"] is None else max(stats["best"], reward)
        for _ in range(self.replay_size):
            sample, value = self.memory[int(self.rng.integers(len(self.memory)))]
            self._update(sample, value)

    # --- warm start ------------------------------------------------------------------------
    @classmethod
    def transferable_state(cls, state: Mapping[str, Any]) -> dict[str, Any] | None:
        """The source's Q-table (not its replay memory: those rewards are the source's
        trained models, not this job's)."""
        return {"q": state["metaqnn"]["q"]}

    def load_transferred(self, transferred: Mapping[str, Any]) -> None:
        """The Q-values start from the source's (same space: the same states and actions);
        entries the source never updated keep ``q_init``."""
        try:
            self.q = {
                str(k): {str(a): float(v) for a, v in row.items()}
                for k, row in transferred["q"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a MetaQNN Q-table: {exc}") from None

    # --- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["metaqnn"] = {
            "schedule": [list(s) for s in self.schedule],
            "q": {k: dict(v) for k, v in self.q.items()},
            "memory": [[list(c), r] for c, r in self.memory],
            "asked": self._asked,
            "stage_of": {str(k): v for k, v in self._stage_of.items()},
            "stages": [dict(s) for s in self._stages],
            "duplicates": self.duplicates,
            "fallbacks": self.fallbacks,
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        data = state["metaqnn"]
        # The checkpoint's schedule wins, so the restored controller goes on exactly.
        self.schedule = [(float(e), int(n)) for e, n in data["schedule"]]
        self.q = {k: {a: float(v) for a, v in row.items()} for k, row in data["q"].items()}
        self.memory = [(tuple(int(x) for x in c), float(r)) for c, r in data["memory"]]
        self._rewards = {}
        for choices, reward in self.memory:
            self._rewards[choices] = reward
        self._asked = int(data["asked"])
        self._stage_of = {int(k): int(v) for k, v in data["stage_of"].items()}
        self._stages = [
            {
                "models": int(s["models"]),
                "sum": float(s["sum"]),
                "best": None if s["best"] is None else float(s["best"]),
            }
            for s in data["stages"]
        ]
        self.duplicates = int(data["duplicates"])
        self.fallbacks = int(data["fallbacks"])

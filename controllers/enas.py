"""``enas``: the ENAS controller, an LSTM policy trained with REINFORCE (Pham et al. 2018).

Each ``tell`` turns a result into a reward and accumulates a REINFORCE gradient; every
``num_aggregate`` rewards the policy takes one Adam step, as the official code does. Works on
``enas-macro``, ``enas-micro`` and, without weight sharing, on ``nb201`` (REINFORCE on the
table) or any other fixed-decision space.

Defaults and their sources (official code: github.com/melodyguan/enas, ``src/cifar10``
flags and ``scripts/cifar10_{macro,micro}_search.sh``):

| parameter | default | source |
|---|---|---|
| ``lstm_size`` / ``lstm_layers`` | 64 / 1 | ``micro_controller`` defaults (the paper: 100 units for the RNN cell search) |
| ``lr`` | 0.001 (micro: 0.0035) | macro / micro search scripts |
| ``tanh_constant`` | 1.5 (micro: 1.10) | macro / micro search scripts; paper section 3.1 |
| ``op_tanh_reduce`` | 2.5 | both search scripts (micro ops: tanh constant / 2.5) |
| ``temperature`` | None | both search scripts (the paper's 5.0 is for the RNN search) |
| ``entropy_weight`` | 0.0001 | both search scripts |
| ``baseline_decay`` | 0.99 | ``controller_bl_dec`` flag |
| ``skip_target`` / ``skip_weight`` | 0.4 / 0.8 | macro search script (KL to a Bernoulli(0.4) skip prior) |
| ``num_aggregate`` | 20 (micro: 10) | macro / micro search scripts |
| ``train_steps`` | 50 (micro: 30) | macro / micro search scripts: rewards per epoch = train_steps x num_aggregate |

The skip-connection penalty (macro) is the mean over layers of each layer's KL to the
prior, as ``general_controller`` computes it. Not reproduced: ``micro_controller``'s op-logit
biases (a learned ``b_soft`` started at [10, 10, 0, 0, 0] and, on normal cells, a fixed
[0.25, 0.25, -0.25, -0.25, -0.25]), which start the micro policy with separable convolutions
about 2.5 times as likely as each other op; here every op starts equally likely.

Rewards: the job's objective scaled by ``reward_scale`` (0.01: accuracies here are percents,
ENAS's rewards are fractions); a failed trial gets ``failure_reward`` (0.0, i.e. the worst
accuracy) so the policy learns to avoid it. The baseline starts at 0.0, as in ENAS.

Joint search (an ``hparams`` space): the policy covers the architecture decisions only; each
candidate's hyperparameters are sampled uniformly from the controller's generator, after its
architecture (``Controller._sample_hparams``), and do not enter the REINFORCE update.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pydantic import Field

from controllers.base import Candidate, Controller, ControllerConfig, one_torch_thread
from controllers.enas_policy import EnasPolicy
from nas.architecture import Architecture
from nas.rng import forked_rng
from nas.trial import TrialResult

MICRO_DEFAULTS = {"lr": 0.0035, "tanh_constant": 1.10, "num_aggregate": 10, "train_steps": 30}


class EnasConfig(ControllerConfig):
    lstm_size: int = Field(64, ge=4, le=1024)
    lstm_layers: int = Field(1, ge=1, le=4)
    lr: float | None = Field(None, gt=0, le=1, description="default 0.001 (micro 0.0035)")
    tanh_constant: float | None = Field(
        None, ge=0, description="default 1.5 (micro 1.10); 0 turns the tanh squashing off"
    )
    op_tanh_reduce: float = Field(2.5, gt=0)
    temperature: float | None = Field(None, gt=0)
    entropy_weight: float = Field(0.0001, ge=0)
    baseline_decay: float = Field(0.99, ge=0, lt=1)
    skip_target: float = Field(0.4, gt=0, lt=1)
    skip_weight: float = Field(0.8, ge=0)
    num_aggregate: int | None = Field(None, ge=1, le=100_000, description="default 20 (micro 10)")
    train_steps: int | None = Field(None, ge=1, le=100_000, description="default 50 (micro 30)")
    reward_scale: float = Field(0.01, gt=0)
    failure_reward: float = Field(0.0)
    grad_clip: float | None = Field(None, gt=0)
    shared_heads: bool = Field(
        True, description="one op head for all decisions, as ENAS; false: one per decision"
    )


class EnasController(Controller):
    """ENAS's LSTM + REINFORCE controller behind the ask/tell contract.

    Example:
        >>> controller = EnasController(space=Nb201Space(), seed=0)
        >>> candidate = controller.ask()
        >>> controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=91.0))
    """

    name = "enas"
    Config = EnasConfig

    def __init__(
        self,
        *,
        lstm_size: int = 64,
        lstm_layers: int = 1,
        lr: float | None = None,
        tanh_constant: float | None = None,
        op_tanh_reduce: float = 2.5,
        temperature: float | None = None,
        entropy_weight: float = 0.0001,
        baseline_decay: float = 0.99,
        skip_target: float = 0.4,
        skip_weight: float = 0.8,
        num_aggregate: int | None = None,
        train_steps: int | None = None,
        reward_scale: float = 0.01,
        failure_reward: float = 0.0,
        grad_clip: float | None = None,
        shared_heads: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        micro = self.space.name == "enas-micro"
        pick = lambda value, key, macro: (
            value if value is not None else (MICRO_DEFAULTS[key] if micro else macro)
        )
        self.lr = pick(lr, "lr", 0.001)
        self.tanh_constant = pick(tanh_constant, "tanh_constant", 1.5) or None  # 0: off
        self.num_aggregate = int(pick(num_aggregate, "num_aggregate", 20))
        self.train_steps = int(pick(train_steps, "train_steps", 50))
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.skip_weight = skip_weight
        self.reward_scale = reward_scale
        self.failure_reward = failure_reward
        self.grad_clip = grad_clip
        # Initial weights come from the controller's own generator, not torch's global state.
        init_seed = int(self.rng.integers(2**63 - 1))
        with forked_rng(init_seed):  # safe beside other threads' use of torch's RNG
            self.policy = EnasPolicy(
                self.space,
                lstm_size=lstm_size,
                lstm_layers=lstm_layers,
                temperature=temperature,
                tanh_constant=self.tanh_constant,
                op_tanh_reduce=op_tanh_reduce,
                skip_target=skip_target,
                shared_heads=shared_heads,
            )
        self.baseline = 0.0
        self.aggregated = 0  # rewards accumulated since the last policy step
        self.updates = 0
        self.history: list[dict[str, float]] = []  # reward / entropy / baseline per tell

    @functools.cached_property
    def optimizer(self) -> torch.optim.Adam:
        """The policy's optimizer, made on first use (a policy step, a checkpoint): making a
        torch optimizer imports ``torch._dynamo`` (1-2.5 s of CPU), which a controller built
        only to check a spec at submit never needs (a service's first ENAS submit took 4 s)."""
        return torch.optim.Adam(self.policy.parameters(), lr=self.lr)

    @property
    def rewards_per_epoch(self) -> int:  # type: ignore[override]
        """How many rewards ENAS collects per epoch (train_steps x num_aggregate)."""
        return self.train_steps * self.num_aggregate

    @property
    def reward_group(self) -> int:  # type: ignore[override]
        """The policy takes one step per ``num_aggregate`` rewards."""
        return self.num_aggregate

    def curve_stats(self, last: int) -> dict[str, float]:
        if not self.history:
            return {}
        recent = self.history[-last:] if last else self.history[-1:]
        # The baseline in the rewards' units (the score's, e.g. accuracy in percent), as the
        # curve's mean_reward is: the policy's reward is the score times reward_scale.
        return {
            "entropy": float(np.mean([h["entropy"] for h in recent])),
            "baseline": float(self.history[-1]["baseline"]) / self.reward_scale,
        }

    # --- sampling --------------------------------------------------------------------------
    def pending_limit(self) -> tuple[int | None, str | None]:
        # A policy step per num_aggregate rewards: no more are asked for before it.
        return self.num_aggregate, "num_aggregate"

    def _propose(self) -> Architecture | None:
        # "Not now" once a full aggregation group is out: the policy cannot change before
        # those rewards come back, so further samples would all come from a stale policy.
        if len(self._pending) >= self.num_aggregate:
            return None
        return self.sample_for_training()

    def sample_for_training(self) -> Architecture:
        """A policy sample without a candidate (ENAS trains shared weights on these)."""
        with torch.no_grad(), one_torch_thread():
            out = self.policy.run(rng=self.rng)
        return Architecture(self.space.name, tuple(out.choices), self.space.version)

    def greedy(self) -> Architecture:
        """The most likely architecture (argmax at every decision)."""
        with torch.no_grad(), one_torch_thread():
            out = self.policy.run()
        return Architecture(self.space.name, tuple(out.choices), self.space.version)

    # --- learning --------------------------------------------------------------------------
    def _observe(self, candidate: Candidate, result: TrialResult, score: float | None) -> None:
        with one_torch_thread():
            self._reinforce(candidate, score)

    def _reinforce(self, candidate: Candidate, score: float | None) -> None:
        reward = self.failure_reward if score is None else score * self.reward_scale
        out = self.policy.run(choices=candidate.architecture.choices)
        entropy = float(out.entropy.detach())
        reward += self.entropy_weight * entropy
        self.baseline -= (1.0 - self.baseline_decay) * (self.baseline - reward)
        advantage = reward - self.baseline
        loss = -out.log_prob * advantage + self.skip_weight * out.skip_penalty
        if not torch.isfinite(loss):
            # (a step on it would make every weight NaN, and the next sample fail with
            # "Probabilities contain NaN", naming nothing the user set)
            raise ValueError(
                f"controller: the ENAS policy's loss for trial {candidate.id} is not a finite "
                f"number (its reward {reward:g}: score {score!r} x controller.reward_scale "
                f"{self.reward_scale:g}, or controller.failure_reward; controller.skip_weight "
                f"{self.skip_weight:g}): use smaller values"
            )
        (loss / self.num_aggregate).backward()
        self.aggregated += 1
        if self.aggregated >= self.num_aggregate:
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=False)
            self.aggregated = 0
            self.updates += 1
        self.history.append(
            {
                "reward": reward,
                "entropy": entropy,
                "baseline": self.baseline,
                "update": self.updates,
            }
        )

    # --- warm start ------------------------------------------------------------------------
    @classmethod
    def transferable_state(cls, state: Mapping[str, Any]) -> dict[str, Any] | None:
        """The source's policy weights. Not its optimizer moments or reward baseline: the
        baseline is on the source's reward scale (another dataset's accuracies) and starts
        at 0.0 as in any ENAS search."""
        return {"policy": state["enas"]["policy"]}

    def load_transferred(self, transferred: Mapping[str, Any]) -> None:
        """The policy starts as the source's final policy (same space and parameters)."""
        try:
            self.policy.load_state_dict(_from_plain(transferred["policy"]))
        except (KeyError, TypeError, RuntimeError) as exc:
            raise ValueError(f"not an ENAS policy of this space and size: {exc}") from None

    # --- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["enas"] = {
            "policy": _to_plain(self.policy.state_dict()),
            "grads": [
                None if p.grad is None else _to_plain(p.grad) for p in self.policy.parameters()
            ],
            "optimizer": _to_plain(self.optimizer.state_dict()),
            "baseline": self.baseline,
            "aggregated": self.aggregated,
            "updates": self.updates,
            "history": self.history,
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        enas = state["enas"]
        self.policy.load_state_dict(_from_plain(enas["policy"]))
        for p, g in zip(self.policy.parameters(), enas["grads"], strict=True):
            p.grad = None if g is None else _from_plain(g)
        self.optimizer.load_state_dict(_from_plain(enas["optimizer"]))
        self.baseline = float(enas["baseline"])
        self.aggregated = int(enas["aggregated"])
        self.updates = int(enas["updates"])
        self.history = [dict(h) for h in enas["history"]]


def _to_plain(value: Any) -> Any:
    """Tensors -> tagged base64 of their little-endian bytes (exact, and about a quarter of
    the text of a list of numbers: a policy copied into a warm-started job's stored spec
    made it too large to submit again); JSON-ready otherwise."""
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().contiguous().numpy()
        return {
            "__tensor_b64__": base64.b64encode(
                array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            ).decode("ascii"),
            "shape": list(value.shape),
            "dtype": str(value.dtype).removeprefix("torch."),
        }
    if isinstance(value, Mapping):
        return {"__keys__": [[k, _to_plain(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        if "__tensor_b64__" in value:
            dtype = np.dtype(str(value["dtype"])).newbyteorder("<")
            data = base64.b64decode(value["__tensor_b64__"], validate=True)
            array = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))
            return torch.from_numpy(array.reshape(value["shape"]))
        if "__tensor__" in value:  # (as checkpoints and stored specs held them before)
            dtype = getattr(torch, value["dtype"])
            return torch.tensor(value["__tensor__"], dtype=dtype).reshape(value["shape"])
        if "__keys__" in value:
            return {k: _from_plain(v) for k, v in value["__keys__"]}
        return {k: _from_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_plain(v) for v in value]
    return value

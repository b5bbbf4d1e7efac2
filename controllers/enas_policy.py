"""The ENAS LSTM policy (Pham et al. 2018): one network that emits a space's decisions.

Three decoders share the LSTM, the op heads and the attention:
- macro (``enas-macro``): per layer an op step, then a skip step whose hidden state attends
  over the earlier layers' anchors (ENAS ``general_controller``);
- micro (``enas-micro``): per node two input steps attending over the cell inputs and earlier
  nodes, then two op steps (ENAS ``micro_controller``); the reduction cell continues from the
  normal cell's LSTM state;
- sequence (``nb201`` and any other fixed space): one op step per decision.

``run`` either samples (given a numpy generator) or scores given choices, and returns the sum
of log-probabilities, the entropy and (macro) the skip-connection KL penalty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.spaces.base import SearchSpace


@dataclass
class PolicyOutput:
    choices: list[int]
    log_prob: torch.Tensor
    entropy: torch.Tensor
    skip_penalty: torch.Tensor


class _Picker:
    """Samples or replays decisions and accumulates log-prob and entropy."""

    def __init__(self, choices: Sequence[int] | None, rng: np.random.Generator | None) -> None:
        self.given = list(choices) if choices is not None else None
        self.rng = rng
        self.chosen: list[int] = []
        self.log_prob = torch.zeros(())
        self.entropy = torch.zeros(())

    def pick(self, logits: torch.Tensor) -> int:
        """``logits``: (n,) for one decision."""
        log_p = F.log_softmax(logits, dim=-1)
        if self.given is not None:
            choice = self.given[len(self.chosen)]
        elif self.rng is None:
            choice = int(torch.argmax(log_p))
        else:
            p = log_p.detach().exp().double().numpy()
            choice = int(self.rng.choice(len(p), p=p / p.sum()))
        self.chosen.append(choice)
        self.log_prob = self.log_prob + log_p[choice]
        self.entropy = self.entropy - (log_p.exp() * log_p).sum()
        return choice


class EnasPolicy(nn.Module):
    def __init__(
        self,
        space: SearchSpace,
        *,
        lstm_size: int,
        lstm_layers: int,
        temperature: float | None,
        tanh_constant: float | None,
        op_tanh_reduce: float,
        skip_target: float,
        shared_heads: bool = True,
    ) -> None:
        super().__init__()
        self.space = space
        self.decisions = space.decisions()
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        self.op_tanh_reduce = op_tanh_reduce
        self.skip_target = skip_target
        self.mode = {"enas-macro": "macro", "enas-micro": "micro"}.get(space.name, "sequence")
        self.lstm = nn.ModuleList(nn.LSTMCell(lstm_size, lstm_size) for _ in range(lstm_layers))
        self.g_emb = nn.Parameter(torch.empty(1, lstm_size))
        # One op head and embedding per distinct option list (ENAS shares w_soft over layers).
        # With ``shared_heads=False`` every op decision gets its own head and embedding: the
        # policy then tells positions apart from the start instead of first collapsing onto
        # one op everywhere (seen on NAS-Bench-201 with ENAS's shared head).
        self.shared_heads = shared_heads
        self.op_keys: dict[object, str] = {}
        sizes: dict[str, int] = {}
        for index, d in enumerate(self.decisions):
            if d.kind not in ("op", "edge"):
                continue
            key = d.choices if shared_heads else index
            if key not in self.op_keys:
                self.op_keys[key] = f"ops{len(self.op_keys)}"
                sizes[self.op_keys[key]] = d.num_choices
        self.w_soft = nn.ModuleDict(
            {k: nn.Linear(lstm_size, n, bias=False) for k, n in sizes.items()}
        )
        self.w_emb = nn.ModuleDict({k: nn.Embedding(n, lstm_size) for k, n in sizes.items()})
        self.w_attn_1 = nn.Linear(lstm_size, lstm_size, bias=False)
        self.w_attn_2 = nn.Linear(lstm_size, lstm_size, bias=False)
        self.v_attn = nn.Linear(lstm_size, 1, bias=False)
        for p in self.parameters():  # ENAS initialises every controller weight U(-0.1, 0.1)
            nn.init.uniform_(p, -0.1, 0.1)

    # --- pieces ----------------------------------------------------------------------------
    def _step(self, x: torch.Tensor, state: list[tuple[torch.Tensor, torch.Tensor]]):
        new_state = []
        for cell, (h, c) in zip(self.lstm, state, strict=True):
            h, c = cell(x, (h, c))
            new_state.append((h, c))
            x = h
        return x, new_state

    def _zero_state(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        size = self.g_emb.shape[1]
        return [(torch.zeros(1, size), torch.zeros(1, size)) for _ in self.lstm]

    def _adjust(self, logits: torch.Tensor, tanh_constant: float | None) -> torch.Tensor:
        if self.temperature is not None:
            logits = logits / self.temperature
        if tanh_constant is not None:
            logits = tanh_constant * torch.tanh(logits)
        return logits

    def _head(self, index: int) -> str:
        return self.op_keys[self.decisions[index].choices if self.shared_heads else index]

    def _op_logits(self, h: torch.Tensor, index: int, reduce: float = 1.0) -> torch.Tensor:
        tanh = None if self.tanh_constant is None else self.tanh_constant / reduce
        return self._adjust(self.w_soft[self._head(index)](h)[0], tanh)

    def _op_embedding(self, index: int, choice: int) -> torch.Tensor:
        return self.w_emb[self._head(index)].weight[choice : choice + 1]

    def _attend(self, h: torch.Tensor, anchors_w1: list[torch.Tensor]) -> torch.Tensor:
        query = torch.tanh(torch.cat(anchors_w1, dim=0) + self.w_attn_2(h))
        return self.v_attn(query)[:, 0]  # one score per anchor

    # --- decoders --------------------------------------------------------------------------
    def run(
        self, choices: Sequence[int] | None = None, rng: np.random.Generator | None = None
    ) -> PolicyOutput:
        """Sample (``rng``), decode greedily (neither), or score ``choices``."""
        picker = _Picker(choices, rng)
        skip_penalty = getattr(self, f"_run_{self.mode}")(picker)
        return PolicyOutput(picker.chosen, picker.log_prob, picker.entropy, skip_penalty)

    def _run_sequence(self, picker: _Picker) -> torch.Tensor:
        x, state = self.g_emb, self._zero_state()
        for index in range(len(self.decisions)):
            h, state = self._step(x, state)
            choice = picker.pick(self._op_logits(h, index))
            x = self._op_embedding(index, choice)
        return torch.zeros(())

    def _run_macro(self, picker: _Picker) -> torch.Tensor:
        layers = self.space.layers  # type: ignore[attr-defined]
        target = torch.tensor([1.0 - self.skip_target, self.skip_target])
        x, state = self.g_emb, self._zero_state()
        anchors: list[torch.Tensor] = []
        anchors_w1: list[torch.Tensor] = []
        penalty = torch.zeros(())
        for layer in range(layers):
            h, state = self._step(x, state)
            index = len(picker.chosen)
            op = picker.pick(self._op_logits(h, index))
            x = self._op_embedding(index, op)
            h, state = self._step(x, state)
            if layer > 0:
                q = self._attend(h, anchors_w1)
                logits = self._adjust(torch.stack([-q, q], dim=1), self.tanh_constant)
                skips = [picker.pick(logits[j]) for j in range(layer)]
                probs = torch.sigmoid(logits)
                penalty = penalty + (probs * torch.log(probs / target)).sum()
                mask = torch.tensor(skips, dtype=torch.float32)[None, :]
                x = (mask @ torch.cat(anchors, dim=0)) / (1.0 + mask.sum())
            else:
                x = self.g_emb
            anchors.append(h)
            anchors_w1.append(self.w_attn_1(h))
        # The mean over the layers that choose skips, as ENAS's general_controller
        # (tf.reduce_mean of the per-layer KL sums): the sum made skip_weight's official 0.8
        # act layers - 1 times as strongly.
        return penalty / max(1, layers - 1)

    def _run_micro(self, picker: _Picker) -> torch.Tensor:
        nodes = self.space.nodes  # type: ignore[attr-defined]
        state = self._zero_state()
        for _cell in ("normal", "reduce"):
            x = self.g_emb
            anchors: list[torch.Tensor] = []
            anchors_w1: list[torch.Tensor] = []
            for _ in range(2):  # the two cell inputs
                h, state = self._step(x, state)
                anchors.append(torch.zeros_like(h))
                anchors_w1.append(self.w_attn_1(h))
            for _node in range(nodes):
                for _slot in range(2):
                    h, state = self._step(x, state)
                    index = picker.pick(
                        self._adjust(self._attend(h, anchors_w1), self.tanh_constant)
                    )
                    x = anchors[index]
                for _slot in range(2):
                    h, state = self._step(x, state)
                    index = len(picker.chosen)
                    op = picker.pick(self._op_logits(h, index, self.op_tanh_reduce))
                    x = self._op_embedding(index, op)
                h, state = self._step(x, state)
                anchors.append(h)
                anchors_w1.append(self.w_attn_1(h))
                x = self.g_emb
        return torch.zeros(())

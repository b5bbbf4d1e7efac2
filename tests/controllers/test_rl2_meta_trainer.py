"""``MetaTrainer``: meta-training in steps that resume exactly, without touching global RNGs,
and tasks with holes (combinations a table does not hold)."""

from __future__ import annotations

import io

import numpy as np
import torch

from controllers.rl2 import MetaTrainer, Task, load_policy, policy_bytes

CARDS = [5, 5, 5]


def _tasks() -> list[Task]:
    rng = np.random.default_rng(0)
    first = np.arange(125) // 25
    holes = (first == 4) * 2.0 + rng.normal(0, 0.3, 125)
    holes[::7] = np.nan  # not in that table
    return [Task("a", (first == 4) * 2.0 + rng.normal(0, 0.3, 125)), Task("b", holes)]


def _trainer() -> MetaTrainer:
    return MetaTrainer(_tasks(), CARDS, steps=8, batch=6, hidden=8, seed=3)


def _weights(trainer: MetaTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.policy.parameters()]


def test_a_trainer_restored_from_its_state_goes_on_exactly_as_the_original() -> None:
    straight = _trainer()
    figures = [straight.step() for _ in range(4)]
    first = _trainer()
    for _ in range(2):
        first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # as the loop checkpoints it
    resumed = _trainer()
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    later = [resumed.step() for _ in range(2)]
    assert resumed.iterations == 4
    for a, b in zip(_weights(straight), _weights(resumed), strict=True):
        assert torch.equal(a, b)
    assert [f["mean_best_z"] for f in figures[2:]] == [f["mean_best_z"] for f in later]
    # A differently seeded trainer does differ (the comparison above can fail).
    other = MetaTrainer(_tasks(), CARDS, steps=8, batch=6, hidden=8, seed=4)
    other.step()
    assert not all(torch.equal(a, b) for a, b in zip(_weights(other), _weights(_trainer())))


def test_steps_leave_the_global_random_state_alone_and_report_finite_figures() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    trainer = _trainer()
    stats = trainer.step()
    assert torch.equal(torch.get_rng_state(), before)
    assert set(stats) >= {"iteration", "mean_best_z", "auc_z", "mean_return", "entropy", "loss"}
    assert all(np.isfinite(v) for v in stats.values()), stats


def test_the_policy_file_round_trips_with_its_meta() -> None:
    trainer = _trainer()
    trainer.step()
    policy, meta = load_policy(io.BytesIO(policy_bytes(trainer.policy, trainer.summary())))
    assert policy.cardinalities == CARDS
    assert meta["iterations"] == 1 and meta["tasks"] == ["a", "b"]
    for a, b in zip(policy.parameters(), trainer.policy.parameters(), strict=True):
        assert torch.equal(a, b)

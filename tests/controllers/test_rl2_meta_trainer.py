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


def test_a_step_asked_to_stop_is_abandoned_and_leaves_the_trainer_as_it_was() -> None:
    """A cancel was heard only between iterations (one of 10,000 steps x 1,024 episodes ran
    for minutes): ``stop`` is asked before every step of the episodes; the iteration it
    stops is abandoned, with the generators rewound, so the trainer goes on exactly as one
    never asked to stop."""
    asked = []

    def stop_at_the_third_step() -> bool:
        asked.append(1)
        return len(asked) == 3

    trainer = _trainer()
    trainer.step()
    assert trainer.step(stop=stop_at_the_third_step) is None
    assert len(asked) == 3 and trainer.iterations == 1 and trainer.last["iteration"] == 1
    after = trainer.step(stop=lambda: False)
    straight = _trainer()
    straight.step()
    assert after == straight.step()
    for a, b in zip(_weights(straight), _weights(trainer), strict=True):
        assert torch.equal(a, b)


def test_the_memory_estimate_covers_what_an_iteration_keeps_for_backpropagation() -> None:
    """``iteration_bytes`` (the submit's bound on steps x batch x hidden) is at least what
    autograd saves for one iteration, and not far above it."""
    from nas.evaluators.rl2_meta import iteration_bytes

    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    tasks = [Task("a", np.random.default_rng(0).normal(size=125))]
    for steps, batch, hidden in ((40, 8, 8), (20, 16, 64), (10, 4, 256)):
        storages.clear()
        trainer = MetaTrainer(tasks, CARDS, steps=steps, batch=batch, hidden=hidden)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            trainer.step()
        saved = sum(storages.values())
        estimate = iteration_bytes(CARDS, steps=steps, batch=batch, hidden=hidden)
        assert saved <= estimate <= 5 * saved, (steps, batch, hidden, saved, estimate)

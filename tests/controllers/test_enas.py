from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from controllers import CONTROLLERS, EnasController
from nas.spaces import MacroSpace, MicroSpace, Nb201Space
from nas.trial import TrialResult, TrialState
from tests.controllers.contract import ControllerContract, fake_result


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TestEnasContract(ControllerContract):
    @staticmethod
    def make_controller(space, seed):
        # Small aggregation so that the policy really changes within the contract's runs.
        return EnasController(space=space, seed=seed, num_aggregate=3)


def test_registered_by_spec_name() -> None:
    assert CONTROLLERS.get("enas") is EnasController


@pytest.mark.parametrize(
    "space",
    [Nb201Space(), MacroSpace(layers=4, channels=4), MicroSpace(nodes=3)],
    ids=lambda s: s.name,
)
def test_scores_its_own_samples_and_emits_valid_architectures(space) -> None:
    controller = EnasController(space=space, seed=0)
    for _ in range(5):
        arch = controller.sample_for_training()
        space.validate(arch)
        out = controller.policy.run(choices=arch.choices)
        assert out.choices == list(arch.choices)
        assert float(out.log_prob.detach()) < 0 and float(out.entropy.detach()) > 0
    space.validate(controller.greedy())


def test_macro_skip_penalty_pulls_skip_density_toward_the_target() -> None:
    space = MacroSpace(layers=6, channels=4)
    controller = EnasController(space=space, seed=0, skip_target=0.4)
    out = controller.policy.run(rng=np.random.default_rng(0))
    assert float(out.skip_penalty.detach()) > 0  # KL to Bernoulli(0.4) is positive away from it


def test_macro_skip_penalty_is_the_mean_over_layers_as_in_the_official_controller() -> None:
    """ENAS's general_controller averages the layers' KL sums (tf.reduce_mean); their sum
    made the official skip_weight act layers - 1 (here 7) times as strongly. An untrained
    policy's skip probabilities are near 1/2: each of layer l's l skip decisions then adds
    about kl (both columns, as the official code), so the mean over layers 1..7 is about
    kl * 8 / 2, the sum kl * 28."""
    space = MacroSpace(layers=8, channels=4)
    controller = EnasController(space=space, seed=0, skip_target=0.4)
    out = controller.policy.run(rng=np.random.default_rng(0))
    kl = 0.5 * np.log(0.5 / 0.6) + 0.5 * np.log(0.5 / 0.4)
    assert float(out.skip_penalty.detach()) == pytest.approx(kl * 8 / 2, rel=0.3)


def test_micro_defaults_come_from_the_micro_script() -> None:
    micro = EnasController(space=MicroSpace(nodes=2), seed=0)
    macro = EnasController(space=MacroSpace(layers=3), seed=0)
    assert (micro.lr, micro.tanh_constant, micro.num_aggregate, micro.train_steps) == (
        0.0035,
        1.10,
        10,
        30,
    )
    assert (macro.lr, macro.tanh_constant, macro.num_aggregate, macro.train_steps) == (
        0.001,
        1.5,
        20,
        50,
    )


def test_converges_to_a_rewarded_target_architecture() -> None:
    """Reward = share of decisions that match a fixed target: REINFORCE must learn to emit it.
    (With ENAS's shared op head and tanh squashing the policy first collapses onto one op at
    every position; per-decision heads learn the target in about 100 rewards.)"""
    space = Nb201Space()
    target = space.sample(np.random.default_rng(123)).choices
    controller = EnasController(
        space=space,
        seed=1,
        lr=0.003,
        num_aggregate=1,
        entropy_weight=0.0,
        tanh_constant=0,
        shared_heads=False,
    )
    assert controller.greedy().choices != target
    for step in range(1, 1001):
        candidate = controller.ask()
        match = np.mean(np.equal(candidate.architecture.choices, target))
        controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=100.0 * match))
        if step % 50 == 0 and controller.greedy().choices == target:
            break
    assert controller.greedy().choices == target, f"not converged after {step} rewards"


def test_failed_trials_get_the_penalty_reward() -> None:
    controller = EnasController(space=Nb201Space(), seed=0, failure_reward=-1.0, num_aggregate=1)
    candidate = controller.ask()
    controller.tell(candidate.id, TrialResult.failed("diverged: loss became nan"))
    assert controller.history[-1]["reward"] == pytest.approx(-1.0, abs=1e-2)  # + entropy bonus


def test_resume_mid_aggregation_is_exact() -> None:
    """Stop with gradients half accumulated and Adam state warm: the resumed controller must
    sample exactly what the uninterrupted one samples."""
    space = MacroSpace(layers=4, channels=4)
    original = EnasController(space=space, seed=4, num_aggregate=4)
    for _ in range(10):  # 2 policy steps + 2 accumulated rewards
        c = original.ask()
        original.tell(c.id, fake_result(c))
    assert original.aggregated == 2 and original.updates == 2
    restored = EnasController(space=space, seed=99, num_aggregate=4)
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    for controller in (original, restored):
        for _ in range(9):
            c = controller.ask()
            controller.tell(c.id, fake_result(c))
    a = [original.ask().architecture for _ in range(3)]
    b = [restored.ask().architecture for _ in range(3)]
    assert a == b
    for p, q in zip(original.policy.parameters(), restored.policy.parameters(), strict=True):
        assert torch.equal(p, q)
    assert original.baseline == restored.baseline


def test_says_not_now_while_a_full_aggregation_group_is_pending() -> None:
    controller = EnasController(space=Nb201Space(), seed=0, num_aggregate=3)
    asked = [controller.ask() for _ in range(3)]
    assert controller.ask() is None and not controller.finished
    controller.tell(asked[0].id, fake_result(asked[0]))
    assert controller.ask() is not None


def test_the_curves_baseline_is_in_the_scores_units() -> None:
    """The dashboard plots mean_reward (the score, e.g. accuracy in percent) and the baseline
    on one axis; the baseline was the policy's reward (score x 0.01 + entropy bonus), a flat
    line at 0 beside rewards of 20-90."""
    controller = EnasController(space=MacroSpace(layers=4, channels=4), seed=0, num_aggregate=2)
    for _ in range(40):
        c = controller.ask()
        controller.tell(c.id, TrialResult(TrialState.COMPLETE, objective=90.0))
    stats = controller.curve_stats(10)
    assert stats["baseline"] == controller.baseline / controller.reward_scale
    assert 10 < stats["baseline"] < 100  # about the scores' 90, less the warm-up from 0


def test_a_reward_past_the_float_range_fails_naming_the_setting() -> None:
    """``reward_scale: 1e308`` was accepted; the first update made every policy weight NaN
    and the job failed with numpy's "Probabilities contain NaN", naming nothing."""
    controller = EnasController(space=Nb201Space(), seed=0, reward_scale=1e308, num_aggregate=1)
    candidate = controller.ask()
    with pytest.raises(ValueError, match=r"not a finite number.*controller\.reward_scale 1e\+308"):
        controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=90.0))
    assert all(torch.isfinite(p).all() for p in controller.policy.parameters())

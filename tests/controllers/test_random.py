from __future__ import annotations

import numpy as np
import pytest

from controllers import CONTROLLERS, RandomSearch
from nas.spaces import MacroSpace, MetaQNNSpace, Nb201Space
from tests.controllers.contract import (
    ControllerContract,
    JointControllerContract,
    fake_result,
    joint_hparams,
)


class TestRandomContract(ControllerContract):
    @staticmethod
    def make_controller(space, seed):
        return RandomSearch(space=space, seed=seed)


class TestUniqueRandomContract(ControllerContract):
    @staticmethod
    def make_controller(space, seed):
        return RandomSearch(space=space, seed=seed, unique=True)


class TestRandomJointContract(JointControllerContract):
    @staticmethod
    def make_controller(space, seed):
        return RandomSearch(space=space, seed=seed, hparams=joint_hparams())


def test_hparams_are_uniform_and_log_uniform() -> None:
    controller = RandomSearch(space=Nb201Space(), seed=0, hparams=joint_hparams())
    asked = [controller.ask() for _ in range(2000)]
    lr = np.log10([c.hparams["lr"] for c in asked])  # log-uniform over 1e-4..1e-1
    assert lr.min() >= -4 and lr.max() <= -1
    assert np.histogram(lr, bins=3, range=(-4, -1))[0] / len(lr) == pytest.approx(
        [1 / 3] * 3, abs=0.04
    )
    sgd = [c for c in asked if c.hparams["optimizer"] == "sgd"]
    assert len(sgd) / len(asked) == pytest.approx(0.5, abs=0.04)
    assert all("momentum" in c.hparams for c in sgd)
    assert not any("momentum" in c.hparams for c in asked if c not in sgd)
    assert {c.hparams["batch_size"] for c in asked} == set(range(16, 129, 16))


def test_without_an_hparam_space_candidates_carry_none_and_asks_do_not_change() -> None:
    plain = RandomSearch(space=Nb201Space(), seed=5)
    joint = RandomSearch(space=Nb201Space(), seed=5, hparams=None)
    assert [plain.ask().to_dict() for _ in range(5)] == [joint.ask().to_dict() for _ in range(5)]
    assert plain.ask().hparams == {}


def test_registered_by_spec_name() -> None:
    assert CONTROLLERS.get("random") is RandomSearch


def test_unique_exhausts_a_finite_space_cleanly() -> None:
    space = MacroSpace(layers=2, channels=4)  # 6 * 6 * 2 = 72 architectures
    controller = RandomSearch(space=space, seed=0, unique=True)
    seen = []
    while (candidate := controller.ask()) is not None:
        seen.append(candidate.architecture)
        controller.tell(candidate.id, fake_result(candidate))
    assert len(seen) == space.size() == 72
    assert len(set(seen)) == 72
    assert controller.finished
    assert controller.ask() is None


def test_unique_exhausts_a_metaqnn_space_of_legal_sequences_only() -> None:
    """A MetaQNN space's choices also combine into illegal sequences (4,913 combinations,
    108 legal): listing the unseen ones by mixed-radix code made ``space.make`` raise
    InvalidArchitectureError at the 55th ask (the probe of the controllers)."""
    space = MetaQNNSpace(max_layers=2, input_size=8, channels=8)
    controller = RandomSearch(space=space, seed=0, unique=True)
    seen = []
    while (candidate := controller.ask()) is not None:
        seen.append(candidate.architecture)
        controller.tell(candidate.id, fake_result(candidate))
    assert len(seen) == len(set(seen)) == space.size() == 108
    assert controller.finished


def test_every_space_lists_its_legal_sequences() -> None:
    for space in (MacroSpace(layers=2, channels=4), MetaQNNSpace(max_layers=2, input_size=8)):
        listed = list(space.choice_sequences())
        assert len(listed) == len(set(listed)) == space.size()
        for choices in listed:
            space.make(choices)  # (raises for an illegal one)


def test_unique_resume_in_the_dense_phase_continues_without_repeats() -> None:
    space = Nb201Space()
    controller = RandomSearch(space=space, seed=1, unique=True)
    first = [controller.ask() for _ in range(10_000)]  # past half: dense phase
    restored = RandomSearch(space=space, seed=2, unique=True)
    restored.load_state_dict(controller.state_dict())
    rest_a = [c.architecture for c in iter(controller.ask, None)]
    rest_b = [c.architecture for c in iter(restored.ask, None)]
    assert rest_a == rest_b
    assert len({c.architecture for c in first} | set(rest_a)) == 15_625


def test_samples_cover_every_op_uniformly() -> None:
    controller = RandomSearch(space=Nb201Space(), seed=0)
    choices = np.array([controller.ask().architecture.choices for _ in range(5000)])
    counts = np.bincount(choices.ravel(), minlength=5) / choices.size
    assert np.allclose(counts, 0.2, atol=0.02)

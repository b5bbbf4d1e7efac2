"""``rl2``: the controller contract with a policy file, the policy's adaptation signal, and
meta-training that learns (a policy trained on tables beats its untrained start)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from controllers import CONTROLLERS
from controllers.rl2 import (
    PolicyFileError,
    Rl2Controller,
    Rl2Policy,
    Task,
    meta_train,
    percentile,
    save_policy,
)
from nas.spaces import Nb201Space, SearchSpace
from nas.trial import TrialResult, TrialState
from tests.controllers.contract import ControllerContract, JointControllerContract, joint_hparams

_POLICIES: dict[tuple[int, ...], str] = {}


def policy_for(space: SearchSpace) -> str:
    """An untrained policy file for the space's decisions (one per process)."""
    cards = tuple(d.num_choices for d in space.decisions())
    if cards not in _POLICIES:
        torch.manual_seed(0)
        path = Path(tempfile.mkdtemp()) / "policy.pt"
        save_policy(Rl2Policy(cards, hidden=16), path, {"tasks": []})
        _POLICIES[cards] = str(path)
    return _POLICIES[cards]


class TestRl2Contract(ControllerContract):
    @staticmethod
    def make_controller(space, seed):
        return Rl2Controller(space=space, seed=seed, policy=policy_for(space))


class TestRl2JointContract(JointControllerContract):
    @staticmethod
    def make_controller(space, seed):
        return Rl2Controller(
            space=space, seed=seed, policy=policy_for(space), hparams=joint_hparams()
        )


def test_registered_and_one_proposal_at_a_time() -> None:
    assert CONTROLLERS.get("rl2") is Rl2Controller
    controller = Rl2Controller(space=Nb201Space(), seed=0, policy=policy_for(Nb201Space()))
    assert controller.ask() is not None
    assert controller.ask() is None  # waits for the result of the first


def test_warm_start_priors_pass_through_the_recurrent_state() -> None:
    """Priors skipped the policy's step: its state saw only the last prior's result (two
    jobs whose priors differed but for the last proposed alike after them), and unique
    could propose a prior again."""
    space = Nb201Space()
    rng = np.random.default_rng(9)
    archs = [space.sample(rng) for _ in range(5)]

    def after(priors: list) -> Rl2Controller:
        controller = Rl2Controller(space=space, seed=0, policy=policy_for(space))
        controller.warm_start(
            [{"architecture": a.to_dict(), "score": 1.0 - i / 10} for i, a in enumerate(priors)]
        )
        for i in range(len(priors)):
            candidate = controller.ask()
            assert candidate.architecture == priors[i]
            controller.tell(candidate.id, TrialResult(TrialState.COMPLETE, objective=50.0 + i))
        assert not bool((controller._h == 0).all())  # the state moved on
        assert all(a.choices in controller._seen for a in priors)
        return controller

    a = after([archs[0], archs[1], archs[4]])
    b = after([archs[2], archs[3], archs[4]])  # the same last prior
    assert not torch.equal(a._h, b._h)


def test_the_signal_is_the_share_of_earlier_scores_beaten() -> None:
    assert percentile(None, [1.0]) == 0.0
    assert percentile(3.0, []) == 0.5
    assert percentile(3.0, [1.0, 2.0, 3.0, 4.0]) == pytest.approx(2.5 / 4)


def test_a_policy_for_other_decisions_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.pt"
    save_policy(Rl2Policy([3, 3], hidden=8), path, {})
    with pytest.raises(PolicyFileError, match="trained for decisions"):
        Rl2Controller(space=Nb201Space(), seed=0, policy=str(path))
    (tmp_path / "junk.pt").write_bytes(b"not a policy")
    with pytest.raises(PolicyFileError, match="policy"):
        Rl2Controller(space=Nb201Space(), seed=0, policy=str(tmp_path / "junk.pt"))


def test_meta_training_learns_where_the_good_architectures_are() -> None:
    """Two synthetic tasks share their good region (decision 0 = 4 is good): after training,
    the policy's first proposals land there far more often than the untrained policy's."""
    cards = [5, 5, 5]
    codes = np.arange(125)
    first = codes // 25
    rng = np.random.default_rng(0)
    tasks = [
        Task("a", (first == 4) * 2.0 + rng.normal(0, 0.3, 125)),
        Task("b", (first == 4) * 1.0 + rng.normal(0, 0.3, 125)),
    ]
    untrained, _ = meta_train(tasks, cards, iterations=0, steps=10, batch=8, hidden=16)
    trained, summary = meta_train(
        tasks, cards, iterations=60, steps=10, batch=16, hidden=16, lr=1e-2
    )
    assert summary["iterations"] == 60

    def share_good(policy: Rl2Policy) -> float:
        with torch.no_grad():
            logits, _ = policy.step(policy.encode(None, torch.zeros(1), 1), torch.zeros(1, 16))
        return float(torch.softmax(logits[0][0], 0)[4])

    assert share_good(trained) > 0.6 > share_good(untrained) + 0.2


def test_a_policy_file_of_another_space_with_the_same_choice_counts_is_refused(
    tmp_path: Path,
) -> None:
    """A policy file was checked by its choice counts only: one meta-trained on nb201 ran
    on a table space with the same counts (its choices reversed), which policy_job refused."""
    space = Nb201Space()
    decisions = [[d.name, list(d.choices)] for d in space.decisions()]
    path = tmp_path / "p.pt"
    meta = {"space": {"name": "nb201", "decisions": decisions}}
    save_policy(Rl2Policy([5] * 6, hidden=8), path, meta)
    Rl2Controller(space=space, seed=0, policy=str(path))  # its own space: runs
    reversed_choices = [[name, choices[::-1]] for name, choices in decisions]
    save_policy(
        Rl2Policy([5] * 6, hidden=8),
        path,
        {"space": {**meta["space"], "decisions": reversed_choices}},
    )
    with pytest.raises(PolicyFileError, match="trained for the decisions of space 'nb201'") as err:
        Rl2Controller(space=space, seed=0, policy=str(path))
    # (alike by name and counts, the two lists read the same: which choices differ is said)
    names = ", ".join(name for name, _ in decisions)
    assert f"(the choices of {names} differ)" in str(err.value)
    one = [list(d) for d in decisions]
    one[2] = [one[2][0], one[2][1][::-1]]
    save_policy(Rl2Policy([5] * 6, hidden=8), path, {"space": {"name": "nb201", "decisions": one}})
    with pytest.raises(PolicyFileError, match=f"the choices of {one[2][0]} differ"):
        Rl2Controller(space=space, seed=0, policy=str(path))


@pytest.mark.parametrize("content", [b"hello\n", b"hidden: 64\n", b"junk"])
def test_a_file_that_is_no_policy_says_so(tmp_path: Path, content: bytes) -> None:
    """Files starting with pickle's GET opcodes ('h', 'j') raised a KeyError out of
    torch.load, reported as 'controller: 101'."""
    path = tmp_path / "notpolicy.pt"
    path.write_bytes(content)
    with pytest.raises(PolicyFileError, match="not a readable rl2 policy file"):
        Rl2Controller(space=Nb201Space(), seed=0, policy=str(path))

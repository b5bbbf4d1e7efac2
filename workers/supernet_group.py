"""One supernet trained by N Ray workers: a shared-weight search with ``resources.workers: N``.

The engine is torch's own: ``torch.distributed`` (NCCL between GPUs, gloo on CPUs) and
DistributedDataParallel (``SharedWeightEvaluator.distribute``). Every step each worker trains
its own child on its shard of the minibatch; DDP averages the gradients (those of ops a
worker's child did not use count as zero: ``find_unused_parameters``), so all workers apply
the same step to identical weights. Nothing here synchronises weights or gradients by hand.

Why not Ray Train's ``TorchTrainer``: it runs a training function to completion and keeps
its own checkpoints (files under its storage path) and its own restart policy, while the
service drives a search one safe point (one supernet epoch) at a time, stores the one
checkpoint in its database, relays each epoch's trials as they come and must be able to stop
a search at once. So the group is N Ray actors placed together (a placement group, one bundle
of ``cpus_per_trial`` / ``gpus_per_trial`` per worker), joined into one process group the
way Ray Train's torch backend does it (rank 0's address and a free port, ``tcp://``
rendezvous); ``workers.ray_backend.ActorRun`` drives, checkpoints, restarts and stops it.

Roles. Rank 0, the lead, runs the search loop (``workers.shared.SharedWeightSearch``): the
controller, the trial records, the checkpoints; the other ranks (``Follower``) hold only the
evaluator and do what the lead broadcasts (a gloo group of its own, also beside NCCL):

- ``train``: the lead samples every worker's child for every step of the epoch from the
  current policy (which changes only in the reward phase, so every worker samples with the
  same policy version; with one worker this is exactly the single-process sequence), sends
  them with its evaluator's small state (data order, validation order: everything but the
  weights and the optimizer, which DDP keeps equal), and each rank trains ``children[rank::N]``.
- ``evaluate`` / ``score_full``: the lead sends the architectures to score; rank r scores
  those at positions r, r+N, ...; the lead gathers the results (with the worker that
  scored each) and tells the controller, as one process would. Each rank draws the
  validation minibatches from the same stream (equal at the epoch's start), so the
  architectures the ranks score side by side share a minibatch.

A lost worker or node breaks the group (a collective fails, or Ray reports the actor dead):
``ActorRun`` ends every actor and starts the group again from the last epoch's checkpoint
(``max_retries``); one checkpoint is kept, the lead's.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from nas.architecture import Architecture
from nas.evaluators import build_evaluator
from nas.evaluators.shared import SharedWeightEvaluator, StepChildren
from nas.spec import ResolvedSpec
from nas.trial import TrialResult
from workers.shared import SupernetOps

#: How long a collective waits for the others: a follower waits for the lead's next
#: command while the service checkpoints an epoch.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


class GroupLost(RuntimeError):
    """A collective failed because another worker of the group is gone (its process or
    node died): the group is started again from the last checkpoint, not failed."""


#: What a failed collective says when a peer is gone (gloo raises plain RuntimeErrors).
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "gloo")


def is_group_lost(exc: BaseException) -> bool:
    """The error comes from the group's communication, not from the search itself."""
    if isinstance(exc, GroupLost | dist.DistError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _PEER_GONE)


def rendezvous() -> tuple[str, int]:
    """This node's address and a free port: the group's meeting point (rank 0 calls it)."""
    import ray

    address = ray.util.get_node_ip_address()
    with socket.socket() as s:
        s.bind(("", 0))
        port = int(s.getsockname()[1])
    return address, port


def join_group(
    evaluator: SharedWeightEvaluator, address: str, port: int, rank: int, world: int
) -> Any:
    """Join the process group (all ranks at once), make the evaluator train data parallel,
    and give every rank the lead's evaluator state. Returns the gloo group for commands."""
    backend = "nccl" if evaluator.device.type == "cuda" else "gloo"
    if evaluator.device.type == "cuda":
        # NCCL works on the current device; "cuda" (no index) is the one Ray assigned.
        index = evaluator.device.index
        torch.cuda.set_device(index if index is not None else torch.cuda.current_device())
    dist.init_process_group(
        backend,
        init_method=f"tcp://{address}:{port}",
        rank=rank,
        world_size=world,
        timeout=COLLECTIVE_TIMEOUT,
    )
    control = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
    # The lead's state (it was restored from the checkpoint) is everyone's: weights,
    # optimizer (momentum), data order.
    state = [_to_bytes(evaluator.state_dict()) if rank == 0 else None]
    dist.broadcast_object_list(state, src=0, group=control)
    if rank != 0:
        evaluator.load_state_dict(_from_bytes(state[0]))
    evaluator.distribute()
    return control


class GroupOps(SupernetOps):
    """The lead's side (rank 0): the search loop's supernet work, spread over the group."""

    def __init__(self, evaluator: SharedWeightEvaluator, worker: str, control: Any) -> None:
        super().__init__(evaluator, worker)
        self.control = control
        self.world = dist.get_world_size()

    def _send(self, command: tuple[Any, ...]) -> None:
        dist.broadcast_object_list([command], src=0, group=self.control)

    def _gather(self, mine: Any) -> list[Any]:
        gathered: list[Any] = [None] * self.world
        dist.gather_object(mine, gathered, dst=0, group=self.control)
        return gathered

    def train_epoch(self, sample: Callable[[], StepChildren]) -> dict[str, float]:
        """Fair steps (several children per step) are refused with several workers at
        submit (``SharedWeightEvaluator.spec_problems``); the evaluator refuses them too."""
        n = self.world
        children = [sample() for _ in range(self.evaluator.steps_per_epoch * n)]
        self._send(("train", self.evaluator.progress_state(), children))
        return self.evaluator.train_epoch(iter(children[0::n]).__next__)

    def evaluate(self, archs: list[Architecture]) -> list[tuple[TrialResult, str]]:
        self._send(("evaluate", archs))
        mine = [(r, self.worker) for r in self.evaluator.evaluate(archs[0 :: self.world])]
        return _interleave(self._gather(mine), len(archs))

    def score_full(self, archs: list[Architecture]) -> list[float]:
        self._send(("score_full", archs))
        mine = self.evaluator.score_full(archs[0 :: self.world])
        return _interleave(self._gather(mine), len(archs))

    def stop(self) -> None:
        """Let the followers return (the search is over)."""
        self._send(("stop",))


class Follower:
    """Rank r > 0 of a group: the evaluator alone, doing what the lead broadcasts."""

    def __init__(self, resolved: ResolvedSpec, worker: str) -> None:
        _, evaluator = build_evaluator(resolved)
        if not isinstance(evaluator, SharedWeightEvaluator):
            raise TypeError("a supernet group needs the shared-weights evaluator")
        self.evaluator = evaluator
        self.worker = worker
        self.control: Any = None

    def join(self, address: str, port: int, rank: int, world: int) -> None:
        self.control = join_group(self.evaluator, address, port, rank, world)

    def follow(self) -> None:
        """Serve the lead's commands until it says stop (or the group breaks)."""
        ev, rank, n = self.evaluator, dist.get_rank(), dist.get_world_size()
        while True:
            box: list[Any] = [None]
            dist.broadcast_object_list(box, src=0, group=self.control)
            command = box[0]
            if command[0] == "train":
                # The lead's data order (the rest, weights and optimizer, DDP keeps equal).
                ev.load_progress_state(command[1])
                ev.train_epoch(iter(command[2][rank::n]).__next__)
            elif command[0] == "evaluate":
                mine = [(r, self.worker) for r in ev.evaluate(command[1][rank::n])]
                dist.gather_object(mine, None, dst=0, group=self.control)
            elif command[0] == "score_full":
                scores = ev.score_full(command[1][rank::n])
                dist.gather_object(scores, None, dst=0, group=self.control)
            elif command[0] == "stop":
                return
            else:
                raise ValueError(f"unknown command from the lead: {command[0]!r}")


def _interleave(parts: list[list[Any]], count: int) -> list[Any]:
    """Rank r's i-th item is item r + i*N of the whole."""
    n = len(parts)
    return [parts[i % n][i // n] for i in range(count)]


def _to_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(data), map_location="cpu")  # type: ignore[no-any-return]


__all__ = ["Follower", "GroupLost", "GroupOps", "is_group_lost", "join_group", "rendezvous"]

"""``RayBackend``: trials as Ray tasks on a local Ray instance or a cluster.

- A trial that trains is one task with the spec's ``cpus_per_trial`` / ``gpus_per_trial``
  (fractions allowed); Ray places it only on a node that has those resources, and inside the
  task ``CUDA_VISIBLE_DEVICES`` names the GPU Ray assigned, so ``device: auto`` uses it.
- Cheap evaluators (tables) answer a whole batch in one task, never one task per lookup.
- Each worker process builds the evaluator (dataset, table) once per job and keeps it.
- A worker process or node that dies mid-trial: Ray retries the task (``max_retries``, default
  2) from the start of the trial; after that the trial is a FAIL with the cause and the job
  goes on. A task that raises is not retried (a bug does not fix itself) and is a FAIL too.
  Trials are never run twice to completion: a retry only follows a lost attempt.
- ``should_stop`` is polled while tasks run; on a stop the batch's tasks are cancelled.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nas.architecture import Architecture
from nas.evaluators import Evaluator, build_evaluator
from nas.spec import parse_spec
from nas.trial import TrialResult
from workers.backend import Backend, Interrupted, StopFn

#: Per worker process: the evaluator of the last job spec seen (datasets load once).
_CACHE: dict[str, Evaluator] = {}


def _evaluator_for(spec_json: str) -> Evaluator:
    evaluator = _CACHE.get(spec_json)
    if evaluator is None:
        _, evaluator = build_evaluator(parse_spec(json.loads(spec_json)))
        _CACHE.clear()
        _CACHE[spec_json] = evaluator
    return evaluator


def _run_trials(
    spec_json: str, archs: list[dict[str, Any]], hparams: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[int, int, dict[str, float]]], str]:
    """The task body: evaluate a batch; returns results, intermediate values, the worker."""
    import ray

    evaluator = _evaluator_for(spec_json)
    reports: list[tuple[int, int, dict[str, float]]] = []
    if hasattr(evaluator, "report"):
        evaluator.report = lambda i, epoch, values: reports.append((i, epoch, dict(values)))
    results = evaluator.evaluate([Architecture.from_dict(a) for a in archs], hparams)
    node = ray.get_runtime_context().get_node_id()[:8]
    worker = f"ray:{socket.gethostname()}:{node}:{os.getpid()}"
    return [r.to_dict() for r in results], reports, worker


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect to Ray (``address``: a cluster; ``None``: start a local instance). Returns
    whether this call started it (then the caller shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
        # Workers import this project's packages from the service's environment.
        "runtime_env": {"env_vars": {"PYTHONPATH": _project_root()}},
    }
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or os.environ["RAY_ADDRESS"], **kwargs)
    else:
        # "local": always a new instance; without it Ray would join whatever cluster
        # /tmp/ray/ray_current_cluster names (a stale one from another program hangs here).
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    return True


def _project_root() -> str:
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    existing = os.environ.get("PYTHONPATH")
    return f"{root}{os.pathsep}{existing}" if existing else root


def cluster_gpus(address: str | None = None) -> float:
    """GPUs of the Ray cluster; connects first (``ensure_ray(address)``) if this process
    has not yet, as an API-only server (``NAS_RUN_JOBS=false``) has not."""
    import ray

    ensure_ray(address)
    return float(ray.cluster_resources().get("GPU", 0.0))


class RayBackend(Backend):
    """Evaluates batches as Ray tasks; see the module docstring."""

    def __init__(
        self,
        *,
        spec: Mapping[str, Any],
        workers: int = 1,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        max_retries: int = 2,
        poll_s: float = 0.2,
    ) -> None:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("RayBackend needs Ray: call workers.ray_backend.ensure_ray()")
        self._spec_json = json.dumps(dict(spec), sort_keys=True)
        self.parallelism = workers
        self.max_retries = max_retries
        self.poll_s = poll_s
        remote = ray.remote(_run_trials)
        self._train = remote.options(
            num_cpus=cpus_per_trial,
            num_gpus=gpus_per_trial,
            max_retries=max_retries,
            retry_exceptions=False,
        )
        # Table lookups: one light task per batch.
        self._lookup = remote.options(num_cpus=min(cpus_per_trial, 1.0), max_retries=max_retries)
        self.last_workers = []

    @property
    def worker_name(self) -> str:
        return "ray"

    def evaluate(
        self,
        evaluator: Evaluator,
        archs: Sequence[Architecture],
        hparams: Sequence[Mapping[str, Any]],
        *,
        should_stop: StopFn | None = None,
    ) -> list[TrialResult]:
        import ray

        arch_dicts = [a.to_dict() for a in archs]
        hps = [dict(h) for h in hparams]
        if evaluator.instant:
            groups = [list(range(len(archs)))]
            refs = [self._lookup.remote(self._spec_json, arch_dicts, hps)]
        else:
            groups = [[i] for i in range(len(archs))]
            refs = [self._train.remote(self._spec_json, [a], [h]) for a, h in zip(arch_dicts, hps)]
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=self.poll_s)
            if pending and should_stop is not None and (why := should_stop()):
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise Interrupted(why)
        results: list[TrialResult | None] = [None] * len(archs)
        workers = ["ray"] * len(archs)
        report = getattr(evaluator, "report", None)
        for group, ref in zip(groups, refs, strict=True):
            try:
                outputs, reports, worker = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = str(exc.cause) if exc.cause is not None else str(exc)
                for i in group:
                    results[i] = TrialResult.failed(f"trial raised: {cause}")
                continue
            except (ray.exceptions.RayError, OSError) as exc:
                for i in group:
                    results[i] = TrialResult.failed(
                        f"worker lost after {self.max_retries} retries: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}"
                    )
                continue
            for i, output in zip(group, outputs, strict=True):
                results[i] = TrialResult.from_dict(output)
                workers[i] = worker
            if report is not None:
                for index, epoch, values in reports:
                    report(group[index], epoch, values)
        self.last_workers = workers
        return [r for r in results if r is not None]


class SharedWeightSearchActor:
    """One ENAS search inside a Ray actor: the supernet lives on the actor's device (the GPU
    Ray assigned, if any), with the controller that samples its children. The service drives
    it one supernet epoch at a time and checkpoints what each epoch returns."""

    def __init__(self, spec_json: str) -> None:
        from workers.search import build_components
        from workers.shared import SharedWeightSearch

        resolved = parse_spec(json.loads(spec_json))
        self.components = build_components(resolved)
        self._records: list[Any] = []
        self._points: list[dict[str, Any]] = []
        self._pause = False
        self.loop = SharedWeightSearch(
            resolved,
            components=self.components,
            on_trial=self._on_trial,
            on_epoch=self._on_epoch,
            should_stop=lambda: "epoch done" if self._pause else None,
        )

    def _on_trial(self, record: Any) -> None:
        self._records.append(record)

    def _on_epoch(self, point: dict[str, Any]) -> None:
        self._points.append(point)
        self._pause = True

    def restore(
        self,
        controller_state: dict[str, Any] | None,
        loop_state: dict[str, Any] | None,
        records: list[dict[str, Any]],
        evaluator_state: bytes | None,
    ) -> None:
        import io

        import torch

        from workers.search import TrialRecord

        if controller_state is not None:
            self.components.controller.load_state_dict(controller_state)
        if loop_state is not None:
            self.loop.load_state_dict(loop_state, [TrialRecord.from_dict(r) for r in records])
        if evaluator_state:
            evaluator = self.components.evaluator
            # On the CPU first, as the runner does: the bytes may come from a GPU actor and this
            # one may have none; load_state_dict moves each tensor to the supernet's device.
            state = torch.load(io.BytesIO(evaluator_state), map_location="cpu")
            evaluator.load_state_dict(state)  # type: ignore[attr-defined]

    def run_epoch(self) -> dict[str, Any]:
        """Run until the next supernet epoch is rewarded (or the search ends)."""
        import io

        import ray
        import torch

        loop = self.loop
        self._pause = False
        loop.budget.reason, loop.budget.interrupted = "", False
        outcome = loop.run()
        loop._elapsed_before = loop.budget.elapsed()  # the next epoch's clock goes on
        done = not loop.interrupted
        buffer = io.BytesIO()
        torch.save(self.components.evaluator.state_dict(), buffer)  # type: ignore[attr-defined]
        records, points = self._records, self._points
        self._records, self._points = [], []
        node = ray.get_runtime_context().get_node_id()[:8]
        return {
            "records": [r.to_dict() for r in records],
            "points": points,
            "controller_state": self.components.controller.state_dict(),
            "loop_state": loop.state_dict(),
            "evaluator_state": buffer.getvalue(),
            "done": done,
            "stop_reason": outcome.stop_reason,
            "ranked": [(arch.to_dict(), score) for arch, score in outcome.ranked],
            "worker": f"ray:{socket.gethostname()}:{node}:{os.getpid()}",
        }


class RemoteSharedWeightSearch:
    """Service-side stand-in for ``SharedWeightSearch`` whose work runs in a
    ``SharedWeightSearchActor``. It offers what the job runner uses of a search loop
    (``run``, ``trials``, ``best``, ``state_dict``/``load_state_dict``, ``fraction_done``,
    ``interrupted``) plus the controller and supernet state of the last epoch. A lost actor
    (its process or node died) is started again from the last epoch's state, up to
    ``max_restarts`` times."""

    def __init__(
        self,
        resolved: Any,
        spec: Mapping[str, Any],
        *,
        on_trial: Any,
        on_epoch: Any,
        should_stop: StopFn,
        cpus: float = 1.0,
        gpus: float = 0.0,
        max_restarts: int = 2,
        poll_s: float = 0.2,
    ) -> None:
        import ray

        self.resolved = resolved
        self._spec_json = json.dumps(dict(spec), sort_keys=True)
        self.on_trial, self.on_epoch, self.should_stop = on_trial, on_epoch, should_stop
        self.max_restarts, self.poll_s = max_restarts, poll_s
        self.maximize = resolved.spec.objective.direction == "maximize"
        self._actor_class = ray.remote(SharedWeightSearchActor).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=0
        )
        self._actor: Any = None
        self.trials: list[Any] = []
        self.best: Any = None
        self.curve: list[dict[str, Any]] = []
        self.controller_state: dict[str, Any] | None = None
        self.evaluator_state: bytes | None = None
        self._loop_state: dict[str, Any] | None = None
        from nas.evaluators.shared import SharedWeightConfig

        # The configured epochs, defaults included (for progress).
        self._epochs = SharedWeightConfig(**resolved.evaluator_params).epochs
        self._epoch = 0
        self.interrupted = False
        self.restarts = 0

    # --- what the runner reads and restores -----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return dict(self._loop_state or {"trials": len(self.trials)})

    def load_state_dict(self, state: dict[str, Any], trials: list[Any]) -> None:
        self._loop_state = dict(state)
        self.trials = list(trials)
        self.curve = list(state.get("curve", []))
        self._epoch = len(self.curve)
        self.best = None
        for record in self.trials:
            self._track_best(record)

    def fraction_done(self) -> float:
        return min(1.0, self._epoch / self._epochs)

    # --- the search ------------------------------------------------------------------------
    def run(self) -> Any:
        import ray

        from workers.search import SearchOutcome, TrialRecord

        started = time.monotonic()
        self._start_actor()
        while True:
            if (why := self.should_stop()) is not None:
                return self._interrupt(why)
            ref = self._actor.run_epoch.remote()
            while not ray.wait([ref], timeout=self.poll_s)[0]:
                if (why := self.should_stop()) is not None:
                    return self._interrupt(why)
            try:
                result = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as exc:
                self.restarts += 1
                if self.restarts > self.max_restarts:
                    raise RuntimeError(
                        f"the ENAS actor was lost {self.restarts} times (max_retries "
                        f"{self.max_restarts}): {exc}"
                    ) from None
                self._actor = None
                self._start_actor()  # from the last epoch's state
                continue
            worker = result["worker"]
            for data in result["records"]:
                record = TrialRecord.from_dict({**data, "worker": worker})
                self.trials.append(record)
                self._track_best(record)
                self.on_trial(record)
            self.controller_state = result["controller_state"]
            self.evaluator_state = result["evaluator_state"]
            self._loop_state = result["loop_state"]
            for point in result["points"]:
                self.curve.append(point)
                self._epoch += 1
                self.on_epoch(point)
            if result["done"]:
                ranked = [(Architecture.from_dict(a), s) for a, s in result["ranked"]]
                return SearchOutcome(
                    trials=self.trials,
                    best=self.best,
                    stop_reason=result["stop_reason"],
                    wall_s=time.monotonic() - started,
                    simulated_s=0.0,
                    ranked=ranked,
                    curve=self.curve,
                )

    def _start_actor(self) -> None:
        import ray

        if self._actor is not None:
            return
        self._actor = self._actor_class.remote(self._spec_json)
        ray.get(
            self._actor.restore.remote(
                self.controller_state,
                self._loop_state,
                [t.to_dict() for t in self.trials] if self._loop_state else [],
                self.evaluator_state,
            )
        )

    def _interrupt(self, why: str) -> Any:
        import ray

        from workers.search import SearchOutcome

        self.interrupted = True
        if self._actor is not None:
            ray.kill(self._actor)  # the unfinished epoch is redone on resume
            self._actor = None
        return SearchOutcome(
            trials=self.trials,
            best=self.best,
            stop_reason=why,
            wall_s=0.0,
            simulated_s=0.0,
            curve=self.curve,
        )

    def _track_best(self, record: Any) -> None:
        from nas.trial import TrialState

        result = record.result
        if result.state is not TrialState.COMPLETE or result.objective is None:
            return
        if self.best is None:
            self.best = record
            return
        old = self.best.result.objective
        if (result.objective > old) if self.maximize else (result.objective < old):
            self.best = record

    def shutdown(self) -> None:
        import ray

        if self._actor is not None:
            ray.kill(self._actor)
            self._actor = None

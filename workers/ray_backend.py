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
from collections.abc import Mapping, Sequence
from typing import Any

from nas.architecture import Architecture
from nas.evaluators import EVALUATORS, Evaluator
from nas.spaces import SPACES
from nas.spec import parse_spec
from nas.trial import TrialResult
from workers.backend import Backend, Interrupted, StopFn

#: Per worker process: the evaluator of the last job spec seen (datasets load once).
_CACHE: dict[str, Evaluator] = {}


def _evaluator_for(spec_json: str) -> Evaluator:
    evaluator = _CACHE.get(spec_json)
    if evaluator is None:
        resolved = parse_spec(json.loads(spec_json))
        spec = resolved.spec
        space = SPACES.get(spec.space.name).from_config(resolved.space_params)
        evaluator = EVALUATORS.get(spec.evaluator.name).from_spec(
            dataset=spec.dataset.name,
            dataset_params=resolved.dataset_params,
            space=space,
            params=resolved.evaluator_params,
            seed=spec.seed,
        )
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


def cluster_gpus() -> float:
    import ray

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

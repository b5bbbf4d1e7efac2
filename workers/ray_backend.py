"""``RayBackend``: searches on a local Ray instance or a cluster.

- A search whose loop keeps its evaluator's state (the shared-weight supernet) runs whole in
  one Ray actor (``SearchActor``) with the spec's ``cpus_per_trial`` / ``gpus_per_trial``,
  the same loop class as inline. ``ActorRun`` drives it one safe point (a supernet epoch) at
  a time, relays its trials and checkpoints, and starts a lost actor again from the last
  checkpoint (up to ``max_retries`` times). A stop kills the actor; the unfinished epoch is
  redone on resume. With ``resources.workers`` > 1 that actor is rank 0 of a group of
  actors that train the one supernet together (``workers.supernet_group``), started,
  restarted and stopped as a whole.
- Any other search loop runs in the calling process and evaluates its batches as Ray tasks
  (``RayTaskExecutor``). A trial that trains is one task with the spec's ``cpus_per_trial`` / ``gpus_per_trial``
  (fractions allowed); Ray places it only on a node that has those resources, and inside the
  task ``CUDA_VISIBLE_DEVICES`` names the GPU Ray assigned, so ``device: auto`` uses it.
- Cheap evaluators (tables) answer a whole batch in one task, never one task per lookup.
- A task that trains is a Ray generator (``_run_trials``): it tells its start when a worker
  runs it (until then its trial WAITs: ``SearchEvents.on_trials_queued``) and each
  intermediate value as it is measured, so the service follows Ray trials live as it
  follows inline ones; its result comes last.
- A task measures its own start and end: each trial records its task's times (kept within
  its batch's span, whatever the worker's clock), not its batch's. The loop waits for the
  whole batch before it proposes the next (``SearchLoop``: results are told in trial
  order, and a checkpoint has no trial in flight).
- The resolved spec is put in Ray's object store once per search; each worker process
  builds the evaluator (dataset, table) once per run of a search (a job's run or resume)
  and keeps it while it serves that run, the evaluators of its ``MAX_CACHED_SEARCHES``
  latest runs at most. Two jobs never share one, whatever their specs. What judges later
  trials (a pruner's memory of the earlier ones, ``Evaluator.memory``) is the search's, not
  the process's: the loop's evaluator holds it (its checkpoints store it), each task gets
  it with its batch and sends back what its trials added, in the batch's order. A trial is
  judged against the trials of earlier batches, whichever process ran them.
- A worker process or node that dies mid-trial: Ray retries the task (``max_retries``, default
  2) from the start of the trial; after that the trial is a FAIL with the cause and the job
  goes on. A task that raises is not retried (a bug does not fix itself) and is a FAIL too,
  with the error's type and text (returned as text: not every exception pickles); "worker
  lost" means only that.
  Trials are never run twice to completion: a retry only follows a lost attempt.
- ``should_stop`` is polled while tasks run; on a stop the batch's tasks are cancelled.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import re
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nas.architecture import Architecture
from nas.evaluators import Evaluator, build_evaluator
from nas.evaluators.base import ReportFn
from nas.spec import ResolvedSpec
from nas.trial import TrialRecord, TrialResult
from workers.backend import (
    Backend,
    InlineExecutor,
    Interrupted,
    LocalRun,
    ResultFn,
    SafePoint,
    SearchEvents,
    SearchOutcome,
    SearchRun,
    SearchState,
    StartFn,
    StopFn,
    TrialExecutor,
    TrialLog,
    TrialRun,
    controller_state_of,
)
from workers.supernet_group import Follower

log = logging.getLogger("nas.ray")

#: Per worker process: how many searches' evaluators it keeps (the most recently used).
MAX_CACHED_SEARCHES = 4

#: Per worker process: the evaluators of the searches it ran trials of lately, by the run id
#: of the search (``RayTaskExecutor``), least recently used first. Keyed by the run, never by
#: the spec: an evaluator may hold the search's own state, which another job of the same
#: spec must not inherit (a pruner's memory is handed to each task anyway: ``_run_trials``).
#: (Datasets and tables are cheap to
#: load again: generated data comes from ``cache_dir()``, tables from ``load_table``'s
#: cache.)
_CACHE: OrderedDict[str, Evaluator] = OrderedDict()


def _evaluator_for(run_id: str, resolved: ResolvedSpec) -> Evaluator:
    evaluator = _CACHE.pop(run_id, None)
    if evaluator is None:
        _, evaluator = build_evaluator(resolved)
    _CACHE[run_id] = evaluator
    while len(_CACHE) > MAX_CACHED_SEARCHES:
        _CACHE.popitem(last=False)
    return evaluator


def _worker_name() -> str:
    """Where this Ray worker process runs (this process's name outside Ray)."""
    import ray

    if not ray.is_initialized():
        return f"{socket.gethostname()}:{os.getpid()}"
    node = ray.get_runtime_context().get_node_id()[:8]
    return f"ray:{socket.gethostname()}:{node}:{os.getpid()}"


#: What evaluating a batch gives: results, where and when it ran (its own start and end: a
#: trial's times, not its batch's), and the evaluator's memory entries its trials added
#: (``Evaluator.memory``).
BatchOutput = tuple[list[TrialResult], TrialRun, list[dict[str, Any]]]


def _evaluate_batch(
    run_id: str,
    resolved: ResolvedSpec,
    archs: list[Architecture],
    hparams: list[dict[str, Any]],
    memory: list[dict[str, Any]] | None = None,
    position: int = 0,
    report: ReportFn | None = None,
    started: float | None = None,
) -> BatchOutput:
    """Evaluate a batch in this worker, its evaluator first given the search's ``memory``
    of earlier trials (a pruner's: whichever process runs the trial, it is judged against
    the same ones); ``report`` hears each intermediate value. ``position``: the first
    trial's place in its batch, whose earlier trials run beside it: they stand in the
    memory as trials that told nothing (FAIL), so this one has the number it will have in
    the merged memory (Hyperband's bracket follows it). The task body of table lookups.

    An error is returned as each trial's FAIL, with its type and text: an exception
    travels back through Ray only if it pickles, and many do not (any whose constructor
    takes other arguments than its message), which would hide the cause."""
    started = time.time() if started is None else started
    try:
        evaluator = _evaluator_for(run_id, resolved)
        if memory is not None:
            evaluator.restore_memory([*memory, *[{"state": "FAIL"}] * position])
        evaluator.report = report
        results = evaluator.evaluate(archs, hparams)
        added = (evaluator.memory() or [])[len(memory) + position :] if memory is not None else []
    except Exception as exc:  # noqa: BLE001 - any error is the trials' FAIL, as text
        failed = TrialResult.failed(f"trial raised: {_error_text(exc)}")
        return [failed] * len(archs), TrialRun(_worker_name(), started, time.time()), []
    return results, TrialRun(_worker_name(), started, time.time()), added


@functools.cache
def _trainer_thread() -> ThreadPoolExecutor:
    """The one thread of this worker process that trains its tasks' trials, kept from task
    to task: torch's thread pools belong to the thread that uses them, so a new thread per
    task built them anew each time (a batch of two 8-epoch digits trials took 28 % longer)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="trials")


def _run_trials(
    run_id: str,
    resolved: ResolvedSpec,
    archs: list[Architecture],
    hparams: list[dict[str, Any]],
    memory: list[dict[str, Any]] | None = None,
    position: int = 0,
) -> Iterator[tuple[Any, ...]]:
    """The task body of trials that train, a Ray generator: it tells the search as it
    goes, so the service shows a trial RUNNING when it starts (not while it waits for a
    worker) and its intermediate values as they are measured (not once it has ended).
    Yields ``("started", attempt)`` first, then ``("value", attempt, index, epoch,
    values)`` for each intermediate value, and last ``("done", attempt, BatchOutput)``;
    ``attempt`` is ``(worker, start time)``: a task Ray runs again after its worker was
    lost yields it anew, and only its items past those already told reach the caller
    (Ray's streams are by position). The batch trains in the process's training thread
    (``_trainer_thread``), whose values the task yields as they come."""
    started = time.time()
    attempt = (_worker_name(), started)
    yield ("started", attempt)
    events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()

    def work() -> None:
        output: BatchOutput | None = None
        try:
            output = _evaluate_batch(
                run_id,
                resolved,
                archs,
                hparams,
                memory,
                position,
                lambda i, epoch, values: events.put(("value", attempt, i, epoch, dict(values))),
                started,
            )
        finally:  # (a BaseException too: the task must not wait for good)
            events.put(("done", attempt, output))

    _trainer_thread().submit(work)
    while True:
        event = events.get()
        if event[0] == "done" and event[2] is None:
            raise RuntimeError("the trial's thread ended without a result")
        yield event
        if event[0] == "done":
            return


def _error_text(exc: BaseException) -> str:
    """``Type: message`` of an exception (its type alone when it has no message)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unserializable_text(exc: BaseException) -> str:
    """The original error's last line (``module.Type: message``) from Ray's
    ``UnserializableException``, whose text carries the remote traceback."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _creation_error(exc: BaseException) -> str:
    """The error that stopped a search actor's creation, as ``Type: message``: the last line
    of Ray's text (which carries the remote traceback, coloured for a terminal)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", getattr(exc, "error_msg", "") or str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


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
        _init_local_ray(num_cpus=num_cpus, **kwargs)
    return True


def _init_local_ray(**kwargs: Any) -> None:
    """Start a local Ray instance whose processes end with this one, even on ``kill -9``:
    each inherits a mark, which a watchdog (``workers.ray_watchdog``) finds them by."""
    import secrets

    import ray

    from workers import ray_watchdog

    token = secrets.token_hex(16)
    saved = os.environ.get(ray_watchdog.OWNER_ENV)
    os.environ[ray_watchdog.OWNER_ENV] = token  # inherited by what Ray starts now
    try:
        ray.init(address="local", **kwargs)
    finally:
        if saved is None:
            del os.environ[ray_watchdog.OWNER_ENV]
        else:
            os.environ[ray_watchdog.OWNER_ENV] = saved
    ray_watchdog.start(os.getpid(), token)


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


def _alive_nodes(address: str | None) -> list[tuple[float, float]]:
    """``(CPUs, GPUs)`` of each live node of the Ray cluster (connects first if needed)."""
    import ray

    ensure_ray(address)
    nodes = []
    for node in ray.nodes():
        if node.get("Alive"):
            have = node.get("Resources") or {}
            nodes.append((float(have.get("CPU", 0.0)), float(have.get("GPU", 0.0))))
    return nodes


def check_trial_fits(resolved: ResolvedSpec, address: str | None = None) -> None:
    """A trial (or a search's actor) needs ``cpus_per_trial`` CPUs and ``gpus_per_trial``
    GPUs on one node: a spec that asks more than any node of the Ray cluster has would wait
    in Ray's queue for good, its job RUNNING at 0 %. Refuse it (``SpecError`` at the field).
    Checked against the Ray this process is connected to (a server that runs jobs is, from
    its start); without one, nothing is started for it."""
    import ray

    from nas.errors import SpecError

    if not ray.is_initialized():
        return
    resources = resolved.spec.resources
    cpus, gpus = resources.cpus_per_trial, resources.gpus_per_trial
    nodes = _alive_nodes(address)
    if not nodes or any(c + 1e-9 >= cpus and g + 1e-9 >= gpus for c, g in nodes):
        return
    most = max(c for c, _ in nodes)
    if most + 1e-9 < cpus:
        raise SpecError.at(
            ["resources", "cpus_per_trial"],
            f"no node of the Ray cluster has {cpus:g} CPUs for one trial (the largest has "
            f"{most:g}), so it would wait for good; set cpus_per_trial: {most:g} or fewer, "
            "or add a larger node",
        )
    raise SpecError.at(
        ["resources", "gpus_per_trial"],
        f"no node of the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs together for one "
        f"trial (nodes, CPUs / GPUs: {', '.join(f'{c:g} / {g:g}' for c, g in nodes)}), so it "
        "would wait for good; ask for less (cpus_per_trial, gpus_per_trial) or add a node",
    )


def check_group_fits(resolved: ResolvedSpec, address: str | None = None) -> None:
    """A search that trains one evaluator with ``resources.workers`` > 1 workers (a
    supernet group) needs them all at once: refuse (``SpecError`` at the field) a spec
    whose workers the Ray cluster cannot place together, each with ``cpus_per_trial`` CPUs
    and ``gpus_per_trial`` GPUs on one node; and ``workers`` > 1 for a search that runs as
    one actor and cannot use them (meta-training). Connects first if needed."""
    from nas.errors import SpecError
    from workers.loops import loop_class

    resources = resolved.spec.resources
    loop = loop_class(resolved)
    if resources.workers == 1 or not loop.keeps_evaluator_state:
        return  # trials that run side by side: Ray queues what does not fit yet
    if not loop.trains_in_groups:
        raise SpecError.at(
            ["resources", "workers"],
            f"a {resolved.spec.evaluator.name} search runs as one Ray actor and cannot use "
            f"{resources.workers} workers; set workers: 1",
        )
    cpus, gpus = resources.cpus_per_trial, resources.gpus_per_trial
    if 0 < gpus < 1:
        raise SpecError.at(
            ["resources", "gpus_per_trial"],
            f"the {resources.workers} workers of one supernet each need a GPU of their own "
            f"(NCCL), not a share of one: set gpus_per_trial: 1, or 0 to train on CPUs",
        )
    places = 0
    nodes = _alive_nodes(address)
    for node_cpus, node_gpus in nodes:
        fits = int(node_cpus / cpus + 1e-9)
        if gpus > 0:
            fits = min(fits, int(node_gpus / gpus + 1e-9))
        places += fits
    each = f"{cpus:g} CPUs" + (f" and {gpus:g} GPUs" if gpus else "")
    if places == 0:  # (not even workers: 1 would start: "set workers: 1 or fewer" misled)
        raise SpecError.at(
            [
                "resources",
                "gpus_per_trial" if gpus and any(c >= cpus for c, _ in nodes) else "cpus_per_trial",
            ],
            f"no node of the Ray cluster holds one worker of {each}, so the search would wait "
            "for good; ask for less per worker (cpus_per_trial, gpus_per_trial) or add a "
            "larger node",
        )
    if places < resources.workers:
        raise SpecError.at(
            ["resources", "workers"],
            f"the Ray cluster can hold {places} worker{'s' if places > 1 else ''} of {each} "
            f"each at once, fewer than workers={resources.workers}; set workers: {places} or "
            "fewer, ask for less per worker (cpus_per_trial, gpus_per_trial), or add nodes",
        )


class RayTaskExecutor(TrialExecutor):
    """Evaluates a search loop's batches as Ray tasks; see the module docstring."""

    queues = True

    #: How long none of the search's trials may run, though some wait for Ray to start
    #: them, before the search says so (``on_waiting``): a job whose only trial waited for
    #: CPUs another job held sat RUNNING with no word.
    WAITING_NOTE_S = 10.0

    def __init__(
        self,
        resolved: ResolvedSpec,
        *,
        workers: int = 1,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        max_retries: int = 2,
        poll_s: float = 0.2,
        on_waiting: Callable[[str | None], None] | None = None,
    ) -> None:
        import ray

        super().__init__()
        # Workers keep an evaluator per run of a search (``_CACHE``): this run's own.
        self._run_id = uuid.uuid4().hex
        self._on_waiting = on_waiting
        each = f"{cpus_per_trial:g} CPU{'s' * (cpus_per_trial != 1)}" + (
            f" and {gpus_per_trial:g} GPU{'s' * (gpus_per_trial != 1)}" if gpus_per_trial else ""
        )
        self._waiting_text = (
            f"no trial of this search has run for {self.WAITING_NOTE_S:g} s: each asks for "
            f"{each} on one node and waits until the Ray cluster has them free (another job "
            "may hold them)"
        )
        self._resolved = ray.put(resolved)
        self.parallelism = workers
        self.max_retries = max_retries
        self.poll_s = poll_s
        self._train = ray.remote(_run_trials).options(
            num_cpus=cpus_per_trial,
            num_gpus=gpus_per_trial,
            max_retries=max_retries,
            retry_exceptions=False,
        )
        # Table lookups: one light task per batch.
        self._lookup = ray.remote(_evaluate_batch).options(
            num_cpus=min(cpus_per_trial, 1.0), max_retries=max_retries
        )

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
        on_start: StartFn | None = None,
        on_result: ResultFn | None = None,
    ) -> list[TrialResult]:
        import ray

        hps = [dict(h) for h in hparams]
        key, spec = self._run_id, self._resolved
        # Every task of the batch starts from the search's memory as it is now (this loop's
        # evaluator holds it; checkpoints store it), not from its worker process's.
        memory = evaluator.memory()
        shared = ray.put(memory) if memory else memory
        if evaluator.instant:
            groups = [list(range(len(archs)))]
            tasks = [self._lookup.remote(key, spec, list(archs), hps, shared)]
        else:
            groups = [[i] for i in range(len(archs))]
            tasks = [
                self._train.remote(key, spec, [a], [h], shared, i)
                for i, (a, h) in enumerate(zip(archs, hps, strict=True))
            ]
        submitted = time.time()
        collect = _Collect(evaluator, groups, submitted, on_start)
        results: list[TrialResult | None] = [None] * len(archs)
        runs: list[TrialRun | None] = [None] * len(archs)
        added: dict[int, list[dict[str, Any]]] = {}  # each task's new memory entries

        def ended(k: int, error: str | None) -> None:
            """Task ``k`` has ended: its trials' results and runs, told at once."""
            now = time.time()
            output = collect.outputs.get(k)
            if output is None:
                # A task that returned nothing (it could not start, its worker was lost)
                # ran for all we know from the batch's submission until now.
                failed = TrialResult.failed(error or "the task ended without a result")
                told = [(i, failed, TrialRun("ray", submitted, now)) for i in groups[k]]
            else:
                trial_results, ran, added[k] = output
                # Inside the batch's window, whatever the skew of the worker's clock.
                started = min(max(ran.started, submitted), now)
                ran = TrialRun(ran.worker, started, min(max(ran.finished, started), now))
                told = [(i, r, ran) for i, r in zip(groups[k], trial_results, strict=True)]
            for i, result, run in told:
                results[i], runs[i] = result, run
                if on_result is not None:
                    on_result(i, result, run)

        pending = list(range(len(tasks)))
        idle_since, said = time.monotonic(), False  # (since none of its trials ran)
        wait_s = self.WAITING_NOTE_S
        try:
            while pending:
                ready, _ = ray.wait([tasks[k] for k in pending], num_returns=1, timeout=self.poll_s)
                ready_ids = {id(task) for task in ready}
                for k in [k for k in pending if id(tasks[k]) in ready_ids]:
                    try:
                        done, error = collect.take(k, tasks[k]), None
                    except (ray.exceptions.RayError, OSError) as exc:  # the task failed
                        done, error = True, self._failure_text(exc)
                    if done:
                        pending.remove(k)
                        ended(k, error)
                if pending and should_stop is not None and (why := should_stop()):
                    raise Interrupted(why)
                if not evaluator.instant and self._on_waiting is not None:
                    if any(collect.started(k) for k in pending):
                        idle_since = time.monotonic()
                        if said:
                            self._on_waiting(None)
                            said = False
                    elif pending and not said and time.monotonic() - idle_since >= wait_s:
                        self._on_waiting(self._waiting_text)
                        said = True
        except BaseException:  # a stop (``Interrupted``), from here or from a report
            for k in pending:
                ray.cancel(tasks[k], force=True)
            raise
        finally:
            if said and self._on_waiting is not None:
                self._on_waiting(None)
        self.last_runs = [run for run in runs if run is not None]
        if memory is not None:
            for k in range(len(tasks)):  # in the batch's order, whatever order tasks ended in
                memory.extend(added.get(k, ()))
            evaluator.restore_memory(memory)
        return [r for r in results if r is not None]

    def _failure_text(self, exc: BaseException) -> str:
        """A failed task's FAIL text."""
        import ray

        if isinstance(exc, ray.exceptions.RayTaskError):
            # Outside the task body's own handler (its arguments did not unpickle).
            cause = _error_text(exc.cause) if exc.cause is not None else str(exc)
            return f"trial raised: {cause}"
        if isinstance(exc, ray.exceptions.UnserializableException):
            # The task raised an error that does not pickle: its text is all there is.
            return f"trial raised: {_unserializable_text(exc)}"
        # Otherwise the worker process or its node died (each time, retries included).
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"worker lost after {self.max_retries} retries: {type(exc).__name__}: {first}"


class _Collect:
    """What a batch's tasks told so far: each trial's start (``on_start``) and intermediate
    values (the loop's ``evaluator.report``) passed on as they come, and each task's
    ``BatchOutput``. A task Ray ran again after its worker was lost starts anew: its trials'
    start is told again (another worker, a later time); Ray hands over only its items past
    those already taken, so no epoch's values come twice."""

    def __init__(
        self,
        evaluator: Evaluator,
        groups: list[list[int]],
        submitted: float,
        on_start: StartFn | None,
    ) -> None:
        self.evaluator = evaluator
        self.groups = groups
        self.submitted = submitted
        self.on_start = on_start
        self.outputs: dict[int, BatchOutput] = {}
        self._attempts: dict[int, tuple[str, float]] = {}

    def started(self, k: int) -> bool:
        """Whether task ``k`` has told its start (its trials run, or ran)."""
        return k in self._attempts

    def take(self, k: int, task: Any) -> bool:
        """Take what task ``k`` has ready; True once it has ended. Raises its failure."""
        import ray

        if isinstance(task, ray.ObjectRef):  # a lookup: one result
            self.outputs[k] = ray.get(task)
            return True
        while True:
            try:
                ref = next(task)
            except StopIteration:
                return True
            kind, attempt, *rest = ray.get(ref)
            if self._attempts.get(k) != attempt:
                self._attempts[k] = attempt
                if self.on_start is not None:
                    worker, at = attempt
                    self.on_start(self.groups[k], worker, min(max(at, self.submitted), time.time()))
            if kind == "done":
                self.outputs[k] = rest[0]
                return True
            if kind == "value" and self.evaluator.report is not None:
                index, epoch, values = rest
                self.evaluator.report(self.groups[k][index], epoch, values)
            ready, _ = ray.wait([task], timeout=0)
            if not ready:
                return False


class RayBackend(Backend):
    """Runs searches on Ray with the spec's ``resources``; see the module docstring."""

    def __init__(self, *, poll_s: float = 0.2) -> None:
        import ray

        if not ray.is_initialized():
            raise RuntimeError("RayBackend needs Ray: call workers.ray_backend.ensure_ray()")
        self.poll_s = poll_s

    def open(self, resolved: ResolvedSpec, events: SearchEvents) -> SearchRun:
        from workers.loops import loop_class

        resources = resolved.spec.resources
        loop = loop_class(resolved)
        if loop.keeps_evaluator_state:
            return ActorRun(
                resolved,
                events,
                workers=resources.workers if loop.trains_in_groups else 1,
                cpus=resources.cpus_per_trial,
                gpus=resources.gpus_per_trial,
                max_restarts=resources.max_retries,
                poll_s=self.poll_s,
            )
        executor = RayTaskExecutor(
            resolved,
            workers=resources.workers,
            cpus_per_trial=resources.cpus_per_trial,
            gpus_per_trial=resources.gpus_per_trial,
            max_retries=resources.max_retries,
            poll_s=self.poll_s,
            on_waiting=events.on_waiting,
        )
        return LocalRun(loop_class(resolved)(resolved, events=events, executor=executor))


class SearchActor:
    """One search loop inside a Ray actor, with its evaluator (the supernet on the device
    Ray assigned). ``ActorRun`` drives it from one safe point to the next."""

    def __init__(
        self,
        resolved: ResolvedSpec,
        state: SearchState | None,
        trials: list[TrialRecord],
    ) -> None:
        from workers.loops import loop_class

        self._records: list[TrialRecord] = []
        self._points: list[SafePoint] = []
        events = SearchEvents(on_trial=self._records.append, on_safe_point=self._points.append)
        executor = InlineExecutor(worker_name=_worker_name())
        self.loop = loop_class(resolved)(resolved, events=events, executor=executor)
        if state is not None:
            self.loop.load_state(state, trials)

    def ready(self) -> bool:
        return True

    # --- rank 0 of a supernet group (``workers.supernet_group``) ---------------------------
    def address(self) -> tuple[str, int]:
        from workers.supernet_group import rendezvous

        return rendezvous()

    def join(self, address: str, port: int, world: int) -> None:
        from workers.shared import SharedWeightSearch
        from workers.supernet_group import GroupOps, join_group

        loop = self.loop
        if not isinstance(loop, SharedWeightSearch):
            raise TypeError(f"{type(loop).__name__} does not train in groups")
        control = join_group(loop.evaluator, address, port, 0, world)
        loop.ops = GroupOps(loop.evaluator, loop.ops.worker, control)
        self._group = True

    _group = False

    def run_to_safe_point(self) -> dict[str, Any]:
        """Run until the next safe point (or the search's end); what happened since."""
        from workers.supernet_group import GroupLost, is_group_lost

        loop = self.loop
        try:
            outcome = loop.run(pause=lambda: bool(self._points))
            if outcome is not None and self._group:
                loop.ops.stop()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - sent back as text: it may not pickle
            if self._group and is_group_lost(exc):
                raise GroupLost(_error_text(exc)) from None
            raise RuntimeError(_error_text(exc)) from None
        records, points = self._records[:], self._points[:]
        self._records.clear()
        self._points.clear()
        return {
            "records": records,
            "points": points,
            "state": loop.state() if loop.consistent else None,
            "progress": loop.fraction_done(),
            "outcome": outcome,
            # (for a later job's warm start: SearchRun.final_controller_state)
            "controller": controller_state_of(loop) if outcome is not None else None,
        }


class ActorRun(SearchRun):
    """A search loop running in a ``SearchActor``, seen from the calling process: its
    trials and safe points are relayed to ``events`` as the actor reaches them, its state
    is that of the last safe point. A lost actor (its process or node died) is started
    again from that state, up to ``max_restarts`` times.

    With ``workers`` > 1 (a shared-weight search's ``resources.workers``) the loop's actor
    is rank 0 of a group of that many actors training one supernet
    (``workers.supernet_group``), placed together by a placement group (one bundle of
    ``cpus`` / ``gpus`` per worker, all or none). A lost member, or a collective that
    failed because one is gone, ends the whole group and starts it again from the last
    state (counted as one restart); a stop ends every member."""

    #: How long the search waits for Ray to start its actor (place its group) before it
    #: says so (``SearchEvents.on_waiting``): a job RUNNING at 0 trials said nothing.
    WAITING_NOTE_S = 10.0

    def __init__(
        self,
        resolved: ResolvedSpec,
        events: SearchEvents,
        *,
        workers: int = 1,
        cpus: float = 1.0,
        gpus: float = 0.0,
        max_restarts: int = 2,
        poll_s: float = 0.2,
    ) -> None:
        import ray

        self.resolved = resolved
        self.events = events
        self.space = resolved.build_space()
        self.max_restarts, self.poll_s = max_restarts, poll_s
        self.workers, self._bundle = workers, {"CPU": cpus, "GPU": gpus}
        self._options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus, "max_restarts": 0}
        self._actor_class = ray.remote(SearchActor)
        self._follower_class = ray.remote(FollowerActor)
        self._actor: Any = None
        self._followers: list[Any] = []
        self._follow_refs: list[Any] = []
        self._group: Any = None  # the placement group
        objective = resolved.spec.objective
        self._log = TrialLog(
            maximize=objective.direction == "maximize", then=objective.objectives[1:]
        )
        self._state: SearchState | None = None
        self._final_controller: dict[str, Any] | None = None
        self._progress = 0.0
        self.restarts = 0

    def restore(self, state: SearchState, trials: Sequence[TrialRecord]) -> None:
        self._state = state
        self._log.load(trials)

    def state(self) -> SearchState:
        if self._state is None:
            raise RuntimeError("the search has reached no safe point yet")
        return self._state

    @property
    def consistent(self) -> bool:
        return self._state is not None and self._state.trial_count == len(self._log.trials)

    def final_controller_state(self) -> dict[str, Any] | None:
        return self._final_controller

    @property
    def trials(self) -> list[TrialRecord]:
        return self._log.trials

    @property
    def best(self) -> TrialRecord | None:
        return self._log.best

    def fraction_done(self) -> float:
        return self._progress

    def run(self) -> SearchOutcome:
        import ray

        from workers.supernet_group import GroupLost

        should_stop = self.events.should_stop or (lambda: None)
        while True:
            if (why := should_stop()) is not None:
                return self._interrupt(why)
            try:
                if self._actor is None and (why := self._start(should_stop)) is not None:
                    return self._interrupt(why)
                ref = self._actor.run_to_safe_point.remote()
                if (why := self._wait(ref, should_stop)) is not None:
                    return self._interrupt(why)
                step = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, GroupLost):
                    self._lost(exc.cause)  # a collective failed: a member of the group is gone
                    continue
                # The search raised (the actor is alive): fail with its text, not Ray's.
                self.close()
                raise RuntimeError(str(exc.cause or exc)) from None
            except (
                ray.exceptions.RayActorError,
                ray.exceptions.ObjectLostError,
                GroupLost,
            ) as exc:
                if isinstance(exc, ray.exceptions.RayActorError) and exc.actor_init_failed:
                    # The search could not be built (its data, its evaluator's files): that
                    # recurs on every restart. Fail with its error, not Ray's wrapping.
                    self.close()
                    raise RuntimeError(_creation_error(exc)) from None
                self._lost(exc)
                continue  # a new actor (group) from the last safe point's state
            for record in step["records"]:
                self._log.add(record)
                if self.events.on_trial is not None:
                    self.events.on_trial(record)
            if step["state"] is not None:
                self._state = step["state"]
            self._progress = step["progress"]
            for point in step["points"]:
                if self.events.on_safe_point is not None:
                    self.events.on_safe_point(point)
            if step["outcome"] is not None:
                self._final_controller = step["controller"]
                outcome = step["outcome"]
                if self.restarts:  # (what used up max_retries: the log said it, nothing else)
                    outcome.warnings.append(
                        f"the {self._what} was lost {self.restarts} time"
                        f"{'s' if self.restarts > 1 else ''} and started again from the last "
                        f"checkpoint each time (resources.max_retries: {self.max_restarts})"
                    )
                return outcome

    @property
    def _what(self) -> str:
        return "search actor" if self.workers == 1 else f"group of {self.workers} workers"

    def _lost(self, exc: BaseException) -> None:
        """An actor of the search is lost: end them all; fail once restarts are spent."""
        self.restarts += 1
        self.close()
        cause = str(exc).splitlines()[0] if str(exc) else repr(exc)
        if self.restarts > self.max_restarts:
            raise RuntimeError(
                f"the {self._what} was lost {self.restarts} times (max_retries "
                f"{self.max_restarts}): {cause}"
            ) from None
        log.warning(
            "search %r: its %s was lost (%s); started again from the last checkpoint "
            "(restart %d of resources.max_retries %d)",
            self.resolved.spec.name,
            self._what,
            cause,
            self.restarts,
            self.max_restarts,
        )

    def _start(self, should_stop: StopFn) -> str | None:
        """Start the search's actor, or its group of ``workers`` actors joined into one
        process group, from the last safe point's state; a stop asked meanwhile is
        returned instead."""
        # Trials arrive with their safe point, so the log matches the last state.
        args = (self.resolved, self._state, self._log.trials)
        cpus, gpus = self._bundle["CPU"], self._bundle["GPU"]
        each = f"{cpus:g} CPU{'s' * (cpus != 1)}" + (
            f" and {gpus:g} GPU{'s' * (gpus != 1)}" if gpus else ""
        )
        if self.workers == 1:
            self._actor = self._actor_class.options(**self._options).remote(*args)
            waiting = (
                f"the search's actor has not started after {self.WAITING_NOTE_S:g} s: it asks "
                f"for {each} on one node and waits until the Ray cluster has them free "
                "(another job may hold them)"
            )
            return self._wait(self._actor.ready.remote(), should_stop, waiting=waiting)
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundle = {k: v for k, v in self._bundle.items() if v > 0}
        self._group = placement_group([bundle] * self.workers, strategy="PACK")
        waiting = (
            f"waiting for the Ray cluster to place the {self.workers} workers together, "
            f"{each} each: it has not the room free (another job may hold it); the search "
            "starts once it has"
        )
        if (why := self._wait(self._group.ready(), should_stop, waiting=waiting)) is not None:
            return why

        def place(index: int) -> dict[str, Any]:
            return {
                **self._options,
                "scheduling_strategy": PlacementGroupSchedulingStrategy(
                    self._group, placement_group_bundle_index=index
                ),
            }

        self._actor = self._actor_class.options(**place(0)).remote(*args)
        self._followers = [
            self._follower_class.options(**place(i)).remote(self.resolved)
            for i in range(1, self.workers)
        ]
        address = self._wait(self._actor.address.remote(), should_stop, value=True)
        if isinstance(address, str):
            return address
        host, port = address.value
        # Every member joins at once; a follower's failed join is raised while the lead's
        # is waited for (``_wait`` watches ``_follow_refs``).
        self._follow_refs = [
            f.join.remote(host, port, rank, self.workers)
            for rank, f in enumerate(self._followers, start=1)
        ]
        joins = [self._actor.join.remote(host, port, self.workers), *self._follow_refs]
        for ref in joins:
            if (why := self._wait(ref, should_stop)) is not None:
                return why
        self._follow_refs = [f.follow.remote() for f in self._followers]
        return None

    def _wait(
        self, ref: Any, should_stop: StopFn, *, value: bool = False, waiting: str | None = None
    ) -> Any:
        """Wait for ``ref`` (then ``ray.get`` it: an error it carries is raised); a stop
        asked for meanwhile is returned instead. A group's followers are watched meanwhile:
        one that ended (lost, or raised) raises its error here. With ``value``, ``ref``'s
        value comes back in a ``_Value`` (a stop is still a ``str``). ``waiting``: what the
        search waits for, said (``SearchEvents.on_waiting``) once it has waited
        ``WAITING_NOTE_S``, and unsaid when the wait ends."""
        import ray

        watched = [ref, *(r for r in self._follow_refs if r != ref)]
        started, said = time.monotonic(), False
        try:
            while True:
                ready, _ = ray.wait(watched, num_returns=1, timeout=self.poll_s)
                if ref in ready:
                    break
                for done in ready:
                    ray.get(done)  # a follower's error (lost: RayActorError; or it raised)
                    watched.remove(done)  # it returned: the lead said stop
                if (why := should_stop()) is not None:
                    return why
                late = time.monotonic() - started >= self.WAITING_NOTE_S
                if waiting and late and not said and self.events.on_waiting is not None:
                    self.events.on_waiting(waiting)
                    said = True
        finally:
            if said and self.events.on_waiting is not None:
                self.events.on_waiting(None)
        result = ray.get(ref)
        return _Value(result) if value else None

    def _interrupt(self, why: str) -> SearchOutcome:
        self.close()  # the unfinished epoch is redone on resume
        return SearchOutcome(
            trials=self.trials,
            best=self.best,
            stop_reason=why,
            wall_s=0.0,
            simulated_s=0.0,
            curve=list(self._state.loop.get("curve", [])) if self._state is not None else [],
        )

    def close(self) -> None:
        import ray

        for actor in [self._actor, *self._followers]:
            if actor is not None:
                ray.kill(actor)
        self._actor, self._followers, self._follow_refs = None, [], []
        if self._group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self._group)
            self._group = None


class _Value:
    """A value waited for (``ActorRun._wait``), told apart from a stop's reason."""

    def __init__(self, value: Any) -> None:
        self.value = value


class FollowerActor(Follower):
    """Rank r > 0 of a supernet group, as a Ray actor (``workers.supernet_group``); its
    errors come back as text (they may not pickle), ``GroupLost`` when a peer is gone."""

    def __init__(self, resolved: ResolvedSpec) -> None:
        super().__init__(resolved, _worker_name())

    def join(self, address: str, port: int, rank: int, world: int) -> None:
        _as_text(super().join, address, port, rank, world)

    def follow(self) -> None:
        _as_text(super().follow)


def _as_text(call: Any, *args: Any) -> None:
    from workers.supernet_group import GroupLost, is_group_lost

    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001 - sent back as text: it may not pickle
        if is_group_lost(exc):
            raise GroupLost(_error_text(exc)) from None
        raise RuntimeError(_error_text(exc)) from None

"""Business rules of jobs: what may be submitted, seen and cancelled, by whom."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from api.auth import Principal
from api.models import JobModel, JobState, utcnow
from api.policies import (
    resolve_meta_jobs,
    resolve_policy_job,
    store_policy_copy,
    without_stored_copy,
)
from api.repositories import JobRepository
from api.schemas import BestSoFar, JobRead
from api.settings import Settings
from api.trainable import trainable_problem
from api.warmstart import resolve_warm_start
from controllers import CONTROLLERS
from nas.errors import DatasetError, SpecError
from nas.evaluators import EVALUATORS
from nas.export import get_format, supported_formats
from nas.paths import spec_path
from nas.spec import ResolvedSpec, spec_warnings
from nas.training import cuda_index
from workers.loops import check_startable, with_absolute_files, with_pinned_space
from workers.search import parse_spec


class NotFoundError(LookupError):
    """The resource does not exist or the caller may not see it (both answer 404)."""


class ConflictError(RuntimeError):
    """The request does not fit the resource's state (409)."""


def check_runnable_here(
    resolved: ResolvedSpec, backend: str, ray_address: str | None = None, *, runs_jobs: bool = True
) -> None:
    """Reject settings this server cannot honour, at submit time (never silently ignored).
    ``runs_jobs``: this server runs jobs (an API-only replica cannot tell whether the server
    that will has a GPU for an inline trial or the ``final:`` retraining)."""
    resources = resolved.spec.resources
    _check_cuda_devices(resolved, backend, runs_jobs)
    if backend == "inline" and resources.workers != 1:
        raise SpecError.at(
            ["resources", "workers"],
            "this server runs each job's trials inline, one at a time (NAS_BACKEND=inline); "
            "set workers: 1, or run the server with the Ray backend",
        )
    if backend == "inline":  # what only Ray places and retries by (they were ignored here)
        defaults = type(resources)()
        for field in ("cpus_per_trial", "max_retries"):
            if getattr(resources, field) != getattr(defaults, field):
                raise SpecError.at(
                    ["resources", field],
                    "this server runs each job's trials inline, in its own process "
                    f"(NAS_BACKEND=inline), where {field} does nothing: leave it out (default "
                    f"{getattr(defaults, field):g}), or run the server with the Ray backend",
                )
    if resources.gpus_per_trial > 0:
        if backend == "ray":
            from workers.ray_backend import cluster_gpus

            available = cluster_gpus(ray_address)
            where = "the Ray cluster"
        else:
            import torch

            available = float(torch.cuda.device_count())
            where = "this server"
        if available < resources.gpus_per_trial:
            raise SpecError.at(
                ["resources", "gpus_per_trial"],
                f"{where} has {available:g} GPUs, fewer than gpus_per_trial="
                f"{resources.gpus_per_trial:g}; set gpus_per_trial: 0 or add a GPU node",
            )
    if backend == "ray":
        from workers.ray_backend import check_group_fits, check_trial_fits

        # (Ray's own RAY_ADDRESS joins a cluster as --ray-address does: workers.ray_backend)
        if runs_jobs and not (ray_address or os.environ.get("RAY_ADDRESS")):
            # The Ray instance this server started (or the one this process joined): its
            # nodes are all there will be. A cluster named by address may add nodes on
            # demand (an autoscaler, a worker pod that restarts), where a trial waits.
            check_trial_fits(resolved, ray_address)
        check_group_fits(resolved, ray_address)


def check_limits(resolved: ResolvedSpec, settings: Settings) -> ResolvedSpec:
    """The server's per-job limits (``NAS_MAX_TRIALS_PER_JOB``, ``NAS_MAX_JOB_MINUTES``,
    ``NAS_MAX_SIMULATED_SECONDS``): a budget above one is a 422 at its field. A spec without a
    trial budget gets ``budget.max_trials`` at the limit, stored with the job, so that no job
    writes rows without end: a cap, not a plan (the time stays the plan: never cut short)."""
    budget = resolved.spec.budget
    problems = []
    for field, value, limit, setting in (
        ("trials", budget.trials, settings.max_trials_per_job, "NAS_MAX_TRIALS_PER_JOB"),
        ("max_trials", budget.max_trials, settings.max_trials_per_job, "NAS_MAX_TRIALS_PER_JOB"),
        ("minutes", budget.minutes, settings.max_job_minutes, "NAS_MAX_JOB_MINUTES"),
        (
            "simulated_seconds",
            budget.simulated_seconds,
            settings.max_simulated_seconds,
            "NAS_MAX_SIMULATED_SECONDS",
        ),
    ):
        if value is not None and value > limit:
            # (as many digits as tell the two apart: 1.0000001e9 showed as 1e+09, the limit;
            # a count in full: trials 10^12 read "got 1e+12")
            def written(number: float) -> str:
                return str(number) if isinstance(number, int) else f"{number:g}"

            shown = written(value) if written(value) != written(limit) else repr(value)
            problems.append(
                {
                    "loc": ("budget", field),
                    "msg": f"at most {written(limit)} on this server ({setting}); got {shown}",
                    "type": "less_than_equal",
                }
            )
    if problems:
        raise SpecError(problems)
    if budget.trials is not None or budget.max_trials is not None:
        return resolved
    bounded = budget.model_copy(update={"max_trials": settings.max_trials_per_job})
    spec = resolved.spec.model_copy(update={"budget": bounded})
    return dataclasses.replace(resolved, spec=spec)


#: Where a spec's files may never come from, whatever the roots: devices, processes, kernel.
_SYSTEM_TREES = tuple(Path(p) for p in ("/dev", "/proc", "/sys"))


def check_data_paths(
    resolved: ResolvedSpec,
    roots: list[Path],
    *,
    private: Collection[Path],
    sections: Collection[str] | None = None,
    own_files: Path | None = None,
    stored: bool = False,
) -> None:
    """Every file the spec names (in ``sections``, default all) lies under a data root
    (symlinks resolved), not among the server's ``private`` files (``Settings.private_paths``:
    its database and artifacts, e.g. another user's policy or weights), and is a regular file
    there; the controller's file may also lie in ``own_files`` (a stored job's own folder,
    where its copy of an RL² policy is). A path
    outside the roots gets one answer whether or not it exists, so a client learns nothing
    about the rest of the file system. ``stored``: the spec is a stored job's, checked again
    before its files are read (the messages say what changed since submit)."""
    problems = []
    for loc, value in resolved.file_params(CONTROLLERS):
        if sections is not None and loc[0] not in sections:
            continue
        own = own_files if own_files is not None and loc[0] == "controller" else None
        real: Path | None
        try:
            real = Path(os.path.realpath(spec_path(value)))
        except (ValueError, RuntimeError):  # a NUL byte, a lone surrogate, ~nosuchuser
            real = None
        inside = real is not None and (
            (own is not None and real.is_relative_to(own))
            or (
                any(real.is_relative_to(root) for root in roots)
                and not any(real.is_relative_to(tree) for tree in (*private, *_SYSTEM_TREES))
            )
        )
        if not inside and stored:
            msg = (
                "no longer lies under this server's data roots (NAS_DATA_ROOTS): moved or "
                "linked out of them since the submit, or the roots changed or are not those "
                "of the accepting server (servers of one database share them); submit it "
                "again naming a file under them"
            )
        elif not inside:
            relative = (
                " (a relative path is read from the server's working directory, not from "
                "the spec's folder)"
                if not value.startswith("~") and not os.path.isabs(value)
                else ""
            )
            msg = (
                f"must name a file under this server's data roots (NAS_DATA_ROOTS){relative}; "
                "copy the file there, or ask the operator to add its folder"
            )
        elif not _is_file(real):
            again = " any more" if stored else ""
            if real.is_dir():
                msg = f"a folder, not a file: name the file in it: {value!r}"
            elif real.exists():  # (a named pipe, a socket, a device: "no such file" it said)
                msg = f"not a regular file (a pipe, socket or device): {value!r}"
            else:
                msg = f"no such file under the data roots{again}: {value!r}"
        else:
            continue
        problems.append({"loc": loc, "msg": msg, "type": "path_not_allowed"})
    if problems:
        raise SpecError(problems)


def data_fingerprints(resolved: ResolvedSpec) -> dict[str, dict[str, Any]]:
    """The dataset's files (``dataset.path``) by field: size, modification time and SHA-256,
    taken when the job starts and kept in its summary (``data_files``), so that a retraining
    or an export can tell a file replaced since the search (it trained and tested on the new
    data without a word, and exports took its shapes: the probe of retraining)."""
    out = {}
    for loc, value in resolved.file_params(CONTROLLERS):
        if loc[0] != "dataset":
            continue
        path = Path(os.path.realpath(spec_path(value)))
        out[".".join(map(str, loc))] = {**_stat_of(path), "sha256": _sha256(path)}
    return out


def _stat_of(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


#: Digests by (path, inode, size, mtime_ns): a file put back by a copy (the same contents,
#: another time) was read whole again at every job read, chart and export.
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def _sha256(path: Path) -> str:
    info = path.stat()
    key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
    if (known := _DIGESTS.get(key)) is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    if len(_DIGESTS) >= 1024:
        _DIGESTS.clear()
    _DIGESTS[key] = known = digest.hexdigest()
    return known  # (not read back: another thread may have cleared the cache meanwhile)


def changed_data_files(resolved: ResolvedSpec, recorded: Any) -> list[str]:
    """The fields of ``recorded`` (a summary's ``data_files``) whose file differs now: its
    contents (the size and time alike are taken as unchanged without reading it, another
    size as changed; a file only touched since reads the same, its digest kept)."""
    if not isinstance(recorded, Mapping):
        return []
    changed = []
    for loc, value in resolved.file_params(CONTROLLERS):
        field = ".".join(map(str, loc))
        was = recorded.get(field)
        if not isinstance(was, Mapping):
            continue
        path = Path(os.path.realpath(spec_path(value)))
        try:
            now = _stat_of(path)
            if {k: was.get(k) for k in ("size", "mtime_ns")} == now:
                continue
            if was.get("size") == now["size"] and was.get("sha256") == _sha256(path):
                continue
        except OSError:
            pass  # (gone or unreadable: said as changed)
        changed.append(field)
    return changed


def _is_file(path: Path) -> bool:
    """A regular file that this process can see (a folder it may not enter: not one)."""
    try:
        return path.is_file()
    except OSError:
        return False


def job_files_dir(settings: Settings, job_id: int) -> Path:
    """A job's own folder of files (``jobs/ID/files`` under the artifacts), symlinks
    resolved: where the service put the job's copy of an RL² policy."""
    folder = settings.resolved_artifacts_dir().expanduser() / "jobs" / str(job_id) / "files"
    return Path(os.path.realpath(folder))


def check_job_files(
    job: JobModel,
    settings: Settings,
    sections: Collection[str],
    *,
    resolved: ResolvedSpec | None = None,
) -> None:
    """The files a stored job names in ``sections`` (those the caller is about to read: a
    table space's file to build the space, the dataset to train) still lie under the data
    roots: a retraining, an export or a chart checks first, as the runner does when the job
    starts. ``ConflictError`` (409) naming each field: the request is fine, the file moved.
    ``resolved``: the job's spec, when the caller has parsed it already."""
    resolved = resolved or ResolvedSpec.from_stored(job.spec)  # not a file's problem: 422
    try:
        check_data_paths(
            resolved,
            settings.resolved_data_roots(),
            private=settings.private_paths(),
            sections=sections,
            own_files=job_files_dir(settings, job.id),
            stored=True,
        )
    except SpecError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))} {e['msg']}" for e in exc.errors)
        raise ConflictError(f"job {job.id}'s files are not readable here: {where}") from None
    if "space" in sections:
        # a space read from a file (a table) still reads as its job pinned it: an export
        # kept from before the table changed was served as if it did (rank 1's, where
        # rank 2's, written now, answered 409: the warm-start probe)
        try:
            resolved.build_space().decisions()
        except DatasetError as exc:
            raise ConflictError(
                f"job {job.id}'s files cannot be read as they were at submit: {exc}"
            ) from None
    if "dataset" in sections and job.summary:
        changed = changed_data_files(resolved, job.summary.get("data_files"))
        if changed:
            raise ConflictError(
                f"job {job.id}'s {', '.join(changed)}: the file changed since the search (other "
                "contents): training or exporting now would use other data than its trials "
                "did; put the search's file back, or submit a new job on this one"
            )


def _check_cuda_devices(resolved: ResolvedSpec, backend: str, runs_jobs: bool) -> None:
    """A ``cuda`` device where the work will find none is a 422, not a job that fails when it
    starts: trials on Ray see only the GPUs Ray assigns them (``gpus_per_trial``); inline
    trials and the ``final:`` retraining run in the server that runs jobs."""
    import torch

    here = torch.cuda.device_count() if runs_jobs else None  # None: not this server's work
    device = resolved.evaluator_params.get("device")
    index = cuda_index(device)
    if index is not None:
        gpus = resolved.spec.resources.gpus_per_trial
        if backend == "ray" and gpus <= index:
            raise SpecError.at(
                ["evaluator", "device"],
                f"a trial on Ray sees only the GPUs it is assigned (gpus_per_trial={gpus:g}), "
                f"so {device!r} would find none: set resources.gpus_per_trial: {index + 1}, "
                "or device: auto (a GPU when the trial has one, else the CPU)",
            )
        if backend != "ray" and here is not None and here <= index:
            raise SpecError.at(
                ["evaluator", "device"],
                f"this server runs trials inline and has {here} CUDA devices, so {device!r} "
                "would find none: set device: auto or cpu",
            )
    final = resolved.spec.final
    index = None if final is None else cuda_index(final.device)
    if final is not None and index is not None and here is not None and here <= index:
        raise SpecError.at(
            ["final", "device"],
            f"final: retrains in this server, which has {here} CUDA devices, so "
            f"{final.device!r} would find none: set device: auto or cpu",
        )


class JobService:
    def __init__(self, session: Session, *, settings: Settings | None = None) -> None:
        self.session = session
        self.settings = settings
        self.jobs = JobRepository(session)

    def submit(
        self, principal: Principal, document: Mapping[str, Any], *, strict: bool = False
    ) -> JobModel:
        """Validate the whole spec, then create the job QUEUED; nothing is created when the
        spec is invalid, over this server's limits, names a file outside its data roots,
        or asks for resources it lacks."""
        settings = self.settings or Settings()
        roots = settings.resolved_data_roots()
        # The files are confined before anything reads them (a table space's, for priors).
        confine = functools.partial(check_data_paths, roots=roots, private=settings.private_paths())
        artifacts = settings.resolved_artifacts_dir()
        document, stored_copy = without_stored_copy(document, artifacts)  # a stored spec again
        resolved = with_absolute_files(parse_spec(document, strict=strict, check_files=confine))
        # (a table's choices written out: before the sources it is compared with, stored so)
        resolved = with_pinned_space(resolved)
        # (before the limits: they fill in a trial budget, which a meta-training spec refuses)
        resolved = check_limits(resolve_meta_jobs(self.session, principal, resolved), settings)
        resolved = resolve_warm_start(self.session, principal, resolved)
        check_resubmittable(resolved, settings.max_body_bytes)
        policy = resolve_policy_job(self.session, principal, resolved, artifacts, stored_copy)
        check_runnable_here(
            resolved, settings.backend, settings.ray_address, runs_jobs=settings.run_jobs
        )
        # What the job would otherwise find wrong only when it starts (a table's columns, an
        # .npz file's arrays, a policy file, a transferred controller state) is a 422 now.
        if policy is None:
            check_startable(resolved)
        job = self.jobs.add(
            JobModel(
                name=resolved.spec.name,
                owner_id=principal.key_id,
                spec=resolved.to_dict(),
                state=JobState.QUEUED.value,
                state_counts={},
            )
        )
        if policy is not None:  # the job's own copy, now that it has an id
            store_policy_copy(self.session, job, policy, artifacts)
            # with controller.policy naming the copy; a 422 rolls the submit back
            check_startable(ResolvedSpec.from_stored(job.spec))
        return job

    def get(self, principal: Principal, job_id: int) -> JobModel:
        job = self.jobs.get(job_id, owner_id=principal.key_id, any_owner=principal.sees_all)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        return job

    def cancel(self, principal: Principal, job_id: int) -> JobModel:
        """A QUEUED job is cancelled at once; a RUNNING one is asked to stop (its runner
        stops within a poll interval and keeps every recorded trial). Cancelling a finished
        job is a 409."""
        self.get(principal, job_id)  # (whose it is)
        # Read again, locked: a delete (or the job's end) committed since the read above
        # made the flush below update no row, a 500 on PostgreSQL (the probe of lifecycle
        # operations); now it waits for them and answers from what they left.
        job = self.jobs.lock(job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        state = JobState(job.state)
        if state.is_finished():
            raise ConflictError(f"job {job_id} is already {state.value}")
        job.cancel_requested = True
        if state is JobState.QUEUED:
            job.state = JobState.CANCELLED.value
            job.reason = "cancelled by user before it started"
            job.finished_at = utcnow()
        self.session.flush()
        return job


#: A QUEUED job's reason, until it starts.
QUEUED_REASON = (
    "waiting for a free run slot (each server that runs jobs runs NAS_MAX_RUNNING_JOBS of them "
    "at once, the oldest queued first)"
)


def waiting_reason(job: JobModel, lease_s: float | None) -> str | None:
    """What a job waits for that its row does not say: a QUEUED job a free run slot, and a
    RUNNING one whose server stopped renewing its lease (``lease_s``: the server's
    ``NAS_JOB_LEASE_S``) a server to take it over; its progress stood still without a
    word."""
    if job.state == JobState.QUEUED.value and not job.cancel_requested:
        return QUEUED_REASON
    if job.state != JobState.RUNNING.value or lease_s is None:
        return None
    taken_over = "a server with a free run slot takes the job over and resumes it from its "
    renewed = job.heartbeat_at
    if job.runner is None:  # (released by its server as it stopped)
        return f"its server stopped and released it: {taken_over}last checkpoint"
    if renewed is None:
        return None
    if (utcnow() - renewed).total_seconds() <= lease_s:
        return None
    # (a fixed text while it lasts: the event stream sends the job when it changes)
    return (
        f"its server ({job.runner}) has not renewed its lease since "
        f"{renewed:%Y-%m-%d %H:%M:%S} UTC (stopped or unreachable): {taken_over}last checkpoint"
    )


def summary_best(summary: dict[str, Any] | None) -> BestSoFar | None:
    """A finished search's best, as its summary has it (what nas show, the exports and the
    retraining use), or ``None`` before a summary. For a shared-weight search it names no
    trial: the architecture is derived from the supernet and scored on the validation data,
    while each trial scored one sampled child on one minibatch, the best of which was shown
    as the job's best (a higher figure, for another architecture)."""
    best = (summary or {}).get("best") or {}
    value = next(iter((best.get("objective") or {}).values()), None)
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return BestSoFar(trial_number=best.get("trial"), value=float(value))


def lists_all_users(principal: Principal, rows: Sequence[JobModel]) -> bool:
    """Whether a job list holds every user's jobs, each naming its owner: an admin's key, or
    a server without keys over jobs of keys from when it had them (it has one user else)."""
    return principal.sees_all and (
        principal.key_id is not None or any(j.owner_id is not None for j in rows)
    )


def job_read(
    job: JobModel,
    owner: str | None = None,
    *,
    with_spec: bool = True,
    settings: Settings | None = None,
    check_files: bool = False,
) -> JobRead:
    """The job as the API shows it; with the server's ``settings``, a job waiting to start
    or to be taken over says so (``waiting_reason``), and with ``check_files`` too (one
    job's read: it looks at the disk), a job whose files left the data roots says
    in ``retrain_refused`` that a retraining would be refused (409) for it."""
    best = summary_best(job.summary)
    if best is None and job.best_trial_number is not None and job.best_value is not None:
        best = BestSoFar(trial_number=job.best_trial_number, value=job.best_value)
    resolved = ResolvedSpec.from_stored(job.spec)
    refused = trainable_problem(resolved)
    if refused is None and check_files and settings is not None:
        try:
            check_job_files(job, settings, ("space", "dataset"), resolved=resolved)
        except ConflictError as exc:
            refused = str(exc)
    formats = _export_formats(resolved, refused)
    finished = job.state not in ("QUEUED", "RUNNING")
    completed = best is not None or (job.state_counts or {}).get("COMPLETE")
    if refused is None and finished and not completed:
        # (said null, and POST /retrain answered 409: nothing to retrain, for good)
        refused = (
            f"job {job.id} ended {job.state} without a completed trial: there is nothing to retrain"
        )
    lease_s = None if settings is None else settings.job_lease_s
    return JobRead(
        id=job.id,
        name=job.name,
        state=job.state,
        reason=waiting_reason(job, lease_s) or job.reason,
        cancel_requested=job.cancel_requested,
        progress=job.progress,
        n_trials=job.n_trials,
        trial_states=dict(job.state_counts or {}),
        best=best,
        resumes=job.resumes,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        spec=job.spec if with_spec else {},
        summary=job.summary,
        # (the spec's own from the start; a finished job's summary holds them too)
        warnings=list(
            dict.fromkeys(
                [*spec_warnings(resolved.spec), *((job.summary or {}).get("warnings") or [])]
            )
        ),
        owner=owner,
        retrain_refused=refused,
        time_bound_minutes=_time_bound(resolved),
        export_formats=formats,
    )


def _time_bound(resolved: ResolvedSpec) -> float | None:
    """``budget.minutes`` where the time is all the progress measures (``JobRead``'s
    ``time_bound_minutes``): the dashboard's ETA never passes what is left of it (a pace read
    from the first coarse steps said 13 min for a 10-minute job: the dashboard probe)."""
    budget = resolved.spec.budget
    if budget.trials is not None or budget.simulated_seconds is not None:
        return None
    if EVALUATORS.get(resolved.spec.evaluator.name).search != "trials":
        return None  # (a supernet's epochs, a meta-training's iterations)
    return budget.minutes


def check_resubmittable(resolved: ResolvedSpec, max_body_bytes: int) -> None:
    """The spec as the job stores it, sources' trials read in, must fit this server's body
    limit: ``nas show --spec`` prints it (YAML) to be submitted again. A warm start from
    many sources with many observations each made a 255-byte spec a 1.5 MB stored one,
    which answered 413 when submitted again."""
    warm = resolved.spec.warm_start
    if warm is None:
        return
    stored = resolved.to_dict()
    size = len(json.dumps(stored, separators=(",", ":")))
    if size <= max_body_bytes and (warm.priors or warm.observations):
        # As YAML (nas show --spec): 1.5 to 2.7 times the JSON, by the architectures' shape.
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        size = max(size, len(yaml.dump(stored, Dumper=dumper, sort_keys=False)))
    if size > max_body_bytes:
        counts = f"{len(warm.priors or [])} priors, {len(warm.observations or [])} observations"
        raise SpecError.at(
            ["warm_start", "observations_per_source"],
            f"the sources' trials ({counts}) make the stored spec {size:,} bytes, above this "
            f"server's body limit of {max_body_bytes:,} (NAS_MAX_BODY_BYTES), so it could not "
            "be submitted again; lower observations_per_source (or top_k, or the sources)",
        )


def _export_formats(resolved: ResolvedSpec, retrain_refused: str | None) -> list[str]:
    """The export formats the job's space has, less those needing weights when the job can
    never have any that they hold: it cannot be retrained and its search learns none that a
    graph holds (``Evaluator.learns_graph``: a Matching Networks job with full-context
    embeddings, whose LSTMs read a whole support set)."""
    formats = supported_formats(resolved.spec.space.name)
    evaluator = EVALUATORS.get(resolved.spec.evaluator.name)
    if evaluator.search == "meta-train":
        return []  # it trains a policy (GET /jobs/{id}/policy), no architecture to export
    if retrain_refused is None or evaluator.learns_graph(resolved.evaluator_params):
        return formats
    return [name for name in formats if not get_format(name).needs_weights]

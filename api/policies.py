"""Meta-training and meta-trained policies at submit. An ``rl2-meta`` job's ``evaluator.jobs``
(earlier jobs of the caller on the same space) become ``evaluator.job_tasks`` in the stored
spec: each job's completed trials, its tasks to meta-train on (``resolve_meta_jobs``).
``controller: {name: rl2, policy_job: ID}`` names a finished ``rl2-meta`` job of the caller; its stored policy is checked against the new job's
space (the decisions it was trained for) and copied into the new job's own files
(``jobs/NEW/files/rl2-policy-from-job-ID.pt``, an artifact of the new job), whose path the
stored spec's ``controller.policy`` then holds. From then on the job needs nothing of the
meta-training job: deleting it changes nothing, and a resume reads the same copy."""

from __future__ import annotations

import io
import math
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from api.auth import Principal
from api.models import ArtifactModel, JobModel, JobState
from api.repositories import ArtifactRepository, JobRepository, TrialRepository
from api.storage import storage_error
from controllers.rl2 import META_EVALUATOR, PolicyFileError, load_policy, space_mismatch
from nas.errors import NasError, SpecError, spec_error_at_field
from nas.evaluators.rl2_meta import MAX_JOB_TRIALS, Rl2MetaConfig, Rl2MetaEvaluator
from nas.spec import ResolvedSpec
from nas.warmstart import other_space
from workers.meta_train import POLICY_KIND
from workers.search import parse_spec

_LOC = ["controller", "policy_job"]


@dataclass(frozen=True)
class PolicyCopy:
    """The policy a job takes from a meta-training job, to copy once the job exists."""

    source: int
    data: bytes


def resolve_meta_jobs(
    session: Session, principal: Principal, resolved: ResolvedSpec
) -> ResolvedSpec:
    """``resolved`` with an ``rl2-meta`` job's ``evaluator.jobs`` read into
    ``evaluator.job_tasks`` (unchanged otherwise): per job, its completed trials' architecture
    choices and ``evaluator.fitness`` metric (at most ``MAX_JOB_TRIALS``, best first). A job
    that is not the caller's, searched another space, had that metric as an objective in the
    other direction than this job's, or has no completed trial with that metric is a 422 at
    ``evaluator.jobs.I``; a space too large to meta-train in, at ``space``.

    A stored spec submitted again (``nas show --spec``) brings the ``job_tasks`` read when
    it was first accepted: those of a job that no longer exists (deleted since) are taken as
    given, their content checked against the space when the evaluator is (``check_files``);
    a job that still exists is read again, with every check above, so ``job_tasks`` cannot
    stand in for another user's job or skip its checks. An entry for a job not in ``jobs``
    is a 422 at ``evaluator.job_tasks.I``."""
    if resolved.spec.evaluator.name != META_EVALUATOR:
        return resolved
    config = Rl2MetaConfig.model_validate(resolved.spec.evaluator.params)
    if not config.jobs:
        return resolved  # (job_tasks without jobs: refused by the evaluator's spec checks)
    given: dict[int, dict[str, Any]] = {}
    for i, task in enumerate(config.job_tasks or []):
        if task.job not in config.jobs or task.job in given:
            raise SpecError.at(
                ["evaluator", "job_tasks", i],
                f"job {task.job} is not in evaluator.jobs, or has two entries; job_tasks hold "
                "the tasks read from evaluator.jobs, one entry per job",
            )
        given[task.job] = task.model_dump()
    try:
        space = resolved.build_space()
    except NasError as exc:  # a table space whose file is wrong: its own field's error
        raise spec_error_at_field(exc, ["space"]) from None
    # (before any job is read: a space too large, or an iteration too large, is refused)
    Rl2MetaEvaluator.check_size(space, config)
    stored = resolved.to_dict()
    direction = resolved.spec.objective.direction
    jobs, trials = JobRepository(session), TrialRepository(session)
    tasks = []
    for i, job_id in enumerate(config.jobs):
        loc = ["evaluator", "jobs", i]
        job = jobs.get(job_id, owner_id=principal.key_id, any_owner=principal.sees_all)
        if job is None and job_id in given and jobs.get(job_id) is None and jobs.was_given(job_id):
            tasks.append(given[job_id])  # read when it existed; the job is gone now
            continue
        if job is None:
            raise SpecError.at(loc, f"no job {job_id} of yours")
        # (as built: a source that wrote out a default the other left out is the same space)
        problem = other_space(f"job {job_id}", job.spec.get("space"), stored["space"])
        if problem is not None:
            raise SpecError.at(loc, problem)
        theirs = _direction_of(job.spec, config.fitness)
        if theirs is not None and theirs != direction:
            # One of the two directions is wrong, and only the user knows which: negating
            # the source's values here would as silently train towards what it avoided.
            raise SpecError.at(
                loc,
                f"job {job_id} {theirs}d {config.fitness!r}; this job would {direction} it: "
                f"set objective.direction: {theirs}, or meta-train on jobs that {direction}d it",
            )
        choices, fitness = [], []
        for row in trials.top(job_id, MAX_JOB_TRIALS, maximize=job.maximize, then=job.tie_breaks):
            value = (row.metrics or {}).get(config.fitness)
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                choices.append([int(c) for c in row.architecture["choices"]])
                fitness.append(float(value))
        if not fitness:
            raise SpecError.at(
                loc, f"job {job_id} has no completed trial with metric {config.fitness!r}"
            )
        tasks.append({"job": job_id, "choices": choices, "fitness": fitness})
    stored["evaluator"]["job_tasks"] = tasks
    return parse_spec(stored)


def _direction_of(spec: Mapping[str, Any], metric: str) -> str | None:
    """The direction a job's stored ``spec`` searched ``metric`` in, where it was one of its
    objectives (``None``: it only reported it)."""
    objective = spec.get("objective") or {}
    metrics = objective.get("metrics") or [objective.get("metric")]
    directions = objective.get("directions") or [objective.get("direction", "maximize")]
    return dict(zip(metrics, directions, strict=False)).get(metric)


def resolve_policy_job(
    session: Session,
    principal: Principal,
    resolved: ResolvedSpec,
    artifacts: Path,
    stored_copy: Path | None = None,
) -> PolicyCopy | None:
    """The policy of the spec's ``controller.policy_job`` (``None`` without one), checked:
    the caller's SUCCEEDED ``rl2-meta`` job (or a CANCELLED one, which kept its policy as
    trained so far), its policy stored and readable, trained for the decisions of this
    spec's space. Anything else is a 422 at ``controller.policy_job``.
    ``stored_copy``: the copy of that policy an earlier job of the caller ran (its stored
    spec submitted again, ``stored_copy_path``), used when the meta-training job is gone."""
    if resolved.spec.controller.name != "rl2":
        return None
    job_id = resolved.controller_params.get("policy_job")
    if job_id is None:
        return None
    jobs = JobRepository(session)
    job = jobs.get(job_id, owner_id=principal.key_id, any_owner=principal.sees_all)
    if job is None and stored_copy is not None:
        named = int(stored_copy.parent.parent.name)
        if jobs.get(named, owner_id=principal.key_id, any_owner=principal.sees_all):
            try:
                data = stored_copy.read_bytes()
            except OSError:
                data = None
            if data is None:  # (the caller's own job: said as such, not "no job N")
                raise SpecError.at(
                    _LOC,
                    f"job {named}'s copy of job {job_id}'s policy cannot be read: name a "
                    "meta-training job of yours, or give a policy file (controller.policy)",
                )
            return _checked(job_id, data, resolved, f"job {named}'s copy of job {job_id}'s")
    if job is None:
        # One answer for another user's job, a deleted one and an id never given: it said
        # "was deleted" of ids deleted by anyone, which told another user's deleted jobs
        # from their live ones (the probe of a team's server).
        raise SpecError.at(
            _LOC,
            f"no job {job_id} of yours (a deleted meta-training job's policy is deleted with "
            "it, and so is the copy a deleted job ran): name a meta-training job of yours, "
            "or give a policy file (controller.policy)",
        )
    if (job.spec.get("evaluator") or {}).get("name") != META_EVALUATOR:
        raise SpecError.at(
            _LOC, f"job {job_id} is not a meta-training job (evaluator {META_EVALUATOR})"
        )
    if job.state not in (JobState.SUCCEEDED.value, JobState.CANCELLED.value):
        raise SpecError.at(
            _LOC,
            f"job {job_id} is {job.state}; a policy comes from a SUCCEEDED meta-training job "
            "(or a CANCELLED one that kept its policy as trained so far)",
        )
    stored = stored_policy(session, job_id)
    if stored is None:
        raise SpecError.at(_LOC, f"job {job_id} has no stored policy")
    try:
        data = (artifacts / stored.path).read_bytes()
    except OSError:
        raise SpecError.at(_LOC, f"job {job_id}'s policy file is missing or unreadable") from None
    return _checked(job_id, data, resolved, f"job {job_id}'s")


def _checked(job_id: int, data: bytes, resolved: ResolvedSpec, whose: str) -> PolicyCopy:
    """``data`` (``whose`` policy file) as the job's copy, once it reads as a policy trained
    for the decisions of the spec's space (a 422 at ``controller.policy_job`` otherwise)."""
    try:
        policy, meta = load_policy(io.BytesIO(data))
    except PolicyFileError:
        raise SpecError.at(_LOC, f"{whose} policy file is missing or unreadable") from None
    space = resolved.build_space()
    try:
        decisions = [[d.name, list(d.choices)] for d in space.decisions()]
    except NasError as exc:  # a table space whose file is wrong: its own field's error
        raise spec_error_at_field(exc, ["space"]) from None
    mismatch = space_mismatch(meta, space) if meta.get("space") else "records no space"
    if mismatch is not None:
        raise SpecError.at(_LOC, f"{whose} policy {mismatch}")
    if policy.cardinalities != [len(c) for _, c in decisions]:
        raise SpecError.at(_LOC, f"{whose} policy does not fit this space's decisions")
    return PolicyCopy(job_id, data)


def _copy_name(source: int) -> str:
    """The file name of a job's copy of meta-training job ``source``'s policy."""
    return f"rl2-policy-from-job-{source}.pt"


def stored_copy_path(document: Mapping[str, Any], artifacts: Path) -> Path | None:
    """A submitted spec as a job stores it (``nas show --spec``) names both its
    ``policy_job`` and the copy of that policy this server made for the job
    (``artifacts/jobs/ID/files/rl2-policy-from-job-N.pt``): that copy's path, else ``None``."""
    controller = document.get("controller")
    if not isinstance(controller, Mapping):
        return None
    job_id, policy = controller.get("policy_job"), controller.get("policy")
    if not isinstance(job_id, int) or not isinstance(policy, str):
        return None
    path = Path(policy)
    holder = path.parent.parent.name
    copy = (
        path.name == _copy_name(job_id)
        and path.parent.name == "files"
        and re.fullmatch(r"[1-9][0-9]{0,9}", holder) is not None  # (isdigit took '²')
        and int(holder) <= 2**31 - 1  # a job id: larger ones overflow the id column
        and path.parent.parent.parent == artifacts / "jobs"
    )
    return path if copy else None


def without_stored_copy(
    document: Mapping[str, Any], artifacts: Path
) -> tuple[Mapping[str, Any], Path | None]:
    """The document less its stored copy's path, and that path (``stored_copy_path``; the
    document as it is and ``None`` when it names none): the copy's path is this server's to
    choose (a new job gets its own copy)."""
    copy = stored_copy_path(document, artifacts)
    if copy is None:
        return document, None
    controller = document["controller"]
    rest = {k: v for k, v in controller.items() if k != "policy"}
    return {**document, "controller": rest}, copy


def stored_policy(session: Session, job_id: int) -> ArtifactModel | None:
    """The job's RL² policy artifact (its latest): a meta-training job's result, or the copy
    a ``policy_job`` job runs; ``None`` when it has none (a meta-training job that did not
    succeed, any other job)."""
    stored = [a for a in ArtifactRepository(session).for_job(job_id) if a.kind == POLICY_KIND]
    return stored[-1] if stored else None


def store_policy_copy(session: Session, job: JobModel, copy: PolicyCopy, artifacts: Path) -> None:
    """Write the copy into the new job's files, record it as the job's artifact and point
    the stored spec's ``controller.policy`` at it (in the submit's transaction: a failed
    commit leaves only an unreferenced file under the never-reused job id)."""
    folder = artifacts / "jobs" / str(job.id) / "files"
    path = folder / _copy_name(copy.source)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(copy.data)
        os.replace(tmp, path)
    except OSError as exc:
        fault = storage_error(
            exc, folder, f"copying job {copy.source}'s policy", "the job was not created"
        )
        if fault is None:
            raise
        raise fault from None
    ArtifactRepository(session).add(
        ArtifactModel(
            job_id=job.id,
            kind=POLICY_KIND,
            path=str(path.relative_to(artifacts)),
            size_bytes=len(copy.data),
            meta={"from_job": copy.source},
        )
    )
    spec = dict(job.spec)
    spec["controller"] = {**spec["controller"], "policy": str(path)}
    job.spec = spec
    session.flush()

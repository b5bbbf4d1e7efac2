"""Warm starts at submit: the sources a spec names (job ids, or ``query: same-space``) become
``warm_start.priors`` in the stored spec (``nas.warmstart``), with ``warm_start.sources``
saying which jobs gave how many. From then on the job needs nothing of its sources: deleting
one changes nothing, and a resume proposes exactly what the first run would have."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Principal
from api.models import JobModel, JobState
from api.repositories import CheckpointRepository, JobRepository, TrialRepository
from nas.errors import SpecError
from nas.spec import ResolvedSpec, WarmSourceSpec
from nas.trial import TrialState
from nas.warmstart import (
    Source,
    SourceTrial,
    lent_by,
    objectives_of,
    observations_from_trials,
    other_hparams,
    other_space,
    other_version,
    priors_for,
)
from workers.search import parse_spec
from workers.warmstart import controller_transfer, models_observations

#: Finished jobs a ``same-space`` query looks through, newest first.
_QUERY_SCAN = 500
#: Completed trials read from one source for its observations (best first; a larger source
#: gives observations spaced over its best 10,000).
_OBSERVATION_SCAN = 10_000


def resolve_warm_start(
    session: Session, principal: Principal, resolved: ResolvedSpec
) -> ResolvedSpec:
    """``resolved`` with its warm-start sources turned into priors (unchanged without a
    ``warm_start`` section, or with priors given as they are, or as a stored spec holds
    them: with the ``sources`` they were resolved from). A source that is not the
    caller's, has no completed trial, or searched another space (or other hyperparameters)
    is a 422 at its field."""
    warm = resolved.spec.warm_start
    if warm is None or (warm.jobs is None and warm.query is None):
        if warm is not None and warm.runs is not None:
            raise SpecError.at(
                ["warm_start", "runs"],
                "runs are nas search output folders; a service job names source jobs "
                "(warm_start.jobs) or a query (warm_start.query: same-space)",
            )
        if warm is not None:
            _check_recorded_sources(session, principal, warm.sources or [])
            _check_named_sources(session, principal, warm)
        return resolved
    resolved_from = [source.job_id for source in warm.sources or []]
    if warm.priors is not None and resolved_from and resolved_from == (warm.jobs or resolved_from):
        # A stored spec submitted again (nas show --spec): its sources were resolved at its
        # first submit and are in it, so it needs none of them (it was a 422 once one had
        # been deleted, though a stored job outlives its sources). Jobs edited since name
        # other sources: those are resolved.
        _check_recorded_sources(session, principal, warm.sources or [])
        _check_named_sources(session, principal, warm)
        return resolved
    stored = resolved.to_dict()
    jobs = _source_jobs(session, principal, warm.jobs, warm.limit, stored)
    trials = TrialRepository(session)
    predicted = warm.predicted_count(joint=bool(resolved.hparams))
    observing = models_observations(stored)
    sources = []
    for loc, job in jobs:
        # (a retraining is a COMPLETE trial without an objective: it is no rank to score)
        completed = trials.count_scored(job.id)
        # Every completed trial (up to a bound) for the observations and the model; priors
        # take the best.
        everything = (warm.observations_per_source if observing else 0) or predicted
        take = max(2 * warm.top_k, _OBSERVATION_SCAN if everything else 0)
        rank_by = _lent_by(job, stored)[1]
        if rank_by is None:  # by its own objective, ties by its others
            maximize, then = job.maximize, job.tie_breaks
        else:  # by this job's metric, one of its later objectives, this job's way
            maximize, then = stored["objective"].get("direction", "maximize") == "maximize", []
        rows = (
            trials.top(job.id, take, maximize=maximize, then=then, metric=rank_by)
            if completed
            else []
        )
        scores = [r.objective if rank_by is None else (r.metrics or {}).get(rank_by) for r in rows]
        if not any(score is not None for score in scores):
            raise SpecError.at(loc, f"job {job.id} has no completed trial to start from")
        source = Source(
            job.id,
            [
                SourceTrial(r.architecture, r.hparams or {}, score)
                for r, score in zip(rows, scores, strict=True)
                if score is not None
            ],
            maximize,
            completed,
        )
        problem = other_version(f"job {job.id}", source.trials, stored["space"])
        if problem is not None:
            raise SpecError.at(loc, problem)
        sources.append(source)
    priors = priors_for(sources, resolved.build_space(), top_k=warm.top_k, predicted=predicted)
    stored["warm_start"]["priors"] = priors
    stored["warm_start"]["observations"] = (
        observations_from_trials(sources, per_source=warm.observations_per_source)
        if observing
        else []
    )
    # ENAS / MetaQNN: the first source of the same controller gives its last checkpoint's
    # policy / Q-table, copied into the spec (the source may be deleted later).
    checkpoints = CheckpointRepository(session)
    transfer = controller_transfer(
        stored["controller"],
        (
            (job.id, job.spec.get("controller") or {}, _controller_state(checkpoints, job.id))
            for _, job in jobs
        ),
    )
    if transfer is not None:
        stored["warm_start"]["controller_state"] = transfer
    stored["warm_start"]["sources"] = [
        {
            "job_id": job.id,
            "name": job.name,
            "dataset": job.spec["dataset"]["name"],
            "priors": sum(1 for p in priors if p["source"] == job.id),
        }
        for _, job in jobs
    ]
    stored["warm_start"]["predicted"] = predicted
    return parse_spec(stored)


def _check_named_sources(session: Session, principal: Principal, warm: Any) -> None:
    """The job a given prior or observation names as its ``source``: one of the recorded
    ``sources`` (checked by ``_check_recorded_sources``), or a job of the caller's. Another
    user's job was taken as named, and the job page then said its configurations came from
    it."""
    recorded = {source.job_id for source in warm.sources or []}
    repository = JobRepository(session)
    for kind in ("priors", "observations"):
        for i, entry in enumerate(getattr(warm, kind) or []):
            job_id = entry.source
            if not isinstance(job_id, int) or job_id in recorded or principal.sees_all:
                continue
            if repository.get(job_id, owner_id=principal.key_id, any_owner=False) is None:
                raise SpecError.at(
                    ["warm_start", kind, i, "source"],
                    f"no job {job_id} of yours: a source names the job of yours it came from "
                    "(one of warm_start.sources); leave it out for a configuration of your own",
                )
            recorded.add(job_id)  # (each job looked up once)


def _check_recorded_sources(
    session: Session, principal: Principal, sources: list[WarmSourceSpec]
) -> None:
    """``warm_start.sources`` as a stored spec records them, sent back: a source job that
    still exists must be the caller's (or any, for an admin), so that a job page never names
    another user's job as its source; one deleted since is taken as recorded. An id no job
    ever had is refused as another user's job is (it was taken as deleted: made-up
    provenance, and a way to tell others' ids from unused ones)."""
    repository = JobRepository(session)
    for i, source in enumerate(sources):
        if source.job_id is None or principal.sees_all:
            continue
        job = repository.get(source.job_id, any_owner=True)
        if (job is not None and job.owner_id != principal.key_id) or (
            job is None and not repository.was_given(source.job_id)
        ):
            raise SpecError.at(
                ["warm_start", "sources", i, "job_id"],
                f"job {source.job_id} is not one of yours; a recorded source is a job of "
                "yours, or one deleted since",
            )
        if job is None:
            continue
        # A job's name and dataset never change: a record that differs was edited (a job
        # page would name job 2 'nb-rand' on CIFAR-10 for 'ws-random' on CIFAR-100).
        for field, theirs in (("name", job.name), ("dataset", job.spec["dataset"]["name"])):
            recorded = getattr(source, field)
            if recorded is not None and recorded != theirs:
                raise SpecError.at(
                    ["warm_start", "sources", i, field],
                    f"job {source.job_id}'s {field} is {theirs!r}, not {recorded!r}: a "
                    "recorded source is as its job was resolved",
                )


def _controller_state(checkpoints: CheckpointRepository, job_id: int) -> dict[str, Any] | None:
    checkpoint = checkpoints.get(job_id)
    return None if checkpoint is None else checkpoint.controller_state


def _source_jobs(
    session: Session,
    principal: Principal,
    ids: list[int] | None,
    limit: int | None,
    stored: dict[str, Any],
) -> list[tuple[list[Any], JobModel]]:
    repository = JobRepository(session)
    found: list[tuple[list[Any], JobModel]] = []
    if ids is not None:
        for i, job_id in enumerate(ids):
            loc: list[Any] = ["warm_start", "jobs", i]
            if job_id in ids[:i]:
                raise SpecError.at(loc, f"job {job_id} is named twice; name each source once")
            job = repository.get(job_id, owner_id=principal.key_id, any_owner=principal.sees_all)
            if job is None:
                raise SpecError.at(loc, f"no job {job_id} of yours")
            _check_same_search(loc, job, stored)
            problem = _other_direction(job, stored)
            if problem is not None:
                raise SpecError.at(loc, problem)
            found.append((loc, job))
        return found
    query = select(JobModel).where(
        JobModel.state.in_([s.value for s in JobState if s.is_finished()])
    )
    if principal.key_id is not None:  # (an admin's too: "your newest finished jobs" took
        # every user's; a server without keys has one user, whose jobs have no owner)
        query = query.where(JobModel.owner_id == principal.key_id)
    # Jobs of this space left out, by why (said when none is left: the space alone read as
    # the reason where the jobs had searched other hyperparameters)
    left_out = {"searched other hyperparameters (hparams)": 0, "had no completed trial": 0}
    left_out["ranked by its objective the other way"] = 0
    for job in session.scalars(query.order_by(JobModel.id.desc()).limit(_QUERY_SCAN)):
        if other_space(f"job {job.id}", job.spec.get("space"), stored["space"]) is not None:
            continue
        # (a job with no completed trial, cancelled at its first, has nothing to give)
        # (as jobs: lists them: the same hparams section, or none, whose architectures get
        # sampled hyperparameters; a query passed over a source without one)
        theirs, ours = job.spec.get("hparams") or None, stored.get("hparams") or None
        if other_hparams(f"job {job.id}", theirs, ours) is not None:
            left_out["searched other hyperparameters (hparams)"] += 1
        elif (job.state_counts or {}).get(TrialState.COMPLETE.value, 0) == 0:
            left_out["had no completed trial"] += 1
        elif _other_direction(job, stored) is not None:
            left_out["ranked by its objective the other way"] += 1
        else:
            found.append((["warm_start", "query"], job))
        if len(found) == limit:
            break
    if not found:
        why = ", ".join(f"{n} {what}" for what, n in left_out.items() if n)
        raise SpecError.at(
            ["warm_start", "query"],
            f"none of your finished jobs that searched this space (same space and parameters) "
            f"can lend to this one: {why}"
            if why
            else "none of your finished jobs searched this space (same space and parameters)",
        )
    return found


def _lent_by(job: JobModel, stored: dict[str, Any]) -> tuple[str | None, str | None]:
    """How ``job`` lends to this spec (``nas.warmstart.lent_by``): why it cannot, where it
    searched this spec's objective metric the other way (as any of its objectives: only its
    first was looked at), and the metric to rank its trials by where this spec's is one of
    its later objectives."""
    objective = stored.get("objective") or {}
    ours = (str(objective.get("metric")), str(objective.get("direction", "maximize")))
    theirs = objectives_of(job.spec.get("objective")) or [(ours[0], job.direction)]
    return lent_by(f"job {job.id}", theirs, ours, "jobs")


def _other_direction(job: JobModel, stored: dict[str, Any]) -> str | None:
    """Why ``job`` cannot lend its best to this spec, or ``None`` (``_lent_by``)."""
    return _lent_by(job, stored)[0]


def _check_same_search(loc: list[Any], job: JobModel, stored: dict[str, Any]) -> None:
    problem = other_space(f"job {job.id}", job.spec.get("space"), stored["space"])
    if problem is not None:
        raise SpecError.at(loc, problem)
    problem = other_hparams(
        f"job {job.id}", job.spec.get("hparams") or None, stored.get("hparams") or None
    )
    if problem is not None:
        raise SpecError.at(loc, problem)

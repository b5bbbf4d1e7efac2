"""A job's curves: per-epoch search curves and the best-so-far history, for plotting."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from api.deps import CurrentPrincipal, JobId, ReadSession
from api.repositories import CheckpointRepository, CurveRepository, TrialRepository
from api.schemas import BestStep, EpochPoint, JobCurves
from api.services import JobService, NotFoundError
from controllers import CONTROLLERS

router = APIRouter(prefix="/api/v1/jobs", tags=["curves"])


@router.get(
    "/{job_id}/curves",
    response_model=JobCurves,
    responses={404: {"description": "no such job, or another user's"}},
)
def job_curves(job_id: JobId, session: ReadSession, principal: CurrentPrincipal) -> JobCurves:
    """Per-epoch curves (a shared-weight search's supernet epochs: loss, accuracy, mean
    reward, entropy, baseline), the controller's own curves as of the job's last checkpoint
    (MetaQNN: ``epsilon_stages``, the reward per epsilon stage) and the best-so-far history:
    the completed trials that improved the best objective, so even a 100k-trial job answers
    a few steps."""
    try:
        job = JobService(session).get(principal, job_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    epochs: dict[str, list[EpochPoint]] = {}
    for point in CurveRepository(session).points(job_id):
        values: dict[str, Any] = {**point.values, "epoch": point.step}
        epochs.setdefault(point.series, []).append(EpochPoint.model_validate(values))
    checkpoint = CheckpointRepository(session).get(job_id)
    if checkpoint is not None:
        state = checkpoint.controller_state
        name = state.get("name")
        if name in CONTROLLERS:
            for series, points in CONTROLLERS.get(name).state_curves(state).items():
                epochs[series] = [EpochPoint.model_validate(p) for p in points]
    best = TrialRepository(session).best_so_far(job_id, maximize=job.maximize)
    return JobCurves(
        job_id=job_id,
        direction=job.direction,
        epochs=epochs,
        best_so_far=[BestStep(trial=number, value=value) for number, value in best],
        n_trials=job.n_trials,
    )

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from api.deps import CurrentPrincipal, ReadSession, TrialId
from api.repositories import TrialRepository
from api.schemas import IntermediateValue, TrialDetail, TrialRead
from api.services import JobService, NotFoundError

router = APIRouter(prefix="/api/v1/trials", tags=["trials"])


@router.get("/{trial_id}", response_model=TrialDetail)
def get_trial(trial_id: TrialId, session: ReadSession, principal: CurrentPrincipal) -> TrialDetail:
    """One trial with its intermediate values (per-epoch figures while it trained)."""
    trials = TrialRepository(session)
    trial = trials.get(trial_id)
    try:
        if trial is None:
            raise NotFoundError
        JobService(session).get(principal, trial.job_id)  # 404 for another user's trial
    except NotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"trial {trial_id} not found") from None
    values = [
        IntermediateValue(step=v.step, values=v.values)
        for v in trials.intermediate(trial.job_id, trial.number)
    ]
    return TrialDetail(**TrialRead.model_validate(trial).model_dump(), intermediate_values=values)

"""Pydantic schemas of the HTTP API (separate from the ORM models in ``api.models``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class BestSoFar(BaseModel):
    trial_number: int
    value: float


class JobRead(_Read):
    id: int
    name: str
    state: str
    reason: str | None = Field(None, description="why the job ended, or its failure")
    cancel_requested: bool
    progress: float = Field(description="fraction of the budget spent, 0..1")
    n_trials: int
    trial_states: dict[str, int]
    best: BestSoFar | None
    resumes: int = Field(description="times the job resumed from a checkpoint")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    spec: dict[str, Any]
    summary: dict[str, Any] | None = None
    owner: str | None = None


class JobList(BaseModel):
    data: list[JobRead]
    count: int


class TrialRead(_Read):
    id: int
    job_id: int
    number: int
    state: str
    objective: float | None
    metrics: dict[str, Any]
    architecture: dict[str, Any]
    hparams: dict[str, Any]
    cost_s: float
    simulated: bool
    error: str | None
    worker: str | None
    epoch: int | None
    step: int | None
    started_at: datetime | None
    finished_at: datetime | None


class IntermediateValue(BaseModel):
    step: int
    values: dict[str, Any]


class TrialDetail(TrialRead):
    intermediate_values: list[IntermediateValue]


class TrialList(BaseModel):
    data: list[TrialRead]
    count: int = Field(description="trials matching the filter, over all pages")
    next_after: int | None = Field(
        None, description="cursor for the next page (pass as ?after=), number order only"
    )


class Health(BaseModel):
    status: str
    database: str
    version: str


class KeyRead(_Read):
    id: int
    name: str
    prefix: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None

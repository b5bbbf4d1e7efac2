"""Pydantic schemas of the HTTP API (separate from the ORM models in ``api.models``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nas.trial import TrialState


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class BestSoFar(BaseModel):
    trial_number: int | None = Field(
        description="the trial that scored it; null once a shared-weight search has ended: "
        "its best architecture is derived from the supernet, not a trial (its trials scored "
        "one minibatch each), and value is that architecture's score on the validation data"
    )
    value: float


class JobRead(_Read):
    id: int
    name: str
    state: str
    reason: str | None = Field(
        None,
        description="why the job ended, or its failure; before that, what it waits for (a "
        "free run slot while QUEUED; Ray's room, or a server to take it over when its own "
        "stopped renewing its lease, while RUNNING)",
    )
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
    warnings: list[str] = Field(
        default_factory=list,
        description="what a reader of the job or its result must know, e.g. that the time "
        "budget stopped a shared-weight search's supernet training before its epochs, or "
        "that a hyperparameter of the user's own is named almost like one the evaluator "
        "takes per trial (learning_rate for lr), which every trial ignores",
    )
    owner: str | None = None
    retrain_refused: str | None = Field(
        None,
        description="why `POST /jobs/{id}/retrain` refuses this job's architectures (422: a "
        "tabular benchmark, a few-shot task distribution, a space without a trainable "
        "network; a 409: a job that ended without a completed trial; GET /jobs/{id} also a "
        "409: a file of the job's no longer under the data roots), or null when they can be "
        "retrained once the job has finished",
    )
    time_bound_minutes: float | None = Field(
        None,
        description="the spec's budget.minutes where the time is all its progress measures "
        "(a search of trials without a trials or simulated_seconds budget): it ends within "
        "(1 - progress) of them; null where another budget, a supernet's epochs or a "
        "meta-training's iterations move the progress too",
    )
    export_formats: list[str] = Field(
        default_factory=list,
        description="the formats of `GET /jobs/{id}/export` that this job's space exports to "
        "(a table space has no network: json only), less torchscript and onnx for a job that "
        "can never have weights they hold (neither retrained nor learned by its search as a "
        "forward pass or a per-example embedding)",
    )


class JobList(BaseModel):
    data: list[JobRead]
    count: int
    all_users: bool = Field(
        False,
        description="the list holds every user's jobs (an admin's key, or a server without keys "
        "over jobs of keyed users): each names its owner",
    )


class TrialRead(_Read):
    id: int
    job_id: int
    number: int
    state: TrialState
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


class EpochPoint(BaseModel):
    """One epoch of a curve: ``epoch`` and the values recorded for it. A ``supernet``
    point (shared-weight search) holds the supernet's ``train_loss``, ``train_accuracy``,
    ``lr``, ``skipped_steps`` and ``seconds``, the reward phase's ``reward_seconds``, and
    the controller's ``rewards`` (count), ``mean_reward``, ``entropy`` and ``baseline``: a
    point of ``nas search``'s ``curve.json``. A value that was not finite is ``null``."""

    model_config = ConfigDict(extra="allow")

    epoch: int


class BestStep(BaseModel):
    trial: int = Field(description="the trial's number")
    value: float = Field(description="its objective, better than every earlier trial's")


class JobCurves(BaseModel):
    job_id: int
    direction: Literal["maximize", "minimize"] = Field(description="the objective's direction")
    epochs: dict[str, list[EpochPoint]] = Field(
        description="per-epoch curves by series (`supernet`: a shared-weight search; "
        "`epsilon_stages`: a MetaQNN search's reward per epsilon stage, `epoch` being the "
        "stage's index), in epoch order; empty for a job without any"
    )
    best_so_far: list[BestStep] = Field(
        description="the completed trials (number order) that improved the best objective: "
        "the steps of the best-so-far curve"
    )
    n_trials: int = Field(description="trials recorded: numbers 0..n_trials-1")


class Health(BaseModel):
    status: str
    database: str
    runner: str = Field(
        description="ok; off (an API-only server); or failing for N s: the error (every "
        "runner tick: no job starts or renews; 503 after 10 s)"
    )
    version: str


class KeyRead(_Read):
    id: int
    name: str
    prefix: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None

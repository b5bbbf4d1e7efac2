"""Service settings, read from the environment (prefix ``NAS_``) by pydantic-settings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

#: A crashed server's job waits at most a day for another server to take it over.
MAX_JOB_LEASE_S = 86_400.0
#: A running job's writes wait out a database outage of at most a day before it fails.
MAX_DB_RETRY_S = 86_400.0
#: A runner sees cancel requests and event streams see progress this often: a minute at most.
MAX_POLL_INTERVAL_S = 60.0
#: Trials finished since the last flush are redone after a crash: an hour of them at most.
MAX_FLUSH_INTERVAL_S = 3_600.0


class Settings(BaseSettings):
    """Everything ``nas serve`` can be told. Each field is also an environment variable:
    ``database_url`` is ``NAS_DATABASE_URL``, and so on.

    Example:
        >>> Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    """

    model_config = SettingsConfigDict(env_prefix="NAS_", extra="ignore")

    #: Where the default SQLite database and the artifacts live.
    data_dir: Path = Path(".nas")
    #: SQLAlchemy URL; default ``sqlite:///<data_dir>/nas.db`` (WAL mode, created on start).
    database_url: str | None = None
    #: Weights, supernet checkpoints and exports; default ``<data_dir>/artifacts``.
    artifacts_dir: Path | None = None
    #: ``keys``: every request needs ``Authorization: Bearer <key>``. ``none``: no
    #: authentication, every caller is the local admin; for single-user use on a trusted
    #: machine only, and only when set explicitly.
    auth: Literal["keys", "none"] = "keys"
    #: Request bodies above this size are refused with 413.
    max_body_bytes: int = Field(1_048_576, ge=1024)
    #: Jobs this server runs at once; more wait QUEUED.
    max_running_jobs: int = Field(2, ge=1, le=256)
    # The durations below are finite and bounded: they become ``timedelta``s and thread
    # wait timeouts, which overflow (every runner tick failing) long before ``inf``.
    #: Trial records are written in batches at most this often (and at every checkpoint).
    flush_interval_s: float = Field(1.0, ge=0, le=MAX_FLUSH_INTERVAL_S, allow_inf_nan=False)
    #: A RUNNING job whose runner has not renewed its lease for this long is taken over
    #: (a crashed server on another machine). A dead process on this machine is taken over
    #: at once.
    job_lease_s: float = Field(30.0, gt=0, le=MAX_JOB_LEASE_S, allow_inf_nan=False)
    #: A running job's writes (trial batches, checkpoints, heartbeats) that meet a transient
    #: database error (connection lost, serialization failure, a restart) are retried on a
    #: new connection for this long before the job fails.
    db_retry_s: float = Field(60.0, ge=0, le=MAX_DB_RETRY_S, allow_inf_nan=False)
    #: How often the runner renews leases and looks for new jobs and cancel requests.
    poll_interval_s: float = Field(0.5, gt=0, le=MAX_POLL_INTERVAL_S, allow_inf_nan=False)
    #: Where trials run: ``ray`` (a local Ray instance started by the service, or the cluster
    #: at ``ray_address`` / ``RAY_ADDRESS``) or ``inline`` (threads of this process; no Ray).
    backend: Literal["ray", "inline"] = "ray"
    #: A Ray cluster to join (``ray start --head`` prints it), e.g. ``10.0.0.5:6379``.
    ray_address: str | None = None
    #: CPUs of the local Ray instance (default: all).
    ray_num_cpus: int | None = Field(None, ge=1)
    #: Trial listings that query the database at once per server process; more wait on
    #: the event loop. A few per core: more only switch between threads and connections.
    read_concurrency: int = Field(3, ge=1, le=64)
    #: Run jobs in this process (off: an API-only replica).
    run_jobs: bool = True
    #: Upgrade the database schema on start (else ``nas db upgrade`` must have run).
    migrate_on_start: bool = True
    #: Files a spec may name (``dataset.path``, ``evaluator.table``) must lie under one of
    #: these folders (symlinks resolved). Default: ``data_dir``, the NAS-Bench-201 table's
    #: folder and the dataset cache. From the environment: a JSON list or ``:``-separated.
    data_roots: Annotated[list[Path] | None, NoDecode] = None
    #: Host names a server without keys (``auth: none``) answers to besides its IP
    #: addresses and ``localhost`` (a browser's page for another name is refused: DNS
    #: rebinding). From the environment: a JSON list or comma-separated.
    allowed_hosts: Annotated[list[str], NoDecode] = []
    #: Limits checked at submit (422 above them). A job without ``budget.trials`` is stored
    #: with ``budget.max_trials: max_trials_per_job``, so that no job writes rows without end.
    max_trials_per_job: int = Field(100_000, ge=1, le=2**31 - 1)
    max_job_minutes: float = Field(10_080.0, gt=0, allow_inf_nan=False)
    max_simulated_seconds: float = Field(1e9, gt=0, allow_inf_nan=False)
    #: A spec body nested deeper than this is refused before it is parsed into objects.
    max_spec_depth: int = Field(32, ge=8, le=512)

    @field_validator("data_dir", "database_url", "artifacts_dir", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        # A variable set but empty (a compose file's unset ${VAR}) read as the current
        # folder: the data root and database of wherever the server was started, unsaid.
        if isinstance(value, str) and not value.strip():
            raise ValueError("set but empty: unset it for the default, or name one")
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        hosts = _env_list(value, ",")
        if not isinstance(hosts, list):
            return hosts  # (pydantic says what it is not)
        hosts = [h.strip() if isinstance(h, str) else h for h in hosts]
        for host in hosts:
            if isinstance(host, str) and (":" in host or "/" in host):
                # (a name with its port, mybox:8000, never matched: names are compared)
                raise ValueError("each a host name alone, without a port or scheme")
        return [h for h in hosts if h != ""]

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        value = _env_list(value, os.pathsep)
        if isinstance(value, list) and any(isinstance(v, str) and not v.strip() for v in value):
            # (an empty entry, "" or "a::b", was the current folder: files of wherever the
            # server was started became readable by any spec)
            raise ValueError(
                "an empty folder name (an empty variable, or a separator too many) would be "
                "the current folder: name each folder, or unset it for the default roots"
            )
        return value

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'nas.db').as_posix()}"

    def resolved_artifacts_dir(self) -> Path:
        return self.artifacts_dir or self.data_dir / "artifacts"

    def private_paths(self) -> list[Path]:
        """The server's own files, never a spec's file even under a data root (the default
        root ``data_dir`` holds them): the artifacts folder (other jobs' weights, policies,
        checkpoints) and a SQLite database with its journal files. Symlinks resolved."""
        private = [self.resolved_artifacts_dir()]
        try:
            database = sqlite_file(self.resolved_database_url())
        except ArgumentError:  # the server refuses to start on it
            database = None
        if database is not None:
            private += [
                database.with_name(database.name + s) for s in ("", "-wal", "-shm", "-journal")
            ]
        return [Path(os.path.realpath(path.expanduser())) for path in private]

    def resolved_data_roots(self) -> list[Path]:
        """The folders spec files may come from, symlinks resolved."""
        if self.data_roots is not None:
            roots = list(self.data_roots)
        else:
            from nas.datasets import cache_dir
            from nas.evaluators.tabular import default_table_path

            roots = [self.data_dir, cache_dir()]
            table = default_table_path()
            if table is not None:
                roots.append(table.parent)
        return [Path(os.path.realpath(root.expanduser())) for root in roots if str(root)]


def _env_list(value: Any, separator: str) -> Any:
    """A list setting as the environment gives it: a JSON list, or ``separator``-separated
    text; anything else (a list given in Python) as it is."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    return json.loads(text) if text.startswith("[") else text.split(separator)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for other databases, in-memory ones and ``file:``
    URIs)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return None if parsed.database.startswith("file:") else Path(parsed.database)

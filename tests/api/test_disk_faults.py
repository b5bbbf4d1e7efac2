"""Disk faults of the artifacts folder (issue 13, item 11), over real HTTP on SQLite and
PostgreSQL: an export that cannot be written answers 507 (full) or 503 (read-only) with a
message and leaves nothing behind; a delete either removes the job's rows and files together
or changes nothing.

The faults are real file systems: the artifacts folder is a small tmpfs, filled up, or
remounted read-only. That needs the right to mount (root with CAP_SYS_ADMIN, as in this
project's CI and dev containers). Without it, the read-only case falls back to a folder
without write permission (honoured for a user other than root: the server then meets EACCES,
also a 503); the full case has no such fallback and is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import ApiError, NasClient
from api.runner import JobRunner
from tests.api.conftest import LiveServer, make_settings, nb201_spec, wait_for


class Mount:
    """A small tmpfs at ``path`` (or, where mounting is not allowed, a plain folder)."""

    def __init__(self, path: Path, size_kb: int) -> None:
        self.path = path
        path.mkdir(parents=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        self.mounted = done.returncode == 0
        self.why_not = done.stderr.strip()

    def read_only(self, on: bool) -> None:
        if self.mounted:
            mode = "ro" if on else "rw"
            subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)
            return
        if os.geteuid() == 0:
            pytest.skip(f"cannot mount a tmpfs ({self.why_not}) and root ignores permissions")
        for folder, dirs, _files in os.walk(self.path):
            os.chmod(folder, 0o555 if on else 0o755)
            for name in dirs:
                os.chmod(Path(folder) / name, 0o555 if on else 0o755)

    def fill(self) -> Path:
        """Write a file until the file system is full; the file (remove it to free space)."""
        if not self.mounted:
            pytest.skip(f"cannot mount a small tmpfs to fill up: {self.why_not}")
        filler = self.path / "filler"
        with filler.open("wb", buffering=0) as out:
            try:
                while True:
                    out.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        with contextlib.suppress(OSError):  # the last blocks: small files fit no more either
            for i in range(1000):
                (self.path / f"filler-{i}").write_bytes(b"\0" * 512)
        return filler

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
        else:
            self.read_only(False)


@pytest.fixture
def artifacts(tmp_path: Path) -> Iterator[Mount]:
    mount = Mount(tmp_path / "artifacts", size_kb=2048)
    yield mount
    mount.unmount()


@pytest.fixture
def served(server_factory: Any, artifacts: Mount) -> tuple[LiveServer, NasClient, int]:
    """A server keeping its artifacts on the mount, and a finished job with a json export."""
    server = server_factory(artifacts_dir=artifacts.path)
    client = server.client(server.create_key("user"))
    job_id = int(client.submit(nb201_spec(budget={"trials": 20}))["id"])

    def finished() -> bool:
        try:
            return client.job(job_id)["state"] == "SUCCEEDED"
        except ApiError as exc:  # the 201 goes out before the commit
            if exc.status_code != 404:
                raise
            return False

    wait_for(finished, timeout=60)
    assert _export(server, client, job_id, "json").status_code == 200
    return server, client, job_id


def _export(server: LiveServer, client: NasClient, job_id: int, fmt: str) -> httpx.Response:
    return httpx.get(
        f"{server.url}/api/v1/jobs/{job_id}/export",
        params={"format": fmt},
        headers=client._http.headers,
        timeout=60,
    )


def _delete(server: LiveServer, client: NasClient, job_id: int) -> httpx.Response:
    return httpx.delete(
        f"{server.url}/api/v1/jobs/{job_id}", headers=client._http.headers, timeout=60
    )


def _files(root: Path) -> set[str]:
    jobs = root / "jobs"
    return {str(p.relative_to(root)) for p in jobs.rglob("*")} if jobs.exists() else set()


def _exists(client: NasClient, job_id: int) -> bool:
    try:
        client.job(job_id)
    except ApiError as exc:
        assert exc.status_code == 404
        return False
    return True


def test_read_only_artifacts_answer_503_and_a_delete_changes_nothing(
    served: tuple[LiveServer, NasClient, int], artifacts: Mount
) -> None:
    server, client, job_id = served
    before = _files(artifacts.path)
    assert any(name.endswith(".json") for name in before)
    n_trials = client.job(job_id)["n_trials"]
    artifacts.read_only(True)

    refused = _export(server, client, job_id, "pytorch")  # not written yet
    assert refused.status_code == 503, refused.text
    detail = refused.json()["detail"]
    assert "read-only" in detail or "permission" in detail
    assert str(artifacts.path) not in detail  # says what, not where on the server
    cached = _export(server, client, job_id, "json")  # written before: still served
    assert cached.status_code == 200

    refused = _delete(server, client, job_id)
    assert refused.status_code == 503, refused.text
    assert "unchanged" in refused.json()["detail"]
    assert _exists(client, job_id)
    assert client.job(job_id)["n_trials"] == n_trials == len(list(client.all_trials(job_id)))
    assert _files(artifacts.path) == before
    assert _export(server, client, job_id, "json").status_code == 200

    artifacts.read_only(False)
    assert _delete(server, client, job_id).status_code == 204
    assert not _exists(client, job_id)
    assert _files(artifacts.path) == set()  # no folder, no leftovers


def test_full_artifacts_answer_507_and_a_delete_still_removes_everything(
    served: tuple[LiveServer, NasClient, int], artifacts: Mount
) -> None:
    server, client, job_id = served
    before = _files(artifacts.path)
    filler = artifacts.fill()

    refused = _export(server, client, job_id, "pytorch")
    assert refused.status_code == 507, refused.text
    assert "full" in refused.json()["detail"]
    assert _files(artifacts.path) == before  # no half-written file left behind
    assert _export(server, client, job_id, "json").status_code == 200

    filler.unlink()  # space again: the same export now works
    assert _export(server, client, job_id, "pytorch").status_code == 200
    assert len(_files(artifacts.path)) == len(before) + 1

    artifacts.fill()
    assert _delete(server, client, job_id).status_code == 204
    assert not _exists(client, job_id)
    assert _files(artifacts.path) == set()


def test_a_file_where_a_folder_of_the_artifacts_should_be_answers_503(
    served: tuple[LiveServer, NasClient, int], artifacts: Mount
) -> None:
    """A file where the artifacts' folders should be (an operator's mistake) made every
    export a 500 with a ``NotADirectoryError`` traceback in the log."""
    server, client, job_id = served
    for folder in (artifacts.path / "jobs" / str(job_id) / "exports", artifacts.path / "jobs"):
        aside = folder.with_name(folder.name + ".aside")
        folder.rename(aside)
        folder.write_text("not a folder")
        try:
            refused = _export(server, client, job_id, "pytorch")
            assert refused.status_code == 503, (folder, refused.text)
            assert "not a folder" in refused.json()["detail"], refused.text
        finally:
            folder.unlink()
            aside.rename(folder)
    assert _export(server, client, job_id, "pytorch").status_code == 200


def test_a_delete_removes_what_an_interrupted_delete_left(
    served: tuple[LiveServer, NasClient, int], artifacts: Mount
) -> None:
    """A ``.deleting-`` folder of a job that no longer exists (a server that died between
    the commit and the removal) goes with the next delete; that of a job that exists stays."""
    server, client, job_id = served
    jobs = artifacts.path / "jobs"
    gone = jobs / ".deleting-999999-0123abcd"
    (gone / "exports").mkdir(parents=True)
    (gone / "exports" / "rank1-json.json").write_text("{}")
    other = int(client.submit(nb201_spec(budget={"trials": 3}))["id"])
    wait_for(lambda: _exists(client, other) and client.job(other)["state"] == "SUCCEEDED")
    kept = jobs / f".deleting-{other}-0123abcd"
    kept.mkdir()
    assert _delete(server, client, job_id).status_code == 204
    assert not gone.exists() and kept.is_dir()
    assert not (jobs / str(job_id)).exists()


def test_a_full_sqlite_disk_is_a_507_an_unhealthy_server_and_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's probe: with the SQLite database's disk full a submit answered "503 the
    database is unavailable; try again shortly" (no wait frees the space), /healthz said ok
    while no job could start, and the runner logged its failing tick twice a second."""
    import logging

    import api.routes.health

    monkeypatch.setattr(api.routes.health, "RUNNER_FAILING_S", 1.0)
    disk = Mount(tmp_path / "db", size_kb=2048)
    server = LiveServer(
        make_settings(f"sqlite:///{disk.path / 'nas.db'}", tmp_path / "data", run_jobs=False)
    ).start()
    runner = None
    try:
        key = server.create_key("a")
        http = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        queued = http.post("/api/v1/jobs", json=nb201_spec(budget={"trials": 3})).json()["id"]
        filler = disk.fill()
        refused = http.post("/api/v1/jobs", json=nb201_spec(budget={"trials": 3}))
        assert refused.status_code == 507, refused.text
        assert "database's storage is full" in refused.json()["detail"]
        assert http.get("/api/v1/jobs").json()["count"] == 1  # reads answer

        caplog.set_level(logging.WARNING, logger="nas.runner")
        runner = JobRunner(server.settings, server.app.state.nas.engine)
        server.app.state.runner = runner
        runner.start()
        wait_for(lambda: http.get("/healthz").status_code == 503, timeout=30)
        health = http.get("/healthz").json()
        assert health["status"] == "unavailable" and health["database"] == "sqlite"
        assert health["runner"].startswith("failing for ") and "full" in health["runner"]
        time.sleep(1.0)  # ten more ticks at 0.1 s
        failed = [r for r in caplog.records if "runner tick failed" in r.getMessage()]
        assert len(failed) == 1, [r.getMessage() for r in failed]

        filler.unlink()  # space again: the queued job starts, the server is healthy
        wait_for(lambda: http.get(f"/api/v1/jobs/{queued}").json()["state"] == "SUCCEEDED", 60)
        assert http.get("/healthz").json() == {**health, "status": "ok", "runner": "ok"}
    finally:
        if runner is not None:
            runner.stop()
        server.stop()
        disk.unmount()

"""Who may call what: every endpoint against every kind of caller, over real HTTP.

One server per database (SQLite, PostgreSQL) serves the whole matrix: user A owns a
finished job, user B owns another, and each (principal, endpoint) pair is one test that
sends one request with exactly the ``Authorization`` header that principal would send.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import hash_key
from api.db import session_scope
from api.repositories import ApiKeyRepository
from tests.api.conftest import LiveServer, make_settings, nb201_spec, postgres_database, wait_for
from tests.conftest import NB201_TABLE

FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")
TINY_JOB = nb201_spec(budget={"trials": 20})

# Who calls: no header, a well-formed key that was never issued, a key that was revoked,
# A's valid key under another scheme, two users, and an admin.
PRINCIPALS = ("anonymous", "wrong_key", "revoked", "bad_scheme", "user_a", "user_b", "admin")

# The job and the trial in the paths below belong to user A and have finished, so the owner
# cancelling it is a 409 (allowed, but too late) and its event stream ends at once. Someone
# else's job is a 404, never a 403: its existence is not revealed.
ENDPOINTS: dict[str, tuple[str, str]] = {
    "submit": ("POST", "/api/v1/jobs"),
    "list": ("GET", "/api/v1/jobs"),
    "get": ("GET", "/api/v1/jobs/{job}"),
    "cancel": ("POST", "/api/v1/jobs/{job}/cancel"),
    "trials": ("GET", "/api/v1/jobs/{job}/trials"),
    "trial": ("GET", "/api/v1/trials/{trial}"),
    "best": ("GET", "/api/v1/jobs/{job}/best"),
    "events": ("GET", "/api/v1/jobs/{job}/events"),
    "healthz": ("GET", "/healthz"),
}

# fmt: off
EXPECTED: dict[str, tuple[int, ...]] = {
    #            anonymous wrong_key revoked bad_scheme user_a user_b admin
    "submit":  (401,       401,      401,    401,       201,   201,   201),
    "list":    (401,       401,      401,    401,       200,   200,   200),
    "get":     (401,       401,      401,    401,       200,   404,   200),
    "cancel":  (401,       401,      401,    401,       409,   404,   409),
    "trials":  (401,       401,      401,    401,       200,   404,   200),
    "trial":   (401,       401,      401,    401,       200,   404,   200),
    "best":    (401,       401,      401,    401,       200,   404,   200),
    "events":  (401,       401,      401,    401,       200,   404,   200),
    "healthz": (200,       200,      200,    200,       200,   200,   200),
}
# fmt: on

CASES = [(endpoint, principal) for endpoint in ENDPOINTS for principal in PRINCIPALS]


@dataclass
class World:
    server: LiveServer
    http: httpx.Client
    #: The Authorization header each principal sends (``None``: no header at all).
    headers: dict[str, str | None]
    job_a: int
    trial_a: int
    #: Job ids each principal owns; grows as the ``submit`` cases create jobs.
    owned: dict[str, list[int]] = field(default_factory=dict)

    def send(self, principal: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        header = self.headers[principal]
        headers = {"Authorization": header} if header is not None else {}
        return self.http.request(method, path, headers=headers, **kwargs)


def _revoke(server: LiveServer, key: str) -> None:
    with session_scope(server.app.state.nas.write) as session:
        keys = ApiKeyRepository(session)
        row = keys.active_by_hash(hash_key(key))
        assert row is not None
        assert keys.revoke(row.id)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"auth-{request.param}")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NAS_NB201_TABLE", str(NB201_TABLE))
        if request.param == "sqlite":
            yield from _world(f"sqlite:///{tmp / 'nas.db'}", tmp)
        else:
            with postgres_database() as url:
                yield from _world(url, tmp)


def _world(database_url: str, tmp: Path) -> Iterator[World]:
    server = LiveServer(make_settings(database_url, tmp / "data")).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            key_a = server.create_key("user-a")
            key_b = server.create_key("user-b")
            revoked = server.create_key("revoked")
            headers: dict[str, str | None] = {
                "anonymous": None,
                "wrong_key": f"Bearer nas_{secrets.token_urlsafe(32)}",
                "revoked": f"Bearer {revoked}",
                "bad_scheme": f"Basic {key_a}",
                "user_a": f"Bearer {key_a}",
                "user_b": f"Bearer {key_b}",
                "admin": f"Bearer {server.create_key('admin', admin=True)}",
            }
            world = World(server, http, headers, job_a=0, trial_a=0)
            # The revoked key worked before it was revoked.
            assert world.send("revoked", "GET", "/api/v1/jobs").status_code == 200
            _revoke(server, revoked)

            jobs = {}
            for user in ("user_a", "user_b"):
                response = world.send(user, "POST", "/api/v1/jobs", json=TINY_JOB)
                assert response.status_code == 201, response.text
                jobs[user] = response.json()["id"]
                world.owned[user] = [jobs[user]]

            def finished(job_id: int) -> bool:
                job = world.send("admin", "GET", f"/api/v1/jobs/{job_id}").json()
                return job["state"] in FINISHED

            wait_for(lambda: all(finished(j) for j in jobs.values()), timeout=60)
            world.job_a = jobs["user_a"]
            trials = world.send("user_a", "GET", f"/api/v1/jobs/{world.job_a}/trials").json()
            assert trials["count"] == 20, trials
            world.trial_a = trials["data"][0]["id"]
            yield world
    finally:
        server.stop()


@pytest.mark.parametrize(("endpoint", "principal"), CASES, ids=[f"{e}-{p}" for e, p in CASES])
def test_auth_matrix(world: World, endpoint: str, principal: str) -> None:
    expected = EXPECTED[endpoint][PRINCIPALS.index(principal)]
    method, template = ENDPOINTS[endpoint]
    path = template.format(job=world.job_a, trial=world.trial_a)
    where = f"{method} {path} as {principal}"

    if endpoint == "events":
        header = world.headers[principal]
        headers = {"Authorization": header} if header is not None else {}
        with world.http.stream(method, path, headers=headers, timeout=15) as response:
            body = response.read().decode()
    else:
        response = world.send(
            principal, method, path, json=TINY_JOB if endpoint == "submit" else None
        )
        body = response.text
    assert response.status_code == expected, (
        f"{where}: expected {expected}, got {response.status_code}: {body[:500]}"
    )

    if expected == 401:
        assert response.headers.get("www-authenticate") == "Bearer", where
        detail = response.json()["detail"]
        if principal == "revoked":  # (it was told to create a key in the right database)
            assert "this API key was revoked at " in detail, (where, detail)
        else:
            assert "Authorization: Bearer" in detail, where
    elif expected == 404:
        assert "not found" in response.json()["detail"], where
    elif endpoint == "submit":
        job = response.json()
        assert job["state"] == "QUEUED", where
        world.owned.setdefault(principal, []).append(job["id"])
    elif endpoint == "list":
        page = response.json()
        if principal == "admin":  # every job, its own and the users'
            mine = sorted(j for ids in world.owned.values() for j in ids)
        else:  # only its own
            mine = sorted(world.owned[principal])
        assert page["count"] == len(mine), f"{where}: {page}"
        assert sorted(j["id"] for j in page["data"]) == mine, f"{where}: {page}"
        # whose each job is (an admin could not tell: only the submit answer said)
        owners = {j: user for user, ids in world.owned.items() for j in ids}
        names = {"user_a": "user-a", "user_b": "user-b", "admin": "admin"}
        assert {j["id"]: j["owner"] for j in page["data"]} == {j: names[owners[j]] for j in mine}, (
            where
        )
    elif endpoint == "get":
        assert response.json()["id"] == world.job_a, where
        assert response.json()["owner"] == "user-a", where
    elif endpoint == "cancel":
        assert "already SUCCEEDED" in response.json()["detail"], where
    elif endpoint == "trials":
        assert response.json()["count"] == 20, where
    elif endpoint == "trial":
        assert response.json()["id"] == world.trial_a, where
    elif endpoint == "best":
        assert len(response.json()) == 1, where
    elif endpoint == "events":
        assert response.headers["content-type"].startswith("text/event-stream"), where
        assert "event: end" in body, f"{where}: {body[-500:]}"
    elif endpoint == "healthz":
        assert response.json()["status"] == "ok", where


def test_a_server_without_keys_takes_no_change_from_another_sites_page(
    server_factory: Any,
) -> None:
    """With ``--no-auth`` any web page the user opened cancelled jobs by a plain form post,
    and through a name of its own resolved to this machine (DNS rebinding) read them all
    (the security probe). A keyed server needs no such guard: a page has no key to send."""
    open_server: LiveServer = server_factory(auth="none", run_jobs=False, allowed_hosts=["mybox"])
    own = f"127.0.0.1:{open_server.port}"
    with httpx.Client(base_url=open_server.url, timeout=30) as http:
        job_id = http.post("/api/v1/jobs", json=TINY_JOB).json()["id"]  # (a tool: no Origin)
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "http://["},  # (no URL: a 403, not a 500)
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site", "Origin": f"http://{own}"},
        ):
            for method, path in (
                ("POST", "/api/v1/jobs"),
                ("POST", f"/api/v1/jobs/{job_id}/cancel"),
            ):
                body = TINY_JOB if path == "/api/v1/jobs" else None
                refused = http.request(method, path, json=body, headers=headers)
                assert refused.status_code == 403, (headers, path, refused.text)
                assert "another site's page" in refused.json()["detail"]
        assert http.get("/api/v1/jobs").json()["count"] == 1
        assert http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "QUEUED"
        for host in (
            "evil.example",
            f"evil.example:{open_server.port}",
            "127.0.0.1.nip.io",
            "[::1",
        ):
            refused = http.get("/api/v1/jobs", headers={"Host": host})
            assert refused.status_code == 403, (host, refused.text)
            assert "NAS_ALLOWED_HOSTS" in refused.json()["detail"]
        for host in (own, f"localhost:{open_server.port}", "localhost.", "mybox", "[::1]:80"):
            assert http.get("/api/v1/jobs", headers={"Host": host}).status_code == 200, host
        # its own page's change: Origin is the Host asked (Sec-Fetch-Site: same-origin)
        mine = {"Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"}
        assert http.post("/api/v1/jobs", json=TINY_JOB, headers=mine).status_code == 201
    keyed: LiveServer = server_factory(run_jobs=False)
    key = keyed.create_key("a")
    headers = {"Authorization": f"Bearer {key}", "Host": "evil.example", "Origin": "http://e"}
    with httpx.Client(base_url=keyed.url, timeout=30) as http:
        assert http.post("/api/v1/jobs", json=TINY_JOB, headers=headers).status_code == 201


def test_a_job_is_visible_without_a_key_when_auth_is_off(server_factory: Any) -> None:
    keyed: LiveServer = server_factory(run_jobs=False)
    key_a = keyed.create_key("user-a")
    with httpx.Client(base_url=keyed.url, timeout=30) as http:
        response = http.post(
            "/api/v1/jobs", json=TINY_JOB, headers={"Authorization": f"Bearer {key_a}"}
        )
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        assert http.get(f"/api/v1/jobs/{job_id}").status_code == 401

    open_server: LiveServer = server_factory(auth="none", run_jobs=False)  # same database
    with httpx.Client(base_url=open_server.url, timeout=30) as http:
        page = http.get("/api/v1/jobs")
        assert page.status_code == 200, page.text
        assert [j["id"] for j in page.json()["data"]] == [job_id]
        # the dashboard's list says whose (a keyed user's job, on a server without keys)
        listed = http.get("/api/v1/dashboard/jobs").json()
        assert listed["all_users"] is True and listed["data"][0]["job"]["owner"] == "user-a"
        job = http.get(f"/api/v1/jobs/{job_id}")
        assert job.status_code == 200 and job.json()["state"] == "QUEUED", job.text
        # Submitting and cancelling need no key either.
        response = http.post("/api/v1/jobs", json=TINY_JOB)
        assert response.status_code == 201, response.text
        cancelled = http.post(f"/api/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "CANCELLED"
        # a page of this server's own jobs only (owned by none): one user
        assert http.get("/api/v1/dashboard/jobs?limit=1").json()["all_users"] is False


def test_another_users_job_looks_like_a_missing_one(world: World) -> None:
    """B learns nothing from A's ids: the 404 is the one a job that never existed gets."""
    missing = world.job_a + 10_000
    for template in ("/api/v1/jobs/{}", "/api/v1/jobs/{}/trials", "/api/v1/jobs/{}/best"):
        theirs = world.send("user_b", "GET", template.format(world.job_a))
        nobodys = world.send("user_b", "GET", template.format(missing))
        assert (theirs.status_code, nobodys.status_code) == (404, 404), template
        assert theirs.json()["detail"] == nobodys.json()["detail"].replace(
            str(missing), str(world.job_a)
        ), template
    theirs = world.send("user_b", "GET", f"/api/v1/trials/{world.trial_a}")
    nobodys = world.send("user_b", "GET", f"/api/v1/trials/{world.trial_a + 10_000}")
    assert (theirs.status_code, nobodys.status_code) == (404, 404)


def test_refused_cancels_leave_a_queued_job_alone(server_factory: Any) -> None:
    server: LiveServer = server_factory(run_jobs=False)  # the job stays QUEUED
    a = {"Authorization": f"Bearer {server.create_key('user-a')}"}
    b = {"Authorization": f"Bearer {server.create_key('user-b')}"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job_id = http.post("/api/v1/jobs", json=TINY_JOB, headers=a).json()["id"]
        assert http.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 401
        assert http.post(f"/api/v1/jobs/{job_id}/cancel", headers=b).status_code == 404
        job = http.get(f"/api/v1/jobs/{job_id}", headers=a).json()
        assert job["state"] == "QUEUED" and job["cancel_requested"] is False, job
        cancelled = http.post(f"/api/v1/jobs/{job_id}/cancel", headers=a)
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "CANCELLED"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/json", b"{not json"), ("application/json", b""), ("text/plain", b"x")],
    ids=["malformed-json", "empty", "unsupported-type"],
)
def test_anonymous_submit_is_refused_before_the_body_is_read(
    world: World, content_type: str, body: bytes
) -> None:
    response = world.http.post("/api/v1/jobs", content=body, headers={"content-type": content_type})
    assert response.status_code == 401, response.text

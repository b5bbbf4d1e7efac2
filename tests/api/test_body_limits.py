"""What a job-spec body may be: YAML aliases cannot expand a short body past
NAS_MAX_BODY_BYTES, a key given twice is refused (not resolved last-wins), and the content
type is matched in any case. Each test failed before the fix, on both databases."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import LiveServer, nb201_spec

NB201_YAML = (
    "name: {name}\ndataset: {{name: nb201-cifar10}}\nspace: {{name: nb201}}\n"
    "controller: {{name: random}}\nevaluator: {{name: tabular}}\nbudget: {{trials: 3}}\n"
)


def _post(http: httpx.Client, text: str, content_type: str) -> httpx.Response:
    return http.post("/api/v1/jobs", content=text.encode(), headers={"content-type": content_type})


def _anchors(levels: int, indent: str) -> str:
    """``levels`` anchors, each a list of 10 aliases of the one before: 10**levels values."""
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "".join(f"{indent}{line}\n" for line in lines)


@pytest.mark.parametrize(
    "body",
    [
        # At the top: the server spent its CPU on a million values before the 422.
        "name: x\n" + _anchors(6, ""),
        # In a free-form field: a 201, and a job row of megabytes past NAS_MAX_BODY_BYTES.
        NB201_YAML.format(name="bomb") + "warm_start:\n  priors: []\n  sources:\n"
        "  - " + _anchors(6, "    ").lstrip(),
    ],
    ids=["top-level", "free-form-field"],
)
def test_a_yaml_alias_bomb_is_refused_quickly_and_stores_nothing(
    http: httpx.Client, body: str
) -> None:
    assert len(body) < 600
    # CPU seconds of this process, where the server runs (a thread): the wall clock of a
    # loaded machine once took 2.02 s for what takes it a fraction of one
    started = time.process_time()
    response = _post(http, body, "application/yaml")
    assert time.process_time() - started < 2.0
    assert response.status_code == 422, response.text[:300]
    [error] = response.json()["detail"]
    assert error["loc"] == ["<document>"] and error["type"] == "document_too_large"
    assert "larger than 1048576 bytes" in error["msg"] and "aliases" in error["msg"]
    assert http.get("/api/v1/jobs").json()["count"] == 0


def test_ordinary_yaml_anchors_still_submit(http: httpx.Client) -> None:
    body = (
        "name: anchored\ndataset: {name: nb201-cifar10}\nspace: {name: nb201}\n"
        "controller: &random {name: random}\nevaluator: {name: tabular}\n"
        "budget: &budget {trials: 3}\n"
    )
    response = _post(http, body, "application/yaml")
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["budget"]["trials"] == 3


@pytest.mark.parametrize(
    ("content_type", "body", "loc", "where"),
    [
        (
            "application/json",
            '{"name": "first", "budget": {"trials": 3}, "name": "second"}',
            ["<document>"],
            "in this object",
        ),
        (
            "application/json",
            '{"name": "x", "budget": {"trials": 3, "trials": 4}}',
            ["budget"],
            "in this object",
        ),
        (
            "application/yaml",
            NB201_YAML.format(name="first") + "name: second\n",
            ["<document>"],
            "at line 1, column 1 and at line 7, column 1",
        ),
    ],
    ids=["json-top", "json-nested", "yaml"],
)
def test_a_key_given_twice_is_a_422_naming_it_and_where(
    http: httpx.Client, content_type: str, body: str, loc: list[str], where: str
) -> None:
    response = _post(http, body, content_type)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == loc and error["type"] == "duplicate_key"
    assert "the key 'name'" in error["msg"] or "the key 'trials'" in error["msg"]
    assert where in error["msg"]
    assert http.get("/api/v1/jobs").json()["count"] == 0


@pytest.mark.parametrize(
    ("content_type", "is_yaml"),
    [
        ("APPLICATION/JSON", False),
        ("Application/Json; Charset=UTF-8", False),
        ("Application/YAML", True),
        ("TEXT/YAML; charset=utf-8", True),
    ],
)
def test_the_content_type_is_matched_in_any_case(
    http: httpx.Client, content_type: str, is_yaml: bool
) -> None:
    body = NB201_YAML.format(name="cased") if is_yaml else json.dumps(nb201_spec(name="cased"))
    response = _post(http, body, content_type)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "cased"


def test_a_request_head_past_its_bound_is_a_431_before_it_is_all_read(
    server: LiveServer, http: httpx.Client
) -> None:
    """A client without a key sent 1,000 headers of 1 MiB: the server took all of them in
    (its memory up by a gigabyte, kept after the connection closed), then answered 401 (the
    security probe). Bodies are not counted; keep-alive requests after a body still work."""
    import socket

    from api.http_protocol import MAX_HEAD_BYTES

    host, port = "127.0.0.1", server.port
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Big: " + b"a" * 4096 + b"\r\n"
        answer = b""
        try:
            for _ in range(4 * MAX_HEAD_BYTES // len(line)):  # never an end of head
                conn.sendall(line)
        except OSError:  # (the server's half-close made a send fail)
            pass
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"larger than 65536 bytes" in answer
    # a head within the bound: answered as ever; a body past the head's bound is no head
    assert http.get("/api/v1/jobs", headers={"X-Pad": "a" * 60_000}).status_code == 200
    big = json.dumps({**nb201_spec(), "tags_pad": "x" * 200_000})
    assert http.post("/api/v1/jobs", content=big).status_code == 422  # (the unknown field)
    with socket.create_connection((host, port), timeout=30) as conn:
        body = b"{}"
        request = (
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\n\r\n" + body
        )
        conn.sendall(request + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while answer.count(b"HTTP/1.1 ") < 2 and (chunk := conn.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 ") and b"HTTP/1.1 200 " in answer, answer[:300]


def test_nas_serve_speaks_the_bounded_protocol(tmp_path: Path) -> None:
    """The test servers set the protocol themselves: ``nas serve``'s own server must too
    (the review: without it no test would notice)."""
    from api.app import create_app
    from api.cli import _quiet_server
    from api.http_protocol import BoundedHeadProtocol
    from tests.api.conftest import make_settings

    app = create_app(make_settings(f"sqlite:///{tmp_path / 'nas.db'}", tmp_path))
    server = _quiet_server(app, host="127.0.0.1", port=0, log_level="warning")
    assert server.config.http is BoundedHeadProtocol

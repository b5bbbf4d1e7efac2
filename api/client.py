"""A small Python client of the HTTP API, used by the ``nas`` CLI and importable by users.

Example:
    >>> from api.client import NasClient
    >>> client = NasClient("http://127.0.0.1:8000", api_key="nas_...")
    >>> job = client.submit("examples/nb201-random.yaml")
    >>> client.wait(job["id"])["state"]
    'SUCCEEDED'
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import httpx

from nas.errors import SpecError
from nas.spec import document_problems, file_syntax
from nas.trial import TrialState

#: An export's response header: ``trained`` or ``untrained`` (the network's weights are
#: random: a pytorch bundle or model card of an architecture never retrained); absent for a
#: format without a network (json).
WEIGHTS_HEADER = "X-NAS-Weights"


class UntrainedExportWarning(UserWarning):
    """An export without ``untrained=True`` came back with random weights."""


DEFAULT_SERVER = "http://127.0.0.1:8000"
#: How long an event stream may stay silent before ``events`` gives up on it: the server
#: sends a keep-alive every 15 s when there is nothing else to send.
EVENTS_SILENCE_S = 60.0
FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")


class ApiError(Exception):
    """A 4xx/5xx answer; ``detail`` is the server's explanation (for 422: one entry per
    problem with its field path)."""

    def __init__(self, status_code: int, detail: Any) -> None:
        self.status_code, self.detail = status_code, detail
        super().__init__(f"HTTP {status_code}: {format_detail(detail)}")


class ServerUnreachable(ApiError):
    """No HTTP answer came: the server at ``server`` refused the connection, was not found,
    timed out or broke the connection off. ``status_code`` is ``None``."""

    def __init__(self, server: str, reason: str, *, last_event_id: int | None = None) -> None:
        self.server, self.reason = server, reason
        self.status_code, self.detail = None, reason  # type: ignore[assignment]
        #: Where an event stream that stopped short had got to (``NasClient.events``).
        self.last_event_id = last_event_id
        Exception.__init__(self, f"cannot talk to the server at {server}: {reason}")


def passing_fault(exc: ApiError) -> str | None:
    """What made a request fail for a while only, or ``None``: no answer (a server
    restarting), or 503 (its database out for a moment: "try again shortly", with
    ``Retry-After``). A wait rides these out (a 503 ended ``wait`` and ``nas watch`` at
    once, the job going on: the PostgreSQL probe)."""
    if isinstance(exc, ServerUnreachable):
        return exc.reason
    if exc.status_code == 503:
        return f"HTTP 503: {format_detail(exc.detail)}"
    return None


#: What a server URL may end in that is the API's prefix, not part of the server's address.
API_PREFIX = "/api/v1"


def server_url(server: str) -> str:
    """``server`` as the client's base URL: without a trailing slash or the API's own prefix
    (``http://host:8000/api/v1`` is ``http://host:8000``); ``ValueError`` for a URL that is
    not http:// or https://.

    Example:
        >>> server_url("http://127.0.0.1:8000/api/v1/")
        'http://127.0.0.1:8000'
    """
    url = server.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        example = f"http://{url}" if not sep else f"http://{rest or '127.0.0.1:8000'}"
        raise ValueError(
            f"server URL {server!r} needs http:// or https:// and a host (e.g. {example})"
        )
    return url.removesuffix(API_PREFIX)


def format_detail(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}"
            if isinstance(e, Mapping)
            else str(e)
            for e in detail
        )
    return str(detail)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's own verification context (``SSL_CERT_FILE``, ``SSL_CERT_DIR`` or certifi's
    roots), made once per process: loading the roots cost every new client 25-35 ms of CPU,
    which a program that opens many clients (a test suite, a notebook polling jobs) paid each
    time. One ``SSLContext`` serves any number of clients and threads."""
    return httpx.create_ssl_context()


def _plain(value: Any, loc: list[str | int]) -> Any:
    """``value`` as JSON can hold it: numpy scalars and arrays (a notebook's values) as
    numbers and lists, tuples as lists; anything else JSON lacks is a ``SpecError`` naming
    its field (a bare ``TypeError``, "Object of type int64 is not JSON serializable", named
    none)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if hasattr(key, "dtype") and hasattr(key, "tolist"):  # a numpy number
                key = key.tolist()
            if not (key is None or isinstance(key, str | bool | int | float)):
                raise SpecError.at(
                    loc or ["<document>"],
                    f"keys must be strings, got {type(key).__name__} {key!r}",
                )
            plain[key] = _plain(item, [*loc, str(key)])
        return plain
    if isinstance(value, list | tuple):
        return [_plain(item, [*loc, i]) for i, item in enumerate(value)]
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if hasattr(value, "tolist") and kind is not None and kind not in "mMOV":
        return _plain(value.tolist(), loc)  # numpy numbers and arrays, without numpy
    raise SpecError.at(
        loc or ["<document>"],
        f"a {type(value).__name__} is not a JSON value: give a number, a string, a boolean, "
        "null, a list or a mapping",
    )


class ApiKeyError(ValueError):
    """An API key no request can carry (a character an HTTP header cannot hold)."""


def api_key_header(key: str | None, source: str) -> dict[str, str]:
    """The ``Authorization`` header of ``key`` (from ``source``, named in the error),
    the whitespace around it dropped: a key read from a file ends in a newline. A key
    with a character a header cannot carry is an ``ApiKeyError`` that does not repeat the
    key: it was sent, failed in httpx as "cannot talk to the server ... Illegal header
    value b'Bearer <the whole key>'", and ``wait`` took it for a server out of reach."""
    key = (key or "").strip()
    if not key:
        return {}
    for i, char in enumerate(key):
        if not "!" <= char <= "~":
            raise ApiKeyError(
                f"{source}: the API key holds {'a space' if char == ' ' else repr(char)} "
                f"at character {i + 1} of {len(key)}; keys are printable ASCII "
                "(nas_ and letters, digits, - and _): was it copied whole?"
            )
    return {"Authorization": f"Bearer {key}"}


class NasClient:
    """Talks to ``nas serve``. ``server`` defaults to ``$NAS_SERVER`` and ``api_key`` to
    ``$NAS_API_KEY`` (the whitespace around a key dropped; a key with a character a header
    cannot carry: ``ApiKeyError``, a ``ValueError``). A closed client (after its ``with``
    block) raises ``RuntimeError`` saying so."""

    def __init__(
        self, server: str | None = None, *, api_key: str | None = None, timeout: float = 30.0
    ) -> None:
        self.server = server_url(server or os.environ.get("NAS_SERVER") or DEFAULT_SERVER)
        if api_key is not None:
            headers = api_key_header(api_key, "api_key")
        else:
            headers = api_key_header(os.environ.get("NAS_API_KEY"), "$NAS_API_KEY")
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.server, headers=headers, timeout=timeout, verify=tls_context()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._reaching():
            response = self._http.request(method, path, **kwargs)
        self._check(response)
        return response.json()

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """Turn httpx's transport errors (refused, unknown host, timeout, connection lost)
        into ``ServerUnreachable`` naming this client's server."""
        if self._http.is_closed:  # (httpx's own RuntimeError said "Cannot send a request")
            raise RuntimeError(
                "this NasClient is closed (its `with` block has ended, or close() was "
                "called): make a new one"
            )
        try:
            yield
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.server, str(exc) or type(exc).__name__) from exc

    # --- jobs ------------------------------------------------------------------------------
    def submit(self, spec: str | Path | Mapping[str, Any]) -> dict[str, Any]:
        """Submit a spec: a path to a YAML/JSON file, or a mapping."""
        if isinstance(spec, Mapping):
            body = _plain(spec, [])
            try:
                json.dumps(body, allow_nan=False)
            except ValueError as exc:  # NaN or infinity: httpx's bare ValueError named no field
                found = document_problems(body)
                # (the non-finite numbers, or else what hid them: a non-string key's value)
                problems = [p for p in found if "finite" in p[1]] or found
                if not problems:
                    raise
                raise SpecError(
                    [{"loc": loc, "msg": msg, "type": "value_error"} for loc, msg in problems]
                ) from exc
            return self._request("POST", "/api/v1/jobs", json=body)
        if not isinstance(spec, str | os.PathLike):
            raise TypeError(
                f"a spec is a path to a YAML or JSON file or a mapping, not a {type(spec).__name__}"
            )
        if isinstance(spec, str) and ("\n" in spec or spec.lstrip().startswith("{")):
            # (it was read as a file name: "OSError: File name too long")
            raise TypeError(
                "a spec is a path to a YAML or JSON file or a mapping, not the text of one: "
                "parse it first (yaml.safe_load(text)) and submit the mapping"
            )
        path = Path(spec)
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:  # (it was a traceback in the CLI)
            raise SpecError.at(
                ["<file>"], f"cannot read {str(path)!r}: not UTF-8 text (byte {exc.start})"
            ) from None
        content_type = f"application/{file_syntax(path, text)}"
        return self._request(
            "POST", "/api/v1/jobs", content=text.encode(), headers={"Content-Type": content_type}
        )

    def jobs(
        self,
        *,
        state: str | None = None,
        name: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict:
        """A page of your jobs, newest first (``{data, count}``); ``state`` in any case;
        ``name``: only the jobs of that name."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if state:
            params["state"] = state.upper()  # any case, as the CLI takes it
        if name is not None:
            params["name"] = name
        return self._request("GET", "/api/v1/jobs", params=params)

    def job(self, job_id: int) -> dict[str, Any]:
        """A job: state, progress, trial counts, best so far, its spec, and its summary once
        finished. ``ApiError`` 404 for no such job of yours."""
        return self._request("GET", f"/api/v1/jobs/{job_id}")

    def cancel(self, job_id: int) -> dict[str, Any]:
        """Cancel a queued or running job (its trials are kept); returns the job. The
        search stops at its next check, within seconds (``wait`` for the final state)."""
        return self._request("POST", f"/api/v1/jobs/{job_id}/cancel")

    def delete(self, job_id: int) -> None:
        """Delete a finished (or queued) job with its trials and files."""
        with self._reaching():
            response = self._http.request("DELETE", f"/api/v1/jobs/{job_id}")
        self._check(response)

    def export(
        self,
        job_id: int,
        format: str = "json",
        rank: int = 1,
        path: str | Path | None = None,
        *,
        untrained: bool = False,
    ) -> Path:
        """Download the ``rank``-th best architecture (1 = best) of a job as ``format``
        (json, pytorch (a zip), torchscript, onnx, model-card) to ``path``: a file, or a
        folder (default: the current one; a path ending in ``/`` is a folder, created if
        missing) to save it under the server's file name."""
        params: dict[str, Any] = {"format": format.lower(), "rank": rank}  # any case, as state
        if untrained:
            params["untrained"] = "true"
        headers: dict[str, str] = {}
        written = self._download(
            f"/api/v1/jobs/{job_id}/export", params, path, f"job{job_id}-rank{rank}", headers
        )
        if headers.get(WEIGHTS_HEADER.lower()) == "untrained" and not untrained:
            warnings.warn(
                f"job {job_id} rank {rank}: the exported network has random weights (the "
                "job holds no trained weights of it); retrain(job_id, rank), where the job's "
                "retrain_refused is null, then export again for trained ones",
                UntrainedExportWarning,
                stacklevel=2,
            )
        return written

    def policy(self, job_id: int, path: str | Path | None = None) -> Path:
        """Download a job's RL² policy file (a meta-training job's result, or the copy an
        ``rl2`` job runs) to ``path``: a file, or a folder (default: the current one; a path
        ending in ``/`` is a folder, created if missing) to save it under the server's file
        name. ``ApiError``: 409 for a job without one (its detail says why), 404 for no such
        job of yours."""
        return self._download(
            f"/api/v1/jobs/{job_id}/policy", {}, path, f"rl2-policy-job{job_id}.pt"
        )

    def _download(
        self,
        url: str,
        params: dict[str, Any],
        path: str | Path | None,
        fallback: str,
        headers: dict[str, str] | None = None,
    ) -> Path:
        """Stream a GET's file to ``path`` (a file, or a folder for the server's file name,
        else ``fallback``: an existing folder, or any path ending in a slash, created),
        through a temporary file so a failed download leaves nothing. A device or a named
        pipe is written into; a symbolic link is kept, the file it names replaced.
        ``headers``: filled with the response's (lower-case names)."""
        timeout = httpx.Timeout(30.0, read=600.0)  # the server builds and checks the file
        folder = path is not None and str(path).endswith(("/", os.sep))
        if path is not None and not folder and not Path(path).parent.is_dir():
            # (only a path ending in a slash asks for folders to be made)
            raise FileNotFoundError(
                f"no such folder: {str(Path(path).parent)!r} (for {str(path)!r}; end a path "
                "with / to have its folders made and the file named by the server)"
            )
        with (
            self._reaching(),
            self._http.stream("GET", url, params=params, timeout=timeout) as response,
        ):
            if response.status_code >= 400:
                response.read()
                self._check(response)
            if headers is not None:
                headers.update((k.lower(), v) for k, v in response.headers.items())
            target = Path(path) if path is not None else Path.cwd()
            if target.is_dir() or folder:
                target = target / (self._filename(response) or fallback)
            if target.exists() and (not target.is_file() or target.parts[:2] == ("/", "dev")):
                # A device, a named pipe (``/dev/null``), anything under /dev (``/dev/stdout``
                # redirected to a file: appended to, as a shell's ``>>`` asked): written
                # into, never replaced by a file.
                with target.open("ab") as out:  # (a file behind it: not truncated)
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                return target
            # A symbolic link stays: the file it points to is the one replaced.
            written = target.resolve() if target.is_symlink() else target
            written.parent.mkdir(parents=True, exist_ok=True)  # (a folder asked for: made)
            tmp = written.with_name(f".{written.name}.part")
            try:
                with tmp.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                tmp.replace(written)
            finally:
                tmp.unlink(missing_ok=True)
        return target

    def retrain(self, job_id: int, rank: int = 1) -> dict[str, Any]:
        """Start retraining the ``rank``-th best architecture from scratch (202); the answer
        names the trial that records it (``wait_trial(answer["trial_id"])``)."""
        return self._request("POST", f"/api/v1/jobs/{job_id}/retrain", params={"rank": rank})

    def wait_trial(
        self,
        trial_id: int,
        *,
        timeout: float | None = None,
        poll: float = 0.5,
        unreachable_s: float = 60.0,
    ) -> dict[str, Any]:
        """Poll a trial until it is no longer WAITING or RUNNING; returns it. Timeouts and a
        server out of reach as ``wait``."""
        return self._poll_until(
            f"/api/v1/trials/{trial_id}",
            lambda trial: TrialState(trial["state"]).is_finished(),
            f"trial {trial_id}",
            timeout,
            poll,
            unreachable_s,
        )

    def _poll_until(
        self,
        path: str,
        done: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float | None,
        poll: float,
        unreachable_s: float,
    ) -> dict[str, Any]:
        """GET ``path`` every ``poll`` seconds until ``done`` says yes; ``ServerUnreachable``
        only after ``unreachable_s`` seconds in a row out of reach (a restart is not an
        end), ``TimeoutError`` after ``timeout`` (also while out of reach: a request waits at
        most until then, or a second for a last look, where a hung server's answer was waited
        for the client's whole 30 s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        out_since: float | None = None  # (when the first request that failed was sent)
        state = "unknown"
        while True:
            asked = time.monotonic()
            try:
                if deadline is None:
                    item = self._request("GET", path)
                else:  # (at least a second: a last look once the time is up)
                    left = max(deadline - asked, 1.0)
                    if isinstance(self._timeout, int | float):  # (None: no request limit)
                        left = min(left, self._timeout)
                    item = self._request("GET", path, timeout=left)
            except ApiError as exc:
                reason = passing_fault(exc)
                if reason is None:
                    if exc.status_code == 401 and state != "unknown":
                        raise ApiError(
                            401,
                            f"{format_detail(exc.detail)} (this key was accepted earlier in "
                            "this wait: it has been revoked, or rotated; a rotated key's new "
                            "secret sees its jobs, a new key does not)",
                        ) from exc
                    raise
                now = time.monotonic()
                # (from when the failed request was sent: a hung server's 30 s timeouts
                # counted from their end let 60 s become 90)
                out_since = asked if out_since is None else out_since
                out = now - out_since
                if deadline is not None and now > deadline:
                    how = "out of reach" if isinstance(exc, ServerUnreachable) else "answering 503"
                    raise TimeoutError(
                        f"{what} still {state} after {timeout} s, the server {how} for "
                        f"the last {out:.0f} s ({reason})"
                    ) from exc
                if out >= unreachable_s and isinstance(exc, ServerUnreachable):
                    raise ServerUnreachable(
                        self.server,
                        f"{reason} (out of reach for {out:.0f} s in a row while waiting for "
                        f"{what}; a restarted server takes its jobs over: wait again once it is "
                        "back)",
                    ) from exc
                if out >= unreachable_s:
                    raise ApiError(
                        503,
                        f"{format_detail(exc.detail)} (for {out:.0f} s in a row while waiting "
                        f"for {what})",
                    ) from exc
            else:
                out_since, state = None, item["state"]
                if done(item):
                    return item
            if deadline is None:
                time.sleep(poll)
                continue
            left = deadline - time.monotonic()
            if left < 0:
                raise TimeoutError(f"{what} still {state} after {timeout} s")
            time.sleep(min(poll, left))  # (a poll past the deadline overran the timeout)

    @staticmethod
    def _filename(response: httpx.Response) -> str | None:
        """The file name of a Content-Disposition header, without any folder part."""
        disposition = response.headers.get("content-disposition", "")
        for part in disposition.split(";"):
            name, _, value = part.strip().partition("=")
            if name.lower() == "filename" and value:
                return Path(value.strip().strip('"')).name or None
        return None

    def _check(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)

    def trials(
        self,
        job_id: int,
        *,
        state: str | None = None,
        sort: str = "number",
        order: str = "asc",
        limit: int = 50,
        offset: int = 0,
        after: int | None = None,
    ) -> dict[str, Any]:
        """A page of a job's trials: ``{data, count, next_after}``. ``state`` filters (any
        case); ``sort`` is ``number``, ``objective`` or a metric's name, ``order`` ``asc`` or
        ``desc``; ``count`` is the total over all pages. Page by ``offset``, or (with
        ``sort="number"`` only) by ``after``: the trial number the previous page's
        ``next_after`` gave, which stays right while the job adds trials. ``next_after`` is
        ``None`` on the last page; a running job's later trials follow its last number."""
        params: dict[str, Any] = {"sort": sort, "order": order, "limit": limit, "offset": offset}
        if state:
            params["state"] = state.upper()  # any case, as the CLI takes it
        if after is not None:
            params["after"] = after
        return self._request("GET", f"/api/v1/jobs/{job_id}/trials", params=params)

    def all_trials(
        self, job_id: int, *, page: int = 1000, state: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every trial (of ``state``, any case) in number order, page by page (keyset
        paging)."""
        after = -1
        while True:
            batch = self.trials(job_id, state=state, limit=page, after=after)
            yield from batch["data"]
            if batch["next_after"] is None:
                return
            after = batch["next_after"]

    def trial(self, trial_id: int) -> dict[str, Any]:
        """One trial by its id (the ``id`` of a listing's row, not its number)."""
        return self._request("GET", f"/api/v1/trials/{trial_id}")

    def best(self, job_id: int, k: int = 1) -> list[dict[str, Any]]:
        """The job's best ``k`` completed trials, best first (several objectives: ties of the
        first broken by the others in order)."""
        return self._request("GET", f"/api/v1/jobs/{job_id}/best", params={"k": k})

    def curves(self, job_id: int) -> dict[str, Any]:
        """Per-epoch curves by series (``epochs``: ``{"supernet": [{"epoch": 0, ...}]}``)
        and the best-so-far history (``best_so_far``: ``[{"trial": n, "value": v}]``, the
        trials that improved the best objective) of a job."""
        return self._request("GET", f"/api/v1/jobs/{job_id}/curves")

    # --- what the dashboard draws (one call each; the README's "Dashboard" section) -------
    def history(self, job_id: int, *, points: int = 2000) -> dict[str, Any]:
        """Every trial's objective (bucketed above ``points``) and the best-so-far steps."""
        return self._request("GET", f"/api/v1/jobs/{job_id}/history", params={"points": points})

    def parallel(self, job_id: int, *, top: int = 100, sample: int = 400) -> dict[str, Any]:
        """Parallel coordinates: each decision and hyperparameter of the ``top`` trials and
        ``sample`` others."""
        params = {"top": top, "sample": sample}
        return self._request("GET", f"/api/v1/jobs/{job_id}/parallel", params=params)

    def importance(
        self, job_id: int, *, top: int = 100, sample: int = 200, evaluator: str = "ped-anova"
    ) -> dict[str, Any]:
        """Each decision's and hyperparameter's importance for the objective (Optuna's
        ``ped-anova`` or ``fanova``)."""
        params = {"top": top, "sample": sample, "evaluator": evaluator}
        return self._request("GET", f"/api/v1/jobs/{job_id}/importance", params=params)

    def pareto(self, job_id: int, *, sample: int = 1000) -> dict[str, Any]:
        """The Pareto front of a job with several objectives (over all of them), and up to
        ``sample`` dominated trials."""
        return self._request("GET", f"/api/v1/jobs/{job_id}/pareto", params={"sample": sample})

    def timeline(self, job_id: int, *, limit: int = 500) -> dict[str, Any]:
        """When and where the latest ``limit`` trials ran (worker, start, end)."""
        return self._request("GET", f"/api/v1/jobs/{job_id}/timeline", params={"limit": limit})

    def health(self) -> dict[str, Any]:
        """The server's health (``/healthz``: ``status``, ``database``, ``version``);
        ``ApiError`` 503 when it cannot reach its database."""
        return self._request("GET", "/healthz")

    def events(self, job_id: int, *, last_event_id: int | None = None) -> Iterator[tuple[str, Any]]:
        """Server-sent events of a job as ``(event, data)`` until its ``end`` event (the
        job finished, or was deleted). ``ServerUnreachable`` when the stream stops short of
        it: the server closed it (it stopped, or the API key was revoked or rotated) or sent
        nothing, not even its keep-alive, for ``EVENTS_SILENCE_S`` (a server stalled, a
        connection lost without a word); calling ``events`` again with that error's
        ``last_event_id`` follows the job on from there (without it, every trial is sent
        again), as a browser's ``EventSource`` reconnects."""
        silence = httpx.Timeout(30.0, read=EVENTS_SILENCE_S)
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        seen = last_event_id
        url = f"/api/v1/jobs/{job_id}/events"
        with (
            self._reaching(),
            self._http.stream("GET", url, timeout=silence, headers=headers) as response,
        ):
            if response.status_code >= 400:
                response.read()
                self._check(response)
            event, data = "message", []
            try:
                for line in response.iter_lines():
                    if line == "":
                        if data:
                            yield event, json.loads("\n".join(data))
                            if event == "end":
                                return
                        event, data = "message", []
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line.startswith("id:") and line[3:].strip().lstrip("-").isdigit():
                        seen = int(line[3:].strip())
            except httpx.ReadTimeout:
                raise ServerUnreachable(
                    self.server,
                    f"job {job_id}'s event stream sent nothing, not even a keep-alive, for "
                    f"{EVENTS_SILENCE_S:g} s",
                    last_event_id=seen,
                ) from None
            except httpx.TransportError as exc:  # (broken off: a server killed, a network)
                raise ServerUnreachable(
                    self.server,
                    f"job {job_id}'s event stream broke off: {str(exc) or type(exc).__name__}",
                    last_event_id=seen,
                ) from exc
            raise ServerUnreachable(
                self.server,
                f"job {job_id}'s event stream closed before the job ended (the server "
                "stopped, or the API key was revoked or rotated)",
                last_event_id=seen,
            )

    def wait(
        self,
        job_id: int,
        *,
        timeout: float | None = None,
        poll: float = 0.5,
        unreachable_s: float = 60.0,
    ) -> dict:
        """Poll until the job has finished; returns it. ``TimeoutError`` after ``timeout``
        seconds (``None``: no limit). A server that cannot be reached is asked again, as a
        restarted server takes its running jobs over, until it has been out of reach for
        ``unreachable_s`` seconds in a row: then ``ServerUnreachable``."""
        return self._poll_until(
            f"/api/v1/jobs/{job_id}",
            lambda job: job["state"] in FINISHED,
            f"job {job_id}",
            timeout,
            poll,
            unreachable_s,
        )

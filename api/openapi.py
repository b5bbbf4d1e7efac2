"""The OpenAPI document: FastAPI's, completed with what route signatures cannot say.

- The job spec body: ``JobSpec``'s JSON schema and every model it uses, as components (a
  pydantic schema pasted into a request body keeps ``#/$defs/...`` references that resolve
  nowhere in the document).
- The bearer-key security scheme, required by every operation but ``/healthz`` when the
  server checks keys (``NAS_AUTH=keys``).
- Every status an operation answers, with its body: 401 (a missing or unknown key, or 400
  for two Authorization headers), 404 (an id that is not yours or does not exist), 422 (any
  parameter out of range), and for the spec body 400 (not UTF-8), 413 (too large) and 415
  (another content type); 413 for a body past the limit sent to any POST or DELETE; 503
  when the database does not answer, 507 for a write when its storage is full. (Not operations': 405 for a method a path does not
  take, with ``Allow``; 307 from a path with a trailing slash to the one without.)
- The response headers a client acts on (``_HEADERS``): a created job's ``Location``, a
  download's ``Content-Disposition`` and an export's ``X-NAS-Weights``, a 503's
  ``Retry-After``, a 401's ``WWW-Authenticate`` (a client generated from the document could
  not learn to tell an export of random weights: the HTTP API probe).

The rules live here, in one place, rather than repeated on each route.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from nas.spec import JobSpec

__all__ = ["ERROR_SCHEMA", "install_openapi"]

_REF = "#/components/schemas/{model}"

#: A plain error: ``{"detail": "what went wrong and what would be valid"}``.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}

_PLAIN_ERRORS = {
    400: "the body is not UTF-8 text, or two Authorization headers",
    401: "missing or invalid API key (send 'Authorization: Bearer <key>')",
    404: "no such resource, or another user's",
    409: "the request does not fit the resource's state",
    413: "the body is larger than NAS_MAX_BODY_BYTES",
    415: "a content type other than JSON or YAML (UTF-8, uncompressed)",
    503: "the database is unavailable; try again shortly",
    507: "the artifacts storage (or the database's) is full; nothing was written",
}
_VALIDATION = {
    "description": "invalid input: one entry per problem, with its field path (loc)",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}


_EITHER_ERROR = {
    "application/json": {
        "schema": {
            "anyOf": [
                {"$ref": "#/components/schemas/HTTPValidationError"},
                {"$ref": "#/components/schemas/Error"},
            ]
        }
    }
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_ATTACHMENT = _header("the file's name: attachment; filename=\"...\" (or filename*=utf-8''...)")
#: Response headers by (path, method, status); ``*`` for every path and method.
_HEADERS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("/api/v1/jobs", "post", "201"): {"Location": _header("the created job's URL")},
    ("/api/v1/jobs/{job_id}/export", "get", "200"): {
        "Content-Disposition": _ATTACHMENT,
        "X-NAS-Weights": _header(
            "trained, or untrained: the network's weights are random (an architecture "
            "never retrained, or untrained=true asked for the bare graph); absent for json"
        ),
    },
    ("/api/v1/jobs/{job_id}/policy", "get", "200"): {"Content-Disposition": _ATTACHMENT},
    ("*", "*", "503"): {
        "Retry-After": _header("seconds to wait, when the database is unavailable (5)")
    },
    ("*", "*", "401"): {"WWW-Authenticate": _header("Bearer")},
}


def _add_headers(path: str, method: str, responses: dict[str, Any]) -> None:
    for code, response in responses.items():
        for where in ((path, method, code), ("*", "*", code)):
            if where in _HEADERS:
                response.setdefault("headers", {}).update(_HEADERS[where])


def install_openapi(app: FastAPI, *, auth: bool) -> None:
    """Make ``app.openapi()`` answer the completed document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _complete(doc, auth=auth)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(doc: dict[str, Any], *, auth: bool) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    spec_schema = JobSpec.model_json_schema(ref_template=_REF)
    _add_schemas(schemas, {**spec_schema.pop("$defs", {}), "JobSpec": spec_schema})
    for section, entries in _components().items():
        # Each section is one of its registry's entries: ``name`` and that entry's parameters.
        title = f"{section.capitalize()}Section"
        variants = []
        for name, config in entries.items():
            schema = config.model_json_schema(ref_template=_REF)
            _add_schemas(schemas, schema.pop("$defs", {}))
            variants.append(
                {
                    "title": f"{section} {name}",
                    "type": "object",
                    "properties": {"name": {"const": name}, **schema.get("properties", {})},
                    "required": ["name", *schema.get("required", [])],
                    "additionalProperties": False,
                }
            )
        schemas[title] = {"title": title, "oneOf": variants}
        spec_schema["properties"][section] = {"$ref": _REF.format(model=title)}
    schemas["Error"] = ERROR_SCHEMA
    if auth:
        doc["components"]["securitySchemes"] = {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "an API key from 'nas keys create'",
            }
        }
    _link_jobs(doc["paths"])
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            codes: set[int] = set()
            if path.startswith("/api/"):
                if "content" not in responses.setdefault("422", _VALIDATION):
                    # a route's own 422 (a rank out of range, an unknown format): a message,
                    # or the problems of its parameters (a generated client parsed neither)
                    responses["422"]["content"] = _EITHER_ERROR
                codes.add(503)  # (every one reads the database)
                if auth:
                    codes.update((400, 401))  # (400: two Authorization headers)
                    operation["security"] = [{"bearerAuth": []}]
            if "{" in path:
                codes.add(404)
            if "requestBody" in operation:
                codes.update((400, 413, 415))
            elif method in ("post", "put", "patch", "delete"):
                codes.add(413)  # (a body it does not read is still refused past the limit)
            if path.startswith("/api/") and method in ("post", "put", "patch", "delete"):
                codes.add(507)  # (the database's disk full: every write)
            for code in sorted(codes):
                _plain(responses, code, every=True)
            for code, response in responses.items():
                if code in {str(c) for c in _PLAIN_ERRORS} and "content" not in response:
                    _plain(responses, int(code))
                for media in response.get("content", {}).values():
                    # FastAPI writes OpenAPI 3.2's itemSchema for event streams into a 3.1
                    # document; 3.1 knows a stream only as text.
                    if "itemSchema" in media:
                        media.pop("itemSchema")
                        media["schema"] = {"type": "string", "description": "server-sent events"}
            _add_headers(path, method, responses)


#: From a created job to what a client can do with it (OpenAPI links: generated clients and
#: schemathesis's stateful phase follow them).
_JOB_LINKS = {
    "GetJob": ("/api/v1/jobs/{job_id}", "get"),
    "CancelJob": ("/api/v1/jobs/{job_id}/cancel", "post"),
    "DeleteJob": ("/api/v1/jobs/{job_id}", "delete"),
    "ListTrials": ("/api/v1/jobs/{job_id}/trials", "get"),
    "BestTrials": ("/api/v1/jobs/{job_id}/best", "get"),
    "JobCurves": ("/api/v1/jobs/{job_id}/curves", "get"),
    "ExportArchitecture": ("/api/v1/jobs/{job_id}/export", "get"),
    "RetrainArchitecture": ("/api/v1/jobs/{job_id}/retrain", "post"),
}


def _link_jobs(paths: dict[str, Any]) -> None:
    created = paths["/api/v1/jobs"]["post"]["responses"]["201"]
    created["links"] = {
        name: {
            "operationId": paths[path][method]["operationId"],
            "parameters": {"job_id": "$response.body#/id"},
        }
        for name, (path, method) in _JOB_LINKS.items()
    }


def _add_schemas(schemas: dict[str, Any], new: dict[str, Any]) -> None:
    for name, schema in new.items():
        if name in schemas and schemas[name] != schema:
            raise RuntimeError(f"two different OpenAPI schemas are named {name!r}")
        schemas[name] = schema


def _components() -> dict[str, dict[str, type[BaseModel]]]:
    """Each spec section's registered entries and their parameter models."""
    from controllers import CONTROLLERS
    from nas.datasets import DATASETS
    from nas.evaluators import EVALUATORS
    from nas.spaces import SPACES

    return {
        "dataset": {n: DATASETS.get(n).config for n in DATASETS.names()},
        "space": {n: SPACES.get(n).Config for n in SPACES.names()},
        "controller": {n: CONTROLLERS.get(n).Config for n in CONTROLLERS.names()},
        "evaluator": {n: EVALUATORS.get(n).Config for n in EVALUATORS.names()},
    }


def _plain(responses: dict[str, Any], code: int, *, every: bool = False) -> None:
    """The plain error ``code`` with its body; ``every``: one every such operation may
    answer (a 503 of the database), said beside a route's own reasons for it, which
    replaced it ("read-only storage" alone on a DELETE)."""
    response = responses.setdefault(str(code), {"description": _PLAIN_ERRORS[code]})
    generic = _PLAIN_ERRORS[code]
    if every and generic not in response.get("description", ""):
        response["description"] = f"{generic}; or: {response.get('description', '')}"
    response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

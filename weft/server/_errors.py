"""JSON error responses: every error the server sends has one shape and never a traceback.

The body follows OpenAI's error shape, so the ``openai`` client and chat UIs read it too::

    {"error": {"message": "...", "type": "not_found", "code": 404, "fields": [...]}}

``fields`` appears on 422 only: one ``{"field": "question", "message": "..."}`` per failing field.

A message never carries a URL (a model provider's address, say): each is replaced with
``<URL hidden>``; the server log has the whole error.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from weft.core._database import DatabaseUnavailableError, unreachable
from weft.core.errors import (
    CircuitOpenError,
    ComponentTimeoutError,
    ConcurrencyLimitError,
    DocumentLoadError,
    EmptyQueryError,
    GraphInputError,
    ModelError,
    NodeError,
    ProviderUnavailableError,
    RateLimitedError,
    WeftError,
)

__all__ = [
    "ApiError",
    "error_body",
    "error_response",
    "exception_handlers",
    "from_exception",
    "validation_error",
]

logger = logging.getLogger("weft.server")

_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    499: "client_closed_request",
    500: "internal_error",
    502: "upstream_error",
    503: "unavailable",
    504: "timeout",
}
_MAX_MESSAGE = 800
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


class ApiError(Exception):
    """An error that becomes a JSON response with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        fields: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "error")
        self.fields = list(fields) if fields is not None else None
        self.headers = dict(headers or {})


def error_body(
    status: int,
    message: str,
    *,
    type: str | None = None,
    fields: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The JSON body of an error response, in OpenAI's shape (``param``: the first failing
    field, if any) with weft's ``fields`` added."""
    err: dict[str, Any] = {
        "message": _URL.sub("<URL hidden>", message)[:_MAX_MESSAGE],
        "type": type or _TYPES.get(status, "error"),
        "param": fields[0].get("field") if fields else None,
        "code": status,
    }
    if fields is not None:
        err["fields"] = list(fields)
    return {"error": err}


def error_response(
    status: int,
    message: str,
    *,
    type: str | None = None,
    fields: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON error response."""
    body = json.dumps(error_body(status, message, type=type, fields=fields)).encode()
    return Response(body, status, headers=dict(headers or {}), media_type="application/json")


# The names pydantic gives a union's members in an error's location (``str``,
# ``list[dict[str,any]]``, ``function-after[...]``): not fields a client can send.
_UNION_MEMBER = re.compile(r"^(?:str|int|float|bool|none|list|dict|function-\w+.*|.*\[.*\])$")


def _loc(loc: Sequence[int | str], prefix: Sequence[int | str]) -> str:
    parts = [p for p in loc if not (isinstance(p, str) and _UNION_MEMBER.match(p))]
    return ".".join(str(p) for p in (*prefix, *parts)) or "body"


def validation_error(
    exc: pydantic.ValidationError, prefix: Sequence[int | str] = (), what: str = "request body"
) -> ApiError:
    """A 422 naming every failing field (``input.question``, ``messages.0.role``...) and why;
    the message carries the first few, ``fields`` all of them."""
    found: dict[str, list[str]] = {}
    for e in exc.errors():
        reasons = found.setdefault(_loc(e["loc"], prefix), [])
        reason = str(e["msg"]).removeprefix("Value error, ")
        if reason not in reasons:
            reasons.append(reason)  # a union's members each say what they wanted
    return invalid(what, [{"field": f, "message": " or ".join(r)} for f, r in found.items()])


def invalid(what: str, fields: Sequence[Mapping[str, str]]) -> ApiError:
    """A 422 for failing ``fields`` (each a ``field`` and its ``message``): the message carries
    the first few, ``fields`` all of them."""
    shown = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:3])
    more = f"; and {len(fields) - 3} more (see fields)" if len(fields) > 3 else ""
    return ApiError(422, f"invalid {what}: {shown}{more}", fields=fields)


def _retry_after(seconds: int) -> dict[str, str]:
    return {"Retry-After": str(seconds)}


def from_exception(exc: BaseException) -> ApiError:
    """Map an exception from a graph run onto an HTTP error with a readable message.

    weft's own errors are written for users (what failed and how to fix it), so their message is
    sent. Any other exception, raised directly or inside a node, becomes a message that names
    only its type (and the graph and node): its text may hold paths, queries or data, so it goes
    to the server log, as does the traceback.
    """
    if isinstance(exc, ApiError):
        return exc
    cause: BaseException = exc
    node: NodeError | None = None
    while isinstance(cause, NodeError) and cause.__cause__ is not None:
        node = cause
        cause = cause.__cause__
    if isinstance(cause, GraphInputError | EmptyQueryError | DocumentLoadError):
        return ApiError(422, str(cause), fields=[{"field": "input", "message": str(cause)}])
    if unreachable(cause):
        db = cause if isinstance(cause, DatabaseUnavailableError) else None
        message = str(db) if db is not None else "the database cannot be reached"
        return ApiError(503, f"{message}; try again shortly", headers=_retry_after(2))
    if isinstance(cause, ProviderUnavailableError | CircuitOpenError):
        return ApiError(503, str(cause), headers=_retry_after(5))
    if isinstance(cause, RateLimitedError | ConcurrencyLimitError):
        return ApiError(503, str(cause), headers=_retry_after(1))
    if isinstance(cause, ComponentTimeoutError):
        return ApiError(504, str(cause))
    if isinstance(cause, ModelError):
        return ApiError(502, str(cause))
    if isinstance(cause, WeftError):
        return ApiError(500, str(cause))
    where = f"graph '{node.graph}', node '{node.node}'" if node is not None else "the server"
    return ApiError(500, f"{where} failed ({type(cause).__name__}); see the server log")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(
        exc.status, exc.message, type=exc.type, fields=exc.fields, headers=exc.headers
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    message = exc.detail if exc.status_code != 404 else f"no route {path}"
    if exc.status_code == 404 and len(path) > 1 and path.endswith("/"):
        message += f" (no route ends with '/': try {path.rstrip('/') or '/'})"
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {path}"
    return error_response(exc.status_code, message, headers=exc.headers)


async def _unhandled(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware calls this, then re-raises, so uvicorn logs the traceback;
    # the client only ever sees this body.
    api = from_exception(exc)
    if api.status >= 500:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(api.status, api.message, type=api.type, headers=api.headers)


def exception_handlers() -> dict[Any, Any]:
    """Starlette ``exception_handlers``: every error as JSON, none with a traceback."""
    return {ApiError: _api_error, HTTPException: _http_error, Exception: _unhandled}

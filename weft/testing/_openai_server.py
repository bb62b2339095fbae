"""A local, scripted, OpenAI-compatible HTTP server for tests.

It speaks real HTTP on ``127.0.0.1`` so the code under test runs its real client stack (the
``openai`` SDK, ``langchain-openai``, retries, timeouts, SSE parsing), yet every answer is scripted
by the test and nothing leaves the machine.

Endpoints::

    POST /v1/chat/completions   scripted replies, JSON or SSE chunks (``stream: true``)
    POST /v1/embeddings         deterministic hashed bag-of-words vectors (float or base64)
    GET  /v1/models             the configured model names
    GET  /v1/models/{model}     one model, or 404 ``model_not_found``
    POST /_weft/script          append replies (JSON form of :class:`Reply`), for subprocess use
    GET  /_weft/requests        the recorded requests, for subprocess use

Each chat request takes the next scripted reply; when the script is empty the server answers
with ``default`` (by default an echo of the last user message). A reply is a :class:`Reply`, a
plain string (its text), a :class:`Fault` (an error answer), or a callable that takes the
:class:`RecordedRequest` and returns one of those.

Run it in-process (uvicorn in a background thread)::

    with OpenAIServer(["Hello!"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")

or as a subprocess, e.g. to point a server under test at it::

    python -m weft.testing._openai_server --port 0   # prints: READY http://127.0.0.1:PORT/v1

and drive that one with :class:`OpenAIServerProcess`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import re
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from weft.core._extras import import_optional
from weft.testing._threaded import ThreadedUvicorn

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

    _Answer: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = [
    "DEFAULT_MODELS",
    "Fault",
    "OpenAIServer",
    "OpenAIServerProcess",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "ToolCall",
]

DEFAULT_MODELS: tuple[str, ...] = ("gpt-4o-mini", "text-embedding-3-small")
"""What ``GET /v1/models`` lists when the server was given no ``models``."""

_FEATURE = "weft.testing.OpenAIServer"


@dataclass(frozen=True)
class ToolCall:
    """A tool call the scripted assistant makes.

    Example:
        >>> Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})])  # doctest: +ELLIPSIS
        Reply(...)
    """

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    """The call id; ``call_<n>`` numbered by the server when left out."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args), "id": self.id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(name=data["name"], args=dict(data.get("args") or {}), id=data.get("id"))


@dataclass(frozen=True)
class Fault:
    """A failure the server injects instead of (or in the middle of) a reply.

    ``kind="status"`` answers with an HTTP error and OpenAI's error JSON
    (``{"error": {"message", "type", "param", "code"}}``); ``"drop"`` closes the connection after
    ``after_chunks`` SSE events (or mid-body when not streaming); ``"malformed"`` sends a chunk
    that is not JSON after ``after_chunks`` events (or a broken JSON body); ``"hang"`` sends
    nothing for ``seconds``, then a 504. Use the constructors.

    A stream's first event is the role-only chunk (``{"role": "assistant", "content": ""}``),
    as OpenAI sends it, so ``after_chunks=1`` fails the stream before any content and
    ``after_chunks=3`` after two pieces of it. For a slow first byte, script a
    ``Reply(text, delay=seconds)``.

    Example:
        >>> server = OpenAIServer([Fault.rate_limit(retry_after=0.1), "ok"])
    """

    kind: Literal["status", "drop", "malformed", "hang"]
    status: int = 500
    message: str = ""
    error_type: str = "server_error"
    code: str | None = None
    retry_after: float | None = None
    """Seconds sent as ``Retry-After``; the openai SDK waits this long before its retry."""
    after_chunks: int = 1
    seconds: float = 0.0
    """How long a ``"hang"`` holds the request."""

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1.0) -> Fault:
        """HTTP 429 ``rate_limit_exceeded``, with ``Retry-After`` unless ``retry_after`` is None."""
        return cls(
            "status",
            429,
            "Rate limit reached for requests (scripted by weft.testing.OpenAIServer).",
            "requests",
            "rate_limit_exceeded",
            retry_after,
        )

    @classmethod
    def server_error(cls, status: int = 500, retry_after: float | None = None) -> Fault:
        """HTTP 5xx; the SDK retries these, so a small ``retry_after`` keeps tests fast."""
        return cls(
            "status", status, "The server had an error while processing your request.",
            "server_error", None, retry_after,
        )  # fmt: skip

    @classmethod
    def unauthorized(cls) -> Fault:
        """HTTP 401 ``invalid_api_key``."""
        return cls(
            "status", 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
        )

    @classmethod
    def bad_request(cls, message: str = "Invalid request.", code: str | None = None) -> Fault:
        """HTTP 400 ``invalid_request_error``."""
        return cls("status", 400, message, "invalid_request_error", code)

    @classmethod
    def unknown_model(cls) -> Fault:
        """HTTP 404 ``model_not_found`` naming the requested model, as OpenAI answers."""
        return cls(
            "status",
            404,
            "The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )

    @classmethod
    def drop(cls, after_chunks: int = 1) -> Fault:
        """Close the connection after ``after_chunks`` SSE events, without ``[DONE]``."""
        return cls("drop", after_chunks=after_chunks)

    @classmethod
    def malformed(cls, after_chunks: int = 1) -> Fault:
        """Send a chunk that is not valid JSON after ``after_chunks`` SSE events."""
        return cls("malformed", after_chunks=after_chunks)

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> Fault:
        """Send nothing, not even headers, for ``seconds``; then HTTP 504. A provider that
        hangs: only the client's own timeout ends the wait."""
        return cls("hang", 504, "The upstream timed out.", "server_error", seconds=seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "error_type": self.error_type,
            "code": self.code,
            "retry_after": self.retry_after,
            "after_chunks": self.after_chunks,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        return cls(**dict(data))


@dataclass(frozen=True)
class Reply:
    """One scripted answer to a chat completion request.

    Streaming splits ``text`` into word-sized chunks and each tool call's arguments into pieces,
    exactly as OpenAI's SSE format does. ``delay`` holds back the first byte, to test timeouts.
    ``fault`` turns the reply into a failure; a ``drop`` or ``malformed`` fault fires after some
    of the reply's chunks were sent.

    Example:
        >>> from weft.testing import OpenAIServer, Reply, ToolCall
        >>> with OpenAIServer([Reply("Paris.", delay=0.01)]) as server:
        ...     import openai
        ...     client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...     answer = client.chat.completions.create(
        ...         model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital?"}]
        ...     )
        >>> answer.choices[0].message.content
        'Paris.'
    """

    text: str = ""
    tool_calls: Sequence[ToolCall] = ()
    delay: float = 0.0
    fault: Fault | None = None
    finish_reason: str | None = None
    """Defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tool_calls": [t.to_dict() for t in self.tool_calls],
            "delay": self.delay,
            "fault": self.fault.to_dict() if self.fault else None,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        fault = data.get("fault")
        return cls(
            text=data.get("text", ""),
            tool_calls=tuple(ToolCall.from_dict(t) for t in data.get("tool_calls") or ()),
            delay=float(data.get("delay", 0.0)),
            fault=Fault.from_dict(fault) if fault else None,
            finish_reason=data.get("finish_reason"),
        )


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received, for tests to assert on.

    Example:
        >>> request = server.requests[-1]  # doctest: +SKIP
        >>> request.path, request.body["model"]  # doctest: +SKIP
        ('/v1/chat/completions', 'gpt-4o-mini')
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    """The parsed JSON body, or None."""
    received_at: float
    """``time.monotonic()`` on the server when the request arrived."""

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def stream(self) -> bool:
        return bool(isinstance(self.body, dict) and self.body.get("stream"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": dict(self.headers),
            "body": self.body,
            "received_at": self.received_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordedRequest:
        return cls(
            data["method"], data["path"], dict(data["headers"]), data["body"], data["received_at"]
        )


ReplyLike: TypeAlias = "Reply | Fault | str | Callable[[RecordedRequest], Reply | Fault | str]"
"""What a script holds: a reply, its text, a fault, or a function of the request."""


def _echo(request: RecordedRequest) -> Reply:
    for message in reversed(request.messages):
        if message.get("role") == "user":
            return Reply(f"echo: {_content_text(message.get('content'))}")
    return Reply("echo: (no user message)")


def _as_reply(item: Reply | Fault | str) -> Reply:
    if isinstance(item, Reply):
        return item
    if isinstance(item, Fault):
        # A bare drop/malformed fault still needs chunks to send before it fires.
        return Reply("This reply is cut short.", fault=item)
    if isinstance(item, str):
        return Reply(item)
    raise TypeError(
        f"a scripted reply must be a Reply, Fault, str or callable returning one, "
        f"not {type(item).__name__}"
    )


_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|\w+|[^\w\s]"
)
_CHUNK = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]\s*"
    r"|[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+\s*|\s+"
)


def _count_tokens(text: str) -> int:
    # A stand-in for a real tokenizer: the server must not download BPE files, and tests only
    # need counts that are deterministic and grow with the text.
    return len(_TOKEN.findall(text))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    return sum(_count_tokens(_content_text(m.get("content"))) for m in messages)


def _error_body(message: str, error_type: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def _embed(tokens: Sequence[str], dimensions: int) -> list[float]:
    vector = [0.0] * dimensions
    for token in tokens:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimensions
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        # An empty input still needs a valid unit vector.
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


def _embedding_tokens(item: Any) -> list[str]:
    if isinstance(item, str):
        return [t.lower() for t in _TOKEN.findall(item)]
    if isinstance(item, list):
        return [f"#{t}" for t in item]
    raise ValueError(f"unsupported embedding input item of type {type(item).__name__}")


def _split_args(arguments: str, size: int = 12) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (its body already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _Dropped(Exception):
    """Raised inside the app to make uvicorn close the connection mid-response."""


class _HideScriptedDrops(logging.Filter):
    # uvicorn logs every exception that escapes the app with a traceback; a scripted drop is
    # intended, so only that one is kept out of the log.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Dropped))


_DROP_FILTER = _HideScriptedDrops()


class _State:
    """The script and the record, shared by the server's thread and the test's thread."""

    def __init__(self, replies: Iterable[ReplyLike], default: ReplyLike) -> None:
        self.lock = threading.Lock()
        self.script: deque[ReplyLike] = deque(replies)
        self.embedding_faults: deque[Fault] = deque()
        self.requests: list[RecordedRequest] = []
        self.default = default
        self.counter = 0

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter


class _App:
    """The ASGI application; separate from the runner so it can serve in any host."""

    def __init__(
        self,
        state: _State,
        models: Sequence[str] | None,
        api_key: str | None,
        embedding_dimensions: int,
    ) -> None:
        self.state = state
        self.models = tuple(models) if models is not None else None
        self.api_key = api_key
        self.embedding_dimensions = embedding_dimensions
        self.app = self._build()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def _build(self) -> Starlette:
        applications = import_optional("starlette.applications", extra="server", feature=_FEATURE)
        routing = import_optional("starlette.routing", extra="server", feature=_FEATURE)
        route = routing.Route
        return cast(
            "Starlette",
            applications.Starlette(
                routes=[
                    route("/v1/chat/completions", self._chat, methods=["POST"]),
                    route("/v1/embeddings", self._embeddings, methods=["POST"]),
                    route("/v1/models", self._list_models, methods=["GET"]),
                    route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
                    route("/_weft/script", self._script, methods=["POST"]),
                    route("/_weft/requests", self._requests, methods=["GET"]),
                ]
            ),
        )

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        responses = import_optional("starlette.responses", extra="server", feature=_FEATURE)
        return cast("Response", responses.JSONResponse(data, status, headers=dict(headers or {})))

    async def _record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        recorded = RecordedRequest(
            request.method, request.url.path, dict(request.headers), body, time.monotonic()
        )
        with self.state.lock:
            self.state.requests.append(recorded)
        return recorded

    def _check(self, request: RecordedRequest, *, needs_model: bool) -> Response | None:
        if self.api_key is not None:
            given = request.headers.get("authorization", "")
            if given != f"Bearer {self.api_key}":
                return self._status(Fault.unauthorized(), request)
        if not isinstance(request.body, dict):
            return self._status(
                Fault.bad_request("The request body must be a JSON object."), request
            )
        if needs_model and not request.model:
            return self._status(Fault.bad_request("You must provide a model parameter."), request)
        if self.models is not None and request.model not in self.models:
            return self._status(Fault.unknown_model(), request)
        return None

    def _status(self, fault: Fault, request: RecordedRequest) -> Response:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            seconds = fault.retry_after
            headers["retry-after"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
        message = fault.message.replace("{model}", str(request.model))
        return self._json(_error_body(message, fault.error_type, fault.code), fault.status, headers)

    # -- endpoints -------------------------------------------------------------------------

    async def _chat(self, request: Request) -> _Answer:
        recorded = await self._record(request)
        refused = self._check(recorded, needs_model=True)
        if refused is not None:
            return refused
        with self.state.lock:
            item = self.state.script.popleft() if self.state.script else self.state.default
        try:
            reply = _as_reply(item(recorded) if callable(item) else item)
        except Exception as exc:
            # Not retryable: a broken script should fail the test once, loudly.
            body = _error_body(f"scripted reply raised {exc!r}", "server_error", "script_error")
            return self._json(body, 500, {"x-should-retry": "false"})
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        fault = reply.fault
        if fault is not None and fault.kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_disconnected(request), fault.seconds)
        if fault is not None and fault.kind in ("status", "hang"):
            return self._status(fault, recorded)
        if recorded.stream:
            return _RawResponse(self._sse_events(reply, recorded), "text/event-stream", fault)
        return _RawResponse([self._completion(reply, recorded)], "application/json", fault)

    def _tool_call_dicts(self, reply: Reply, completion_id: int) -> list[dict[str, Any]]:
        return [
            {
                "id": call.id or f"call_{completion_id}_{i}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(dict(call.args))},
            }
            for i, call in enumerate(reply.tool_calls)
        ]

    def _usage(self, reply: Reply, request: RecordedRequest) -> dict[str, int]:
        prompt = _prompt_tokens(request.messages)
        completion = _count_tokens(reply.text) + sum(
            _count_tokens(call.name) + _count_tokens(json.dumps(dict(call.args)))
            for call in reply.tool_calls
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _finish_reason(self, reply: Reply) -> str:
        return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

    def _completion(self, reply: Reply, request: RecordedRequest) -> bytes:
        completion_id = self.state.next_id()
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.text or not reply.tool_calls else None,
            "refusal": None,
        }
        if reply.tool_calls:
            message["tool_calls"] = self._tool_call_dicts(reply, completion_id)
        body = {
            "id": f"chatcmpl-{completion_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish_reason(reply),
                }
            ],
            "usage": self._usage(reply, request),
            "system_fingerprint": None,
        }
        return json.dumps(body).encode()

    def _sse_events(self, reply: Reply, request: RecordedRequest) -> list[bytes]:
        completion_id = self.state.next_id()
        options = request.body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage"))
        base = {
            "id": f"chatcmpl-{completion_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.model,
            "system_fingerprint": None,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            data: dict[str, Any] = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                data["usage"] = None
            return data

        chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
        chunks += [chunk({"content": piece}) for piece in _CHUNK.findall(reply.text)]
        for index, call in enumerate(self._tool_call_dicts(reply, completion_id)):
            pieces = _split_args(call["function"]["arguments"])
            head = {**call, "index": index, "function": {"name": call["function"]["name"]}}
            head["function"]["arguments"] = ""
            chunks.append(chunk({"tool_calls": [head]}))
            chunks += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in pieces
            ]
        chunks.append(chunk({}, self._finish_reason(reply)))
        if include_usage:
            chunks.append({**base, "choices": [], "usage": self._usage(reply, request)})
        events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
        return [*events, b"data: [DONE]\n\n"]

    async def _embeddings(self, request: Request) -> Response:
        recorded = await self._record(request)
        refused = self._check(recorded, needs_model=True)
        if refused is not None:
            return refused
        with self.state.lock:
            fault = self.state.embedding_faults.popleft() if self.state.embedding_faults else None
        if fault is not None:
            return self._status(fault, recorded)
        raw_input = recorded.body.get("input")
        if isinstance(raw_input, str) or (
            isinstance(raw_input, list) and raw_input and isinstance(raw_input[0], int)
        ):
            items: list[Any] = [raw_input]
        elif isinstance(raw_input, list) and raw_input:
            items = raw_input
        else:
            return self._status(
                Fault.bad_request("'input' must be a non-empty string or list."), recorded
            )
        dimensions = int(recorded.body.get("dimensions") or self.embedding_dimensions)
        as_base64 = recorded.body.get("encoding_format") == "base64"
        data = []
        total = 0
        for index, item in enumerate(items):
            try:
                tokens = _embedding_tokens(item)
            except ValueError as exc:
                return self._status(Fault.bad_request(str(exc)), recorded)
            total += len(tokens)
            vector = _embed(tokens, dimensions)
            encoded: Any = vector
            if as_base64:
                encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return self._json(
            {
                "object": "list",
                "data": data,
                "model": recorded.model,
                "usage": {"prompt_tokens": total, "total_tokens": total},
            }
        )

    def _model_names(self) -> tuple[str, ...]:
        return self.models if self.models is not None else DEFAULT_MODELS

    @staticmethod
    def _model_entry(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": "weft"}

    async def _list_models(self, request: Request) -> Response:
        await self._record(request)
        return self._json(
            {"object": "list", "data": [self._model_entry(m) for m in self._model_names()]}
        )

    async def _get_model(self, request: Request) -> Response:
        recorded = await self._record(request)
        name = request.path_params["model"]
        if name not in self._model_names():
            about = RecordedRequest(
                recorded.method, recorded.path, recorded.headers, {"model": name}, 0.0
            )
            return self._status(Fault.unknown_model(), about)
        return self._json(self._model_entry(name))

    async def _script(self, request: Request) -> Response:
        payload = json.loads(await request.body())
        replies = [Reply.from_dict(r) for r in payload.get("replies", [])]
        faults = [Fault.from_dict(f) for f in payload.get("embedding_faults", [])]
        with self.state.lock:
            self.state.script.extend(replies)
            self.state.embedding_faults.extend(faults)
            pending = len(self.state.script)
        return self._json({"pending": pending})

    async def _requests(self, request: Request) -> Response:
        with self.state.lock:
            recorded = [r.to_dict() for r in self.state.requests]
        return self._json({"requests": recorded})


class _RawResponse:
    """An ASGI response that can send part of its body and then break the connection."""

    def __init__(self, parts: Sequence[bytes], media_type: str, fault: Fault | None) -> None:
        self.parts = list(parts)
        self.media_type = media_type
        self.fault = fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self.fault
        parts = self.parts
        streaming = self.media_type == "text/event-stream"
        if fault is not None and fault.kind == "malformed":
            if streaming:
                cut = min(fault.after_chunks, len(parts) - 1)
                parts = [
                    *parts[:cut],
                    b'data: {"id": "chatcmpl-broken", "choices": [\n\n',
                    *parts[cut:],
                ]
            else:
                parts = [parts[0][: len(parts[0]) // 2]]
        headers = [(b"content-type", self.media_type.encode())]
        if streaming:
            headers.append((b"cache-control", b"no-cache"))
        else:
            length = sum(len(p) for p in parts)
            headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if fault is not None and fault.kind == "drop":
            if streaming:
                sent = parts[: min(fault.after_chunks, len(parts) - 1)]
            else:
                sent = [parts[0][: len(parts[0]) // 2]]
            for part in sent:
                await send({"type": "http.response.body", "body": part, "more_body": True})
            raise _Dropped("connection dropped by a scripted Fault.drop()")
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
            if streaming:
                # Separate writes let the client see chunks one by one, as from a real provider.
                await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class OpenAIServer:
    """A scripted OpenAI-compatible server on ``127.0.0.1``, run in a background thread.

    Args:
        replies: The initial script, consumed one item per chat completion request.
        models: The model names it knows; a request for another gets OpenAI's 404
            ``model_not_found``. None accepts any model and lists :data:`DEFAULT_MODELS`.
        api_key: When set, requests without ``Authorization: Bearer <api_key>`` get a 401.
        default: The answer once the script is empty; an echo of the last user message.
        embedding_dimensions: Vector size when a request does not pass ``dimensions``.
        host: The interface to listen on.
        port: The port; 0 picks a free one.

    Example:
        >>> import openai
        >>> from weft.testing import Fault, OpenAIServer
        >>> with OpenAIServer([Fault.rate_limit(retry_after=0.01), "Hi!"]) as server:
        ...     client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...     reply = client.chat.completions.create(
        ...         model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        ...     )
        ...     attempts = len(server.requests)
        >>> reply.choices[0].message.content, attempts
        ('Hi!', 2)
    """

    def __init__(
        self,
        replies: Iterable[ReplyLike] = (),
        *,
        models: Sequence[str] | None = None,
        api_key: str | None = None,
        default: ReplyLike = _echo,
        embedding_dimensions: int = 64,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._state = _State(replies, default)
        self.app = _App(self._state, models, api_key, embedding_dimensions)
        """The ASGI app, e.g. for ``httpx.ASGITransport`` when no socket is wanted."""
        self._uvicorn = ThreadedUvicorn(
            self.app,
            host,
            port,
            name=_FEATURE,
            log_config=None,  # leave logging to the host (pytest captures it)
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        """Bind the port and serve in a daemon thread; returns once the server accepts requests."""
        if not self._uvicorn.running:
            logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)
            self._uvicorn.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port. Safe to call twice."""
        self._uvicorn.stop()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port; before the first :meth:`start`, the requested one."""
        return self._uvicorn.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self._uvicorn.url

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, what OpenAI clients take as ``base_url``."""
        return f"{self.url}/v1"

    # -- script and record -----------------------------------------------------------------

    def script(self, *replies: ReplyLike) -> OpenAIServer:
        """Append replies to the script; returns the server for chaining."""
        with self._state.lock:
            self._state.script.extend(replies)
        return self

    def fail_embeddings(self, *faults: Fault) -> OpenAIServer:
        """Answer the next embedding requests with these status faults, one each."""
        with self._state.lock:
            self._state.embedding_faults.extend(faults)
        return self

    @property
    def pending(self) -> int:
        """How many scripted chat replies are still unused."""
        with self._state.lock:
            return len(self._state.script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The requests whose path ends with ``path``, e.g. ``"/chat/completions"``."""
        return [r for r in self.requests if r.path.endswith(path)]

    def reset(self) -> None:
        """Forget the script, the embedding faults and the recorded requests."""
        with self._state.lock:
            self._state.script.clear()
            self._state.embedding_faults.clear()
            self._state.requests.clear()


class OpenAIServerProcess:
    """The same server in a child process, for code that must reach it from another process.

    Callables cannot cross the process boundary, so its script holds :class:`Reply`,
    :class:`Fault` and strings only.

    Example:
        >>> with OpenAIServerProcess(models=["gpt-4o-mini"]) as server:  # doctest: +SKIP
        ...     server.script("Hello from a child process")
        ...     run_my_app(OPENAI_BASE_URL=server.base_url)
        ...     assert server.requests[0].model == "gpt-4o-mini"
    """

    def __init__(
        self,
        *,
        models: Sequence[str] | None = None,
        api_key: str | None = None,
        embedding_dimensions: int = 64,
        port: int = 0,
        startup_timeout: float = 20.0,
    ) -> None:
        self._args = [
            "--port", str(port), "--embedding-dimensions", str(embedding_dimensions)
        ]  # fmt: skip
        if models is not None:
            self._args += ["--models", ",".join(models)]
        if api_key is not None:
            self._args += ["--api-key", api_key]
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        """``http://127.0.0.1:PORT`` once started."""

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` once started."""
        return f"{self.url}/v1"

    def start(self) -> OpenAIServerProcess:
        """Spawn ``python -m weft.testing._openai_server`` and wait for its READY line."""
        command = [sys.executable, "-m", "weft.testing._openai_server", *self._args]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        ready: list[str] = []
        reader = threading.Thread(
            target=lambda: ready.append(self._process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self._startup_timeout)
        line = ready[0] if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the OpenAI test server process did not start: {line!r}")
        self.url = line.split()[1].removesuffix("/v1")
        return self

    def stop(self) -> None:
        """Terminate the child process. Safe to call twice."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def __enter__(self) -> OpenAIServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def script(self, *replies: Reply | Fault | str) -> OpenAIServerProcess:
        """Append replies to the child's script."""
        import httpx

        items = [_as_reply(r).to_dict() for r in replies]
        httpx.post(f"{self.url}/_weft/script", json={"replies": items}).raise_for_status()
        return self

    def fail_embeddings(self, *faults: Fault) -> OpenAIServerProcess:
        """Answer the child's next embedding requests with these status faults."""
        import httpx

        items = [f.to_dict() for f in faults]
        httpx.post(f"{self.url}/_weft/script", json={"embedding_faults": items}).raise_for_status()
        return self

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request the child received so far, oldest first."""
        import httpx

        response = httpx.get(f"{self.url}/_weft/requests")
        response.raise_for_status()
        return [RecordedRequest.from_dict(r) for r in response.json()["requests"]]


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until interrupted; prints ``READY <base_url>`` once it accepts requests."""
    parser = argparse.ArgumentParser(
        prog="python -m weft.testing._openai_server",
        description="A scripted OpenAI-compatible server for tests (weft.testing.OpenAIServer).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--models", default=None, help="comma-separated model names")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--embedding-dimensions", type=int, default=64)
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else None
    server = OpenAIServer(
        models=models,
        api_key=args.api_key,
        embedding_dimensions=args.embedding_dimensions,
        host=args.host,
        port=args.port,
    )
    with server:
        print(f"READY {server.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal

    # terminate() sends SIGTERM; turn it into a clean shutdown that frees the port.
    signal.signal(signal.SIGTERM, _interrupt)
    main()

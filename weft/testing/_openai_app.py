"""The ASGI app behind :class:`~weft.testing.OpenAIServer`: the endpoints, the scripted
replies as OpenAI JSON and SSE, and the faults that break a response part way."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from weft.core._extras import import_optional
from weft.testing._openai_script import (
    Fault,
    RecordedRequest,
    Reply,
    ReplyLike,
    as_reply,
    content_text,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

    _Answer: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["DEFAULT_MODELS", "DROP_FILTER", "FEATURE", "App", "State"]

DEFAULT_MODELS: tuple[str, ...] = ("gpt-4o-mini", "text-embedding-3-small")
"""What ``GET /v1/models`` lists when the server was given no ``models``."""

FEATURE = "weft.testing.OpenAIServer"


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


def _prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    return sum(_count_tokens(content_text(m.get("content"))) for m in messages)


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


DROP_FILTER = _HideScriptedDrops()


class State:
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


class App:
    """The ASGI application; separate from the runner so it can serve in any host."""

    def __init__(
        self,
        state: State,
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
        applications = import_optional("starlette.applications", extra="server", feature=FEATURE)
        routing = import_optional("starlette.routing", extra="server", feature=FEATURE)
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
        responses = import_optional("starlette.responses", extra="server", feature=FEATURE)
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
            reply = as_reply(item(recorded) if callable(item) else item)
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

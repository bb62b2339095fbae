"""What a test scripts :class:`~weft.testing.OpenAIServer` with: replies, faults, tool calls,
and the requests it records."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "Fault",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "ToolCall",
    "as_reply",
    "content_text",
    "echo",
]


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
        >>> from weft.testing import OpenAIServer
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


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def echo(request: RecordedRequest) -> Reply:
    for message in reversed(request.messages):
        if message.get("role") == "user":
            return Reply(f"echo: {content_text(message.get('content'))}")
    return Reply("echo: (no user message)")


def as_reply(item: Reply | Fault | str) -> Reply:
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

"""The OpenAI-compatible chat completions surface: request model and response records.

Only what chat clients send and read is modelled; other request fields (temperature, tools...)
are accepted and ignored, since the RAG graph decides how it answers. Two fields would change
what comes back, so they are never ignored: ``n`` may only be 1 (one answer per request), and
``max_tokens`` / ``max_completion_tokens`` are refused (the answer is what the knowledge base
says, quoted whole); either is a 422 that names it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from weft.graphs.schema import ChatInput, ChatTurn, SourceRef

__all__ = ["CompletionRequest", "chat_input", "chunk", "completion", "new_id", "openai_usage"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = Field(default=False, strict=True)


class CompletionRequest(BaseModel):
    """``POST /v1/chat/completions``: the model is a graph name; the last message is a user's."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    # strict: "stream": "yes" or 1 is a mistake to report, not a value to guess at
    stream: bool = Field(default=False, strict=True)
    stream_options: _StreamOptions | None = None
    n: Any = None
    max_tokens: Any = None
    max_completion_tokens: Any = None

    @field_validator("n")
    @classmethod
    def _one_answer(cls, value: Any) -> Any:
        if value is not None and (type(value) is not int or value != 1):
            raise ValueError(f"n={value!r} is not supported: one answer per request; send n=1")
        return value

    @field_validator("max_tokens", "max_completion_tokens")
    @classmethod
    def _whole_answer(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError(
                "is not supported: the answer is quoted whole from the knowledge base; leave it out"
            )
        return value


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text") or "") for p in content if p.get("type") == "text")


def chat_input(request: CompletionRequest) -> ChatInput:
    """The question is the last message (a user's); earlier user and assistant turns are the
    history. System messages are dropped: the RAG graph has its own instructions.

    Raises ValueError (with the failing field) when the last message is not from the user."""
    *earlier, last = request.messages
    if last.role != "user":
        raise ValueError(f"messages.{len(request.messages) - 1}.role")
    history = [
        ChatTurn(role=m.role, content=_text(m.content))
        for m in earlier
        if m.role in ("user", "assistant") and _text(m.content)
    ]
    return ChatInput(question=_text(last.content), history=history)


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def openai_usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt = int(usage.get("input_tokens", 0) or 0)
    completion_tokens = int(usage.get("output_tokens", 0) or 0)
    total = int(usage.get("total_tokens", 0) or prompt + completion_tokens)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": total}


def _sources(sources: list[SourceRef]) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json") for s in sources]


def completion(
    cid: str,
    model: str,
    answer: str,
    usage: dict[str, Any],
    sources: list[SourceRef],
    fallback: bool = False,
) -> dict[str, Any]:
    """A ``chat.completion`` object; ``sources`` and ``fallback`` (the answer is the fallback
    model's, the chat model having failed) are weft's extra fields."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": openai_usage(usage),
        "sources": _sources(sources),
        "fallback": fallback,
    }


def chunk(
    cid: str,
    model: str,
    created: int,
    *,
    content: str | None = None,
    role: bool = False,
    finish: bool = False,
    usage: dict[str, Any] | None = None,
    sources: list[SourceRef] | None = None,
    fallback: bool | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; with ``usage`` it is the final, choice-less usage chunk.
    The finishing chunk carries weft's ``sources`` and ``fallback`` fields."""
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    if usage is not None:
        out["choices"] = []
        out["usage"] = openai_usage(usage)
        return out
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    out["choices"] = [
        {"index": 0, "delta": delta, "finish_reason": "stop" if finish else None, "logprobs": None}
    ]
    if sources is not None:
        out["sources"] = _sources(sources)
    if fallback is not None:
        out["fallback"] = fallback
    return out

"""What the OpenTelemetry GenAI semantic conventions call things: provider names, request
attributes, histogram buckets, ``error.type``, and messages as their JSON."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "DURATION_BUCKETS",
    "LS_PARAMS",
    "PARAMS",
    "PROVIDERS",
    "STEP_BUCKETS",
    "TOKEN_BUCKETS",
    "error_type",
    "genai_message",
    "genai_parts",
    "server_of",
    "to_json",
]

# langchain's ``ls_provider`` -> the GenAI conventions' well-known ``gen_ai.provider.name``.
PROVIDERS = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "google_genai": "gcp.gen_ai",
    "google_vertexai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
}

# invocation parameter -> request attribute
PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "n": "gen_ai.request.choice.count",
}
LS_PARAMS = {
    "ls_temperature": "gen_ai.request.temperature",
    "ls_max_tokens": "gen_ai.request.max_tokens",
}
_ROLES = {
    "human": "user",
    "HumanMessageChunk": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "system": "system",
    "SystemMessageChunk": "system",
    "tool": "tool",
    "ToolMessageChunk": "tool",
}

# Bucket advice from the GenAI conventions; graph and node latencies sit much lower.
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TOKEN_BUCKETS = tuple(4.0**i for i in range(14))
STEP_BUCKETS = (1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0)


def error_type(error: BaseException) -> str:
    """``error.type`` for an exception: its qualified class name, a node failure's cause's.

    Example:
        >>> error_type(TimeoutError()), error_type(ValueError("x"))
        ('TimeoutError', 'ValueError')
    """
    if type(error).__name__ == "NodeError" and error.__cause__ is not None:
        error = error.__cause__
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def server_of(url: Any) -> tuple[str, int] | None:
    """``(host, port)`` of a base URL, the port from its scheme when it names none."""
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url if "//" in url else f"//{url}")
    if not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port


def to_json(value: Any) -> str:
    """``value`` as JSON text, non-ASCII kept, anything else JSON lacks as its ``str``."""
    return json.dumps(value, ensure_ascii=False, default=str)


def genai_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as the conventions' text parts."""
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts = []
    for p in content or ():
        if isinstance(p, str):
            parts.append({"type": "text", "content": p})
        elif isinstance(p, dict) and p.get("type") == "text":
            parts.append({"type": "text", "content": p.get("text", "")})
    return parts


def genai_message(m: Any) -> dict[str, Any]:
    """A langchain message (or a prompt string) as the conventions' JSON: role and parts."""
    if isinstance(m, str):
        return {"role": "user", "parts": genai_parts(m)}
    msg_type = getattr(m, "type", "human")
    role = getattr(m, "role", None) if msg_type in ("chat", "ChatMessageChunk") else None
    out: dict[str, Any] = {"role": role or _ROLES.get(msg_type, msg_type)}
    parts = genai_parts(getattr(m, "content", ""))
    for call in getattr(m, "tool_calls", None) or ():
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": call["name"],
                "arguments": call["args"],
            }
        )
    if out["role"] == "tool":
        parts = [
            {
                "type": "tool_call_response",
                "id": getattr(m, "tool_call_id", None),
                "response": getattr(m, "content", ""),
            }
        ]
    out["parts"] = parts
    return out

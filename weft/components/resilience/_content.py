"""What counts as output a caller has seen, for the wrappers that act only before it.

Retry and fallback may start a stream over only while the caller has seen nothing of it, and a
``"first_chunk"`` timeout bounds the wait for the first real output. An OpenAI-compatible stream
opens with a chunk that carries only the role (``{"role": "assistant", "content": ""}``), and
some providers send empty keep-alive chunks: neither is output, so neither may end the window in
which a failed stream is retried or falls back. :class:`ContentGate` holds such chunks back
until a chunk with content arrives, then lets them through in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, merge_configs

__all__ = ["FALLBACK_KEY", "ContentGate", "ContentWatch", "RetryOn", "has_content", "matches"]

RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]
"""Exception types, or a predicate that gets the exception and says whether it applies."""

FALLBACK_KEY = "weft_fallback"
"""The ``response_metadata`` key a fallback sets to True on the messages it answers with."""


def matches(rule: RetryOn, exc: BaseException) -> bool:
    """Whether ``exc`` is an ``Exception`` that ``rule`` (types or a predicate) accepts."""
    if not isinstance(exc, Exception):
        return False
    return bool(rule(exc)) if callable(rule) else isinstance(exc, rule)


def has_content(chunk: Any) -> bool:
    """Whether a streamed chunk is output a caller would show: text, a tool call, or any value
    that is not a message, a string or None. A role-only or empty message chunk is not.

    Example:
        >>> from langchain_core.messages import AIMessageChunk
        >>> has_content(AIMessageChunk(content="")), has_content(AIMessageChunk(content="Hi"))
        (False, True)
    """
    if chunk is None:
        return False
    if isinstance(chunk, str):
        return bool(chunk)
    if isinstance(chunk, BaseMessage):
        calls = getattr(chunk, "tool_call_chunks", None) or getattr(chunk, "tool_calls", None)
        return bool(chunk.content) or bool(calls)
    return True


class ContentGate:
    """Holds a stream's chunks back until one has content, then passes everything through.

    Example:
        >>> gate = ContentGate()
        >>> gate.feed(""), gate.opened, gate.feed("Hi"), gate.opened
        ([], False, ['', 'Hi'], True)
    """

    def __init__(self) -> None:
        self.opened = False
        """Whether content has gone through: from then on the caller has seen output."""
        self._held: list[Any] = []

    def feed(self, chunk: Any) -> list[Any]:
        """The chunks to yield now: none while only empty ones came, else all held and this."""
        if self.opened:
            return [chunk]
        self._held.append(chunk)
        if not has_content(chunk):
            return []
        self.opened = True
        held, self._held = self._held, []
        return held

    def end(self) -> list[Any]:
        """The chunks still held when the stream ended without content."""
        held, self._held = self._held, []
        return held


class ContentWatch(BaseCallbackHandler):
    """Sees whether a chat model called under a config has streamed content to its callbacks.

    ``invoke`` returns nothing before it ends, yet a chat model invoked in a streamed graph run
    hands its tokens to the run's stream handler as they come: the caller may have seen them.
    Retry and fallback on ``invoke`` watch for that, as :class:`ContentGate` does for
    ``stream``, and stop acting once content has gone out.

    Example:
        >>> watch = ContentWatch()
        >>> watch.on_llm_new_token("", run_id=None), watch.opened
        (None, False)
        >>> watch.on_llm_new_token("Hi", run_id=None), watch.opened
        (None, True)
    """

    run_inline = True  # decided before the failure that follows is handled

    def __init__(self) -> None:
        self.opened = False

    def attach(self, config: RunnableConfig | None) -> RunnableConfig:
        """``config`` with this watch among its callbacks, inherited by every child run."""
        return merge_configs(ensure_config(config), {"callbacks": [self]})

    def on_llm_new_token(
        self, token: Any, *, chunk: Any = None, run_id: Any = None, **kwargs: Any
    ) -> None:
        message = getattr(chunk, "message", None)
        if has_content(message if message is not None else token):
            self.opened = True

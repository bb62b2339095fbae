"""A chat model that replies from a script: given answers and tool calls, offline, in order."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr, field_validator

__all__ = ["ScriptedChatModel"]


class ScriptedChatModel(BaseChatModel):
    """Replies with the next message of its script on every call; supports ``bind_tools``.

    A reply is a string (an answer) or an ``AIMessage`` (with ``tool_calls`` to call tools).
    Streaming yields the answer word by word and each tool call as ``tool_call_chunks`` whose
    arguments arrive in two pieces, as a provider streams them. Bound copies share the script.
    The messages of every call are kept in :attr:`received`.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> model = ScriptedChatModel(replies=[
        ...     AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1}, "id": "c1"}]),
        ...     "It is 3.",
        ... ])
        >>> model.invoke("add").tool_calls[0]["name"]
        'add'
        >>> "".join(str(c.content) for c in model.stream("and?"))
        'It is 3.'
    """

    replies: list[Any]
    """The replies, in the order the calls get them: strings or ``AIMessage``s."""

    _next: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _received: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @field_validator("replies")
    @classmethod
    def _messages(cls, replies: list[Any]) -> list[AIMessage]:
        out = []
        for i, reply in enumerate(replies):
            if isinstance(reply, str):
                reply = AIMessage(reply)
            if not isinstance(reply, AIMessage):
                raise ValueError(
                    f"reply {i} is a {type(reply).__name__}; a reply is a string (an answer) or "
                    f"an AIMessage (with tool_calls to call tools)"
                )
            out.append(reply)
        return out

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def received(self) -> list[list[BaseMessage]]:
        """The messages each call received, in call order."""
        return list(self._received)

    @property
    def remaining(self) -> int:
        """How many scripted replies are left."""
        return len(self.replies) - self._next

    def _take(self, messages: list[BaseMessage]) -> AIMessage:
        with self._lock:
            if self._next >= len(self.replies):
                raise IndexError(
                    f"ScriptedChatModel has no reply left for call {self._next + 1}: its script "
                    f"holds {len(self.replies)}; add a reply for every model call the run makes"
                )
            reply = self.replies[self._next]
            self._next += 1
            self._received.append(list(messages))
        return AIMessage.model_validate(reply.model_dump())

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._take(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._take(messages)
        text = reply.content if isinstance(reply.content, str) else ""
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == len(words) - 1 else word + " "
            if piece:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece, id=reply.id))
                if run_manager:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        for index, call in enumerate(reply.tool_calls):
            args = json.dumps(call["args"])
            half = len(args) // 2
            pieces = [
                tool_call_chunk(
                    name=call["name"], args=args[:half], id=call.get("id"), index=index
                ),
                tool_call_chunk(args=args[half:], index=index),
            ]
            for piece_ in pieces:
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(content="", id=reply.id, tool_call_chunks=[piece_])
                )
                if run_manager:
                    run_manager.on_llm_new_token("", chunk=chunk)
                yield chunk

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools as a provider model does; the script decides what is called."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

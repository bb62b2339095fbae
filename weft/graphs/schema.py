"""The records the RAG chat graph takes and returns, and the events its answer streams as.

The server, the CLI and the evals speak these types, so they are defined once, here.

Example:
    >>> ChatInput(question="  What is weft?  ").question
    'What is weft?'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel, Field, field_validator

__all__ = [
    "ChatDone",
    "ChatEvent",
    "ChatInput",
    "ChatOutput",
    "ChatSources",
    "ChatToken",
    "ChatTurn",
    "ChatUsage",
    "SourceRef",
]


class ChatTurn(BaseModel):
    """One earlier message of the conversation."""

    role: Literal["user", "assistant"]
    content: str


class ChatInput(BaseModel):
    """A question, optionally in a conversation (``session_id``) or with explicit history."""

    question: str = Field(description="the user's question; not empty")
    session_id: str | None = Field(default=None, description="continues a conversation")
    history: list[ChatTurn] = Field(default_factory=list, description="earlier turns, if any")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the question is empty; ask something")
        return value


class SourceRef(BaseModel):
    """A source an answer may cite as ``[index]``."""

    index: int
    id: str
    title: str | None = None
    source: str | None = None
    snippet: str = ""
    score: float | None = None


class ChatOutput(BaseModel):
    """The answer, the sources it was given (cited by their index), and token usage.

    ``usage`` has ``input_tokens``, ``output_tokens``, ``total_tokens`` and ``estimated``.
    """

    answer: str
    sources: list[SourceRef] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)
    fallback: bool = False
    """True when the chat model failed before its first token and its fallback (for
    ``weft serve``, the offline extractive model) answered instead."""


@dataclass(frozen=True)
class ChatToken:
    """A piece of the answer, as the model produces it."""

    text: str


@dataclass(frozen=True)
class ChatSources:
    """The sources the answer is built on; sent before the first token."""

    sources: list[SourceRef]


@dataclass(frozen=True)
class ChatUsage:
    """Token usage of the whole run."""

    usage: dict[str, Any]


@dataclass(frozen=True)
class ChatDone:
    """The run finished; the whole output."""

    output: ChatOutput


ChatEvent = Union[ChatToken, ChatSources, ChatUsage, ChatDone]  # noqa: UP007

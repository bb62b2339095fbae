"""Prompts whose variables are known when the graph is built, and a context packer for RAG.

* :func:`chat_prompt` builds a langchain-core ``ChatPromptTemplate``; its required variables
  are fixed at build time, and :func:`prompt_input_type` turns them into a ``TypedDict`` so a
  graph's compile step reports an edge that does not provide one of them.
* :class:`ContextPacker` turns ranked documents into numbered context that fits a token
  budget, keeping each source's id, title, source and score so an answer can show them. Its
  text is exactly what :func:`weft.components.models.format_sources` writes (and
  :class:`~weft.components.models.ExtractiveChatModel` reads)::

      [1] Paris guide: Paris is the capital of France.
      [2] Berlin is the capital of Germany.

Example:
    >>> from langchain_core.documents import Document
    >>> prompt = chat_prompt(("system", "Answer from:\\n{context}"), ("human", "{question}"))
    >>> sorted(prompt_input_type(prompt).__annotations__)
    ['context', 'question']
    >>> packed = ContextPacker(max_tokens=50).invoke([Document("Paris is in France.")])
    >>> packed.text
    '[1] Paris is in France.'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.prompts.chat import MessageLikeRepresentation
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel, ConfigDict, Field

from weft.components.models import format_sources
from weft.components.tokens import count_tokens, count_tokens_around, truncate_to_tokens
from weft.core.component import prompt_input_type
from weft.core.errors import ConfigurationError

__all__ = [
    "ContextPacker",
    "PackedContext",
    "PackedSource",
    "chat_prompt",
    "pack_context",
    "prompt_input_type",
    "required_variables",
]

Truncate = Literal["sentence", "token", "drop"]

# A sentence ends at . ! ? (or their CJK forms), optionally followed by a closing quote or
# bracket; the cut keeps the punctuation.
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*(?=\s|$)")


def chat_prompt(
    *messages: MessageLikeRepresentation, partial: Mapping[str, Any] | None = None
) -> ChatPromptTemplate:
    """A ``ChatPromptTemplate`` from ``(role, template)`` pairs, messages or placeholders.

    ``partial`` fills variables now; they are then no longer required from the graph.

    Example:
        >>> p = chat_prompt(("system", "You are {persona}."), ("human", "{question}"),
        ...                 partial={"persona": "terse"})
        >>> required_variables(p)
        ['question']
    """
    if not messages:
        raise ConfigurationError(
            "chat_prompt needs at least one message, e.g. chat_prompt(('human', '{question}'))"
        )
    template = ChatPromptTemplate.from_messages(list(messages))
    if partial:
        unknown = sorted(set(partial) - set(template.input_variables))
        if unknown:
            raise ConfigurationError(
                f"chat_prompt partial sets {unknown}, which the template does not use; its "
                f"variables are {sorted(template.input_variables)}"
            )
        template = template.partial(**dict(partial))
    return template


def required_variables(template: ChatPromptTemplate) -> list[str]:
    """The variables a run must provide: neither partial nor optional, sorted."""
    return sorted(prompt_input_type(template).__annotations__)


class PackedSource(BaseModel):
    """One numbered source in a :class:`PackedContext`, as an answer's citation shows it."""

    model_config = ConfigDict(frozen=True)

    index: int
    """Its number in the context: cited as ``[index]``."""
    id: str | None = None
    title: str | None = None
    source: str | None = None
    score: float | None = None
    truncated: bool = False
    """Whether only the start of the document fit in the budget."""


class PackedContext(BaseModel):
    """Numbered context text, the sources in it, and its size in tokens.

    Example:
        >>> PackedContext(text="[1] A.", sources=[PackedSource(index=1)], tokens=4).sources[0].index
        1
    """

    model_config = ConfigDict(frozen=True)

    text: str
    sources: list[PackedSource] = Field(default_factory=list)
    tokens: int = 0
    """Tokens of ``text`` in the packer's model's encoding. A prompt built around the text can
    reuse it rather than encode the text again
    (:func:`~weft.components.tokens.count_tokens_around`)."""
    dropped: int = 0
    """Documents left out: duplicates and those that did not fit."""

    def __str__(self) -> str:
        return self.text


def _metadata_str(doc: Document, key: str) -> str | None:
    value = doc.metadata.get(key)
    return None if value is None else str(value)


def _score(doc: Document) -> float | None:
    value = doc.metadata.get("score")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _sentence_prefix(text: str) -> str:
    """The longest prefix of ``text`` that ends a sentence, or '' if none does."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]] if ends else ""


def pack_context(
    documents: Sequence[Document | str],
    max_tokens: int,
    *,
    truncate: Truncate = "sentence",
    model: str | None = None,
) -> PackedContext:
    """Number ``documents`` (best first) into context that is at most ``max_tokens`` tokens.

    Greedy in rank order: documents are added whole while they fit. The first one that does
    not fit is cut (``truncate="sentence"``: after the last whole sentence that fits;
    ``"token"``: at the last token that fits) or dropped (``"drop"``, or when not even one
    sentence fits), and packing stops there, so the numbers keep the ranking. Duplicate
    chunks (same text, whitespace aside) are packed once, at their best rank.

    Example:
        >>> docs = [Document("A b.", metadata={"title": "T", "score": 0.9}), Document("A  b.")]
        >>> packed = pack_context(docs, max_tokens=100)
        >>> packed.text, packed.sources[0].title, packed.dropped
        ('[1] T: A b.', 'T', 1)
    """
    if max_tokens < 1:
        raise ConfigurationError(f"context max_tokens must be >= 1, got {max_tokens}")
    if truncate not in ("sentence", "token", "drop"):
        raise ConfigurationError(
            f"truncate must be 'sentence', 'token' or 'drop', got {truncate!r}"
        )
    seen: set[str] = set()
    unique: list[Document] = []
    for item in documents:
        doc = Document(page_content=item) if isinstance(item, str) else item
        body = " ".join(doc.page_content.split())
        if not body or body in seen:
            continue
        seen.add(body)
        unique.append(doc.model_copy(update={"page_content": body}))

    # Each source is one line; the context is the lines joined by newlines. Its count grows by
    # what each new line adds (count_tokens_around), so no source is encoded more than once.
    packed: list[Document] = []
    text = ""
    tokens = 0

    def size(line: str) -> int:
        """Tokens of the context with ``line`` as its next line."""
        if not packed:
            return count_tokens(line, model)
        return count_tokens_around(text, tokens, after="\n" + line, model=model)

    truncated = False
    for doc in unique:
        number = len(packed) + 1
        line = _source_line(number, doc)
        fits = size(line)
        if fits > max_tokens:
            cut = _cut_to_fit(number, doc, max_tokens, truncate, size, model)
            if cut is None:
                break
            (doc, line, fits), truncated = cut, True
        text = f"{text}\n{line}" if packed else line
        tokens = fits
        packed.append(doc)
        if truncated:
            break

    sources = [
        PackedSource(
            index=number,
            id=doc.id,
            title=_metadata_str(doc, "title"),
            source=_metadata_str(doc, "source"),
            score=_score(doc),
            truncated=truncated and number == len(packed),
        )
        for number, doc in enumerate(packed, start=1)
    ]
    return PackedContext(
        text=text,
        sources=sources,
        tokens=tokens,
        dropped=len(documents) - len(packed),
    )


def _source_line(number: int, doc: Document) -> str:
    """``doc`` as source ``number``: the line :func:`format_sources` writes for it."""
    return f"[{number}]{format_sources([doc])[3:]}"


def _cut_to_fit(
    number: int,
    doc: Document,
    max_tokens: int,
    truncate: Truncate,
    size: Callable[[str], int],
    model: str | None,
) -> tuple[Document, str, int] | None:
    """The longest start of ``doc`` that still fits as source ``number``, the context's next
    line: that document, its line and the context's size with it; or None."""
    if truncate == "drop":
        return None
    # Tokens do not add up exactly across the join and the "[n] title: " head, so start from
    # an estimate and shrink until the whole context fits.
    room = max_tokens - size(_source_line(number, doc.model_copy(update={"page_content": ""}))) + 1
    body = doc.page_content
    while room > 0:
        prefix = truncate_to_tokens(body, room, model).rstrip()
        if truncate == "sentence":
            prefix = _sentence_prefix(prefix)
        if not prefix:
            return None
        candidate = doc.model_copy(update={"page_content": prefix})
        line = _source_line(number, candidate)
        fits = size(line)
        if fits <= max_tokens:
            return candidate, line, fits
        room = min(room, count_tokens(prefix, model)) - 1
    return None


class ContextPacker(Runnable[list[Document], PackedContext]):
    """A component: ranked ``list[Document]`` in, :class:`PackedContext` out (see
    :func:`pack_context` for how it fits the budget).

    Put ``.text`` into the prompt's context variable and show ``.sources`` with the answer.

    Example:
        >>> packer = ContextPacker(max_tokens=30)
        >>> packer.invoke([Document("One.", metadata={"source": "a.md"}), "Two."]).text
        '[1] a.md: One.\\n[2] Two.'
    """

    def __init__(
        self,
        max_tokens: int = 3000,
        *,
        truncate: Truncate = "sentence",
        model: str | None = None,
        name: str | None = None,
    ) -> None:
        if max_tokens < 1:
            raise ConfigurationError(f"ContextPacker max_tokens must be >= 1, got {max_tokens}")
        self.max_tokens = max_tokens
        self.truncate: Truncate = truncate
        self.model = model
        self.name = name

    @property
    def InputType(self) -> Any:
        return list[Document]

    @property
    def OutputType(self) -> Any:
        return PackedContext

    def invoke(
        self, input: list[Document], config: RunnableConfig | None = None, **kwargs: Any
    ) -> PackedContext:
        return self._call_with_config(
            lambda docs: pack_context(
                docs, self.max_tokens, truncate=self.truncate, model=self.model
            ),
            input,
            config,
        )

    async def ainvoke(
        self, input: list[Document], config: RunnableConfig | None = None, **kwargs: Any
    ) -> PackedContext:
        # Packing is quick CPU work; a thread hop would cost more than it saves.
        return self.invoke(input, config, **kwargs)

"""``answer_with_citations``: a question and documents in, an answer citing numbered sources out.

::

    START -> read -> pack -> prompt -> generate -> cite -> END

* **pack** numbers the documents ``[1]``, ``[2]``... within ``context_tokens`` tokens
  (:class:`~weft.components.prompts.ContextPacker`).
* **prompt** puts them under :data:`SYSTEM_PROMPT`, which asks for a citation after each
  sentence and for :data:`~weft.components.models.NO_ANSWER` when the sources do not answer.
* **generate** is the chat model; its tokens stream. Offline it is the extractive model
  (:class:`~weft.components.models.ExtractiveChatModel`), which quotes the sentences most
  relevant to the question, each with its citation, and never invents.
* **cite** builds the :class:`CitedAnswer`: the answer, the sources it cites (by the numbers
  in its text, in the order of the context), every packed source, and the usage.

Example:
    >>> chain = answer_with_citations()
    >>> docs = [Document("Paris is the capital of France.", metadata={"source": "fr.md"})]
    >>> out = chain.invoke(CitationRequest("What is the capital of France?", docs))
    >>> out.answer, [s.source for s in out.sources]
    ('Paris is the capital of France. [1]', ['fr.md'])
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypedDict

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable

from weft.chains.condense import usage_of
from weft.components.models import NO_ANSWER, ExtractiveChatModel
from weft.components.prompts import ContextPacker, PackedContext, PackedSource
from weft.components.resilience import is_fallback_answer
from weft.components.tokens import count_message_tokens, count_tokens, count_tokens_around
from weft.core.compiled import CompiledGraph
from weft.core.graph import END, START, Graph

__all__ = [
    "SYSTEM_PROMPT",
    "CitationRequest",
    "CitedAnswer",
    "answer_with_citations",
    "cited_indices",
    "cited_sources",
    "citation_messages",
    "citation_prompt_tokens",
    "estimated_usage",
]

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources below. After each sentence, cite the "
    "sources it comes from as [n]. If the sources do not answer the question, reply exactly: "
    + NO_ANSWER
)
"""The system prompt the answering model works under."""

_SOURCES_HEAD = "Sources:\n"
_QUESTION_HEAD = "\n\nQuestion: "
_CITATION = re.compile(r"\[(\d+)\]")


@dataclass(frozen=True)
class CitationRequest:
    """What :func:`answer_with_citations` takes: the question and the ranked documents."""

    question: str
    documents: Sequence[Document] = ()


@dataclass(frozen=True)
class CitedAnswer:
    """An answer, the sources it cites, every source it was given, and the token usage.

    ``usage`` is the model's report, or an estimate counted with tiktoken (then ``estimated``
    is true). ``fallback`` is true when a fallback model answered in place of the configured one.
    """

    answer: str
    sources: list[PackedSource] = field(default_factory=list)
    context: PackedContext = field(default_factory=lambda: PackedContext(text=""))
    usage: dict[str, Any] = field(default_factory=dict)
    fallback: bool = False


def citation_messages(packed: PackedContext, question: str) -> list[BaseMessage]:
    """The prompt: :data:`SYSTEM_PROMPT`, then the numbered sources and the question.

    Example:
        >>> citation_messages(PackedContext(text="[1] Cats purr."), "Do cats purr?")[1].content
        'Sources:\\n[1] Cats purr.\\n\\nQuestion: Do cats purr?'
    """
    return [
        SystemMessage(SYSTEM_PROMPT),
        HumanMessage(f"{_SOURCES_HEAD}{packed.text}{_QUESTION_HEAD}{question}"),
    ]


@cache
def _frame_tokens() -> int:
    """The prompt's tokens other than its human message's text: framing, roles, system prompt."""
    return count_message_tokens([SystemMessage(SYSTEM_PROMPT), HumanMessage("")])


def citation_prompt_tokens(packed: PackedContext, question: str) -> int:
    """``count_message_tokens(citation_messages(packed, question))``, without encoding the
    packed context again: the packer already counted it (``packed.tokens``). The human
    message's count is remembered, so a model that counts its prompt (the extractive one, for
    its usage) does not encode it again either."""
    if packed.text and not packed.tokens:  # not counted: built by hand
        return count_message_tokens(citation_messages(packed, question))
    human = count_tokens_around(
        packed.text,
        packed.tokens,
        before=_SOURCES_HEAD,
        after=_QUESTION_HEAD + question,
        remember=True,
    )
    return _frame_tokens() + human


def cited_indices(answer: str) -> list[int]:
    """The source numbers ``answer`` cites as ``[n]``, each once, in the order first cited.

    Example:
        >>> cited_indices("Cats purr. [2] They sleep a lot. [1][2]")
        [2, 1]
    """
    return list(dict.fromkeys(int(n) for n in _CITATION.findall(answer)))


def cited_sources(answer: str, sources: Sequence[PackedSource]) -> list[PackedSource]:
    """The ``sources`` that ``answer`` cites, in their context order; numbers that name no
    source are left out."""
    cited = set(cited_indices(answer))
    return [s for s in sources if s.index in cited]


def estimated_usage(message: AIMessage, prompt_tokens: int) -> dict[str, Any]:
    """The message's reported usage, or one counted with tiktoken (``estimated`` true)."""
    reported = usage_of(message)
    if reported is not None:
        return {**reported, "estimated": False}
    completion = count_tokens(message.text)
    return {
        "input_tokens": prompt_tokens,
        "output_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "estimated": True,
    }


class _State(TypedDict, total=False):
    question: str
    packed: PackedContext


def answer_with_citations(
    model: BaseChatModel | Runnable[Any, Any] | None = None,
    *,
    embeddings: Embeddings | None = None,
    context_tokens: int = 3000,
    name: str = "answer_with_citations",
) -> CompiledGraph[CitationRequest, CitedAnswer]:
    """Compile the chain: :class:`CitationRequest` in, :class:`CitedAnswer` out.

    Args:
        model: the chat model that answers; None for the offline extractive model, which
            quotes the most relevant sentences with their citations and refuses with
            :data:`~weft.components.models.NO_ANSWER` when none is relevant enough.
        embeddings: given to the extractive model (when it answers), so that a sentence that
            says the same thing in other words still counts as relevant.
        context_tokens: the budget the numbered sources are packed into.
        name: the compiled chain's name.
    """
    chat_model = model if model is not None else ExtractiveChatModel()
    if isinstance(chat_model, ExtractiveChatModel) and chat_model.embeddings is None:
        chat_model = chat_model.model_copy(update={"embeddings": embeddings})

    def read(request: CitationRequest) -> CitationRequest:
        return request

    def documents(request: CitationRequest, state: _State) -> list[Document]:
        return list(request.documents)

    def prompt(packed: PackedContext, state: _State) -> list[BaseMessage]:
        return citation_messages(packed, state.get("question") or "")

    def cite(message: AIMessage, state: _State) -> CitedAnswer:
        packed = state.get("packed") or PackedContext(text="")
        text = message.text.strip()
        tokens = citation_prompt_tokens(packed, state.get("question") or "")
        return CitedAnswer(
            answer=text,
            sources=cited_sources(text, packed.sources),
            context=packed,
            usage=estimated_usage(message, tokens),
            fallback=is_fallback_answer(message),
        )

    g = Graph[CitationRequest, CitedAnswer](name, state=_State)
    g.add_node("read", read, post=lambda request, state: {"question": request.question})
    g.add_node(
        "pack",
        ContextPacker(context_tokens, name="pack"),
        pre=documents,
        post=lambda packed, state: {"packed": packed},
    )
    g.add_node("prompt", prompt)
    g.add_node("generate", chat_model)
    g.add_node("cite", cite)
    g.add_edge(START, "read").add_edge("read", "pack").add_edge("pack", "prompt")
    g.add_edge("prompt", "generate").add_edge("generate", "cite").add_edge("cite", END)
    return g.compile()

"""``condense_question``: a conversation's history and a follow-up in, a standalone question out.

Retrieval needs a question that stands alone: "and for the larger model?" finds nothing by
itself. With a chat model, the model rewrites the follow-up. Offline (no model, or the
extractive one, which only quotes) the rule of :func:`condense_heuristic` applies: a question is
a follow-up when it opens like a continuation ("what about returns?"), points back with a
pronoun ("is it waterproof?"), or has no content word of its own that finds anything; a
follow-up borrows the previous question's content words. A self-contained question is never
rewritten offline, whatever its length.

Example:
    >>> chain = condense_question()
    >>> earlier = [Turn("user", "How much does the Orbit cost?"), Turn("assistant", "EUR 149.")]
    >>> chain.invoke(CondenseInput("And the warranty?", earlier)).query
    'And the warranty? Orbit cost'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig

from weft.components._answering import focus_of, question_form
from weft.components.models import ExtractiveChatModel
from weft.components.resilience import is_fallback_answer
from weft.components.tokens import count_message_tokens, count_tokens
from weft.core.component import TypedLambda, lambda_

__all__ = [
    "CONDENSE_PROMPT",
    "CondenseInput",
    "Condensed",
    "Turn",
    "TurnLike",
    "condense_heuristic",
    "condense_question",
    "is_follow_up",
    "usage_of",
]

CONDENSE_PROMPT = (
    "Rewrite the user's follow-up question as one standalone question that can be understood "
    "without the conversation. Keep its language. Reply with the question only."
)
"""The system prompt a chat model rewrites a follow-up under."""


class TurnLike(Protocol):
    """One turn of a conversation: a role (``user`` or ``assistant``) and its text."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


@dataclass(frozen=True)
class Turn:
    """A plain conversation turn; any object with ``role`` and ``content`` works as well."""

    role: str
    content: str


@dataclass(frozen=True)
class CondenseInput:
    """What :func:`condense_question` takes: the new question and the turns before it.

    A turn is any :class:`TurnLike` (a :class:`Turn`, the RAG graph's ``ChatTurn``) or a dict
    with ``role`` and ``content``; the field is typed ``Any`` so that a graph whose input this is
    can still check it with pydantic, which cannot check a protocol.
    """

    question: str
    history: Sequence[Any] = ()


@dataclass(frozen=True)
class Condensed:
    """The user's question, the standalone query retrieval and generation use, the usage of
    the model call that rewrote it (empty when no model was called), and the words the offline
    rule borrowed from the earlier turns (``topic``; empty when it borrowed none, and with a
    model, which rewrites the question instead). Offline, ``query`` is ``question`` followed
    by ``topic``."""

    question: str
    query: str
    usage: dict[str, int] = field(default_factory=dict)
    topic: str = ""


_WORD = re.compile(r"[^\W_][\w'.-]*[^\W_]|[^\W_]")
# Words that point back at something named earlier: "is it waterproof?", "the bigger one?".
_ANAPHORS = frozenset(
    [
        "it",
        "its",
        "it's",
        "they",
        "them",
        "their",
        "theirs",
        "those",
        "these",
        "he",
        "she",
        "him",
        "her",
        "his",
        "one",
        "ones",
        "same",
    ]
)
# Pronouns that keep the earlier subject ("is it waterproof?"), unlike "one" or "same", which
# put a new subject in its place ("and the bigger one?").
_PERSONAL = frozenset(["it", "its", "it's", "they", "them", "their", "theirs", "he", "she", "him"])
# "this" and "that" point back only when they stand alone ("is that free?"), not before a noun
# ("does that lamp dim?" names its topic).
_DEMONSTRATIVES = frozenset(["this", "that"])
# Openings that continue the previous question with a new detail: "and for the larger model?",
# "what about returns?", "how about the Max?".
_CONTINUATIONS = re.compile(
    r"^\s*(?:and|also|or|but|then|so|what\s+about|how\s+about|what\s+if|same\s+for|"
    r"and\s+what\s+about|and\s+how\s+about)\b",
    re.IGNORECASE,
)
_STOP = (
    _ANAPHORS
    | _DEMONSTRATIVES
    | frozenset(
        [
            "a",
            "an",
            "the",
            "and",
            "or",
            "but",
            "if",
            "of",
            "to",
            "in",
            "on",
            "at",
            "by",
            "for",
            "with",
            "from",
            "as",
            "is",
            "are",
            "was",
            "were",
            "be",
            "been",
            "being",
            "do",
            "does",
            "did",
            "doing",
            "have",
            "has",
            "had",
            "can",
            "could",
            "should",
            "would",
            "will",
            "shall",
            "may",
            "might",
            "must",
            "what",
            "which",
            "who",
            "whom",
            "whose",
            "when",
            "where",
            "why",
            "how",
            "i",
            "me",
            "my",
            "we",
            "our",
            "you",
            "your",
            "there",
            "here",
            "about",
            "into",
            "than",
            "then",
            "so",
            "not",
            "no",
            "yes",
            "also",
            "too",
            "very",
            "just",
            "more",
            "most",
            "much",
            "many",
            "some",
            "any",
            "all",
            "each",
            "please",
            "tell",
            "explain",
            "describe",
            "show",
            "give",
            "know",
            "let",
            "use",
            "using",
            "used",
            "done",
            "get",
            "got",
            "again",
            "else",
            "other",
            "another",
        ]
    )
)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _points_back(words: Sequence[str]) -> bool:
    for i, word in enumerate(words):
        if word in _ANAPHORS:
            return True
        if word == "there" and not _existential(words, i):
            return True  # "can you ship there?", not "is there a discount?"
        if word in _DEMONSTRATIVES:
            after = words[i + 1] if i + 1 < len(words) else None
            if after is None or after in _STOP:
                return True
    return False


_BE = frozenset(["is", "are", "was", "were", "be", "been"])


def _existential(words: Sequence[str], i: int) -> bool:
    before = words[i - 1] if i > 0 else None
    after = words[i + 1] if i + 1 < len(words) else None
    return before in _BE or after in _BE


def is_follow_up(
    question: str, previous: str, *, retrieves: Callable[[str], bool] | None = None
) -> bool:
    """Whether ``question`` continues ``previous`` rather than starting a new topic.

    It does when it opens like a continuation ("and for the larger model?", "what about
    returns?"), points back with a pronoun ("is it waterproof?", "the bigger one?"), or has no
    content word of its own that ``retrieves`` anything (every word being a stop word, or unknown
    to the knowledge base). Its length does not matter: "How do I factory reset the Orbit?"
    after "Does the lamp work with HomeKit?" is a new topic.

    Example:
        >>> is_follow_up("And for the larger model?", "How much does the Orbit cost?")
        True
        >>> is_follow_up("How do I install weft?", "What is BM25?")
        False
    """
    if not previous.strip():
        return False
    words = _words(question)
    if _CONTINUATIONS.match(question) or _points_back(words):
        return True
    content = [w for w in words if w not in _STOP]
    if not content:
        return True
    return retrieves is not None and not any(retrieves(w) for w in content)


def _has_own_topic(words: Sequence[str], retrieves: Callable[[str], bool] | None) -> bool:
    content = [w for w in words if w not in _STOP]
    return bool(content) and (retrieves is None or any(retrieves(w) for w in content))


def _topic_words(question: str) -> list[str]:
    """The content words of ``question`` that name its topic: not stop words, not the word
    after "how", which names what is asked ("how long", "how heavy"), not what about, and not
    the words that say which kind of answer it asks for ("email address", "what year"): after
    "What is the email address?", "And the phone number?" borrows nothing."""
    words = _WORD.findall(question)
    form = question_form(focus_of(question))
    return [
        w
        for i, w in enumerate(words)
        if w.lower() not in _STOP
        and w.lower() not in form
        and not (i > 0 and words[i - 1].lower() == "how")
    ]


def condense_heuristic(
    question: str,
    history: Sequence[TurnLike],
    *,
    retrieves: Callable[[str], bool] | None = None,
) -> str:
    """The offline condense rule: a follow-up borrows the previous question's key terms.

    A question that :func:`is_follow_up` of the previous user question becomes itself followed
    by the content words of that question (itself condensed the same way, so a third turn still
    reaches the first topic) that it lacks. Any other question stands alone, unchanged.
    ``retrieves(word)`` says whether a word finds anything in the knowledge base.

    Example:
        >>> earlier = [Turn(role="user", content="What is weft?")]
        >>> condense_heuristic("How do I install it?", earlier)
        'How do I install it? weft'
        >>> condense_heuristic("How do I install weft?", [Turn(role="user", content="BM25?")])
        'How do I install weft?'
    """
    return _offline(question, history, retrieves).query


def _borrowed(
    question: str, history: Sequence[TurnLike], retrieves: Callable[[str], bool] | None
) -> list[str]:
    """The words :func:`condense_heuristic` adds to ``question``, in order; none for a
    question that stands alone."""
    users = [i for i, t in enumerate(history) if t.role == "user"]
    if not users:
        return []
    last = users[-1]
    previous = condense_heuristic(history[last].content, history[:last], retrieves=retrieves)
    if not is_follow_up(question, previous, retrieves=retrieves):
        return []
    words = _words(question)
    have = set(words)
    topic = _topic_words(previous)
    names = [w for w in _WORD.findall(previous)[1:] if w[:1].isupper() and w in topic]
    if names and _PERSONAL & have and _has_own_topic(words, retrieves):
        # "And the warranty on it?" asks something new about what "it" named before: the
        # previous question's names, not what it asked about them ("cost").
        topic = [w for w in topic if w in names]
    return [
        w
        for w in dict.fromkeys(topic)
        if w.lower() not in have and (retrieves is None or retrieves(w.lower()))
    ]


def _offline(
    question: str, history: Sequence[TurnLike], retrieves: Callable[[str], bool] | None
) -> Condensed:
    topic = " ".join(_borrowed(question, history, retrieves))
    return Condensed(question, f"{question} {topic}".strip() if topic else question, topic=topic)


# -- with a model ----------------------------------------------------------------------------------


def usage_of(message: Any) -> dict[str, int] | None:
    """A message's reported token usage (input, output, total), or None when it reports none."""
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None
    return {
        "input_tokens": int(usage.get("input_tokens", 0)),
        "output_tokens": int(usage.get("output_tokens", 0)),
        "total_tokens": int(usage.get("total_tokens", 0)),
    }


def _rewrite(
    model: Runnable[Any, Any],
    request: CondenseInput,
    config: RunnableConfig | None,
    retrieves: Callable[[str], bool] | None,
) -> Condensed:
    conversation = "\n".join(f"{t.role}: {t.content}" for t in request.history)
    messages: list[BaseMessage] = [
        SystemMessage(CONDENSE_PROMPT),
        HumanMessage(f"Conversation:\n{conversation}\n\nFollow-up question: {request.question}"),
    ]
    reply = model.invoke(messages, config)
    if is_fallback_answer(reply):  # the offline stand-in answers questions; it cannot rewrite
        return _offline(request.question, request.history, retrieves)
    text = reply.text.strip() if isinstance(reply, AIMessage) else ""
    usage = usage_of(reply)
    if usage is None:
        prompt, completion = count_message_tokens(messages), count_tokens(text)
        usage = {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
            "estimated": 1,
        }
    return Condensed(request.question, text or request.question, usage)


def _turns(history: Sequence[TurnLike | Mapping[str, str]]) -> list[TurnLike]:
    return [
        Turn(str(t.get("role", "")), str(t.get("content", ""))) if isinstance(t, Mapping) else t
        for t in history
    ]


def condense_question(
    model: BaseChatModel | Runnable[Any, Any] | None = None,
    *,
    retrieves: Callable[[str], bool] | None = None,
    name: str = "condense_question",
) -> TypedLambda:
    """A component: :class:`CondenseInput` (question and history) in, :class:`Condensed` out.

    Without history the question is the query. With ``model`` (any chat model but the
    extractive one), the model rewrites a follow-up under :data:`CONDENSE_PROMPT`, and
    ``Condensed.usage`` is its usage (estimated with tiktoken, marked ``estimated``, when it
    reports none); when the model answers through a fallback, the offline rule applies instead.
    Without one, :func:`condense_heuristic` applies. History turns may be objects with ``role``
    and ``content`` or dicts with those keys.

    Args:
        model: the chat model that rewrites follow-ups; None for the offline rule.
        retrieves: ``retrieves(word)`` says whether a word finds anything in the knowledge
            base; a question none of whose content words does is a follow-up.
        name: the component's name.

    Example:
        >>> condense_question().invoke(CondenseInput("What is BM25?")).query
        'What is BM25?'
    """
    rewriter = None if model is None or isinstance(model, ExtractiveChatModel) else model

    def condense(request: CondenseInput, config: RunnableConfig) -> Condensed:
        history = _turns(request.history)
        if not history:
            return Condensed(request.question, request.question)
        request = CondenseInput(request.question, history)
        if rewriter is None:
            return _offline(request.question, history, retrieves)
        return _rewrite(rewriter, request, config, retrieves)

    return lambda_(condense, input_type=CondenseInput, output_type=Condensed, name=name)

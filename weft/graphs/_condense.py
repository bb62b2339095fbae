"""The offline condense rule of the RAG chat graph: is a question a follow-up, and if so what
standalone question it stands for. :mod:`weft.graphs.rag` uses it with the extractive model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from weft.graphs.schema import ChatTurn

__all__ = ["condense_heuristic", "is_follow_up"]

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


def condense_heuristic(
    question: str, history: Sequence[ChatTurn], *, retrieves: Callable[[str], bool] | None = None
) -> str:
    """The offline condense rule: a follow-up borrows the previous question's key terms.

    A question that :func:`is_follow_up` of the previous user question becomes itself followed
    by the content words of that question (itself condensed the same way, so a third turn still
    reaches the first topic) that it lacks. Any other question stands alone, unchanged.
    ``retrieves(word)`` says whether a word finds anything in the knowledge base.

    Example:
        >>> earlier = [ChatTurn(role="user", content="What is weft?")]
        >>> condense_heuristic("How do I install it?", earlier)
        'How do I install it? weft'
        >>> condense_heuristic("How do I install weft?", [ChatTurn(role="user", content="BM25?")])
        'How do I install weft?'
    """
    users = [i for i, t in enumerate(history) if t.role == "user"]
    if not users:
        return question
    last = users[-1]
    previous = condense_heuristic(history[last].content, history[:last], retrieves=retrieves)
    if not is_follow_up(question, previous, retrieves=retrieves):
        return question
    have = set(_words(question))
    borrowed = [w for w in dict.fromkeys(_WORD.findall(previous)) if w.lower() not in _STOP | have]
    return f"{question} {' '.join(borrowed)}".strip() if borrowed else question

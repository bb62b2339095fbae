"""``summarize``: documents in, one summary within a token budget out, by map-reduce.

* **map**: the documents are grouped into parts of at most ``part_tokens`` tokens, and each part
  is summarised on its own.
* **reduce**: the part summaries are joined; while they exceed ``max_tokens``, they are grouped
  and summarised again (at most ``max_rounds`` times), and what still exceeds the budget is cut
  at a sentence.

With a chat model, the model writes each summary under :data:`SUMMARY_PROMPT`. Offline (no
model, or the extractive one, which only quotes), a summary is extractive: the sentences whose
words recur most across the documents (each term weighted by how many sentences hold it,
the sentence's score its mean weight), taken best first until the budget is spent and given back
in their original order. It never invents: every sentence is one of the documents'.

Example:
    >>> docs = ["Cats purr when content. Cats sleep a lot.", "Dogs bark. Cats purr at night."]
    >>> summarize(max_tokens=16).invoke(docs).text
    'Cats purr when content. Cats purr at night.'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig

from weft.chains.condense import usage_of
from weft.components.bm25 import Tokenizer
from weft.components.models import ExtractiveChatModel, _sentences
from weft.components.tokens import count_tokens
from weft.core.component import TypedLambda, lambda_
from weft.core.errors import ConfigurationError

__all__ = ["SUMMARY_PROMPT", "Summary", "summarize"]

SUMMARY_PROMPT = (
    "Summarise the text below in at most {words} words. Keep names, numbers and conditions "
    "exactly as written; add nothing the text does not say. Reply with the summary only."
)
"""The system prompt a chat model summarises under; ``{words}`` is the budget in words."""

_tokenizer = Tokenizer()


@dataclass(frozen=True)
class Summary:
    """The summary, its size in tokens, how many map and reduce calls made it, and the
    model's token usage summed over them (empty offline)."""

    text: str
    tokens: int
    parts: int = 0
    rounds: int = 0
    usage: dict[str, int] = field(default_factory=dict)


def _text(document: Document | str) -> str:
    return document if isinstance(document, str) else document.page_content


def _within(text: str, budget: int) -> str:
    """``text`` cut after its last whole sentence that fits ``budget`` tokens (the first
    sentence cut at a word when even it does not fit)."""
    if count_tokens(text) <= budget:
        return text
    kept: list[str] = []
    for sentence in _sentences(text):
        if count_tokens(" ".join([*kept, sentence])) > budget:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept)
    words: list[str] = []
    for word in text.split():
        if count_tokens(" ".join([*words, word])) > budget:
            break
        words.append(word)
    return " ".join(words)


def _parts(texts: Sequence[str], budget: int) -> list[str]:
    """``texts`` grouped in order into parts of at most ``budget`` tokens; a longer text is
    split at its sentences."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    pieces = [
        piece
        for text in texts
        for piece in ([text] if count_tokens(text) <= budget else _sentences(text))
    ]
    for piece in pieces:
        tokens = count_tokens(piece)
        if current and size + tokens > budget:
            parts.append("\n\n".join(current))
            current, size = [], 0
        current.append(piece)
        size += tokens
    if current:
        parts.append("\n\n".join(current))
    return parts


def extractive_summary(texts: Sequence[str], budget: int) -> str:
    """The offline summary of ``texts`` within ``budget`` tokens (see the module docs)."""
    sentences = [s for text in texts for s in _sentences(text)]
    terms = [set(_tokenizer(s)) for s in sentences]
    spread = Counter(t for ts in terms for t in ts)
    scores = [sum(spread[t] for t in ts) / len(ts) if ts else 0.0 for ts in terms]
    chosen: list[int] = []
    used = 0
    seen: set[str] = set()
    for i in sorted(range(len(sentences)), key=lambda i: (-scores[i], i)):
        if sentences[i] in seen:
            continue
        tokens = count_tokens(sentences[i])
        if used + tokens > budget:
            continue
        chosen.append(i)
        seen.add(sentences[i])
        used += tokens
    if not chosen and sentences:
        return _within(sentences[0], budget)
    return " ".join(sentences[i] for i in sorted(chosen))


def _add_usage(total: dict[str, int], message: Any) -> None:
    for key, value in (usage_of(message) or {}).items():
        total[key] = total.get(key, 0) + value


def summarize(
    model: BaseChatModel | Runnable[Any, Any] | None = None,
    *,
    max_tokens: int = 300,
    part_tokens: int = 2000,
    max_rounds: int = 3,
    name: str = "summarize",
) -> TypedLambda:
    """A component: ``list[Document]`` (or of strings) in, :class:`Summary` out.

    Args:
        model: the chat model that summarises; None (or the extractive model) for the
            offline extractive summary.
        max_tokens: the summary's budget in tokens (tiktoken's count).
        part_tokens: the most tokens of text summarised in one call (the map step's parts).
        max_rounds: the most reduce rounds before the summary is cut to the budget.
        name: the component's name.

    Raises:
        ConfigurationError: a budget below 1, or ``part_tokens`` not above ``max_tokens``.
    """
    if max_tokens < 1 or part_tokens <= max_tokens or max_rounds < 0:
        raise ConfigurationError(
            f"summarize(max_tokens={max_tokens}, part_tokens={part_tokens}, "
            f"max_rounds={max_rounds}): budgets must be >= 1, part_tokens larger than "
            "max_tokens (a part must hold more than the summary), and max_rounds >= 0"
        )
    writer = None if model is None or isinstance(model, ExtractiveChatModel) else model

    def summarise_part(text: str, config: RunnableConfig, usage: dict[str, int]) -> str:
        if writer is None:
            return extractive_summary([text], max_tokens)
        words = max(1, int(max_tokens * 0.75))  # about four words in three tokens
        messages: list[BaseMessage] = [
            SystemMessage(SUMMARY_PROMPT.format(words=words)),
            HumanMessage(text),
        ]
        reply = writer.invoke(messages, config)
        _add_usage(usage, reply)
        return reply.text.strip() if isinstance(reply, AIMessage) else str(reply)

    def run(documents: list[Document], config: RunnableConfig) -> Summary:
        texts = [t for t in (_text(d).strip() for d in documents) if t]
        usage: dict[str, int] = {}
        if not texts:
            return Summary("", 0)
        if writer is None:
            # One extractive pass sees every sentence at once; mapping first would only lose
            # the words that recur across parts.
            text = extractive_summary(texts, max_tokens)
            return Summary(text, count_tokens(text), parts=1)
        parts = _parts(texts, part_tokens)
        summaries = [summarise_part(p, config, usage) for p in parts]
        calls, rounds = len(parts), 0
        text = "\n\n".join(summaries)
        while count_tokens(text) > max_tokens and rounds < max_rounds:
            groups = _parts(summaries, part_tokens)
            summaries = [summarise_part(g, config, usage) for g in groups]
            calls += len(groups)
            rounds += 1
            text = "\n\n".join(summaries)
        text = _within(text, max_tokens)
        return Summary(text, count_tokens(text), parts=calls, rounds=rounds, usage=usage)

    return lambda_(run, input_type=list[Document], output_type=Summary, name=name)

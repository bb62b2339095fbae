"""The context format: numbered sources, one per line, that prompts carry and models read."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from langchain_core.documents import Document

__all__ = ["Source", "cited_sources", "format_sources", "parse_sources", "question_with_topic"]


@dataclass(frozen=True)
class Source:
    """One numbered source of a prompt's context.

    Example:
        >>> parse_sources("[1] Paris guide: Paris is the capital of France.")
        [Source(index=1, text='Paris is the capital of France.', title='Paris guide')]
    """

    index: int
    text: str
    title: str | None = None


_SOURCE_LINE = re.compile(r"^\s*\[(\d+)\]\s?(.*)$")
_QUESTION_LINE = re.compile(r"^\s*(?:question|q|问题|質問)\s*[:\uff1a]\s*(.*)$", re.IGNORECASE)
_TOPIC_HEAD = "Earlier topic: "
_TOPIC_LINE = re.compile(r"^\s*earlier topic\s*:\s*(.*)$", re.IGNORECASE)
# A title is a short prefix with no sentence end in it ("notes.md" is fine, "Done. Next" is not).
_TITLE = re.compile(r"^((?:[^.!?\u3002\uff01\uff1f:\n]|[.!?](?=\S)){1,80}):\s+(\S.*)$", re.DOTALL)


def format_sources(sources: Iterable[Document | Source | str]) -> str:
    """Number sources ``[1]``, ``[2]``, ... one per line, in the format :func:`parse_sources` reads.

    A document's title is ``metadata["title"]``, else ``metadata["source"]``. Whitespace runs
    (newlines included) become one space so that each source stays on its line.

    Example:
        >>> print(format_sources([Document("Paris is in France.", metadata={"title": "Paris"}),
        ...                       "Berlin is in Germany."]))
        [1] Paris: Paris is in France.
        [2] Berlin is in Germany.
    """
    lines = []
    for number, source in enumerate(sources, start=1):
        if isinstance(source, Document):
            title = source.metadata.get("title") or source.metadata.get("source")
            text = source.page_content
        elif isinstance(source, Source):
            title, text = source.title, source.text
        else:
            title, text = None, source
        body = " ".join(text.split())
        head = " ".join(str(title).replace(":", " -").split()) if title else ""
        lines.append(f"[{number}] {head}: {body}" if head else f"[{number}] {body}")
    return "\n".join(lines)


def question_with_topic(question: str, topic: str) -> str:
    """``question`` followed by the words a follow-up borrowed from the conversation, on a
    line of their own (``Earlier topic: ...``): the question a prompt carries, in the form the
    extractive model reads, so that it tells the user's own words from the borrowed ones.

    Example:
        >>> question_with_topic("How long is it kept?", "usage history")
        'How long is it kept?\\nEarlier topic: usage history'
        >>> question_with_topic("What is BM25?", "")
        'What is BM25?'
    """
    return f"{question}\n{_TOPIC_HEAD}{topic}" if topic else question


def parse_sources(text: str) -> list[Source]:
    """The numbered sources in ``text``: each ``[n] ...`` line, plus any lines that follow it up
    to a blank line, another source, or a ``Question:`` line. The first source numbered ``n``
    wins.

    Example:
        >>> parse_sources("[1] A.\\n[2] T: B.")
        [Source(index=1, text='A.', title=None), Source(index=2, text='B.', title='T')]
    """
    found: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _SOURCE_LINE.match(line)
        if match:
            index = int(match.group(1))
            current = [match.group(2).strip()] if index not in found else None
            if current is not None:
                found[index] = current
        elif current is not None and line.strip() and not _QUESTION_LINE.match(line):
            current.append(line.strip())
        else:
            current = None
    sources = []
    for index, parts in found.items():
        body = " ".join(p for p in parts if p)
        title_match = _TITLE.match(body)
        if title_match:
            sources.append(Source(index, title_match.group(2), title_match.group(1).strip()))
        else:
            sources.append(Source(index, body))
    return sources


_CITATION = re.compile(r"\[\d+\]")


# Keep citation parsing next to the format it reads; the context packer and evals reuse it.
def cited_sources(text: str) -> list[int]:
    """The source numbers cited as ``[n]`` in ``text``, in first-seen order.

    Example:
        >>> cited_sources("A. [2] B. [1] C. [2]")
        [2, 1]
    """
    return list(dict.fromkeys(int(m[1:-1]) for m in _CITATION.findall(text)))

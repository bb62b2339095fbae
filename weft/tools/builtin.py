"""Ready tools: the time in a time zone, and a search over any retriever with cited snippets.

The calculator lives in :mod:`weft.tools.calculator`.

Example:
    >>> from langchain_core.documents import Document
    >>> def shelf(query: str) -> list[Document]:
    ...     return [Document("Otters hold hands while sleeping.", metadata={"source": "otters.md"})]
    >>> search = knowledge_base_search(shelf)
    >>> print(search.invoke({"query": "otters"}))
    [1] Otters hold hands while sleeping. (otters.md)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableLambda

from weft.core.component import _run_coroutine
from weft.core.errors import ComponentTypeError
from weft.tools.base import Tool

__all__ = ["current_time", "format_citations", "knowledge_base_search"]

_SOURCE_KEYS = ("source", "title", "url")


def _current_time(timezone: str = "UTC") -> str:
    """Tell the current date and time in a time zone.

    Args:
        timezone: An IANA time zone name, e.g. "Europe/Paris", "America/New_York" or "UTC".
    """
    try:
        zone = ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {timezone!r}; use an IANA name such as 'Europe/Paris', "
            f"'America/New_York', 'Asia/Tokyo' or 'UTC'"
        ) from None
    now = datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({now:%A}, {zone.key})"


current_time: Tool = Tool.from_function(_current_time, name="current_time")
"""The current-time tool: ``{"timezone": "Asia/Tokyo"}`` in, e.g.
``2026-05-04T18:30:00+09:00 (Monday, Asia/Tokyo)`` out."""


def format_citations(documents: Sequence[Document], *, max_chars: int = 600) -> str:
    """Number documents as cited snippets: ``[1] text (source)``, one paragraph each.

    The source is the first of the metadata's ``source``, ``title`` or ``url``, else the id.
    A snippet longer than ``max_chars`` is cut at a word and marked with an ellipsis.

    Example:
        >>> print(format_citations([Document("Bees dance.", metadata={"source": "bees.txt"})]))
        [1] Bees dance. (bees.txt)
    """
    parts = []
    for i, doc in enumerate(documents, 1):
        text = " ".join(doc.page_content.split())
        if len(text) > max_chars:
            text = text[:max_chars].rsplit(" ", 1)[0] + " …"
        source = next((str(doc.metadata[k]) for k in _SOURCE_KEYS if doc.metadata.get(k)), None)
        source = source or doc.id
        parts.append(f"[{i}] {text}" + (f" ({source})" if source else ""))
    return "\n\n".join(parts)


def knowledge_base_search(
    source: Runnable[str, list[Document]]
    | Callable[[str], Sequence[Document]]
    | Callable[[str], Awaitable[Sequence[Document]]],
    *,
    k: int | None = None,
    name: str = "knowledge_base_search",
    description: str | None = None,
    max_chars: int = 600,
) -> Tool:
    """A tool that searches ``source`` and answers with numbered, cited snippets.

    The tool returns the snippets as its content and the documents as its artifact, so the
    caller can show the sources the answer cites.

    Args:
        source: A retriever (any ``BaseRetriever``, e.g. a knowledge base's
            ``hybrid_retriever()``), or a function from a query to documents, sync or async.
        k: Keep at most this many documents; ``None`` keeps what the source returns.
        name: The tool's name.
        description: What the model reads to choose the tool; say what the documents hold.
        max_chars: The longest snippet, in characters.

    Raises:
        ComponentTypeError: ``source`` is neither a Runnable nor a function, or ``k < 1``.
    """
    if k is not None and k < 1:
        raise ComponentTypeError(f"k must be at least 1, got {k}")
    is_async = inspect.iscoroutinefunction(source)
    if isinstance(source, Runnable):
        runnable: Runnable[str, Sequence[Document]] = source
    elif callable(source):
        runnable = RunnableLambda(source)
    else:
        raise ComponentTypeError(
            f"knowledge_base_search takes a retriever or a function from a query to documents, "
            f"got {type(source).__name__}"
        )

    def cite(query: str, documents: Sequence[Document]) -> tuple[str, list[Document]]:
        found = list(documents)[:k] if k is not None else list(documents)
        if not found:
            return f"no documents found for {query!r}; try other words", []
        return format_citations(found, max_chars=max_chars), found

    def search(query: str) -> tuple[str, list[Document]]:
        """Search the knowledge base and return numbered snippets with their sources.

        Args:
            query: What to look for, in a few words.
        """
        if is_async:
            found: tuple[str, list[Document]] = _run_coroutine(asearch(query))
            return found
        return cite(query, runnable.invoke(query))

    async def asearch(query: str) -> tuple[str, list[Document]]:
        return cite(query, await runnable.ainvoke(query))

    return Tool.from_function(
        search,
        name=name,
        description=description,
        coroutine=asearch,
        response_format="content_and_artifact",
    )

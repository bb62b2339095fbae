"""Source paths as clients see them: relative to the folder the knowledge base was ingested from,
never the server's absolute paths.

Documents carry their file's absolute path in ``metadata["source"]``, and chat answers cite it
in :class:`~weft.graphs.schema.SourceRef` ``source``. Every JSON value the server sends passes
through :class:`SourcePaths`, which rewrites each ``"source"`` that is an absolute path: relative
to the root when the file is under it, else to the file's name alone.

The root of the default graphs' knowledge base is the deepest folder that holds all of its files:
the folder given to ``weft ingest`` (or a folder inside it, when every file sits there).

Example:
    >>> shown = SourcePaths("/srv/notes")
    >>> shown({"source": "/srv/notes/sea/otters.md", "title": "Otters"})
    {'source': 'sea/otters.md', 'title': 'Otters'}
    >>> shown({"metadata": {"source": "/etc/elsewhere/kelp.md"}})
    {'metadata': {'source': 'kelp.md'}}
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from weft.graphs.schema import ChatDone, ChatEvent, ChatSources, SourceRef
from weft.server._sse import closing

__all__ = ["SourcePaths", "common_root", "knowledge_base_sources"]

_WINDOWS = re.compile(r"^[A-Za-z]:[\\/]")
_PAGE = 5000


def _absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or _WINDOWS.match(path) is not None


def _posix(path: str) -> str:
    return path.replace("\\", "/")


def common_root(sources: Iterable[str]) -> str | None:
    """The deepest folder holding every absolute path in ``sources`` (None if there are none)."""
    folders = {posixpath.dirname(_posix(s)) for s in sources if _absolute(s)}
    if not folders:
        return None
    try:
        return posixpath.commonpath(sorted(folders))
    except ValueError:  # paths on different drives: no common folder
        return None


def knowledge_base_sources(store: Any) -> Iterable[str]:
    """Every ``source`` in a Chroma store's metadata, a page at a time."""
    offset = 0
    while True:
        page = store.get(include=["metadatas"], limit=_PAGE, offset=offset)
        metadatas = page.get("metadatas") or []
        for metadata in metadatas:
            source = (metadata or {}).get("source")
            if isinstance(source, str):
                yield source
        if len(metadatas) < _PAGE:
            return
        offset += _PAGE


class SourcePaths:
    """Rewrites the absolute ``"source"`` paths in a JSON value (dicts and lists, any depth)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = _posix(os.fspath(root)).rstrip("/") if root is not None else None

    def path(self, source: str) -> str:
        """``source`` as a client sees it."""
        if not _absolute(source):
            return source
        posix = _posix(source)
        if self.root and posix.startswith(self.root + "/"):
            return posix[len(self.root) + 1 :]
        return posixpath.basename(posix)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: self.path(v) if k == "source" and isinstance(v, str) else self(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self(v) for v in value]
        return value

    def refs(self, sources: list[SourceRef]) -> list[SourceRef]:
        """``sources`` with their paths as a client sees them."""
        return [
            s.model_copy(update={"source": self.path(s.source)}) if s.source else s for s in sources
        ]

    async def events(self, events: AsyncIterator[ChatEvent]) -> AsyncIterator[ChatEvent]:
        """A chat's ``events`` with their sources' paths as a client sees them. Closing this
        closes ``events`` (a client gone cancels the run)."""
        async with closing(events):
            async for event in events:
                if isinstance(event, ChatSources):
                    yield ChatSources(self.refs(event.sources))
                elif isinstance(event, ChatDone):
                    output = event.output
                    yield ChatDone(output.model_copy(update={"sources": self.refs(output.sources)}))
                else:
                    yield event

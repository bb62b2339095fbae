"""The knowledge base's store helpers, shared by the data-dir and the PostgreSQL kinds: Chroma
collections looked up and dropped, the chunks each store lacks, and a journal file written
whole or not at all."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError
from langchain_core.documents import Document

from weft.components.bm25 import BM25Retriever
from weft.components.stores import ChromaStore

__all__ = ["find_collection", "drop", "hexed", "missing", "write_journal"]

_log = logging.getLogger("weft.graphs.knowledge")


def find_collection(client: ClientAPI, name: str) -> Collection | None:
    try:
        return client.get_collection(name)
    except NotFoundError:
        return None


def hexed(pointer: bytes | None) -> str | None:
    return pointer.hex() if pointer is not None else None


def drop(client: ClientAPI, name: str) -> None:
    """Delete a collection if it exists; a failure is logged (the next reset retries)."""
    try:
        client.delete_collection(name)
    except NotFoundError:
        pass
    except Exception as exc:
        _log.warning("could not delete Chroma collection '%s': %s", name, exc)


def write_journal(path: Path, journal: dict[str, Any]) -> None:
    scratch = path.with_name(f".{path.name}.tmp")  # one writer at a time: the lock
    with open(scratch, "w", encoding="utf-8") as fh:
        json.dump(journal, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(scratch, path)


def missing(
    store: ChromaStore, bm25: BM25Retriever, chunks: Sequence[Document]
) -> tuple[list[Document], list[Document]]:
    """The chunks each store lacks: (for Chroma, for BM25)."""
    ids = [c.id or "" for c in chunks]
    in_chroma = _existing_ids(store, ids)
    in_bm25 = {d.id for d in bm25.get_by_ids(ids)}
    return [c for c in chunks if c.id not in in_chroma], [c for c in chunks if c.id not in in_bm25]


def _existing_ids(store: ChromaStore, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 1000):
        found.update(store.get(ids=ids[start : start + 1000], include=[])["ids"])
    return found

"""Stable document ids, shared by the stores and retrievers so their results can be joined."""

from __future__ import annotations

import hashlib
import json

from langchain_core.documents import Document

__all__ = ["document_id"]


def document_id(doc: Document) -> str:
    """Return ``doc.id``, or a hash of its text and metadata when it has none.

    A content hash (rather than a random UUID) makes re-ingesting the same chunk an upsert, and
    gives the same id to a chunk in the vector store and in the BM25 index.

    Example:
        >>> document_id(Document(page_content="hi", id="a"))
        'a'
    """
    if doc.id:
        return doc.id
    meta = json.dumps(doc.metadata, sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha256(f"{doc.page_content}\x00{meta}".encode()).hexdigest()
    return f"sha256-{digest[:32]}"

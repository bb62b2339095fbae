"""The strict variant the RAG suites run beside the default RAG graph.

:func:`strict_rag_graph` is the RAG graph over the suite's knowledge base with
``strict_answers`` on, so a suite reports what the stricter check refuses and what it costs
(``strict/refusal``, ``strict/contains``) next to the default graph's scores.
"""

from __future__ import annotations

from typing import Any

from weft.core.compiled import CompiledGraph
from weft.core.settings import Settings
from weft.graphs.rag import build_rag_graph
from weft.graphs.registry import knowledge_base

__all__ = ["strict_rag_graph"]


def strict_rag_graph(settings: Settings) -> CompiledGraph[Any, Any]:
    """The RAG graph over ``settings``' knowledge base, answering with ``strict_answers``."""
    strict = settings.model_copy(update={"strict_answers": True})
    return build_rag_graph(knowledge_base(settings), settings=strict, name="rag-strict")

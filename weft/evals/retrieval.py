"""Retrieval graphs over the knowledge base, for comparing retrievers side by side.

Three one-node graphs, ``str -> list[Document]``, over the same
:class:`~weft.graphs.knowledge.KnowledgeBase` (the one :func:`weft.graphs.registry.knowledge_base`
shares for the settings): BM25 alone, vector search alone, and the hybrid retriever that fuses
both. Each returns :data:`TOP_K` chunks. The shipped ``hybrid-retrieval`` suite names them as
``weft.evals.retrieval:bm25_graph`` and so on.

Example:
    >>> graph = hybrid_graph(Settings(data_dir=tmp))  # doctest: +SKIP
    >>> [d.metadata["title"] for d in graph.invoke("How do I install weft?")][:1]  # doctest: +SKIP
    ['Installing weft and the two make commands']
"""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from weft.core.compiled import CompiledGraph
from weft.core.graph import END, START, Graph
from weft.core.settings import Settings, get_settings
from weft.graphs.registry import knowledge_base

__all__ = ["TOP_K", "bm25_graph", "hybrid_graph", "vector_graph"]

TOP_K = 10
"""Chunks each retrieval graph returns."""


def _graph(name: str, retriever: BaseRetriever) -> CompiledGraph[str, list[Document]]:
    g = Graph[str, list[Document]](name)
    g.add_node("retrieve", retriever)
    g.add_edge(START, "retrieve").add_edge("retrieve", END)
    return g.compile()


def bm25_graph(settings: Settings | None = None) -> CompiledGraph[str, list[Document]]:
    """BM25 keyword search alone."""
    kb = knowledge_base(settings or get_settings())
    return _graph("bm25", kb.bm25.model_copy(update={"k": TOP_K}))


def vector_graph(settings: Settings | None = None) -> CompiledGraph[str, list[Document]]:
    """Vector search in Chroma alone."""
    kb = knowledge_base(settings or get_settings())
    return _graph("vector", kb.vector_retriever(TOP_K))


def hybrid_graph(settings: Settings | None = None) -> CompiledGraph[str, list[Document]]:
    """The knowledge base's hybrid retriever: vector and BM25 fused by Reciprocal Rank Fusion,
    then re-ranked by best sentence when the MiniLM model is installed."""
    kb = knowledge_base(settings or get_settings())
    return _graph("hybrid", kb.hybrid_retriever(TOP_K))

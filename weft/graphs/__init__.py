"""Ready graphs, each made by a ``build_*`` factory, and the knowledge base they read.

- :func:`build_rag_graph` (``rag.py``): RAG chat over a knowledge base, with history and sources.
- :func:`build_hybrid_graph` (``hybrid.py``): vector and BM25 retrieval side by side, fused.
- :func:`build_react_agent` (``agent.py``): a ReAct agent with tools and human approval.
- :func:`build_demo_graph` (``demo.py``): a small offline question-answering graph.
- :func:`build_resume_graph` (``resume/``): resumes into typed profiles, matched to job ads.
- :func:`build_health_graph` (``health/``): red-flag triage, then a consultation saga.
- :class:`KnowledgeBase` (``knowledge.py``): ingest files into Chroma and BM25, and retrieve;
  with ``WEFT_DATABASE_URL``, kept in PostgreSQL for replicas (``_knowledge_postgres.py``).
- :func:`default_graphs` (``registry.py``): the graphs above compiled once per settings.
- ``schema.py``: the chat graphs' input, output and event types.

The names load their module when first used, so importing one graph does not import the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from weft.core._lazy import lazy_names

if TYPE_CHECKING:
    from weft.graphs.agent import approved, build_react_agent, edited, rejected
    from weft.graphs.demo import build_demo_graph
    from weft.graphs.health.graph import build_health_graph
    from weft.graphs.hybrid import GraphRetriever, build_hybrid_graph
    from weft.graphs.knowledge import KnowledgeBase
    from weft.graphs.rag import astream_chat, build_rag_graph, stream_chat
    from weft.graphs.registry import GraphRegistry, default_graphs
    from weft.graphs.resume import build_resume_graph
    from weft.graphs.schema import ChatInput, ChatOutput

__all__ = [
    "ChatInput",
    "ChatOutput",
    "GraphRegistry",
    "GraphRetriever",
    "KnowledgeBase",
    "approved",
    "astream_chat",
    "build_demo_graph",
    "build_health_graph",
    "build_hybrid_graph",
    "build_rag_graph",
    "build_react_agent",
    "build_resume_graph",
    "default_graphs",
    "edited",
    "rejected",
    "stream_chat",
]

_HOME = {
    "approved": "agent",
    "build_react_agent": "agent",
    "edited": "agent",
    "rejected": "agent",
    "ChatInput": "schema",
    "ChatOutput": "schema",
    "GraphRegistry": "registry",
    "GraphRetriever": "hybrid",
    "KnowledgeBase": "knowledge",
    "astream_chat": "rag",
    "build_demo_graph": "demo",
    "build_health_graph": "health.graph",
    "build_hybrid_graph": "hybrid",
    "build_rag_graph": "rag",
    "build_resume_graph": "resume",
    "default_graphs": "registry",
    "stream_chat": "rag",
}


__getattr__, __dir__ = lazy_names(__name__, _HOME, __all__, globals())

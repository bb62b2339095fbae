"""A small offline question-answering graph: what ``make run`` and ``weft demo`` run.

It shows the builder's main moves on a handful of built-in passages about weft: a fan-out
(the question goes both to BM25 retrieval and, unchanged, to a passthrough), a fan-in with a
merge (question and numbered sources meet in the prompt's variables), a prompt template, and
the offline :class:`~weft.components.models.ExtractiveChatModel`, whose tokens stream out.

Example:
    >>> graph = build_demo_graph()
    >>> print(graph.invoke("What does compile check?").content)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessage

from weft.components.bm25 import BM25Retriever
from weft.components.models import ExtractiveChatModel, format_sources
from weft.components.prompts import chat_prompt
from weft.core.compiled import CompiledGraph
from weft.core.graph import END, START, Graph

__all__ = ["DEMO_PASSAGES", "build_demo_graph"]

DEMO_PASSAGES: dict[str, str] = {
    "Components": (
        "A weft component is a langchain-core Runnable whose input and output types are known. "
        "Chat models, retrievers, tools, prompt templates and annotated Python functions are "
        "all components."
    ),
    "Compiling": (
        "Graph.compile checks every edge: the upstream output type must be assignable to the "
        "downstream input type. It also reports unknown nodes, unreachable nodes, fan-ins "
        "without a merge and cycles without a step limit, all at once, each with its fix."
    ),
    "Streaming": (
        "A compiled graph streams typed events: node started, chunk, node finished and the "
        "final output. Tokens of a chat model stream out even from the middle of a graph or "
        "from inside a subgraph."
    ),
    "Callbacks": (
        "Callbacks have four hooks: start, end, error and stream chunk. A handler sees every "
        "graph, node, chat model, retriever and tool call, in sync, async and batch runs."
    ),
    "Memory": (
        "With a checkpointer and a thread id, a graph keeps its shared state across calls and "
        "processes. A run killed mid-way resumes from its last completed step."
    ),
    "Offline": (
        "weft runs offline by default. The extractive chat model needs no API key: it answers "
        "by quoting the most relevant sentences of its sources, with citations, and says so "
        "when the knowledge base has no answer."
    ),
}


def _prompt_input(parts: dict[str, Any]) -> dict[str, str]:
    return {"question": parts["question"], "context": format_sources(parts["retrieve"])}


def build_demo_graph(k: int = 3) -> CompiledGraph[str, AIMessage]:
    """Build the demo graph: question -> (BM25 retrieval, question) -> prompt -> model."""
    docs = [
        Document(page_content=text, metadata={"title": title}, id=title.lower())
        for title, text in DEMO_PASSAGES.items()
    ]
    prompt = chat_prompt(
        ("system", "Answer only from the numbered sources and cite them."),
        ("human", "{context}\n\nQuestion: {question}"),
    )
    g = Graph[str, AIMessage]("demo")
    g.add_node("retrieve", BM25Retriever(docs, k=k))
    g.add_passthrough("question")
    g.add_node("prompt", prompt, merge=_prompt_input)
    g.add_node("model", ExtractiveChatModel())
    g.add_edge(START, "retrieve").add_edge(START, "question")
    g.add_edge("retrieve", "prompt").add_edge("question", "prompt")
    g.add_edge("prompt", "model").add_edge("model", END)
    return g.compile()

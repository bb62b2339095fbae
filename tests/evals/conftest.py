"""Fixtures for the evals tests: no real model is ever configured, small offline graphs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage

from weft import END, START, Graph
from weft.components.bm25 import BM25Retriever
from weft.components.models import ExtractiveChatModel, format_sources
from weft.components.prompts import chat_prompt
from weft.core.compiled import CompiledGraph

PASSAGES = {
    "paris": ("Paris guide", "Paris is the capital of France. It has about two million people."),
    "berlin": ("Berlin guide", "Berlin is the capital of Germany. It is known for its museums."),
    "rome": ("Rome guide", "Rome is the capital of Italy. The Colosseum stands in Rome."),
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # An OpenAI key in the developer's shell must not switch evals to a real judge.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    yield


def qa_graph() -> CompiledGraph[str, AIMessage]:
    """BM25 over three passages -> prompt -> the extractive model: a tiny offline RAG graph."""
    docs = [
        Document(id=key, page_content=text, metadata={"title": title, "source": f"/kb/{key}.md"})
        for key, (title, text) in PASSAGES.items()
    ]
    prompt = chat_prompt(("human", "{context}\n\nQuestion: {question}"))

    def to_prompt(parts: dict[str, object]) -> dict[str, str]:
        return {"question": str(parts["question"]), "context": format_sources(parts["retrieve"])}  # type: ignore[arg-type]

    g = Graph[str, AIMessage]("qa")
    g.add_node("retrieve", BM25Retriever(docs, k=2))
    g.add_passthrough("question")
    g.add_node("prompt", prompt, merge=to_prompt)
    g.add_node("model", ExtractiveChatModel())
    g.add_edge(START, "retrieve").add_edge(START, "question")
    g.add_edge("retrieve", "prompt").add_edge("question", "prompt")
    g.add_edge("prompt", "model").add_edge("model", END)
    return g.compile()

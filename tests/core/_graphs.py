"""Graphs the callback and tracing tests share."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig

from weft import END, START, Graph


class Shelf(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content=f"doc about {query}", id="d1")]


def parallel_graph() -> Any:
    """START -> (left, right) -> join -> END; left calls a retriever, right a chat model."""
    shelf = Shelf()
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hi there")] * 50))

    def left(q: str, config: RunnableConfig) -> str:
        return shelf.invoke(q, config)[0].page_content

    def right(q: str, config: RunnableConfig) -> str:
        return str(model.invoke(q, config).content)

    def join(parts: dict[str, str]) -> str:
        return parts["left"] + " | " + parts["right"]

    g = Graph[str, str]("par").add_node("left", left).add_node("right", right)
    g.add_node("join", join)
    g.add_edge(START, "left").add_edge(START, "right").add_edge("left", "join")
    return g.add_edge("right", "join").add_edge("join", END).compile()

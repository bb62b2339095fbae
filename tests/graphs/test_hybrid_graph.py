from pathlib import Path

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from weft.components.bm25 import BM25Retriever
from weft.components.embeddings import HashingEmbeddings
from weft.components.hybrid import HybridRetriever
from weft.core.errors import EmptyQueryError, NodeError, RetrievalError
from weft.core.settings import Settings
from weft.core.stream import NodeFinished
from weft.graphs.hybrid import GraphRetriever, build_hybrid_graph
from weft.graphs.knowledge import KnowledgeBase

QUERIES = ["How do I install weft?", "what does make test run", "BM25 keyword ranking", "SSE"]


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    base = KnowledgeBase(
        Settings(data_dir=tmp_path_factory.mktemp("kb")), embedding=HashingEmbeddings(128)
    )
    base.ensure_demo()
    return base


class Broken(BaseRetriever):
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int = 4
    ) -> list[Document]:
        raise ConnectionError("vector store down")


def _view(docs: list[Document]) -> list[tuple[str | None, float, dict[str, int]]]:
    return [(d.id, d.metadata["score"], d.metadata["ranks"]) for d in docs]


@pytest.mark.parametrize("query", QUERIES)
def test_hybrid_graph_returns_what_the_bare_hybrid_retriever_returns(
    kb: KnowledgeBase, query: str
) -> None:
    graph = build_hybrid_graph(kb, k=3)
    expected = kb.hybrid_retriever(k=3).invoke(query)
    assert expected and _view(graph.invoke(query)) == _view(expected)


def test_hybrid_graph_over_a_knowledge_base_reranks_by_best_sentence(kb: KnowledgeBase) -> None:
    reranked = build_hybrid_graph(kb, k=3).invoke(QUERIES[0])
    plain = build_hybrid_graph(kb, k=3, reranker=None).invoke(QUERIES[0])
    assert all("sentence" in d.metadata["ranks"] for d in reranked)
    assert not any("sentence" in d.metadata["ranks"] for d in plain)


async def test_hybrid_graph_async_matches_sync(kb: KnowledgeBase) -> None:
    graph = build_hybrid_graph(kb, k=4)
    assert _view(await graph.ainvoke(QUERIES[0])) == _view(graph.invoke(QUERIES[0]))


def test_hybrid_graph_runs_both_branches_as_nodes_then_fuses(kb: KnowledgeBase) -> None:
    graph = build_hybrid_graph(kb, k=2)
    finished = [e.path for e in graph.events(QUERIES[1]) if isinstance(e, NodeFinished)]
    assert set(finished[:2]) == {("vector",), ("bm25",)} and finished[2] == ("fuse",)
    assert set(graph.plan.nodes) == {"vector", "bm25", "fuse"}


def test_a_failed_branch_is_answered_by_the_other_like_the_retriever(kb: KnowledgeBase) -> None:
    graph = build_hybrid_graph((Broken(), kb.bm25), k=3)
    bare = HybridRetriever(vector=Broken(), bm25=kb.bm25, k=3)
    docs = graph.invoke("make test")
    assert docs and _view(docs) == _view(bare.invoke("make test"))
    assert all(d.metadata["ranks"].keys() == {"bm25"} for d in docs)


def test_both_branches_failing_is_a_retrieval_error() -> None:
    graph = build_hybrid_graph((Broken(), Broken()), k=3)
    with pytest.raises(NodeError) as err:
        graph.invoke("anything")
    assert isinstance(err.value.__cause__, RetrievalError)
    assert "failed in both branches" in str(err.value.__cause__)


def test_graph_retriever_wraps_a_compiled_graph_as_a_retriever(kb: KnowledgeBase) -> None:
    graph = build_hybrid_graph(kb, k=4)
    retriever = GraphRetriever(graph=graph, k=2)
    assert isinstance(retriever, BaseRetriever)
    assert _view(retriever.invoke(QUERIES[0])) == _view(graph.invoke(QUERIES[0])[:2])
    assert len(retriever.invoke(QUERIES[0], k=1)) == 1
    with pytest.raises(EmptyQueryError):
        retriever.invoke("   ")


async def test_graph_retriever_async(kb: KnowledgeBase) -> None:
    retriever = GraphRetriever(graph=build_hybrid_graph(kb, k=3))
    assert _view(await retriever.ainvoke(QUERIES[2])) == _view(retriever.invoke(QUERIES[2]))


def test_hybrid_graph_over_plain_retrievers(tmp_path: Path) -> None:
    docs = [
        Document(page_content="Chroma stores vectors", id="a"),
        Document(page_content="BM25 ranks keywords", id="b"),
    ]
    bm25 = BM25Retriever(docs)
    graph = build_hybrid_graph((BM25Retriever(docs), bm25), k=1)
    (top,) = graph.invoke("keywords")
    assert top.id == "b" and top.metadata["ranks"] == {"vector": 1, "bm25": 1}

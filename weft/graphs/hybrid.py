"""The hybrid retrieval graph: vector and BM25 retrieval as parallel nodes, then fusion.

It does what :class:`~weft.components.hybrid.HybridRetriever` does, as a graph whose steps show
up as nodes in streams, callbacks and traces::

    START -> vector --\\
                        fuse -> END
    START -> bm25 ----/

Each branch asks for ``fetch_k`` candidates; ``fuse`` joins them by id with Reciprocal Rank
Fusion (:func:`~weft.components.hybrid.reciprocal_rank_fusion`), re-ranks the first candidates
by their best sentence when given a reranker (:func:`~weft.components.hybrid.sentence_rerank`;
over a knowledge base, :func:`~weft.components.hybrid.default_reranker` unless told otherwise),
and keeps the top ``k``, each with ``metadata["score"]`` (fused), ``["ranks"]`` and
``["scores"]`` (per branch, and ``"sentence"`` when re-ranked). As in the
retriever, a failing branch is logged and the other one answers alone; only when both fail is
it a :class:`~weft.core.errors.RetrievalError`. :class:`GraphRetriever` turns this graph, or any
compiled ``str -> list[Document]`` graph, back into a retriever component.

Example:
    >>> graph = build_hybrid_graph((store.as_retriever(), bm25), k=3)  # doctest: +SKIP
    >>> [d.metadata["ranks"] for d in graph.invoke("how do I install weft?")]  # doctest: +SKIP
    [{'vector': 1, 'bm25': 2}, ...]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from pydantic import ConfigDict, Field

from weft.components.hybrid import (
    DEFAULT_RERANK_K,
    DEFAULT_RRF_K,
    default_reranker,
    reciprocal_rank_fusion,
    sentence_rerank,
)
from weft.core.compiled import CompiledGraph
from weft.core.component import lambda_
from weft.core.errors import EmptyQueryError, RetrievalError
from weft.core.graph import END, START, Graph

if TYPE_CHECKING:
    from weft.graphs.knowledge import KnowledgeBase

__all__ = ["BranchResult", "GraphRetriever", "build_hybrid_graph"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BranchResult:
    """What one retrieval branch produced: its ranked documents, or the error it raised, and
    the query it was asked."""

    documents: list[Document]
    error: str | None = None
    query: str = ""


def _branch(name: str, retriever: BaseRetriever, fetch_k: int) -> Any:
    def run(query: str, config: RunnableConfig) -> BranchResult:
        try:
            return BranchResult(retriever.invoke(query, config, k=fetch_k), query=query)
        except EmptyQueryError:
            raise  # bad input, not a failed branch
        except Exception as exc:  # a failed branch is reported, not raised, unless both fail
            _log.warning("hybrid graph: %s branch failed, answering from the other: %s", name, exc)
            return BranchResult([], f"{type(exc).__name__}: {exc}", query)

    # In async runs the graph runs this in a worker thread, like HybridRetriever's branches.
    return lambda_(run, input_type=str, output_type=BranchResult, name=name)


def _check_query(query: str) -> str:
    if not query.strip():
        raise EmptyQueryError("hybrid graph query is empty; pass some text to search for")
    return query


def build_hybrid_graph(
    source: KnowledgeBase | tuple[BaseRetriever, BaseRetriever],
    *,
    k: int | None = None,
    fetch_k: int = 20,
    rrf_k: int = DEFAULT_RRF_K,
    weights: Mapping[str, float] | None = None,
    confidence: bool = True,
    reranker: Embeddings | Literal["default"] | None = "default",
    rerank_k: int = DEFAULT_RERANK_K,
    name: str = "hybrid",
) -> CompiledGraph[str, list[Document]]:
    """Compile the hybrid retrieval graph over a knowledge base or ``(vector, bm25)``.

    Args:
        source: a :class:`~weft.graphs.knowledge.KnowledgeBase` (its Chroma retriever and BM25
            index) or a ``(vector, bm25)`` pair of retrievers that accept ``k=`` on invoke.
        k: documents returned; the knowledge base's ``top_k`` (or 4) by default.
        fetch_k: candidates asked of each branch (at least ``k``).
        rrf_k: the RRF constant.
        weights: per-branch RRF weights, ``{"vector": 1.0, "bm25": 1.0}`` by default.
        confidence: scale each branch's weight by its confidence for the query
            (:func:`~weft.components.hybrid.branch_confidence`), as the hybrid retriever does.
        reranker: the embedder that re-ranks the first ``rerank_k`` fused candidates by their
            best sentence; ``"default"`` is :func:`~weft.components.hybrid.default_reranker`
            over a knowledge base and none over a ``(vector, bm25)`` pair, as there the hybrid
            retriever has none unless given one; None fuses the two branches only.
        rerank_k: fused candidates the reranker re-scores.
        name: the compiled graph's name.
    """
    if isinstance(source, tuple):
        vector, bm25 = source
        top = k or 4
    else:
        top = k or source.settings.top_k
        vector, bm25 = source.vector_retriever(top), source.bm25
    fetch = max(fetch_k, top)
    branch_weights = dict(weights) if weights is not None else None
    if reranker == "default":
        reranker = None if isinstance(source, tuple) else default_reranker()
    sentences = reranker

    def fuse(results: dict[str, BranchResult]) -> list[Document]:
        failed = {b: r.error for b, r in results.items() if r.error is not None}
        if len(failed) == len(results):
            causes = "; ".join(f"{b}: {e}" for b, e in failed.items())
            raise RetrievalError(
                f"hybrid graph '{name}' failed in both branches ({causes}); check the vector "
                "store and the BM25 index"
            )
        answered = {b: r.documents for b, r in results.items() if r.error is None}
        fused = reciprocal_rank_fusion(
            answered, rrf_k=rrf_k, weights=branch_weights, confidence=confidence
        )
        if sentences is not None:
            query = next(r.query for r in results.values())
            fused = sentence_rerank(query, fused, sentences, rrf_k=rrf_k, depth=rerank_k)
        return [f.to_document() for f in fused[:top]]

    g = Graph[str, list[Document]](name)
    g.add_node("vector", _branch("vector", vector, fetch))
    g.add_node("bm25", _branch("bm25", bm25, fetch))
    g.add_node(
        "fuse",
        fuse,
        input_type=dict[str, BranchResult],
        output_type=list[Document],
        merge=dict,
    )
    g.add_edge(START, "vector").add_edge(START, "bm25")
    g.add_edge("vector", "fuse").add_edge("bm25", "fuse")
    g.add_edge("fuse", END)
    return g.compile()


class GraphRetriever(BaseRetriever):
    """Any compiled ``str -> list[Document]`` graph as a langchain-core retriever.

    ``k`` (here or on invoke) cuts the graph's result to its first ``k`` documents.

    Example:
        >>> retriever = GraphRetriever(graph=build_hybrid_graph(kb))  # doctest: +SKIP
        >>> retriever.invoke("what is weft?")[0].metadata["score"]  # doctest: +SKIP
        0.0325...
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    graph: Any = Field(description="a compiled weft graph from str to list[Document]")
    k: int | None = Field(default=None, ge=1)

    def _limit(self, docs: list[Document], k: int | None) -> list[Document]:
        limit = k or self.k
        return docs[:limit] if limit else docs

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        _check_query(query)
        docs: list[Document] = self.graph.invoke(query, {"callbacks": run_manager.get_child()})
        return self._limit(docs, k)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        _check_query(query)
        docs: list[Document] = await self.graph.ainvoke(
            query, {"callbacks": run_manager.get_child()}
        )
        return self._limit(docs, k)

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

from weft.components.bm25 import BM25Retriever
from weft.components.hybrid import (
    BRANCH_FAILED_EVENT,
    Fused,
    HybridRetriever,
    branch_confidence,
    mmr_select,
    reciprocal_rank_fusion,
    rerank_fused,
    sentence_rerank,
    weighted_score_fusion,
)
from weft.components.stores import ChromaStore
from weft.core.errors import ConfigurationError, EmptyQueryError, RetrievalError


def doc(doc_id: str, score: float | None = None, text: str | None = None) -> Document:
    meta = {} if score is None else {"score": score}
    return Document(page_content=text or f"text of {doc_id}", id=doc_id, metadata=meta)


class ListRetriever(BaseRetriever):
    """Returns a fixed ranking (cut to ``k``), optionally after a delay."""

    docs: list[Document]
    delay: float = 0.0
    calls: list[int] = Field(default_factory=list)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int = 4
    ) -> list[Document]:
        self.calls.append(k)
        time.sleep(self.delay)
        return self.docs[:k]


class FailingRetriever(BaseRetriever):
    message: str = "index offline"

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        raise ConnectionError(self.message)


class EventRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_custom_event(
        self, name: str, data: Any, *, run_id: UUID, tags: Any = None, **kwargs: Any
    ) -> None:
        self.events.append((name, data))


class WordEmbeddings(Embeddings):
    """Bag-of-words vectors: texts with the same words are identical vectors."""

    vocab: ClassVar[list[str]] = ["apple", "pie", "recipe", "banana", "bread", "cherry", "tart"]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        words = re.findall(r"\w+", text.lower())
        return [float(words.count(w)) for w in self.vocab]


VECTOR = [doc("a", 0.9), doc("b", 0.5), doc("c", 0.1)]
BM25 = [doc("c", 10.0), doc("a", 5.0), doc("d", 0.0)]


def test_rrf_matches_a_hand_computed_example() -> None:
    fused = reciprocal_rank_fusion({"vector": VECTOR, "bm25": BM25}, rrf_k=60)
    # a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62, d: 1/63
    assert [f.document.id for f in fused] == ["a", "c", "b", "d"]
    assert [f.score for f in fused] == pytest.approx(
        [1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62, 1 / 63]
    )
    assert fused[1].ranks == {"vector": 3, "bm25": 1}
    assert fused[1].scores == {"vector": 0.1, "bm25": 10.0}


def test_rrf_weights_scale_each_branch() -> None:
    fused = reciprocal_rank_fusion(
        {"vector": VECTOR, "bm25": BM25}, rrf_k=0, weights={"vector": 1.0, "bm25": 3.0}
    )
    # a: 1/1 + 3/2, c: 1/3 + 3/1, d: 3/3, b: 1/2
    assert [(f.document.id, f.score) for f in fused] == [
        ("c", pytest.approx(10 / 3)),
        ("a", pytest.approx(2.5)),
        ("d", pytest.approx(1.0)),
        ("b", pytest.approx(0.5)),
    ]


def test_weighted_fusion_of_min_max_normalised_scores() -> None:
    equal = weighted_score_fusion({"vector": VECTOR, "bm25": BM25})
    # vector norm: a 1, b .5, c 0; bm25 norm: c 1, a .5, d 0
    assert [(f.document.id, f.score) for f in equal] == [
        ("a", pytest.approx(0.75)),
        ("c", pytest.approx(0.5)),
        ("b", pytest.approx(0.25)),
        ("d", pytest.approx(0.0)),
    ]
    skewed = weighted_score_fusion({"vector": VECTOR, "bm25": BM25}, weights={"vector": 3.0})
    assert [f.document.id for f in skewed] == ["a", "b", "c", "d"]
    assert skewed[0].score == pytest.approx((3 * 1.0 + 0.5) / 4)


def test_fusion_dedupes_by_id_within_and_across_branches() -> None:
    fused = reciprocal_rank_fusion({"vector": [doc("a"), doc("a"), doc("b")], "bm25": [doc("a")]})
    assert [f.document.id for f in fused] == ["a", "b"]
    assert fused[0].ranks == {"vector": 1, "bm25": 1}
    assert fused[1].ranks == {"vector": 3}


def test_documents_without_ids_are_joined_by_content() -> None:
    same = Document(page_content="shared chunk", metadata={"src": "x"})
    fused = reciprocal_rank_fusion({"vector": [same], "bm25": [same.model_copy()]})
    assert len(fused) == 1 and fused[0].ranks == {"vector": 1, "bm25": 1}


def test_a_confident_branch_outweighs_an_unsure_one() -> None:
    # vector is unsure (0.51 vs 0.50), BM25 is sure (9.0 vs 1.0) of a different first document
    vector = [doc("a", 0.51), doc("b", 0.50)]
    bm25 = [doc("b", 9.0), doc("a", 1.0)]
    assert branch_confidence(vector) == pytest.approx(0.01 / 0.51)
    assert branch_confidence(bm25) == pytest.approx(8 / 9)
    plain = reciprocal_rank_fusion({"vector": vector, "bm25": bm25}, rrf_k=5)
    weighted = reciprocal_rank_fusion({"vector": vector, "bm25": bm25}, rrf_k=5, confidence=True)
    assert plain[0].score == plain[1].score  # a tie, broken by id
    assert [f.document.id for f in weighted] == ["b", "a"]
    assert weighted[0].score == pytest.approx((1 + 8 / 9) / 6 + (1 + 0.01 / 0.51) / 7)


def test_rerank_fuses_a_third_list_into_the_first_candidates_by_the_same_rule() -> None:
    fused = reciprocal_rank_fusion({"vector": VECTOR, "bm25": BM25}, rrf_k=4)  # a, c, b, d
    before = {f.document.id: f.score for f in fused}
    # The first three get sentence scores; the list is b (0.9), c (0.6), a (0.3).
    reranked = rerank_fused(fused, [0.3, 0.6, 0.9], rrf_k=4)
    weight = 1 + (0.9 - 0.6) / 0.9
    gained = {"b": weight / 5, "c": weight / 6, "a": weight / 7}
    assert {f.document.id: f.score for f in reranked} == pytest.approx(
        {k: before[k] + gained.get(k, 0.0) for k in before}
    )
    assert [f.document.id for f in reranked] == ["c", "a", "b", "d"]
    assert reranked[0].ranks == {"vector": 3, "bm25": 1, "sentence": 2}
    assert reranked[0].scores["sentence"] == 0.6
    assert "sentence" not in reranked[-1].ranks  # past the reranked ones, order kept
    assert {f.document.id: f.score for f in fused} == before  # the input is left as it was


class WordCounts(Embeddings):
    """Vectors that count a few words, so cosines can be worked out by hand."""

    WORDS: ClassVar[tuple[str, ...]] = ("warranty", "years", "shipping", "colour")
    calls: list[list[str]]

    def __init__(self) -> None:
        self.calls = []

    def _vector(self, text: str) -> list[float]:
        words = re.findall(r"\w+", text.lower())
        return [float(words.count(w)) for w in self.WORDS] + [0.01]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def test_sentence_rerank_scores_each_candidate_by_its_best_sentence() -> None:
    # "spread" mentions the question's words in every line, weakly; "answer" has one line
    # that is all about them, among lines about something else.
    spread = doc("spread", text="Shipping and warranty. Colour and warranty.\nShipping colour")
    answer = doc("answer", text="Colour options.\nThe warranty lasts two years. Shipping is free")
    late = doc("late", text="warranty years")
    fused = [Fused(spread, 0.42, {"bm25": 1}), Fused(answer, 0.4, {"bm25": 2}), Fused(late, 0.1)]
    embedder = WordCounts()
    reranked = sentence_rerank("How many years of warranty?", fused, embedder, depth=2)
    # answer: the question's own vector, cosine 1; spread: at best 1 of 2 words, about 0.5.
    # The list's confidence is (1 - 0.5) / 1, so answer gains 1.5 / 5 and spread 1.5 / 6.
    assert [f.document.id for f in reranked] == ["answer", "spread", "late"]
    assert [f.scores["sentence"] for f in reranked[:2]] == pytest.approx([1.0, 0.5], abs=1e-3)
    assert [f.score for f in reranked] == pytest.approx([0.7, 0.67, 0.1], abs=1e-3)
    # Lines and sentences, each embedded once; the candidate past ``depth`` is not read.
    assert embedder.calls == [
        [
            "Shipping and warranty.",
            "Colour and warranty.",
            "Shipping colour",
            "Colour options.",
            "The warranty lasts two years.",
            "Shipping is free",
        ]
    ]


def test_hybrid_with_a_reranker_reports_the_sentence_rank_sync_and_async() -> None:
    vector = ListRetriever(docs=[doc("a", 0.9, "Shipping to Iceland."), doc("b", 0.8, "x")])
    bm25 = ListRetriever(docs=[doc("b", 5.0, "Warranty: two years."), doc("a", 1.0, "y")])
    hybrid = HybridRetriever(vector=vector, bm25=bm25, k=2, reranker=WordCounts())
    docs = hybrid.invoke("how many years of warranty")
    assert [d.id for d in docs] == ["b", "a"]
    assert docs[0].metadata["ranks"] == {"vector": 2, "bm25": 1, "sentence": 1}
    assert [d.metadata for d in asyncio.run(hybrid.ainvoke("how many years of warranty"))] == [
        d.metadata for d in docs
    ]


def test_hybrid_returns_top_k_with_fused_score_ranks_and_branch_scores() -> None:
    hybrid = HybridRetriever(
        vector=ListRetriever(docs=VECTOR),
        bm25=ListRetriever(docs=BM25),
        k=2,
        rrf_k=60,
        confidence=False,
    )
    docs = hybrid.invoke("query")
    assert [d.id for d in docs] == ["a", "c"]
    assert docs[0].metadata["score"] == pytest.approx(1 / 61 + 1 / 62)
    assert docs[0].metadata["ranks"] == {"vector": 1, "bm25": 2}
    assert docs[0].metadata["scores"] == {"vector": 0.9, "bm25": 5.0}
    assert len(hybrid.invoke("query", k=3)) == 3


def test_hybrid_asks_each_branch_for_fetch_k_candidates() -> None:
    vector, bm25 = ListRetriever(docs=VECTOR, calls=[]), ListRetriever(docs=BM25, calls=[])
    HybridRetriever(vector=vector, bm25=bm25, k=2, fetch_k=7).invoke("query")
    HybridRetriever(vector=vector, bm25=bm25, k=2, fetch_k=7).invoke("query", k=9)
    assert vector.calls == bm25.calls == [7, 9]


def test_hybrid_weighted_mode() -> None:
    hybrid = HybridRetriever(
        vector=ListRetriever(docs=VECTOR), bm25=ListRetriever(docs=BM25), fusion="weighted"
    )
    assert [(d.id, d.metadata["score"]) for d in hybrid.invoke("q")] == [
        ("a", pytest.approx(0.75)),
        ("c", pytest.approx(0.5)),
        ("b", pytest.approx(0.25)),
        ("d", pytest.approx(0.0)),
    ]


def test_hybrid_runs_branches_in_parallel() -> None:
    hybrid = HybridRetriever(
        vector=ListRetriever(docs=VECTOR, delay=0.3), bm25=ListRetriever(docs=BM25, delay=0.3)
    )
    start = time.perf_counter()
    hybrid.invoke("q")
    assert time.perf_counter() - start < 0.5


async def test_async_hybrid_runs_branches_concurrently() -> None:
    hybrid = HybridRetriever(
        vector=ListRetriever(docs=VECTOR, delay=0.3), bm25=ListRetriever(docs=BM25, delay=0.3)
    )
    start = time.perf_counter()
    docs = await hybrid.ainvoke("q", k=2)
    assert time.perf_counter() - start < 0.5
    assert [d.id for d in docs] == ["a", "c"]


def test_hybrid_survives_one_failed_branch_and_reports_it() -> None:
    recorder = EventRecorder()
    hybrid = HybridRetriever(vector=FailingRetriever(), bm25=ListRetriever(docs=BM25))
    docs = hybrid.invoke("q", {"callbacks": [recorder]})
    assert [d.id for d in docs] == ["c", "a", "d"]
    assert docs[0].metadata["ranks"] == {"bm25": 1}
    assert recorder.events == [
        (
            BRANCH_FAILED_EVENT,
            {
                "retriever": "HybridRetriever",
                "branch": "vector",
                "error_type": "ConnectionError",
                "error": "index offline",
            },
        )
    ]


async def test_async_hybrid_survives_one_failed_branch_and_reports_it() -> None:
    recorder = EventRecorder()
    hybrid = HybridRetriever(vector=ListRetriever(docs=VECTOR), bm25=FailingRetriever())
    docs = await hybrid.ainvoke("q", {"callbacks": [recorder]})
    assert [d.id for d in docs] == ["a", "b", "c"]
    assert [(name, data["branch"]) for name, data in recorder.events] == [
        (BRANCH_FAILED_EVENT, "bm25")
    ]


def test_branch_failure_is_visible_in_astream_events() -> None:
    hybrid = HybridRetriever(vector=FailingRetriever(), bm25=ListRetriever(docs=BM25))

    async def collect() -> list[str]:
        return [e["name"] async for e in hybrid.astream_events("q", version="v2")]

    assert BRANCH_FAILED_EVENT in asyncio.run(collect())


def test_both_branches_failing_raises_retrieval_error_naming_both() -> None:
    hybrid = HybridRetriever(
        vector=FailingRetriever(message="chroma down"), bm25=FailingRetriever(message="no index")
    )
    with pytest.raises(RetrievalError, match=r"vector: ConnectionError: chroma down") as info:
        hybrid.invoke("q")
    assert "bm25: ConnectionError: no index" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)


async def test_async_both_branches_failing_raises() -> None:
    hybrid = HybridRetriever(vector=FailingRetriever(), bm25=FailingRetriever())
    with pytest.raises(RetrievalError):
        await hybrid.ainvoke("q")


@pytest.mark.parametrize("query", ["", "  "])
async def test_empty_query_raises(query: str) -> None:
    hybrid = HybridRetriever(vector=ListRetriever(docs=VECTOR), bm25=ListRetriever(docs=BM25))
    with pytest.raises(EmptyQueryError):
        hybrid.invoke(query)
    with pytest.raises(EmptyQueryError):
        await hybrid.ainvoke(query)


def test_mmr_select_skips_duplicates() -> None:
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert mmr_select([1.0, 0.9, 0.2], vectors, k=2, lambda_=0.5) == [0, 2]
    assert mmr_select([1.0, 0.9, 0.2], vectors, k=2, lambda_=1.0) == [0, 1]


async def test_mmr_reduces_near_duplicates() -> None:
    ranked = [
        doc("1", text="apple pie recipe"),
        doc("2", text="Apple pie recipe!"),
        doc("3", text="apple pie, recipe"),
        doc("4", text="banana bread"),
    ]
    branches = {"vector": ListRetriever(docs=ranked), "bm25": ListRetriever(docs=ranked)}
    plain = HybridRetriever(**branches, k=2)
    diverse = HybridRetriever(**branches, k=2, mmr=True, embeddings=WordEmbeddings())
    assert [d.id for d in plain.invoke("apple")] == ["1", "2"]
    assert [d.id for d in diverse.invoke("apple")] == ["1", "4"]
    assert [d.id for d in await diverse.ainvoke("apple")] == ["1", "4"]


def test_mmr_without_embeddings_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="embeddings"):
        HybridRetriever(vector=ListRetriever(docs=[]), bm25=ListRetriever(docs=[]), mmr=True)


def test_unknown_weight_branch_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'dense'"):
        HybridRetriever(
            vector=ListRetriever(docs=[]), bm25=ListRetriever(docs=[]), weights={"dense": 1.0}
        )


def test_hybrid_over_real_chroma_and_bm25(tmp_path: Path) -> None:
    corpus = [
        Document(page_content="apple pie recipe with cinnamon", id="pie"),
        Document(page_content="banana bread needs ripe bananas", id="bread"),
        Document(page_content="cherry tart with almond crust", id="tart"),
    ]
    store = ChromaStore("hybrid-test", WordEmbeddings(), data_dir=tmp_path)
    store.upsert(corpus)
    hybrid = HybridRetriever(vector=store.as_retriever(), bm25=BM25Retriever(documents=corpus), k=2)
    docs = hybrid.invoke("banana bread")
    assert docs[0].id == "bread"
    assert docs[0].metadata["ranks"] == {"vector": 1, "bm25": 1}
    assert set(docs[0].metadata["scores"]) == {"vector", "bm25"}

"""Hybrid retrieval: a vector branch and a BM25 branch run in parallel, then fused.

Fusion is Reciprocal Rank Fusion (Cormack et al., 2009), ``score(d) = sum_b w_b / (rrf_k +
rank_b(d))`` over the branches that returned ``d`` (ranks start at 1), or a weighted mean of
min-max-normalised branch scores. By default each branch's RRF weight is also scaled, per
query, by its confidence (:func:`branch_confidence`): a branch whose first result stands out
from its second counts more. The RRF constant is :data:`DEFAULT_RRF_K` (4): a small one lets a
branch's first results count much more than its later ones. Both were chosen on the weft
handbook's retrieval queries and on the tuning part of the Lumo documents' queries, as the
setting whose worst margin over the better branch (MRR and nDCG@10, on either corpus) is
largest; docs/evals.md has the measured tables.

With a ``reranker`` (an embedder; the knowledge base passes :func:`default_reranker`, the
offline all-MiniLM-L6-v2 sentence encoder, when it is installed), a third ranked list joins the
fusion: the first :data:`DEFAULT_RERANK_K` fused candidates ordered by the cosine between the
question and each candidate's best sentence (:func:`sentence_rerank`). It is fused in by the
same rule, ``(1 + confidence) / (rrf_k + rank)``, and those candidates are re-sorted; the rest
keep their order. Whole-chunk vectors blur a chunk's one answering sentence with the others;
the best sentence does not.

A failing branch is reported as a callback event (:data:`BRANCH_FAILED_EVENT`) and the other
branch answers alone; only when both fail does the retriever raise
:class:`~weft.core.errors.RetrievalError`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForRetrieverRun,
    BaseCallbackManager,
    CallbackManagerForRetrieverRun,
)
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field

from weft.components._extractive import _sentences
from weft.components._ids import document_id
from weft.components._trace import retriever_params
from weft.core.errors import (
    ConfigurationError,
    EmptyQueryError,
    MissingExtraError,
    RetrievalError,
)

__all__ = [
    "BRANCH_FAILED_EVENT",
    "DEFAULT_RERANK_K",
    "DEFAULT_RRF_K",
    "Fused",
    "HybridRetriever",
    "branch_confidence",
    "default_reranker",
    "mmr_select",
    "reciprocal_rank_fusion",
    "rerank_fused",
    "sentence_rerank",
    "weighted_score_fusion",
]

#: Name of the custom callback event sent when one branch fails and the other answers.
BRANCH_FAILED_EVENT = "weft.retriever.branch_failed"

logger = logging.getLogger(__name__)

_BRANCHES = ("vector", "bm25")
_WORD = re.compile(r"\w")

DEFAULT_RRF_K = 4
"""The RRF constant hybrid retrieval uses unless told otherwise (see the module docs)."""

DEFAULT_RERANK_K = 10
"""Fused candidates the sentence reranker re-scores (see the module docs)."""


@dataclass
class Fused:
    """One fused result: the document as the first branch returned it, its fused score, and
    each branch's rank and score for it."""

    document: Document
    score: float
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    def to_document(self) -> Document:
        """The document with ``score`` (fused), ``ranks`` and ``scores`` (per branch) set."""
        # The branch's own ``score`` is replaced by the fused one (it stays in ``scores``).
        metadata = {
            **self.document.metadata,
            "score": self.score,
            "ranks": dict(self.ranks),
            "scores": dict(self.scores),
        }
        return self.document.model_copy(update={"metadata": metadata})


def _collect(rankings: Mapping[str, Sequence[Document]]) -> dict[str, Fused]:
    """Join branch results by document id, keeping each branch's best rank."""
    joined: dict[str, Fused] = {}
    for branch, docs in rankings.items():
        for rank, doc in enumerate(docs, start=1):
            key = document_id(doc)
            entry = joined.get(key)
            if entry is None:
                entry = joined[key] = Fused(document=doc, score=0.0)
            if branch in entry.ranks:
                continue  # a branch listing a document twice keeps its better rank
            entry.ranks[branch] = rank
            raw = doc.metadata.get("score")
            entry.scores[branch] = float(raw) if isinstance(raw, int | float) else 1.0 / rank
    return joined


def _ordered(joined: dict[str, Fused]) -> list[Fused]:
    # Ties go to the document with the best single-branch rank, then to its id, so the
    # order never depends on dict iteration or thread timing.
    return sorted(
        joined.values(),
        key=lambda f: (-f.score, min(f.ranks.values()), document_id(f.document)),
    )


def branch_confidence(docs: Sequence[Document]) -> float:
    """How much a branch's first result stands out: ``(s1 - s2) / s1`` of its two best scores
    (``metadata["score"]``), in [0, 1]; 0 with fewer than two scored results.

    Example:
        >>> docs = [Document("a", metadata={"score": 8.0}), Document("b", metadata={"score": 2.0})]
        >>> branch_confidence(docs)
        0.75
    """
    scores = [d.metadata.get("score") for d in docs[:2]]
    if len(scores) < 2 or not all(isinstance(s, int | float) for s in scores):
        return 0.0
    return _confidence([float(s) for s in scores])  # type: ignore[arg-type]


def _confidence(best_first: Sequence[float]) -> float:
    if len(best_first) < 2 or best_first[0] <= 0:
        return 0.0
    first, second = best_first[0], best_first[1]
    return min(1.0, max(0.0, (first - second) / first))


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[Document]],
    *,
    rrf_k: int = 60,
    weights: Mapping[str, float] | None = None,
    confidence: bool = False,
) -> list[Fused]:
    """Fuse ranked lists with RRF: ``sum_b weight_b / (rrf_k + rank_b)``, ranks from 1.

    With ``confidence``, each branch's weight is multiplied by ``1 +``
    :func:`branch_confidence` of its list, for this query.

    Example:
        >>> a, b = Document(page_content="a", id="a"), Document(page_content="b", id="b")
        >>> [(f.document.id, round(f.score, 5)) for f in
        ...  reciprocal_rank_fusion({"vector": [a, b], "bm25": [b]})]
        [('b', 0.03252), ('a', 0.01639)]
    """
    joined = _collect(rankings)
    weight = {b: 1.0 if weights is None else weights.get(b, 1.0) for b in rankings}
    if confidence:
        weight = {b: w * (1.0 + branch_confidence(rankings[b])) for b, w in weight.items()}
    for entry in joined.values():
        entry.score = sum(weight[branch] / (rrf_k + rank) for branch, rank in entry.ranks.items())
    return _ordered(joined)


def weighted_score_fusion(
    rankings: Mapping[str, Sequence[Document]],
    *,
    weights: Mapping[str, float] | None = None,
) -> list[Fused]:
    """Fuse by a weighted mean of min-max-normalised scores (``metadata["score"]``).

    Each branch's scores are scaled to [0, 1] over its own results (all 1.0 when they are
    equal); a document a branch did not return gets 0 from it. A result without a score
    counts as ``1 / rank``. The fused score is ``sum_b w_b * norm_b / sum_b w_b``.

    Example:
        >>> a = Document(page_content="a", id="a", metadata={"score": 0.9})
        >>> b = Document(page_content="b", id="b", metadata={"score": 0.5})
        >>> [(f.document.id, f.score) for f in weighted_score_fusion({"vector": [a, b]})]
        [('a', 1.0), ('b', 0.0)]
    """
    joined = _collect(rankings)
    total = sum((1.0 if weights is None else weights.get(b, 1.0)) for b in rankings) or 1.0
    for branch in rankings:
        weight = 1.0 if weights is None else weights.get(branch, 1.0)
        values = [e.scores[branch] for e in joined.values() if branch in e.scores]
        if not values:
            continue
        low, high = min(values), max(values)
        for entry in joined.values():
            if branch in entry.scores:
                norm = 1.0 if high == low else (entry.scores[branch] - low) / (high - low)
                entry.score += weight * norm / total
    return _ordered(joined)


def rerank_fused(
    fused: Sequence[Fused], scores: Sequence[float], *, rrf_k: int = DEFAULT_RRF_K
) -> list[Fused]:
    """Fuse a third ranked list into the first ``len(scores)`` fused candidates.

    ``scores[i]`` scores ``fused[i]``; the candidates ordered by it (best first) form the list
    ``"sentence"``, fused in as RRF fuses a branch: each gains ``(1 + confidence) / (rrf_k +
    rank)``, confidence being ``(s1 - s2) / s1`` of its two best scores. Those candidates are
    re-sorted; the ones after them keep their order.

    Example:
        >>> a, b = Document("a", id="a"), Document("b", id="b")
        >>> fused = [Fused(a, 0.30, {"bm25": 1}), Fused(b, 0.25, {"bm25": 2})]
        >>> [f.document.id for f in rerank_fused(fused, [0.2, 0.8], rrf_k=4)]
        ['b', 'a']
    """
    # Copies, so the caller's list keeps its own scores and ranks.
    head = [replace(f, ranks=dict(f.ranks), scores=dict(f.scores)) for f in fused[: len(scores)]]
    tail = list(fused[len(scores) :])
    order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
    weight = 1.0 + _confidence([scores[i] for i in order])
    for rank, i in enumerate(order, start=1):
        entry = head[i]
        entry.score += weight / (rrf_k + rank)
        entry.ranks["sentence"] = rank
        entry.scores["sentence"] = float(scores[i])
    return _ordered({document_id(f.document): f for f in head}) + tail


def _split_sentences(text: str) -> list[str]:
    # Lines first: headings and list items end without a full stop.
    return [s for line in text.splitlines() for s in _sentences(line) if _WORD.search(s)]


def sentence_rerank(
    query: str,
    fused: Sequence[Fused],
    reranker: Embeddings,
    *,
    rrf_k: int = DEFAULT_RRF_K,
    depth: int = DEFAULT_RERANK_K,
) -> list[Fused]:
    """Re-rank the first ``depth`` fused candidates by their best sentence's similarity.

    Each candidate's text is split into lines and sentences; its score is the highest cosine
    between the question (``embed_query``) and one of them (``embed_documents``). The scores
    go to :func:`rerank_fused`.
    """
    head = list(fused[:depth])
    sentences = [_split_sentences(f.document.page_content) for f in head]
    flat = [s for group in sentences for s in group]
    if not flat:
        return list(fused)
    # One rerank embeds at a time: questions asked together mostly share candidates, and an
    # embedder that remembers texts (MiniLM does) then embeds each sentence once, not once
    # per question; on a CPU encoder, running them side by side would not be faster anyway.
    with _embed_lock:
        question = _unit(np.asarray([reranker.embed_query(query)], dtype=np.float64))[0]
        vectors = np.asarray(reranker.embed_documents(flat), dtype=np.float64)
    similarity = _unit(vectors) @ question
    scores, start = [], 0
    for group in sentences:
        scores.append(float(similarity[start : start + len(group)].max()) if group else -1.0)
        start += len(group)
    return rerank_fused(head, scores, rrf_k=rrf_k) + list(fused[depth:])


def _unit(mat: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return mat / np.where(norms == 0, 1.0, norms)


_embed_lock = threading.Lock()


@functools.cache
def default_reranker() -> Embeddings | None:
    """The sentence encoder the knowledge base's hybrid retrieval re-ranks with: the offline
    all-MiniLM-L6-v2 (one instance per process), or None, logged, when its model package is
    not installed."""
    from weft.components._minilm import MiniLMEmbeddings

    try:
        return MiniLMEmbeddings()
    except MissingExtraError as exc:
        logger.info("hybrid retrieval fuses two branches without a reranker: %s", exc)
        return None


def mmr_select(
    relevance: Sequence[float], vectors: np.ndarray[Any, Any], k: int, lambda_: float = 0.5
) -> list[int]:
    """Pick ``k`` indices by Maximal Marginal Relevance.

    Each step takes the candidate maximising ``lambda_ * relevance - (1 - lambda_) *
    max cosine similarity to those already picked``; relevance should be in [0, 1].

    Example:
        >>> mmr_select([1.0, 0.99, 0.5], np.array([[1.0, 0], [1.0, 0], [0, 1.0]]), k=2)
        [0, 2]
    """
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    unit = _unit(np.asarray(vectors, dtype=np.float64))
    sim = unit @ unit.T
    rel = np.asarray(relevance, dtype=np.float64)
    chosen = [int(np.argmax(rel))]
    max_sim = sim[chosen[0]].copy()
    available = np.ones(n, dtype=bool)
    available[chosen[0]] = False
    while len(chosen) < min(k, n):
        gain = lambda_ * rel - (1.0 - lambda_) * max_sim
        gain[~available] = -np.inf
        pick = int(np.argmax(gain))
        chosen.append(pick)
        available[pick] = False
        np.maximum(max_sim, sim[pick], out=max_sim)
    return chosen


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="weft-hybrid")
        return _pool


class HybridRetriever(BaseRetriever):
    """Vector + BM25 retrieval, run in parallel and fused (RRF by default).

    Each branch is asked for ``fetch_k`` candidates; the top ``k`` fused documents come back
    with ``metadata["score"]`` (fused), ``metadata["ranks"]`` and ``metadata["scores"]`` (per
    branch, e.g. ``{"vector": 2, "bm25": 1}``). Documents are joined by id. With ``mmr=True``
    the final ``k`` are picked by Maximal Marginal Relevance over the fused candidates, using
    ``embeddings`` for document similarity and the normalised fused score as relevance.

    Example:
        >>> hybrid = HybridRetriever(vector=store.as_retriever(), bm25=bm25, k=5)
        >>> docs = hybrid.invoke("how are chunks embedded?")
        >>> docs[0].metadata["ranks"]
        {'vector': 1, 'bm25': 3}
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    vector: BaseRetriever
    bm25: BaseRetriever
    k: int = Field(default=4, ge=1)
    fetch_k: int = Field(default=20, ge=1, description="Candidates asked of each branch.")
    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = Field(default=DEFAULT_RRF_K, ge=0)
    confidence: bool = True
    """Scale each branch's RRF weight by its confidence for the query (see module docs)."""
    weights: dict[str, float] = Field(default_factory=lambda: {"vector": 1.0, "bm25": 1.0})
    reranker: Embeddings | None = None
    """Re-rank the first ``rerank_k`` fused candidates by their best sentence's similarity to
    the question, with this embedder (see module docs); None fuses the two branches only."""
    rerank_k: int = Field(default=DEFAULT_RERANK_K, ge=1)
    mmr: bool = False
    mmr_lambda: float = Field(default=0.5, ge=0.0, le=1.0)
    embeddings: Embeddings | None = None

    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        k = kwargs.get("k") or self.k
        return retriever_params(super()._get_ls_params(**kwargs), top_k=k, source="hybrid")

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # Checked here, not in a pydantic validator, so callers get a ConfigurationError
        # rather than a ValidationError wrapping it.
        if self.mmr and self.embeddings is None:
            raise ConfigurationError(
                "HybridRetriever(mmr=True) needs embeddings=... to compare documents; "
                "pass the embedder of the vector store, or set mmr=False"
            )
        unknown = set(self.weights) - set(_BRANCHES)
        if unknown:
            raise ConfigurationError(
                f"HybridRetriever weights has unknown branches {sorted(unknown)}; "
                f"valid branches are {list(_BRANCHES)}"
            )

    # -- sync ------------------------------------------------------------------------------

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        _check_query(query)
        limit = k or self.k
        fetch = max(self.fetch_k, limit)
        # BM25 runs in a worker (copying context vars so tracing follows it); the vector
        # branch, usually the slower one, runs in this thread.
        ctx = contextvars.copy_context()
        bm25_future = _executor().submit(
            ctx.run, self._run, self.bm25, query, fetch, run_manager.get_child("bm25")
        )
        vector = self._run(self.vector, query, fetch, run_manager.get_child("vector"))
        results = {"vector": vector, "bm25": bm25_future.result()}
        for name, error in _failures(results).items():
            self._log_failure(name, error)
            dispatch_custom_event(
                BRANCH_FAILED_EVENT,
                self._event(name, error),
                config={"callbacks": run_manager.get_child()},
            )
        fused = self._rerank(query, self._fuse(results))
        if self.mmr and len(fused) > limit:
            assert self.embeddings is not None
            texts = [f.document.page_content for f in fused]
            vectors = np.asarray(self.embeddings.embed_documents(texts), dtype=np.float64)
            fused = [fused[i] for i in self._mmr(fused, vectors, limit)]
        return [f.to_document() for f in fused[:limit]]

    @staticmethod
    def _run(
        branch: BaseRetriever, query: str, fetch: int, callbacks: BaseCallbackManager
    ) -> list[Document] | Exception:
        try:
            return branch.invoke(query, {"callbacks": callbacks}, k=fetch)
        except Exception as exc:  # a failed branch is reported, not raised, unless both fail
            return exc

    # -- async -----------------------------------------------------------------------------

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        _check_query(query)
        limit = k or self.k
        fetch = max(self.fetch_k, limit)
        vector, bm25 = await asyncio.gather(
            self._arun(self.vector, query, fetch, run_manager.get_child("vector")),
            self._arun(self.bm25, query, fetch, run_manager.get_child("bm25")),
        )
        results = {"vector": vector, "bm25": bm25}
        for name, error in _failures(results).items():
            self._log_failure(name, error)
            await adispatch_custom_event(
                BRANCH_FAILED_EVENT,
                self._event(name, error),
                config={"callbacks": run_manager.get_child()},
            )
        fused = self._fuse(results)
        if self.reranker is not None:
            # The sentence encoder is CPU-bound numpy (or a blocking client): off the loop.
            fused = await run_in_executor(None, self._rerank, query, fused)
        if self.mmr and len(fused) > limit:
            assert self.embeddings is not None
            texts = [f.document.page_content for f in fused]
            vectors = np.asarray(await self.embeddings.aembed_documents(texts), dtype=np.float64)
            fused = [fused[i] for i in self._mmr(fused, vectors, limit)]
        return [f.to_document() for f in fused[:limit]]

    @staticmethod
    async def _arun(
        branch: BaseRetriever, query: str, fetch: int, callbacks: AsyncCallbackManager
    ) -> list[Document] | Exception:
        try:
            if type(branch)._aget_relevant_documents is BaseRetriever._aget_relevant_documents:
                # langchain-core's default async path forwards keyword arguments such as ``k``
                # to a method that takes none; run the sync path off the loop instead.
                return await run_in_executor(
                    None, branch.invoke, query, {"callbacks": callbacks}, k=fetch
                )
            return await branch.ainvoke(query, {"callbacks": callbacks}, k=fetch)
        except Exception as exc:  # a failed branch is reported, not raised, unless both fail
            return exc

    # -- shared ----------------------------------------------------------------------------

    def _fuse(self, results: Mapping[str, list[Document] | Exception]) -> list[Fused]:
        answered = {n: r for n, r in results.items() if not isinstance(r, Exception)}
        if not answered:
            causes = "; ".join(f"{n}: {type(e).__name__}: {e}" for n, e in results.items())
            raise RetrievalError(
                f"hybrid retrieval failed in both branches ({causes}); check the vector "
                "store and the BM25 index"
            ) from next(e for e in results.values() if isinstance(e, Exception))
        if self.fusion == "rrf":
            return reciprocal_rank_fusion(
                answered, rrf_k=self.rrf_k, weights=self.weights, confidence=self.confidence
            )
        return weighted_score_fusion(answered, weights=self.weights)

    def _rerank(self, query: str, fused: list[Fused]) -> list[Fused]:
        if self.reranker is None:
            return fused
        return sentence_rerank(query, fused, self.reranker, rrf_k=self.rrf_k, depth=self.rerank_k)

    def _mmr(self, fused: list[Fused], vectors: np.ndarray[Any, Any], k: int) -> list[int]:
        scores = np.array([f.score for f in fused])
        low, high = float(scores.min()), float(scores.max())
        relevance = np.ones_like(scores) if high == low else (scores - low) / (high - low)
        return mmr_select(list(relevance), vectors, k, self.mmr_lambda)

    def _event(self, branch: str, error: Exception) -> dict[str, Any]:
        return {
            "retriever": self.get_name(),
            "branch": branch,
            "error_type": type(error).__name__,
            "error": str(error),
        }

    def _log_failure(self, branch: str, error: Exception) -> None:
        logger.warning(
            "%s: %s branch failed, answering from the other: %s: %s",
            self.get_name(),
            branch,
            type(error).__name__,
            error,
        )


def _failures(results: Mapping[str, object]) -> dict[str, Exception]:
    return {n: r for n, r in results.items() if isinstance(r, Exception)}


def _check_query(query: str) -> None:
    if not isinstance(query, str) or not query.strip():
        raise EmptyQueryError("hybrid retriever query is empty; pass some text to search for")

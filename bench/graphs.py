"""Graph overhead of the hybrid retrieval graph: queries/s in-process, graph vs bare retriever.

Both sides do the same retrieval over the same index: Chroma (the offline embedder) and BM25 at
10k generated chunks (``bench.retrieval``'s corpus), RRF with ``fetch_k=20, k=4``. The bare side
is :class:`~weft.components.hybrid.HybridRetriever`; the graph side is
:func:`weft.graphs.hybrid.build_hybrid_graph` over the same two retrievers (three nodes: two
parallel branches and the fusion), run twice: by the DAG executor (what ``compile()`` picks for
it) and by LangGraph (the same plan compiled with ``executor="langgraph"``). Queries run one at a
time, alternating blocks between the contenders so machine noise hits all alike. The ratio is
graph / bare queries/s: 1.0 means the graph costs nothing.

A second table times a RAG chat turn without a session (``build_rag_graph`` over the bundled
handbook, the offline extractive model): the graph as compiled (the DAG executor), the same plan
on LangGraph, and a plain function that calls the graph's components in the graph's order by
hand (condense, the two retrievers one after the other, fusion, the relevance check, the packer,
the prompt, the model, the answer), asserted to give the same answers; and each executor's
``events()`` read to the end (the model's tokens streamed), and the DAG executor's
``events()`` as it ran before: the whole run on a worker thread.

Run: ``python -m bench.graphs [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
from collections import deque
from collections.abc import Sequence
from typing import Any

from bench.retrieval import interleaved_qps, make_corpus, make_queries, offline_embedder, table
from weft.components.bm25 import BM25Retriever
from weft.components.hybrid import HybridRetriever
from weft.components.stores import ChromaStore
from weft.core.compiled import CompiledGraph
from weft.graphs.hybrid import build_hybrid_graph


def _async_qps(contenders: dict[str, Any], queries: Sequence[str]) -> dict[str, float]:
    import time

    async def run(fn: Any) -> float:
        start = time.perf_counter()
        for q in queries:
            await fn(q)
        return len(queries) / (time.perf_counter() - start)

    return {name: asyncio.run(run(fn)) for name, fn in contenders.items()}


def bench(n: int, n_queries: int) -> None:
    corpus = make_corpus(n)
    queries = make_queries(n_queries, seed=5)
    embedder, label = offline_embedder()
    with tempfile.TemporaryDirectory() as tmp:
        store = ChromaStore("bench", embedder, data_dir=tmp)
        store.upsert(corpus)
        bm25 = BM25Retriever(documents=corpus)
        bm25.refresh()
        vector = store.as_retriever()
        bare = HybridRetriever(vector=vector, bm25=bm25, k=4, fetch_k=20)
        dag = build_hybrid_graph((vector, bm25), k=4, fetch_k=20)
        assert dag.executor == "dag"
        on_langgraph = CompiledGraph[str, Any](dag.plan, executor="langgraph")
        graphs = {"dag": dag, "langgraph": on_langgraph}
        for q in queries[:20]:  # warm caches and thread pools
            bare.invoke(q)
            for graph in graphs.values():
                graph.invoke(q)
        for graph in graphs.values():
            assert [d.id for d in bare.invoke(queries[0])] == [
                d.id for d in graph.invoke(queries[0])
            ]
        sync = interleaved_qps(
            {"bare": bare.invoke, **{k: g.invoke for k, g in graphs.items()}}, queries
        )
        async_ = _async_qps(
            {"bare": bare.ainvoke, **{k: g.ainvoke for k, g in graphs.items()}}, queries[:200]
        )
    rows = [
        [f"{path}, {executor}", f"{qps['bare']:,.0f}", f"{qps[executor]:,.0f}",
         f"{qps[executor] / qps['bare']:.2f}",
         f"{(1 / qps[executor] - 1 / qps['bare']) * 1000:.2f}"]
        for path, qps in (("sync invoke", sync), ("async ainvoke", async_))
        for executor in graphs
    ]  # fmt: skip
    table(
        f"Hybrid retrieval at {n // 1000}k chunks, {n_queries} queries (async: "
        f"{min(200, n_queries)}), k=4, embedder: {label}; {platform.machine()}",
        [
            "path, executor",
            "bare HybridRetriever q/s",
            "hybrid graph q/s",
            "ratio",
            "overhead ms/query",
        ],
        rows,
    )


_QUESTIONS = (
    "How do I stream tokens from a graph?",
    "What does a checkpointer do?",
    "How are callbacks reported?",
    "Which embedder runs offline?",
    "How do I run the chat server?",
)


def _rag_by_hand(kb: Any) -> Any:
    """The RAG turn as a plain function: the components ``build_rag_graph`` runs, called in its
    order with its settings, with no graph around them."""
    from weft.chains.citations import citation_messages, citation_prompt_tokens
    from weft.chains.condense import CondenseInput, condense_question
    from weft.components.hybrid import DEFAULT_RRF_K, reciprocal_rank_fusion
    from weft.components.models import NO_ANSWER, default_chat_model
    from weft.components.prompts import ContextPacker
    from weft.components.resilience import is_fallback_answer
    from weft.graphs.rag import _cited, _source_refs, _total_usage
    from weft.graphs.schema import ChatInput, ChatOutput

    settings = kb.settings
    model = default_chat_model()
    model = model.model_copy(update={"embeddings": kb.store.embeddings})
    condense = condense_question(None, retrieves=lambda w: bool(kb.bm25.search(w, k=1))).fn
    top, fetch = settings.top_k, max(20, settings.top_k)
    vector, bm25 = kb.vector_retriever(top), kb.bm25
    packer = ContextPacker(settings.context_tokens, name="pack")

    def turn(chat: ChatInput) -> ChatOutput:
        c = condense(CondenseInput(chat.question, list(chat.history)), {})
        branches = {
            "vector": vector.invoke(c.query, k=fetch),
            "bm25": bm25.invoke(c.query, k=fetch),
        }
        docs = [
            f.to_document()
            for f in reciprocal_rank_fusion(branches, rrf_k=DEFAULT_RRF_K, confidence=True)[:top]
        ]
        usage_state: dict[str, Any] = {"condense_usage": c.usage}
        scores = (d.metadata.get("score") for d in docs)
        if not any(isinstance(s, int | float) and s > settings.score_threshold for s in scores):
            return ChatOutput(answer=NO_ANSWER, sources=[], usage=_total_usage(None, usage_state))
        packed = packer.invoke(docs)
        sources = _source_refs(packed)
        usage_state["prompt_tokens"] = citation_prompt_tokens(packed, c.query)
        message = model.invoke(citation_messages(packed, c.query))
        text = message.text.strip()
        return ChatOutput(
            answer=text,
            sources=_cited(text, sources),
            usage=_total_usage(message, usage_state),  # type: ignore[arg-type]
            fallback=is_fallback_answer(message),
        )

    return turn


def rag_turns(n_turns: int) -> None:
    from weft.core.settings import Settings
    from weft.graphs.knowledge import KnowledgeBase
    from weft.graphs.rag import build_rag_graph
    from weft.graphs.schema import ChatInput

    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Settings(data_dir=tmp))
        kb.ensure_demo()
        dag = build_rag_graph(kb)
        assert dag.executor == "dag"
        on_langgraph = CompiledGraph[ChatInput, Any](dag.plan, executor="langgraph")
        by_hand = _rag_by_hand(kb)
        paths = {
            "by hand": by_hand,
            "dag": dag.invoke,
            "langgraph": on_langgraph.invoke,
            "dag, events()": lambda q: deque(dag.events(q), maxlen=0),
            # The path events() took before: the whole run on a worker thread.
            "dag, events(), whole run on a worker": lambda q: deque(
                dag._events_on_worker(dag._input(q), q, None), maxlen=0
            ),
            "langgraph, events()": lambda q: deque(on_langgraph.events(q), maxlen=0),
        }
        questions = [ChatInput(question=_QUESTIONS[i % len(_QUESTIONS)]) for i in range(n_turns)]
        for q in questions[:10]:
            for path in paths.values():
                path(q)
        for q in questions[: len(_QUESTIONS)]:
            assert by_hand(q) == dag.invoke(q) == on_langgraph.invoke(q), q.question
        qps = interleaved_qps(paths, questions, block=10)
    rows = [
        [k, f"{1000 / v:.2f}", f"{v:,.0f}", f"{qps['by hand'] / v:.2f}"] for k, v in qps.items()
    ]
    table(
        f"RAG chat turn, no session, bundled handbook, extractive model, {n_turns} turns; "
        f"{platform.machine()}",
        ["path", "ms/turn", "turns/s", "time / by hand"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.graphs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2k chunks, 100 queries")
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args(argv)
    if args.quick:
        bench(2_000, 100)
        rag_turns(40)
    else:
        bench(args.chunks, args.queries)
        rag_turns(200)


if __name__ == "__main__":
    main()

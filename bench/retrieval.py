"""Retrieval throughput and latency: weft's BM25 against raw bm25s and rank_bm25, and hybrid.

The corpus is generated: chunks of 3 to 6 plausible English sentences composed from eight topic
vocabularies (cooking, astronomy, finance, medicine, software, gardening, sport, history), with
a seeded RNG so every run indexes the same text. Queries are 2 to 4 content words drawn from one
topic, like a user's keyword query.

Sections:

1. BM25 indexing (docs/s, tokenization included) and single-query throughput (queries/s, k=10,
   one query at a time as a retriever serves them) at 10k and 100k chunks, for weft's
   ``BM25Retriever.search`` and ``.invoke`` (callbacks included), raw bm25s (its own tokenizer,
   same Lucene stopwords), and rank_bm25's ``BM25Okapi`` (time-boxed: fewer queries, said so).
2. Hybrid (Chroma + BM25, RRF) p50/p95 latency at 10k chunks with the offline embedder, and
   with the knowledge base's sentence rerank when its model is installed.
3. Micro-batched vs one-call-per-text embedding with 32 concurrent async callers, with the
   offline embedder as is and with a remote API stand-in (5 ms per call, 4 calls in flight), if
   weft has ``MicroBatchEmbeddings``; otherwise a TODO row.

Run: ``python -m bench.retrieval [--quick] [--sizes 10000,100000] [--queries N]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("DISABLE_TQDM", "1")  # bm25s progress bars off, before it is imported

import bm25s
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from weft.components._tokenize import Tokenizer
from weft.components.bm25 import BM25Retriever
from weft.components.hybrid import HybridRetriever, default_reranker
from weft.components.stores import ChromaStore

_API_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE")

# -- corpus ----------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


TOPICS: dict[str, dict[str, list[str]]] = {
    "cooking": {
        "noun": _words(
            "sauce onion garlic oven skillet recipe broth dough butter pastry spice kitchen "
            "flavor marinade knife simmer crust vinegar herb stock"
        ),
        "verb": _words("thickens caramelizes seasons roasts blends browns reduces bakes chills"),
        "adj": _words("golden crisp tender savory fragrant creamy smoky tangy rich"),
    },
    "astronomy": {
        "noun": _words(
            "telescope galaxy nebula orbit comet planet star asteroid eclipse spectrum "
            "observatory supernova moon satellite gravity horizon quasar"
        ),
        "verb": _words("orbits reflects emits collapses eclipses drifts rotates illuminates"),
        "adj": _words("distant faint luminous massive icy elliptical bright stellar"),
    },
    "finance": {
        "noun": _words(
            "portfolio bond dividend inflation budget loan interest equity market revenue "
            "audit ledger invoice mortgage liquidity pension asset"
        ),
        "verb": _words("yields rebalances borrows hedges invests audits repays compounds"),
        "adj": _words("quarterly volatile fiscal taxable diversified liquid annual net"),
    },
    "medicine": {
        "noun": _words(
            "patient vaccine symptom diagnosis clinic dosage antibody therapy surgeon "
            "infection fever tissue scan prescription nurse immunity"
        ),
        "verb": _words("treats diagnoses prescribes monitors heals prevents relieves screens"),
        "adj": _words("chronic acute clinical mild severe immune routine preventive"),
    },
    "software": {
        "noun": _words(
            "compiler database server query cache thread function module deployment "
            "container kernel protocol index bug release pipeline api"
        ),
        "verb": _words("compiles deploys caches indexes retries parses serializes schedules"),
        "adj": _words("concurrent distributed typed scalable stateless async legacy open"),
    },
    "gardening": {
        "noun": _words(
            "tomato soil compost seedling greenhouse mulch rose hedge orchard trellis "
            "fertilizer root pollinator bulb harvest weed shade"
        ),
        "verb": _words("sprouts prunes waters blooms ripens shelters fertilizes transplants"),
        "adj": _words("perennial fertile leafy shady organic seasonal hardy lush"),
    },
    "sport": {
        "noun": _words(
            "striker goalkeeper tournament marathon coach referee stadium league sprint "
            "penalty relay racket season medal injury tactic"
        ),
        "verb": _words("scores defends sprints trains tackles serves qualifies wins"),
        "adj": _words("decisive defensive athletic professional final olympic fast narrow"),
    },
    "history": {
        "noun": _words(
            "empire treaty dynasty archive revolution monarch battle manuscript colony "
            "parliament chronicle fortress merchant pilgrimage siege republic"
        ),
        "verb": _words("conquers signs records abolishes founds rebels negotiates rules"),
        "adj": _words("medieval ancient imperial colonial feudal royal coastal rival"),
    },
}

_PLACES = "in the north,across the region,during the winter,after a long delay,by the river,"
_PLACES += "near the old town,over several weeks,at the end of the day,within the first year"
PLACES = _PLACES.split(",")
TEMPLATES = [
    "The {adj} {noun} {verb} the {noun2} {place}.",
    "Every {noun} {verb} a {adj} {noun2}, which is why experts watch it closely.",
    "In most cases a {adj} {noun} {verb} faster than the {noun2}.",
    "Researchers noted that the {noun} rarely {verb} without a {adj} {noun2}.",
    "When the {noun2} is {adj}, the {noun} usually {verb} {place}.",
    "A {adj} {noun} and a {noun2} were described {place}.",
    "Nobody expected that the {noun} {verb} so much {place}.",
]


def make_chunk(rng: random.Random, topic: str) -> str:
    vocab = TOPICS[topic]
    sentences = []
    for _ in range(rng.randint(3, 6)):
        sentences.append(
            rng.choice(TEMPLATES).format(
                adj=rng.choice(vocab["adj"]),
                noun=rng.choice(vocab["noun"]),
                noun2=rng.choice(vocab["noun"]),
                verb=rng.choice(vocab["verb"]),
                place=rng.choice(PLACES),
            )
        )
    return " ".join(sentences)


def make_corpus(n: int, seed: int = 7) -> list[Document]:
    rng = random.Random(seed)
    topics = list(TOPICS)
    return [
        Document(
            page_content=make_chunk(rng, topic := rng.choice(topics)),
            id=f"c{i}",
            metadata={"topic": topic},
        )
        for i in range(n)
    ]


def make_queries(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    queries = []
    for _ in range(n):
        vocab = TOPICS[rng.choice(list(TOPICS))]
        words = rng.sample(vocab["noun"], 2) + rng.sample(vocab["adj"] + vocab["verb"], 1)
        queries.append(" ".join(words[: rng.randint(2, 3)]))
    return queries


# -- timing helpers --------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_query(
    fn: Callable[[str], Any], queries: Sequence[str], budget_s: float
) -> tuple[float, int]:
    """Queries/s over ``queries``, stopping early once ``budget_s`` has passed."""
    done = 0
    start = time.perf_counter()
    for q in queries:
        fn(q)
        done += 1
        if time.perf_counter() - start > budget_s:
            break
    return done / (time.perf_counter() - start), done


def interleaved_qps(
    contenders: dict[str, Callable[[str], Any]], queries: Sequence[str], block: int = 50
) -> dict[str, float]:
    """Queries/s per contender, alternating blocks of queries so machine noise hits all alike."""
    spent = dict.fromkeys(contenders, 0.0)
    for start in range(0, len(queries), block):
        chunk = queries[start : start + block]
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            for q in chunk:
                fn(q)
            spent[name] += time.perf_counter() - t0
    return {name: len(queries) / spent[name] for name in contenders}


def interleaved_latencies_ms(
    paths: dict[str, Callable[[str], Any]], queries: Sequence[str]
) -> dict[str, list[float]]:
    """Per-call latency of each path, running the paths in turn for every query."""
    out: dict[str, list[float]] = {name: [] for name in paths}
    for q in queries:
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn(q)
            out[name].append((time.perf_counter() - t0) * 1000)
    return out


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


# -- sections --------------------------------------------------------------------------------


def bm25_rows(n: int, queries: Sequence[str], rank_budget_s: float) -> list[list[Any]]:
    corpus = make_corpus(n)
    texts = [d.page_content for d in corpus]

    weft = BM25Retriever(k=10)

    def build_weft() -> None:
        weft.upsert(corpus)
        weft.refresh()

    weft_index_s = timed(build_weft)

    raw = bm25s.BM25(method="lucene")

    def build_raw() -> None:
        tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
        raw.index(tokens, show_progress=False)

    raw_index_s = timed(build_raw)

    def raw_query(q: str) -> Any:
        tokens = bm25s.tokenize(q, stopwords="en", show_progress=False)
        return raw.retrieve(tokens, k=10, show_progress=False)

    qps = interleaved_qps(
        {"search": lambda q: weft.search(q, 10), "invoke": weft.invoke, "raw": raw_query},
        queries,
    )
    weft_qps, invoke_qps, raw_qps = qps["search"], qps["invoke"], qps["raw"]

    # Incremental add: 1% more chunks on top of the built index (cached tokens reused).
    extra = [d.model_copy(update={"id": f"x{d.id}"}) for d in make_corpus(n // 100, seed=99)]

    def add_weft() -> None:
        weft.upsert(extra)
        weft.refresh()

    add_s = timed(add_weft)

    from rank_bm25 import BM25Okapi

    tokenizer = Tokenizer()
    holder: dict[str, Any] = {}

    def build_rank() -> None:
        holder["bm25"] = BM25Okapi([tokenizer(t) for t in texts])

    rank_index_s = timed(build_rank)
    rank = holder["bm25"]
    rank_qps, rank_done = per_query(
        lambda q: rank.get_top_n(tokenizer(q), texts, n=10), queries, rank_budget_s
    )

    print(
        f"  [{n // 1000}k] index s: weft {weft_index_s:.2f}, bm25s {raw_index_s:.2f}, "
        f"rank_bm25 {rank_index_s:.2f}; weft/bm25s queries/s {weft_qps / raw_qps:.2f}x",
        file=sys.stderr,
    )
    label, nq = f"{n // 1000}k", str(len(queries))
    return [
        [label, "weft BM25Retriever.search", f"{n / weft_index_s:,.0f}", "1.00x",
         f"{weft_qps:,.0f}", "1.00x", nq],
        [label, "weft BM25Retriever.invoke", "", "", f"{invoke_qps:,.0f}",
         f"{invoke_qps / weft_qps:.2f}x", nq],
        [label, "raw bm25s", f"{n / raw_index_s:,.0f}", f"{weft_index_s / raw_index_s:.2f}x",
         f"{raw_qps:,.0f}", f"{raw_qps / weft_qps:.2f}x", nq],
        [label, "rank_bm25 BM25Okapi", f"{n / rank_index_s:,.0f}",
         f"{weft_index_s / rank_index_s:.2f}x", f"{rank_qps:,.1f}",
         f"{rank_qps / weft_qps:.3f}x",
         f"{rank_done} of {len(queries)} (time box {rank_budget_s:.0f} s)"],
        [label, f"weft upsert +{len(extra)} docs, re-index", f"{len(extra) / add_s:,.0f}", "",
         "", "", f"took {add_s * 1000:,.0f} ms"],
    ]  # fmt: skip


def bench_bm25(sizes: Sequence[int], n_queries: int, rank_budget_s: float) -> None:
    queries = make_queries(n_queries)
    rows = [row for n in sizes for row in bm25_rows(n, queries, rank_budget_s)]
    table(
        "BM25: indexing (tokenizing included) and single-query throughput, k=10; "
        "ratios are against weft .search",
        ["chunks", "retriever", "index docs/s", "ratio", "queries/s", "ratio", "queries timed"],
        rows,
    )


def offline_embedder() -> tuple[Embeddings, str]:
    try:
        module = importlib.import_module("weft.components.embeddings")
    except ImportError:
        module = None
    factory = getattr(module, "default_embeddings", None)
    if factory is not None:
        # The offline default: hide API settings so default_embeddings() cannot pick OpenAI.
        saved = {v: os.environ.pop(v) for v in _API_VARS if v in os.environ}
        try:
            emb = factory()
        finally:
            os.environ.update(saved)
        return emb, f"default_embeddings() = {getattr(emb, 'name', type(emb).__name__)}"
    hashing = getattr(module, "HashingEmbeddings", None)
    if hashing is not None:
        emb = hashing()
        return emb, f"HashingEmbeddings ({getattr(emb, 'name', '')}; no default_embeddings yet)"
    from langchain_core.embeddings import DeterministicFakeEmbedding

    return DeterministicFakeEmbedding(size=256), "DeterministicFakeEmbedding(256) (stand-in)"


def bench_hybrid(n: int, n_queries: int) -> None:
    corpus = make_corpus(n)
    queries = make_queries(n_queries, seed=5)
    embedder, label = offline_embedder()
    with tempfile.TemporaryDirectory() as tmp:
        store = ChromaStore("bench", embedder, data_dir=tmp)
        ingest_s = timed(lambda: store.upsert(corpus))
        bm25 = BM25Retriever(documents=corpus)
        bm25.refresh()
        vector = store.as_retriever()
        hybrid = HybridRetriever(vector=vector, bm25=bm25, k=10, fetch_k=20)
        for q in queries[:20]:  # warm caches and the thread pool
            hybrid.invoke(q)
        paths: dict[str, Callable[[str], Any]] = {
            "hybrid (RRF, fetch_k=20, k=10)": hybrid.invoke,
            "  vector branch alone (k=20)": lambda q: vector.invoke(q, k=20),
            "  bm25 branch alone (k=20)": lambda q: bm25.invoke(q, k=20),
            "  embed_query alone": embedder.embed_query,
        }
        reranker = default_reranker()
        if reranker is not None:
            # What the knowledge base runs: the fused top 10 re-ranked by their best sentence.
            # Asked twice in a row: first with the candidates' sentences new to the encoder,
            # then with their vectors remembered.
            reranked = hybrid.model_copy(update={"reranker": reranker})
            reranker.embed_query("load the model before timing")
            paths["hybrid + sentence rerank, new sentences"] = reranked.invoke
            paths["hybrid + sentence rerank, remembered"] = reranked.invoke
        lat = interleaved_latencies_ms(paths, queries)
        rows = [
            [name, f"{pct(v, 50):.2f}", f"{pct(v, 95):.2f}", f"{statistics.mean(v):.2f}"]
            for name, v in lat.items()
        ]
    p95 = float(rows[0][2])
    table(
        f"Hybrid latency at {n // 1000}k chunks, {n_queries} queries, embedder: {label}; "
        f"Chroma ingest {n / ingest_s:,.0f} chunks/s",
        ["path", "p50 ms", "p95 ms", "mean ms"],
        rows,
    )
    verdict = "MET" if p95 < 20 else "MISSED"
    print(f"goal: hybrid p95 < 20 ms at {n // 1000}k chunks -> {verdict} ({p95:.2f} ms)")


class _RemoteLike(Embeddings):
    """A remote embedding API stand-in: each call takes ``per_call_ms`` and at most
    ``max_in_flight`` calls run at once (a connection pool or a provider's concurrency cap)."""

    def __init__(self, inner: Embeddings, per_call_ms: float, max_in_flight: int = 4) -> None:
        self.inner = inner
        self.delay = per_call_ms / 1000
        self.max_in_flight = max_in_flight
        self._gates: dict[int, asyncio.Semaphore] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        time.sleep(self.delay)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        loop = id(asyncio.get_running_loop())
        gate = self._gates.setdefault(loop, asyncio.Semaphore(self.max_in_flight))
        async with gate:
            await asyncio.sleep(self.delay)
        return self.inner.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


def _concurrent_texts_per_s(emb: Embeddings, texts: list[str], callers: int) -> float:
    async def run() -> None:
        async def caller(chunk: list[str]) -> None:
            for t in chunk:
                await emb.aembed_query(t)

        await asyncio.gather(*(caller(texts[i::callers]) for i in range(callers)))

    return len(texts) / timed(lambda: asyncio.run(run()))


def bench_microbatch(callers: int = 32, per_caller: int = 20) -> None:
    module = importlib.import_module("weft.components.embeddings")
    micro_cls = getattr(module, "MicroBatchEmbeddings", None)
    inner, label = offline_embedder()
    header = ["embedder", "mode", "texts/s", "ratio"]
    if micro_cls is None:
        table(
            f"Embedding with {callers} concurrent callers ({label})",
            header,
            [[label, "TODO: weft has no MicroBatchEmbeddings yet", "-", "-"]],
        )
        return
    from weft.components.embeddings import OpenAIEmbedder
    from weft.testing import OpenAIServerProcess

    texts = [f"{q} number {i}" for i, q in enumerate(make_queries(callers * per_caller))]
    rows = []
    with OpenAIServerProcess() as server:
        http = OpenAIEmbedder(base_url=server.base_url, api_key="bench", max_retries=0)
        for name, base in [
            ("OpenAIEmbedder -> local OpenAI-compatible server (own process, HTTP)", http),
            ("remote API stand-in: 5 ms/call, 4 in flight", _RemoteLike(inner, 5.0)),
            (label, inner),
        ]:
            plain = _concurrent_texts_per_s(base, texts, callers)
            rows.append([name, "one call per text (aembed_query)", f"{plain:,.0f}", "1.00x"])
            for mode, micro in [
                ("MicroBatchEmbeddings (defaults: 64, 5 ms)", micro_cls(base)),
                (
                    f"MicroBatchEmbeddings (max_batch_size={callers})",
                    micro_cls(base, max_batch_size=callers),
                ),
            ]:
                batched = _concurrent_texts_per_s(micro, texts, callers)
                rows.append([name, mode, f"{batched:,.0f}", f"{batched / plain:.2f}x"])
    table(f"Embedding: {callers} concurrent async callers, {len(texts)} texts", header, rows)
    print(
        "goal: micro-batching >= 5x one call per text at 32 callers (for a remote embedder; a "
        "local in-process embedder has no per-call cost to save)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2k/10k chunks, fewer queries")
    parser.add_argument("--sizes", help="comma-separated chunk counts (default 10000,100000)")
    parser.add_argument("--queries", type=int, help="queries per measurement (default 1000)")
    parser.add_argument("--hybrid-chunks", type=int, help="chunks for the hybrid section")
    args = parser.parse_args(argv)
    sizes = [2_000, 10_000] if args.quick else [10_000, 100_000]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    n_queries = args.queries or (200 if args.quick else 1000)
    hybrid_n = args.hybrid_chunks or (2_000 if args.quick else 10_000)
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus, "
        f"bm25s {bm25s.__version__}, sizes {sizes}, {n_queries} queries"
    )
    bench_bm25(sizes, n_queries, rank_budget_s=5 if args.quick else 20)
    bench_hybrid(hybrid_n, min(n_queries, 300))
    bench_microbatch()


if __name__ == "__main__":
    main()

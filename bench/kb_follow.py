"""How replicas share keyword search, measured three ways on one PostgreSQL (docs/deploy.md).

Run with ``python -m bench.kb_follow [--sizes 1000,10000] [--queries N]``. It starts a
PostgreSQL cluster in a temporary folder (weft/testing/_engines.py) and, for each corpus size
(bench/retrieval.py's generated chunks), measures:

- **versioned index, loaded on change** (what weft does): the check a replica makes at most once
  a second (one indexed query on a pooled connection), the packed index's size, and a reload
  (fetch the blob of ``weft_kb_indexes``, then ``BM25Retriever.from_bytes``);
- **rebuilt on change**: the same replica rebuilding BM25 from the chunks' text instead
  (tokenizing everything, as a table of chunks would make it);
- **PostgreSQL full-text search**: a GIN-indexed ``tsvector`` column queried with
  ``ts_rank_cd`` per retrieval, against weft's in-memory BM25 query, and how many of BM25's top
  4 it also ranks in its top 4 (the two rank differently: ts_rank is not BM25).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.retrieval import make_corpus, make_queries
from weft.components.bm25 import BM25Retriever
from weft.core._database import open_database
from weft.testing._engines import Postgres

__all__ = ["main", "measure"]


def _ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(url: str, n: int, n_queries: int) -> dict[str, float]:
    corpus = make_corpus(n)
    queries = make_queries(n_queries)
    database = open_database(url)
    database.ensure_tables()
    index = BM25Retriever(documents=corpus, k=4)
    index.refresh()
    blob = index.to_bytes()
    kb = f"bench{n}"
    with database.connection() as conn:
        conn.execute("DELETE FROM weft_kb_indexes WHERE kb = %s", (kb,))
        conn.execute(
            "INSERT INTO weft_kb_current (kb, version, collection, updated) VALUES (%s, 1, %s, 0) "
            "ON CONFLICT (kb) DO NOTHING",
            (kb, kb),
        )
        conn.execute(
            "INSERT INTO weft_kb_indexes (kb, version, blob) VALUES (%s, 1, %s)", (kb, blob)
        )
        conn.execute(f"DROP TABLE IF EXISTS fts{n}")
        conn.execute(
            f"CREATE TABLE fts{n} (id TEXT PRIMARY KEY, body TEXT NOT NULL, tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', body)) STORED)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO fts{n} (id, body) VALUES (%s, %s)",
                [(d.id, d.page_content) for d in corpus],
            )
        conn.execute(f"CREATE INDEX ON fts{n} USING gin (tsv)")
        conn.execute(f"ANALYZE fts{n}")

    def check() -> None:
        with database.connection() as conn:
            conn.execute(
                "SELECT version, collection FROM weft_kb_current WHERE kb = %s", (kb,)
            ).fetchone()

    def reload() -> None:
        with database.connection() as conn:
            row = conn.execute(
                "SELECT blob FROM weft_kb_indexes WHERE kb = %s AND version = 1", (kb,)
            ).fetchone()
        BM25Retriever.from_bytes(bytes(row["blob"]))

    def rebuild() -> None:
        BM25Retriever(documents=corpus, k=4).refresh()

    def fts(query: str) -> list[str]:
        with database.connection() as conn:
            rows = conn.execute(
                f"SELECT id FROM fts{n}, plainto_tsquery('english', %s) q WHERE tsv @@ q "
                "ORDER BY ts_rank_cd(tsv, q) DESC LIMIT 4",
                (query,),
            ).fetchall()
        return [r["id"] for r in rows]

    fts_ms, bm25_ms, overlap = [], [], []
    for query in queries:
        started = time.perf_counter()
        found = fts(query)
        fts_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        best = [d.id for d, _ in index.search(query, 4)]
        bm25_ms.append((time.perf_counter() - started) * 1000)
        if best:
            overlap.append(len(set(found) & set(best)) / len(best))
    return {
        "chunks": n,
        "check_ms": _ms(check, 200),
        "blob_mb": len(blob) / 1e6,
        "reload_ms": _ms(reload, 5),
        "rebuild_ms": _ms(rebuild, 3),
        "fts_ms": statistics.median(fts_ms),
        "bm25_ms": statistics.median(bm25_ms),
        "overlap": statistics.mean(overlap) if overlap else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kb_follow", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    pg = Postgres().create()
    try:
        rows = [measure(pg.url, int(n), args.queries) for n in args.sizes.split(",")]
    finally:
        pg.destroy()
    print(
        "| chunks | pointer check | packed index | reload from PostgreSQL | rebuild from text "
        "| FTS query | BM25 query | FTS top-4 ∩ BM25 top-4 |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['chunks']:.0f} | {r['check_ms']:.2f} ms | {r['blob_mb']:.1f} MB "
            f"| {r['reload_ms']:.0f} ms | {r['rebuild_ms']:.0f} ms | {r['fts_ms']:.2f} ms "
            f"| {r['bm25_ms']:.2f} ms | {r['overlap']:.0%} |"
        )


if __name__ == "__main__":
    main()

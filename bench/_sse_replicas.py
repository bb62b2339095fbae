"""``python -m bench.sse_load --replicas``: one embedded ``weft serve`` against two replicas
behind nginx on PostgreSQL, a Chroma server and Redis, measured in the same run; and a
checkpoint write per turn, PostgreSQL against SQLite.

Every stream is the first turn of its own session, so each run binds a session owner, takes the
session's turn lock and writes a checkpoint: what a replica does on the shared engines. Both
set-ups serve the bundled handbook with the offline extractive model. On a 2-CPU machine two
replicas, the engines, nginx and the client share the same two cores, so the run shows
correctness under load (errors) and what serving over the engines adds per request, not
scaling: the goal is 0 errors at 200 streams and at most 1.2x the embedded server's
server-added TTFT.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.sse_load import ROOT, Server, run
from weft.testing._engines import ChromaServer, Nginx, Postgres, Redis, Replica

__all__ = ["checkpoint_writes", "compare", "follow_costs"]

_LOAD_ENV = {
    "WEFT_RATE_LIMIT_PER_MINUTE": "0",
    "WEFT_MAX_CONCURRENT_RUNS": "1000",
    "WEFT_SERVER_MAX_CONNECTIONS_PER_CLIENT": "0",
}


def _ingest_demo(data: Path, env: dict[str, str]) -> None:
    from weft.graphs.knowledge import DEMO_KB_DIR

    cmd = [sys.executable, "-m", "weft.cli", "ingest", str(DEMO_KB_DIR), "--data-dir", str(data)]
    data.mkdir(parents=True, exist_ok=True)
    subprocess.run(cmd, env={**os.environ, **env}, check=True, capture_output=True, cwd=data)


def _table(rows: list[tuple[str, dict[str, float]]]) -> str:
    lines = [
        "| set-up | streams | errors | TTFT p50 | TTFT p95 | per-stream server-added p95 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['streams']:.0f} | {r['errors']:.0f} | {r['ttft_p50']:.0f} ms "
            f"| {r['ttft_p95']:.0f} ms | {r['stream_added_p95']:.1f} ms |"
        )
    return "\n".join(lines)


def compare(levels: list[int], rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="weft-replicas-") as tmp:
        base = Path(tmp)
        print("One embedded weft serve:", flush=True)
        _ingest_demo(base / "embedded", _LOAD_ENV)
        server = Server(base / "embedded", env=_LOAD_ENV)
        try:
            embedded = asyncio.run(run(server.url, levels, rounds, sessions=True))
        finally:
            server.stop()
        print("Two replicas behind nginx, PostgreSQL, Chroma server, Redis:", flush=True)
        pg = Postgres().create()
        (base / "chroma").mkdir()
        (base / "redis").mkdir()
        (base / "nginx").mkdir()
        chroma, redis = ChromaServer(base / "chroma"), Redis(base / "redis")
        started: list[Any] = [pg]
        try:
            for engine in (chroma, redis):
                engine.start()
                started.append(engine)
            env = {
                **_LOAD_ENV,
                "WEFT_DATABASE_URL": pg.url,
                "WEFT_CHROMA_URL": chroma.url,
                "WEFT_REDIS_URL": redis.url,
            }
            _ingest_demo(base / "cli", env)  # the knowledge base goes to PostgreSQL and Chroma
            replicas = [Replica(base / name, env, name) for name in ("a", "b")]  # own data dirs
            for replica in replicas:
                replica.start()
                started.append(replica)
            backends = [r.address for r in replicas]
            nginx = Nginx.from_guide(base / "nginx", backends, ROOT / "docs" / "deploy.md")
            nginx.start()
            started.append(nginx)
            shared = asyncio.run(run(nginx.url, levels, rounds, sessions=True))
            writes = checkpoint_writes(pg.url, base / "checkpoints.sqlite")
            check_us, reload_ms = follow_costs(base / "reader", env)
        finally:
            for engine in reversed(started):
                if isinstance(engine, Postgres):
                    engine.destroy()
                else:
                    engine.stop()
    print()
    print(f"machine: {os.cpu_count()} CPUs; medians of {rounds} rounds; every stream a session.")
    rows: list[tuple[str, dict[str, float]]] = []
    for one, two in zip(embedded, shared, strict=True):
        rows += [("embedded", one), ("2 replicas + nginx", two)]
    print(_table(rows))
    print()
    print("| streams | server-added p95, 2 replicas / embedded |")
    print("| ---: | ---: |")
    for one, two in zip(embedded, shared, strict=True):
        ratio = two["stream_added_p95"] / one["stream_added_p95"]
        print(f"| {one['streams']:.0f} | {ratio:.2f}x |")
    print()
    print(
        f"Following ingests: {check_us:.2f} ms per check of the version pointer (at most one "
        f"a second); {reload_ms:.1f} ms to load a changed index (the handbook) from PostgreSQL."
    )
    print()
    print("Checkpoint write per turn (a chat turn's state, durability 'exit'):")
    print("| store | ms per turn, p50 | p95 |")
    print("| --- | ---: | ---: |")
    for name, (p50, p95) in writes.items():
        print(f"| {name} | {p50:.2f} | {p95:.2f} |")


def checkpoint_writes(
    url: str, sqlite_path: Path, turns: int = 300
) -> dict[str, tuple[float, float]]:
    """ms per ``put`` of a chat turn's checkpoint (ten earlier turns of history), p50 and p95,
    on SQLite and on PostgreSQL (each turn a new checkpoint of its own thread)."""
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint

    from weft.core._checkpoint import open_sqlite_checkpointer
    from weft.core._database import open_database

    history = []
    for i in range(10):
        history += [HumanMessage(f"question {i} about the handbook"), AIMessage("an answer " * 40)]
    database = open_database(url)
    savers = {
        "SQLite (checkpoints.sqlite)": open_sqlite_checkpointer(sqlite_path),
        "PostgreSQL (pool, loopback)": database.checkpointer(),
    }
    results: dict[str, tuple[float, float]] = {}
    for name, saver in savers.items():
        times = []
        for i in range(turns):
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"history": history}
            checkpoint["channel_versions"] = {"history": 1}
            config: Any = {"configurable": {"thread_id": f"t{i}", "checkpoint_ns": ""}}
            started = time.perf_counter()
            saver.put(config, checkpoint, {"source": "loop", "step": 1}, {"history": 1})
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        results[name] = (statistics.median(times), times[int(0.95 * (len(times) - 1))])
    database.close()
    return results


def follow_costs(data_dir: Path, env: dict[str, str], checks: int = 200) -> tuple[float, float]:
    """What following another process's ingests costs a replica, on the knowledge base in
    PostgreSQL and the Chroma server of ``env``: ms for the check it makes at most once a second
    when nothing changed, and ms to load a newly committed version's index."""
    from weft.core.settings import Settings
    from weft.graphs import _knowledge_postgres
    from weft.graphs.knowledge import KnowledgeBase

    os.environ.update(env)
    settings = Settings(data_dir=data_dir)
    kb = KnowledgeBase(settings)
    assert isinstance(kb, _knowledge_postgres.SharedKnowledgeBase)
    kb.bm25.count()
    _knowledge_postgres.FOLLOW_SECONDS = 0.0  # check on every call, to time it
    started = time.perf_counter()
    for _ in range(checks):
        assert not kb.follow()
    check_ms = (time.perf_counter() - started) / checks * 1000
    reloads = []
    for _ in range(5):
        kb._pointer = _knowledge_postgres._Pointer(-1, kb.store._collection.name)
        started = time.perf_counter()
        assert kb.follow()
        reloads.append((time.perf_counter() - started) * 1000)
    return check_ms, statistics.median(reloads)

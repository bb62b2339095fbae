"""SSE load: many concurrent ``POST /v1/chat`` streams against a real ``weft serve``.

Run with ``python -m bench.sse_load [--quick] [--rounds N]``. It starts ``weft serve`` in a
subprocess on a free port, with the offline extractive model and a temporary data directory
holding the bundled knowledge base, then opens 50, 100 and 200 streams at once (``--quick``: 5,
10, 20) with a lean asyncio HTTP/1.1 client (see :func:`one_stream`), each asking one of the
handbook questions. Each level runs ``--rounds`` times (3 by default) and the tables give each
number's median over the rounds (errors summed), per level:

- errors: a status other than 200, an ``error`` event, a dropped stream or no ``done``;
- TTFT p50/p95: from sending the request to the first ``token`` event, as the client saw it;
- in-process TTFT p50/p95: the same number of concurrent ``astream_chat`` runs of the same RAG
  graph over the same data directory in this process, with no server and no HTTP (run after
  the server has stopped, so the two never share the CPU), with what start-up made frozen out
  of the cycle collector's way (:func:`gc.freeze`) as ``weft serve`` does;
- server-added p50/p95: HTTP TTFT minus in-process TTFT at the same percentile: what serving
  over HTTP adds under the same load;
- per-stream server-added p95: each stream's TTFT minus the graph's own time to first token as
  the server measured it around the chat streamer (the ``timing`` of the ``done`` event); this
  also counts the time a ready token waits for the busy event loop;
- tokens/s: all streams' tokens over the level's wall time, and the median stream's own rate
  ("one burst" when every stream's tokens arrived in one chunk).

The same levels then run against the remote-model stand-in (``bench/_remote_stub.py``), served
by weft and by its peer, a bare Starlette app streaming the same tokens as the same events with
nothing else (``--bare``), each against its own in-process baseline; the last table sets their
server-added TTFT side by side.

The client runs on the same machine as the server, so on a small machine its own work shows up
in the latencies too. The goal: 0 errors at 200 streams, server-added TTFT p95 under 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = ["main"]

QUESTIONS = [
    "How do I install weft?",
    "What does compile check?",
    "How do I stream tokens from a graph?",
    "What does the server's /v1/chat endpoint send?",
    "How do I keep two knowledge bases apart?",
    "What is an eval suite?",
    "How do callbacks see a graph run?",
    "How do I ingest my own documents?",
]
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stream:
    ok: bool = False
    error: str = ""
    ttft: float | None = None
    graph_ttft: float | None = None
    tokens: int = 0
    duration: float = 0.0
    token_times: list[float] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Server:
    """``weft serve`` on a free port, over a temporary data directory."""

    def __init__(
        self, data_dir: Path, command: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        env = {
            **os.environ,
            **(env or {}),
            "PYTHONUNBUFFERED": "1",
            "WEFT_RATE_LIMIT_PER_MINUTE": "0",
            "WEFT_MAX_CONCURRENT_RUNS": "1000",
            "WEFT_SERVER_MAX_CONNECTIONS_PER_CLIENT": "0",  # every stream comes from here
        }
        serve = ["-m", "weft.cli", "serve", "--port", "0", "--data-dir", str(data_dir)]
        self.proc = subprocess.Popen(
            [sys.executable, *(command or serve)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            print(f"  server: {line.rstrip()}", flush=True)
            found = re.search(r"open (http://\S+?)/? to chat", line)
            if found:
                self.url = found.group(1)
                break
        if not self.url:
            raise SystemExit("weft serve did not start")
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()
        deadline = time.monotonic() + 60
        while httpx.get(self.url + "/readyz", timeout=10).status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit("weft serve never became ready")
            time.sleep(0.2)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            print(f"  server: {line.rstrip()}", flush=True)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._drain.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


async def _read_sse(reader: asyncio.StreamReader, result: Stream, t0: float) -> None:
    """Read a chunked SSE body, noting each event as it arrives."""
    buf = b""
    while True:
        size = int((await reader.readline()).strip() or b"0", 16)
        if size == 0:
            return
        buf += (await reader.readexactly(size + 2))[:-2]
        *events, buf = buf.split(b"\n\n")
        now = time.perf_counter()
        for raw in events:
            fields = dict(
                line.split(b": ", 1)
                for line in raw.split(b"\n")
                if b": " in line and line[:1] != b":"
            )
            event = fields.get(b"event")
            if event == b"token":
                if result.ttft is None:
                    result.ttft = now - t0
                result.tokens += 1
                result.token_times.append(now)
            elif event == b"done":
                timing = json.loads(fields[b"data"]).get("timing", {})
                result.graph_ttft = timing.get("graph_ttft_ms", 0.0) / 1000
                result.ok = True
            elif event == b"error":
                result.error = "error event: " + fields.get(b"data", b"").decode()[:200]


async def one_stream(url: str, question: str, session: str | None = None) -> Stream:
    """One ``POST /v1/chat`` over a raw HTTP/1.1 connection.

    A load generator should cost far less than what it measures: httpx's streaming client
    spent about 8-15 ms of CPU per 40-token stream here, more than the server, and on a 2-CPU
    machine that time is taken from the server. This client spends about 1.5-2 ms.
    """
    result = Stream()
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    asked: dict[str, str] = {"question": question}
    if session is not None:  # a turn of a conversation: its checkpoint is written
        asked["session_id"] = session
    body = json.dumps(asked).encode()
    head = (
        f"POST /v1/chat HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    t0 = time.perf_counter()
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
        writer.write(head + body)
        status = (await reader.readline()).split(b" ", 2)
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers
        if len(status) < 2 or status[1] != b"200":
            result.error = f"HTTP {status[1].decode() if len(status) > 1 else '?'}"
        else:
            await asyncio.wait_for(_read_sse(reader, result, t0), timeout=120)
            if not result.ok and not result.error:
                result.error = "no done event"
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            writer.close()
    result.duration = time.perf_counter() - t0
    if result.error:
        result.ok = False
    return result


async def level(url: str, n: int, sessions: str | None = None) -> dict[str, float]:
    """``n`` streams at once; with ``sessions``, each a turn of its own conversation."""
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            one_stream(url, QUESTIONS[i % len(QUESTIONS)], sessions and f"{sessions}-{i}")
            for i in range(n)
        )
    )
    wall = time.perf_counter() - started
    good = [r for r in results if r.ok and r.ttft is not None and r.graph_ttft is not None]
    errors = [r.error for r in results if not r.ok]
    for message in sorted(set(errors))[:5]:
        print(f"  error x{errors.count(message)}: {message}", flush=True)
    ttft = [r.ttft * 1000 for r in good if r.ttft is not None]
    graph = [r.graph_ttft * 1000 for r in good if r.graph_ttft is not None]
    added = [
        (r.ttft - r.graph_ttft) * 1000
        for r in good
        if r.ttft is not None and r.graph_ttft is not None
    ]
    per_stream = [
        (r.tokens - 1) / (r.token_times[-1] - r.token_times[0])
        for r in good
        if r.tokens > 1 and r.token_times[-1] > r.token_times[0]
    ]
    return {
        "streams": n,
        "errors": len(errors),
        "ttft_p50": _pct(ttft, 0.5),
        "ttft_p95": _pct(ttft, 0.95),
        "server_graph_p95": _pct(graph, 0.95),
        "stream_added_p95": _pct(added, 0.95),
        "tokens_s": sum(r.tokens for r in results) / wall,
        "stream_tokens_s": statistics.median(per_stream) if per_stream else float("nan"),
        "wall": wall,
    }


def _rate(tokens_s: float) -> str:
    # nan: every stream's tokens came in one chunk (a local model answers in one burst, and the
    # server writes the frames that are ready together), so there is no per-stream rate.
    return "one burst" if tokens_s != tokens_s else f"{tokens_s:.0f}"


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| streams | errors | TTFT p50 | TTFT p95 | in-process TTFT p50 | in-process TTFT p95 "
        "| server-added p50 | server-added p95 | per-stream server-added p95 "
        "| tokens/s (all) | tokens/s (per stream) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['streams']:.0f} | {r['errors']:.0f} | {r['ttft_p50']:.0f} ms "
            f"| {r['ttft_p95']:.0f} ms | {r['inproc_p50']:.0f} ms | {r['inproc_p95']:.0f} ms "
            f"| {r['ttft_p50'] - r['inproc_p50']:.0f} ms "
            f"| {r['ttft_p95'] - r['inproc_p95']:.0f} ms "
            f"| {r['stream_added_p95']:.1f} ms | {r['tokens_s']:.0f} "
            f"| {_rate(r['stream_tokens_s'])} |"
        )
    return "\n".join(lines)


def ratio_table(weft: list[dict[str, float]], bare: list[dict[str, float]]) -> str:
    """Server-added TTFT p95 of weft's server against the bare Starlette peer, same stand-in."""
    lines = [
        "| streams | weft server-added p95 | bare Starlette server-added p95 | weft - bare |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for w, b in zip(weft, bare, strict=True):
        ours, peer = w["ttft_p95"] - w["inproc_p95"], b["ttft_p95"] - b["inproc_p95"]
        lines.append(
            f"| {w['streams']:.0f} | {ours:.0f} ms | {peer:.0f} ms | {ours - peer:+.0f} ms |"
        )
    return "\n".join(lines)


def _median_row(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each number's median over the rounds; errors are summed."""
    row = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    row["errors"] = sum(r["errors"] for r in rounds)
    return row


async def run(
    url: str, levels: list[int], rounds: int, sessions: bool = False
) -> list[dict[str, float]]:
    await level(url, 5)  # warm-up: the first runs build caches and tokenizers
    rows = []
    for n in levels:
        print(f"  {n} concurrent streams over HTTP, {rounds} rounds...", flush=True)
        named = [f"load-{n}-{r}" if sessions else None for r in range(rounds)]
        rows.append(_median_row([await level(url, n, named[r]) for r in range(rounds)]))
    return rows


async def _in_process(
    first_token: Callable[[str], Awaitable[float]], levels: list[int], what: str, rounds: int
) -> list[tuple[float, float]]:
    """TTFT p50/p95 (ms) of ``n`` concurrent runs of ``first_token(question)`` (which returns
    its run's TTFT in ms), no server, traced as the server traces every run for /metrics;
    medians over the rounds."""
    from weft.core.tracing import disable_tracing, enable_tracing

    async def measure(n: int) -> tuple[float, float]:
        ttft = await asyncio.gather(*(first_token(QUESTIONS[i % len(QUESTIONS)]) for i in range(n)))
        return _pct(list(ttft), 0.5), _pct(list(ttft), 0.95)

    handler = enable_tracing("none")
    try:
        await measure(5)
        gc.collect()
        gc.freeze()  # as weft serve does once it has started, so both sides collect alike
        out = []
        for n in levels:
            print(f"  {n} concurrent {what} in process, {rounds} rounds...", flush=True)
            results = [await measure(n) for _ in range(rounds)]
            out.append(
                (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results))
            )
        return out
    finally:
        gc.unfreeze()
        disable_tracing(handler)


async def in_process(data_dir: Path, levels: list[int], rounds: int) -> list[tuple[float, float]]:
    """TTFT p50/p95 (ms) of ``n`` concurrent ``astream_chat`` runs, no server."""
    from weft.core.settings import Settings
    from weft.graphs.rag import astream_chat
    from weft.graphs.registry import default_graphs
    from weft.graphs.schema import ChatInput, ChatToken

    settings = Settings(data_dir=data_dir)
    graph = default_graphs(settings)["rag"]

    async def one(question: str) -> float:
        t0 = time.perf_counter()
        async for event in astream_chat(graph, ChatInput(question=question), settings=settings):
            if isinstance(event, ChatToken):
                return (time.perf_counter() - t0) * 1000
        return float("nan")

    return await _in_process(one, levels, "runs", rounds)


async def _first_token_ms(stream: AsyncIterator[Any]) -> float:
    """Milliseconds until ``stream``'s first item (it starts when first read); the rest is read
    to the end, as a client reads a whole answer."""
    t0 = time.perf_counter()
    async for _ in stream:
        ttft = (time.perf_counter() - t0) * 1000
        async for _ in stream:
            pass
        return ttft
    return float("nan")


async def in_process_remote(levels: list[int], rounds: int) -> list[tuple[float, float]]:
    """TTFT p50/p95 (ms) of ``n`` concurrent runs of the remote-model stand-in, no server."""
    from bench._remote_stub import remote_graph

    graph = remote_graph(REMOTE_TTFT, REMOTE_TOKENS, REMOTE_GAP)

    async def one(question: str) -> float:
        return await _first_token_ms(graph.astream_output(question))

    return await _in_process(one, levels, "stand-in runs", rounds)


async def in_process_bare(levels: list[int], rounds: int) -> list[tuple[float, float]]:
    """TTFT p50/p95 (ms) of ``n`` concurrent runs of the stand-in's model alone: no graph, no
    server; the bare Starlette peer's baseline."""
    from bench._remote_stub import model_stream

    async def one(question: str) -> float:
        return await _first_token_ms(model_stream(question, REMOTE_TTFT, REMOTE_TOKENS, REMOTE_GAP))

    return await _in_process(one, levels, "bare model streams", rounds)


REMOTE_TTFT, REMOTE_TOKENS, REMOTE_GAP = 0.05, 40, 0.005


def _report(title: str, rows: list[dict[str, float]], baseline: list[tuple[float, float]]) -> None:
    for row, (p50, p95) in zip(rows, baseline, strict=True):
        row["inproc_p50"], row["inproc_p95"] = p50, p95
    print()
    print(title)
    print(table(rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sse_load", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5, 10 and 20 streams")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per level; medians are reported (default 3)"
    )
    parser.add_argument(
        "--replicas",
        action="store_true",
        help="only: one embedded server against two replicas behind nginx on PostgreSQL, a "
        "Chroma server and Redis (each stream a turn of its own session), and a checkpoint "
        "write per turn on PostgreSQL against SQLite",
    )
    args = parser.parse_args(argv)
    rounds = max(1, args.rounds)
    levels = [5, 10, 20] if args.quick else [50, 100, 200]
    if args.replicas:
        from bench._sse_replicas import compare

        compare(levels, rounds)
        return
    with tempfile.TemporaryDirectory(prefix="weft-sse-load-") as tmp:
        data_dir = Path(tmp) / "data"
        print("RAG chat graph, extractive model:", flush=True)
        server = Server(data_dir)
        try:
            rows = asyncio.run(run(server.url, levels, rounds))
        finally:
            server.stop()
        baseline = asyncio.run(in_process(data_dir, levels, rounds))
        print("Remote-model stand-in (no CPU in the graph):", flush=True)
        stub = [
            "-m",
            "bench._remote_stub",
            f"--ttft={REMOTE_TTFT}",
            f"--tokens={REMOTE_TOKENS}",
            f"--gap={REMOTE_GAP}",
        ]
        server = Server(data_dir, stub)
        try:
            remote_rows = asyncio.run(run(server.url, levels, rounds))
        finally:
            server.stop()
        remote_baseline = asyncio.run(in_process_remote(levels, rounds))
        print("Peer: the same stand-in from a bare Starlette app:", flush=True)
        server = Server(data_dir, [*stub, "--bare"])
        try:
            bare_rows = asyncio.run(run(server.url, levels, rounds))
        finally:
            server.stop()
        bare_baseline = asyncio.run(in_process_bare(levels, rounds))
    print()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; client and server")
    print(
        f"share it. Medians of {rounds} rounds per level (errors summed). TTFT in ms; "
        "server-added = HTTP TTFT - in-process TTFT at that percentile."
    )
    _report("RAG chat graph (`weft serve`, extractive model, bundled handbook):", rows, baseline)
    _report(
        f"Remote-model stand-in (`bench/_remote_stub.py`: first token after "
        f"{REMOTE_TTFT * 1000:.0f} ms, {REMOTE_TOKENS} tokens {REMOTE_GAP * 1000:.0f} ms apart):",
        remote_rows,
        remote_baseline,
    )
    _report(
        "Peer: the same stand-in from a bare Starlette app (`_remote_stub.py --bare`: one route, "
        "`StreamingResponse`, no graph, guards, tracing or metrics):",
        bare_rows,
        bare_baseline,
    )
    print()
    print(ratio_table(remote_rows, bare_rows))


if __name__ == "__main__":
    main()

"""A real weft server whose chat graph stands in for a remote model: it spends no CPU.

``python -m bench._remote_stub`` serves one graph, ``remote``, on a free port with the same
app, middleware, guards, tracing and HTTP protocol (h11, with its limits) as ``weft serve``. Its
only node waits ``--ttft`` seconds (the model's time to first token, as a remote API would take
it) and then streams ``--tokens`` tokens ``--gap`` seconds apart. Whatever a client sees beyond
that wait is what the server adds: HTTP, validation, guards, the graph runtime, tracing and SSE
framing.

``--bare`` serves the same stand-in from the plainest Starlette app instead, the peer: one route
that reads the JSON body and streams the model's tokens as the same SSE events through
Starlette's ``StreamingResponse``, with no graph, guards, tracing or metrics. What a client sees
beyond the wait there is what uvicorn, Starlette and Python's event loop cost on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from weft import END, START, Graph
from weft.core.settings import Settings
from weft.server import uvicorn_options
from weft.server.app import create_app


async def model_stream(question: str, ttft: float, tokens: int, gap: float) -> AsyncIterator[str]:
    """The remote model: ``tokens`` tokens, the first after ``ttft`` seconds, then ``gap`` apart."""
    await asyncio.sleep(ttft)
    for i in range(tokens):
        if i:
            await asyncio.sleep(gap)
        yield f"token{i} "


def remote_graph(ttft: float, tokens: int, gap: float) -> Any:
    """``str -> str``: the remote-model stand-in."""

    async def model(question: str) -> AsyncIterator[str]:
        async for token in model_stream(question, ttft, tokens, gap):
            yield token

    g = Graph[str, str]("remote").add_node("model", model)
    return g.add_edge(START, "model").add_edge("model", END).compile()


def bare_app(ttft: float, tokens: int, gap: float) -> Any:
    """The peer: a bare Starlette app streaming the stand-in's tokens as weft's chat events."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    def frame(event: str, n: int, data: dict[str, Any]) -> bytes:
        return f"id: {n}\nevent: {event}\ndata: {json.dumps(data)}\n\n".encode()

    async def chat(request: Request) -> StreamingResponse:
        question = (await request.json())["question"]

        async def frames() -> AsyncIterator[bytes]:
            started = time.perf_counter()
            first = None
            n = 0
            async for token in model_stream(question, ttft, tokens, gap):
                n += 1
                first = first or time.perf_counter()
                yield frame("token", n, {"text": token})
            ttft_ms = ((first or time.perf_counter()) - started) * 1000
            yield frame("done", n + 1, {"timing": {"graph_ttft_ms": ttft_ms}})

        return StreamingResponse(frames(), media_type="text/event-stream")

    async def ready(request: Request) -> StreamingResponse:
        return StreamingResponse(iter([b"ok"]))

    return Starlette(routes=[Route("/v1/chat", chat, methods=["POST"]), Route("/readyz", ready)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._remote_stub", description=__doc__)
    parser.add_argument("--ttft", type=float, default=0.05, help="seconds (default 0.05)")
    parser.add_argument("--tokens", type=int, default=40, help="tokens per answer (default 40)")
    parser.add_argument("--gap", type=float, default=0.005, help="seconds between tokens")
    parser.add_argument("--bare", action="store_true", help="serve from a bare Starlette app")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="weft-remote-stub-") as tmp:
        settings = Settings(
            data_dir=tmp,
            rate_limit_per_minute=0,
            max_concurrent_runs=1000,
            server_max_connections_per_client=0,
        )
        app = (
            bare_app(args.ttft, args.tokens, args.gap)
            if args.bare
            else create_app(
                settings,
                graphs={"remote": remote_graph(args.ttft, args.tokens, args.gap)},
                chat_graph="remote",
                readiness={},
                freeze_gc=True,  # as weft serve does
            )
        )
        if args.bare:
            gc.collect()
            gc.freeze()  # as weft serve does once it has started
        sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
        port = sock.getsockname()[1]
        # The weft stand-in is admitted as weft serve admits requests; the bare peer as plain
        # uvicorn does.
        limits = {} if args.bare else uvicorn_options(settings)
        config = uvicorn.Config(
            app, **limits, log_level="warning", access_log=False, server_header=False
        )
        print(f"open http://127.0.0.1:{port}/ to chat", flush=True)
        uvicorn.Server(config).run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()

"""A real weft server whose chat graph stands in for a remote model: it spends no CPU.

``python -m bench._remote_stub`` serves one graph, ``remote``, on a free port with the same
app, middleware, guards and tracing as ``weft serve``. Its only node waits ``--ttft`` seconds
(the model's time to first token, as a remote API would take it) and then streams ``--tokens``
tokens ``--gap`` seconds apart. Whatever a client sees beyond that wait is what the server
adds: HTTP, validation, guards, the graph runtime, tracing and SSE framing.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from weft import END, START, Graph
from weft.core.settings import Settings
from weft.server.app import create_app


def remote_graph(ttft: float, tokens: int, gap: float) -> Any:
    """``str -> str``: the remote-model stand-in."""

    async def model(question: str) -> AsyncIterator[str]:
        await asyncio.sleep(ttft)
        for i in range(tokens):
            if i:
                await asyncio.sleep(gap)
            yield f"token{i} "

    g = Graph[str, str]("remote").add_node("model", model)
    return g.add_edge(START, "model").add_edge("model", END).compile()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._remote_stub", description=__doc__)
    parser.add_argument("--ttft", type=float, default=0.05, help="seconds (default 0.05)")
    parser.add_argument("--tokens", type=int, default=40, help="tokens per answer (default 40)")
    parser.add_argument("--gap", type=float, default=0.005, help="seconds between tokens")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="weft-remote-stub-") as tmp:
        settings = Settings(data_dir=tmp, rate_limit_per_minute=0, max_concurrent_runs=1000)
        app = create_app(
            settings,
            graphs={"remote": remote_graph(args.ttft, args.tokens, args.gap)},
            chat_graph="remote",
            readiness={},
        )
        sock = socket.create_server(("127.0.0.1", 0), backlog=2048)
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False)
        print(f"open http://127.0.0.1:{port}/ to chat", flush=True)
        uvicorn.Server(config).run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()

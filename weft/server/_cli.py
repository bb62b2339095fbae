"""The `weft` commands of this package; `weft/cli.py` calls :func:`add_commands`.

``weft serve [--host HOST] [--port PORT] [--data-dir DIR] [--trace]`` ingests the bundled
knowledge base on first start, prints the URL to open, and serves the chat page and the API.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any, TextIO

__all__ = ["add_commands"]


def add_commands(subparsers: Any) -> None:
    """Add this package's commands to the CLI's subparsers."""
    serve = subparsers.add_parser(
        "serve",
        help="serve the chat page and the HTTP API (SSE, OpenAI-compatible)",
        description=(
            "Serve the web chat page at / and the API under /v1 (SSE chat, OpenAI-compatible "
            "chat completions, every graph's invoke/stream/batch). On first start it ingests "
            "the bundled demo knowledge base into the data directory. Limits, API keys and "
            "CORS come from WEFT_* variables (see docs/server.md)."
        ),
    )
    serve.add_argument("--host", default=None, help="interface to bind (WEFT_HOST; 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="port; 0 picks a free one (WEFT_PORT; 8000)"
    )
    serve.add_argument(
        "--data-dir", default=None, help="knowledge base, checkpoints, traces (WEFT_DATA_DIR)"
    )
    serve.add_argument(
        "--trace", action="store_true", help="also write spans to DATA_DIR/traces.jsonl"
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(handler=_serve)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def _url(host: str, port: int) -> str:
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host)
    if shown is None:
        shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from weft.core._extras import import_optional
    from weft.core.settings import get_settings

    uvicorn = import_optional("uvicorn", extra="server", feature="weft serve")
    from weft.graphs.registry import knowledge_base
    from weft.server.app import create_app

    settings = get_settings(data_dir=args.data_dir, host=args.host, port=args.port)
    kb = knowledge_base(settings)  # the instance the graphs will read, not a second one
    if kb.is_empty():
        out.write(
            f"Ingesting the bundled demo knowledge base into {settings.data_dir} "
            "(first start only, takes a few seconds)...\n"
        )
        out.flush()
        summary = kb.ensure_demo(progress=out is sys.stdout and sys.stdout.isatty())
        if summary is not None:
            out.write(f"Ingested {summary.describe()}\n")
    else:
        out.write(f"Knowledge base: {settings.data_dir} ({kb.count()} chunks)\n")
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        out.write(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}; "
            "pick another port with --port (0 picks a free one)\n"
        )
        return 1
    port = int(sock.getsockname()[1])
    tracing: Any = True
    if args.trace:
        from weft.core.tracing import enable_tracing

        tracing = enable_tracing("jsonl", path=str(settings.traces_path))
    app = create_app(settings, tracing=tracing)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=args.access_log,
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = uvicorn.Server(config)
    out.write(f"weft is serving; open {_url(settings.host, port)} to chat (Ctrl+C stops)\n")
    out.flush()
    server.run(sockets=[sock])
    return 0

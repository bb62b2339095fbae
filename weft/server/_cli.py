"""The `weft` commands of this package; `weft/cli.py` calls :func:`add_commands`.

``weft serve [--host HOST] [--port PORT] [--data-dir DIR] [--trace]`` ingests the bundled
knowledge base on first start, prints the URL to open, and serves the chat page and the API. A
port it cannot listen on, a data directory that is a file, or damaged stored data end it with
exit code 2 and one line on stderr, as every weft command. What it admits (header size and
count, header, body and keep-alive timeouts, connections per client) comes from the
``WEFT_SERVER_*`` settings, through :func:`weft.server._http.uvicorn_options`.

``weft db migrate`` creates or updates weft's tables in the database ``WEFT_DATABASE_URL`` names
(docs/deploy.md); without that setting it says so and exits with code 2.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from typing import Any, TextIO

from weft.core.errors import ConfigurationError, WeftError

__all__ = ["add_commands"]


def add_commands(subparsers: Any) -> None:
    """Add this package's commands to the CLI's subparsers."""
    serve = subparsers.add_parser(
        "serve",
        help="serve the chat page and the HTTP API (SSE, OpenAI-compatible)",
        description=(
            "Serve the web chat page at / and the API under /v1 (SSE chat, OpenAI-compatible "
            "chat completions, every graph's invoke/stream/batch). An empty knowledge base "
            "stays empty until you run weft ingest, or --demo ingests weft's own handbook. "
            "Limits, API keys and CORS come from WEFT_* variables (see docs/server.md)."
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
    serve.add_argument(
        "--demo",
        action="store_true",
        help="when the knowledge base is empty, ingest weft's own handbook into it first",
    )
    serve.add_argument(
        "--strict",
        action="store_true",
        help="offline, quote only a sentence that meets every word of the question, read in "
        "context: refuses more, answers fewer paraphrases (WEFT_STRICT_ANSWERS)",
    )
    serve.set_defaults(handler=_serve)
    db = subparsers.add_parser(
        "db",
        help="the shared database (WEFT_DATABASE_URL)",
        description="Manage the PostgreSQL database WEFT_DATABASE_URL names (docs/deploy.md).",
    )
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    migrate = db_commands.add_parser(
        "migrate",
        help="create or update weft's tables (checkpoints, sessions, sagas, knowledge base, "
        "eval cache)",
        description=(
            "Create or update every table weft keeps in the database at WEFT_DATABASE_URL. "
            "Servers do this on first use; run it after an upgrade, before the replicas start."
        ),
    )
    migrate.set_defaults(handler=_migrate)


_LOCAL_HOSTS = "127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"


def _bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port``, bound here so that a taken port or a foreign address
    is reported in one line before anything starts.

    Raises:
        ConfigurationError: the host does not resolve, is not an address of this machine, or the
            port is taken or not allowed; the message names ``host:port`` and the fix.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # uvicorn's rule: IPv6 when the host has a colon, else IPv4 (names included).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(
            host or None, port, family=family, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        version = "IPv6" if family == socket.AF_INET6 else "IPv4"
        raise ConfigurationError(
            f"cannot listen on {where}: '{host}' does not resolve to an {version} address "
            f"({exc.strerror}); pass a local address with --host or WEFT_HOST, e.g. {_LOCAL_HOSTS}"
        ) from exc
    address = infos[0][4]
    try:
        return socket.create_server(address, family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            problem = (
                "the port is in use; stop the program that holds it, or pick another port "
                "with --port or WEFT_PORT (0 picks a free one)"
            )
        elif exc.errno == errno.EADDRNOTAVAIL:
            problem = (
                f"{host} is not an address of this machine; pass one of its own with --host or "
                f"WEFT_HOST, e.g. {_LOCAL_HOSTS}"
            )
        elif exc.errno == errno.EACCES:
            problem = (
                "permission denied (ports below 1024 need administrator rights); pick another "
                "port with --port or WEFT_PORT"
            )
        else:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            problem = f"{reason}; check --host and --port (WEFT_HOST, WEFT_PORT)"
        raise ConfigurationError(f"cannot listen on {where}: {problem}") from exc


def _url(host: str, port: int) -> str:
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host)
    if shown is None:
        shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    try:
        return _run(args, out)
    except WeftError as exc:  # bad settings or stored data: one line, as every weft command
        print(f"weft {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _migrate(args: argparse.Namespace, out: TextIO) -> int:
    from weft.core._database import database_of, shown
    from weft.core.settings import get_settings

    try:
        settings = get_settings()
        database = database_of(settings)
        if database is None:
            raise ConfigurationError(
                "WEFT_DATABASE_URL is not set; set it to the database to migrate, e.g. "
                "postgresql://weft@db:5432/weft (without it weft keeps everything in its data dir)"
            )
        applied = database.migrate()
    except WeftError as exc:
        print(f"weft db migrate: error: {exc}", file=sys.stderr)
        return 2
    where = shown(database.url)
    if applied:
        out.write(f"{where}: applied {', '.join(applied)}\n")
    else:
        out.write(f"{where}: the schema is current; nothing to do\n")
    return 0


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from weft.core._checkpoint import open_sqlite_checkpointer
    from weft.core._database import database_of
    from weft.core._extras import import_optional
    from weft.core.settings import get_settings

    uvicorn = import_optional("uvicorn", extra="server", feature="weft serve")
    from weft.graphs.registry import knowledge_base
    from weft.server.app import create_app

    settings = get_settings(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        strict_answers=True if args.strict else None,
    )
    # Bound before the knowledge base is opened (and maybe ingested into), so a taken port
    # fails at once; connections made meanwhile wait in the backlog.
    sock = _bind(settings.host, settings.port)
    try:
        kb = knowledge_base(settings)  # the instance the graphs will read, not a second one
        # The server builds its graphs once it runs, where a damaged BM25 index or checkpoint
        # file would only be logged: opening both now stops the command with the file's name.
        kb.bm25.refresh()
        database = database_of(settings)
        if database is None:
            open_sqlite_checkpointer(settings.checkpoint_path).conn.close()
        else:  # reachable, and its tables made, before the first request
            database.ensure_tables()
        if kb.is_empty() and not args.demo:
            out.write(
                f"Knowledge base: {settings.data_dir} is empty; ingest documents with weft ingest "
                f"PATH... --data-dir {settings.data_dir} (or start with --demo for weft's own "
                "handbook)\n"
            )
        elif kb.is_empty():
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
        port = int(sock.getsockname()[1])
        tracing: Any = True
        if args.trace:
            from weft.core.tracing import enable_tracing

            tracing = enable_tracing("jsonl", path=str(settings.traces_path))
        app = create_app(settings, tracing=tracing, freeze_gc=True)
    except BaseException:
        sock.close()
        raise
    from weft.server._http import uvicorn_options

    config = uvicorn.Config(
        app,
        **uvicorn_options(settings),
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

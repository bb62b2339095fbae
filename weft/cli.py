"""The ``weft`` command line.

Run ``weft --help`` for the commands and ``weft COMMAND --help`` for each one's options.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pydantic

from weft.core.errors import WeftError
from weft.core.settings import (
    SETTINGS_FILE_VARIABLE,
    SettingsFileError,
    check_settings_file,
    invalid_settings,
    settings_file,
    using_settings_file,
)

__all__ = ["main"]

DEFAULT_QUESTION = "What does compile check?"
DEBUG_VARIABLE = "WEFT_DEBUG"
"""Set (to anything) to let an unexpected error end the CLI with its traceback."""


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from weft.core.callbacks import ConsoleHandler
    from weft.graphs.demo import build_demo_graph

    if not args.question.strip():
        print(
            "weft demo: error: the question is empty; ask something, e.g. "
            f"weft demo {DEFAULT_QUESTION!r}",
            file=sys.stderr,
        )
        return 2
    graph = build_demo_graph()
    config: dict[str, Any] = {"callbacks": [ConsoleHandler()]} if args.trace else {}
    tracing = None
    if args.trace:
        from weft.core.settings import get_settings
        from weft.core.tracing import enable_tracing

        # The spans go where `weft trace` (with the same --data-dir) looks for them.
        traces = get_settings(data_dir=args.data_dir).traces_path
        tracing = enable_tracing("jsonl", path=str(traces))
    try:
        _demo_answer(graph, args.question, config, out)
    finally:
        if tracing is not None:
            from weft.core.tracing import disable_tracing

            disable_tracing(tracing)
            print(f"Trace written to {traces}; read it with weft trace", file=sys.stderr)
    return 0


def _demo_answer(graph: Any, question: str, config: dict[str, Any], out: TextIO) -> None:
    from weft.core.stream import Chunk, NodeFinished

    out.write(f"Q: {question}\nA: ")
    sources: list[Any] = []
    for event in graph.events(question, config):
        if isinstance(event, Chunk) and event.final:
            out.write(str(event.chunk.content))
            out.flush()
        elif isinstance(event, NodeFinished) and event.path == ("retrieve",):
            sources = event.output
    out.write("\n\nSources:\n")
    for i, doc in enumerate(sources, start=1):
        out.write(f"  [{i}] {doc.metadata.get('title', doc.id)}\n")


def _leaves(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> list[Any]:
    """The parsers of the commands that run (``graph show``, not ``graph``)."""
    found = []
    for command in sub.choices.values():
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        found += [leaf for n in nested for leaf in _leaves(n)] if nested else [command]
    return found


def build_parser() -> argparse.ArgumentParser:
    from weft import __version__
    from weft.core.tracing import add_trace_command
    from weft.evals._cli import add_commands as eval_commands
    from weft.graphs._agent_cli import add_commands as agent_commands
    from weft.graphs._cli import add_commands as graph_commands
    from weft.graphs.health._cli import add_commands as health_commands
    from weft.graphs.resume._cli import add_commands as resume_commands
    from weft.server._cli import add_commands as server_commands

    parser = argparse.ArgumentParser(
        prog="weft",
        description="weft: typed components compiled into LangGraph graphs.",
        epilog=(
            "Every command takes --data-dir DIR (default: $WEFT_DATA_DIR or ./.weft) and "
            "--settings FILE, a file of WEFT_NAME=value lines (default: $WEFT_SETTINGS_FILE)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"weft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="stream an answer from the offline demo graph",
        description=(
            "Answer a question about weft from a few built-in passages with the offline demo "
            "graph (BM25 retrieval, a prompt and the extractive chat model), streaming the "
            "answer as it is produced. Needs no network and no API key."
        ),
    )
    demo.add_argument(
        "question", nargs="?", default=DEFAULT_QUESTION, help=f"default: {DEFAULT_QUESTION!r}"
    )
    demo.add_argument(
        "--trace",
        action="store_true",
        help="print the run tree to stderr and write its spans to DATA_DIR/traces.jsonl, "
        "which weft trace reads",
    )
    demo.add_argument(
        "--data-dir", help="where --trace writes traces.jsonl (default: $WEFT_DATA_DIR or ./.weft)"
    )
    demo.set_defaults(handler=_demo)
    add_trace_command(sub)
    for add_commands in (
        graph_commands,
        server_commands,
        eval_commands,
        agent_commands,
        resume_commands,
        health_commands,
    ):
        add_commands(sub)
    for command in _leaves(sub):
        command.add_argument(
            "--settings",
            metavar="FILE",
            help=(
                "read settings from this file of WEFT_NAME=value lines (default: "
                f"${SETTINGS_FILE_VARIABLE}); flags and WEFT_* variables win over it"
            ),
        )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(out or sys.stdout)
        return 2
    try:
        with using_settings_file(getattr(args, "settings", None)):
            path = settings_file()
            if path is not None:
                check_settings_file(path)
            code: int = args.handler(args, out or sys.stdout)
    except SettingsFileError as exc:
        print(f"weft {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("weft: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`weft ... | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except pydantic.ValidationError as exc:
        if exc.title != "Settings":
            raise
        flags = {f for f in ("data_dir", "host", "port") if getattr(args, f, None) is not None}
        chosen = getattr(args, "settings", None)
        path = settings_file() if chosen is None else Path(chosen)
        failing = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        where = ""
        if path is not None and failing - flags:  # some value came from the environment or file
            where = f" (in the environment or settings file '{path}')"
        message = invalid_settings(exc, flags)
        print(f"weft {args.command}: error: {message}{where}", file=sys.stderr)
        return 2
    except WeftError as exc:  # weft's own errors say what failed and how to fix it
        print(f"weft {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the system refused: too long, a loop, not a folder...
        if os.environ.get(DEBUG_VARIABLE):
            raise
        what = f" '{exc.filename}'" if exc.filename else ""
        reason = exc.strerror or str(exc)
        print(f"weft {args.command}: error: {reason}:{what}; check the path", file=sys.stderr)
        return 2
    except Exception as exc:  # a failure weft does not know: one line, the traceback on demand
        if os.environ.get(DEBUG_VARIABLE):
            raise
        print(
            f"weft {args.command}: error: {type(exc).__name__}: {' '.join(str(exc).split())}"
            f" (set {DEBUG_VARIABLE}=1 to see where)",
            file=sys.stderr,
        )
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())

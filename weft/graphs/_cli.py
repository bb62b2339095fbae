"""The `weft` commands of this package; `weft/cli.py` calls :func:`add_commands`.

``weft ingest``, ``weft chat``, ``weft graph show`` and ``weft graph list``. Every command takes
``--data-dir``;
bad input ends with exit code 2 and a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import pydantic

from weft.core.errors import WeftError

__all__ = ["add_commands", "draw_ascii", "number_within"]

_DATA_DIR_HELP = (
    "folder of the knowledge base, checkpoints and traces (default: $WEFT_DATA_DIR or ./.weft)"
)


class _UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def number_within(low: float, high: float, *, whole: bool = False) -> Callable[[str], float]:
    """An argparse type: a number from ``low`` to ``high`` (a whole one if ``whole``); anything
    else is a usage error that names the range."""
    what = "whole number" if whole else "number"

    def parse(text: str) -> float:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what} from {low:g} to {high:g}")
        return value

    return parse


def _settings(args: argparse.Namespace) -> Any:
    from weft.core.settings import get_settings

    return get_settings(data_dir=args.data_dir)


def _guard(handler: Callable[[argparse.Namespace, TextIO], int]) -> Any:
    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            return handler(args, out)
        except _UsageError as exc:
            message = str(exc)
        except pydantic.ValidationError as exc:
            if exc.title == "Settings":
                raise  # weft.cli.main reports invalid settings for every command
            errors = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
            )
            message = f"invalid {exc.title}: {errors}"
        except WeftError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, WeftError) else exc
            message = str(cause)
        print(f"weft {args.command}: error: {message}", file=sys.stderr)
        return 2

    return run


# -- ingest ----------------------------------------------------------------------------------------


def _ingest(args: argparse.Namespace, out: TextIO) -> int:
    from weft.graphs.knowledge import KnowledgeBase

    if any(not p.strip() for p in args.paths):
        raise _UsageError("a path is empty; pass files or folders of .txt, .md, .html or .pdf")
    missing = [p for p in args.paths if not Path(p).expanduser().exists()]
    if missing:
        raise _UsageError(
            f"no such file or folder: {', '.join(missing)}; pass files or folders of "
            ".txt, .md, .html or .pdf documents"
        )
    try:
        codecs.lookup(args.encoding)
    except LookupError:
        raise _UsageError(
            f"unknown encoding {args.encoding!r}; pass a codec name such as utf-8, cp1252 or "
            "latin-1"
        ) from None
    kb = KnowledgeBase(_settings(args))
    summary = kb.ingest(
        args.paths,
        progress=not args.no_progress,
        reset=args.reset,
        wait=not args.no_wait,
        encoding=args.encoding,
    )
    out.write(f"Ingested into {kb.where}: {summary.describe()}\n")
    if summary.files == 0:
        reason = (
            "every file was skipped (the reasons are above); fix or remove those files"
            if summary.skipped
            else "pass .txt, .md, .html or .pdf files, or folders that hold them"
        )
        print(
            f"weft ingest: error: found no document to ingest in {', '.join(args.paths)}: {reason}",
            file=sys.stderr,
        )
        return 2
    return 0


# -- chat ------------------------------------------------------------------------------------------


def _print_sources(sources: list[Any], out: TextIO) -> None:
    if not sources:
        return
    out.write("\nSources:\n")
    for s in sources:
        where = f" ({s.source})" if s.source else ""
        score = f"  score {s.score:.4f}" if s.score is not None else ""
        out.write(f"  [{s.index}] {s.title or s.id}{where}{score}\n")


def _ask(graph: Any, question: str, session: str | None, as_json: bool, out: TextIO) -> None:
    from weft.graphs.rag import stream_chat
    from weft.graphs.schema import ChatDone, ChatInput, ChatToken

    chat = ChatInput(question=question, session_id=session)
    for event in stream_chat(graph, chat):
        if isinstance(event, ChatToken) and not as_json:
            out.write(event.text)
            out.flush()
        elif isinstance(event, ChatDone):
            if as_json:
                out.write(json.dumps(event.output.model_dump(mode="json"), ensure_ascii=False))
                out.write("\n")
            else:
                out.write("\n")
                _print_sources(event.output.sources, out)
    out.flush()


def _chat(args: argparse.Namespace, out: TextIO) -> int:
    from weft.graphs.rag import build_rag_graph
    from weft.graphs.registry import knowledge_base

    # The shell splits an unquoted question into words; they are one question again.
    asked = " ".join(args.question) if args.question else None
    if asked is not None and not asked.strip():
        raise _UsageError("the question is empty; ask something, or leave it out to chat")
    if args.session is not None and not 1 <= len(args.session.strip()) <= 200:
        raise _UsageError(
            f"--session {args.session[:40]!r} is empty or too long; give 1 to 200 characters"
        )
    settings = _settings(args)
    if not (settings.database_url or settings.chroma_url or settings.data_dir.exists()):
        # A mistyped --data-dir: say so, and leave no folder behind.
        raise _UsageError(
            f"there is no knowledge base in {settings.data_dir} (no such folder); check "
            f"--data-dir, or ingest your documents there first "
            f"(weft ingest PATH... --data-dir {settings.data_dir})"
        )
    kb = knowledge_base(settings)
    if args.strict:
        settings = settings.model_copy(update={"strict_answers": True})
    # Built first: a damaged checkpoint file stops the command before anything is ingested.
    # The graph searches the knowledge base's own stores, so it sees what is ingested next.
    graph = build_rag_graph(kb, settings=settings, checkpointer=True)
    if kb.is_empty():
        # A user's knowledge base holds only what they put in it: nothing is ingested for them.
        raise _UsageError(
            f"the knowledge base in {settings.data_dir} is empty; ingest your documents first "
            f"(weft ingest PATH... --data-dir {settings.data_dir}), or try weft's own handbook "
            f"with weft serve --demo"
        )
    if asked is not None:
        _ask(graph, asked, args.session, args.json, out)
        return 0
    session = args.session or f"cli-{uuid.uuid4().hex[:12]}"
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"Chat session {session}; type exit or press Ctrl-D to leave.", file=sys.stderr)
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        question = line.strip()
        if question.lower() in ("exit", "quit"):
            break
        if not question:
            continue
        _ask(graph, question, session, args.json, out)
        if not args.json:
            out.write("\n")
    return 0


# -- graph show ------------------------------------------------------------------------------------


def _label(node: Any) -> str:
    kind = (node.metadata or {}).get("weft_kind")
    return f"{node.name} - {kind}" if kind else str(node.name)


def _labelled(graph: Any) -> Any:
    """The graph's drawing with each node labelled ``name - kind`` and nothing else (no
    component class, no other metadata); start and end keep their names."""
    drawn = graph.get_graph()
    for key, node in list(drawn.nodes.items()):
        drawn.nodes[key] = node._replace(name=_label(node), metadata=None)
    return drawn


def draw_ascii(graph: Any) -> str:
    """An ASCII drawing of a compiled graph: one row of boxes per layer, edges under each row.

    ``-->`` is an edge, ``-.->`` a branch (conditional) edge. Each box is ``name - kind``. Needs
    no extra package.
    """
    drawn = graph.get_graph()
    names = {key: node.name for key, node in drawn.nodes.items()}
    boxes = {key: _label(node) for key, node in drawn.nodes.items()}
    outgoing: dict[str, list[tuple[str, bool]]] = {key: [] for key in names}
    for edge in drawn.edges:
        outgoing[edge.source].append((edge.target, bool(edge.conditional)))
    layer: dict[str, int] = {}
    roots = [k for k in names if all(e.target != k for e in drawn.edges)] or list(names)[:1]
    for root in roots:
        layer[root] = 0
    # Longest-path layering over the acyclic part (back edges are skipped).
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in order or key in visiting:
            return
        visiting.add(key)
        for target, _ in outgoing[key]:
            visit(target)
        visiting.discard(key)
        order.append(key)

    for root in roots:
        visit(root)
    for key in names:
        visit(key)
    order.reverse()
    position = {k: i for i, k in enumerate(order)}
    for key in order:
        for target, _ in outgoing[key]:
            if position[target] > position[key]:
                layer[target] = max(layer.get(target, 0), layer.get(key, 0) + 1)
    rows: dict[int, list[str]] = {}
    for key in order:
        rows.setdefault(layer.get(key, 0), []).append(key)
    lines: list[str] = []
    for depth in sorted(rows):
        keys = rows[depth]
        labels = [boxes[k] for k in keys]
        lines.append("  ".join("+" + "-" * (len(s) + 2) + "+" for s in labels))
        lines.append("  ".join(f"| {s} |" for s in labels))
        lines.append("  ".join("+" + "-" * (len(s) + 2) + "+" for s in labels))
        for key in keys:
            for target, conditional in outgoing[key]:
                arrow = "-.->" if conditional else "-->"
                lines.append(f"    {names[key]} {arrow} {names[target]}")
    return "\n".join(lines)


def _graph_show(args: argparse.Namespace, out: TextIO) -> int:
    from weft.graphs.registry import GRAPH_NAMES

    if args.name not in GRAPH_NAMES:
        raise _UsageError(f"unknown graph '{args.name}'; choose one of {', '.join(GRAPH_NAMES)}")
    settings = _settings(args)
    # The shape does not depend on the data: draw a copy over an empty, throwaway knowledge
    # base, so that showing a graph never creates or opens the data dir's stores.
    with tempfile.TemporaryDirectory(prefix="weft-show-") as scratch:
        graph = _drawable(args.name, settings.model_copy(update={"data_dir": Path(scratch)}))
        out.write(f"Graph '{args.name}' as Mermaid:\n\n")
        out.write(_labelled(graph).draw_mermaid().rstrip() + "\n\n")
        out.write(f"Graph '{args.name}' as ASCII:\n\n")
        out.write(draw_ascii(graph) + "\n")
    return 0


_ABOUT = {
    "rag": ("ChatInput -> ChatOutput", "RAG chat: condense, hybrid retrieval, a cited answer"),
    "hybrid": ("str -> list[Document]", "vector and BM25 retrieval, fused"),
    "demo": ("str -> AIMessage", "the small offline demo over built-in passages"),
    "resume": ("ResumeInput -> ResumeAnalysis", "resume profiles matched to job ads"),
    "health": ("HealthInput -> Consultation", "red-flag triage, then a consultation saga"),
}


def _names(last: str) -> str:
    """The ready graphs' names as a list in words: ``rag, hybrid, ... or health``."""
    *rest, final = _ABOUT
    return f"{', '.join(rest)} {last} {final}"


def _graph_list(args: argparse.Namespace, out: TextIO) -> int:
    from weft.graphs.registry import GRAPH_NAMES

    width = max(len(n) for n in GRAPH_NAMES)
    typed = max(len(types) for types, _ in _ABOUT.values())
    for name in GRAPH_NAMES:
        types, about = _ABOUT.get(name, ("", ""))
        out.write(f"{name:<{width}}  {types:<{typed}}  {about}\n")
    return 0


def _drawable(name: str, settings: Any) -> Any:
    """Graph ``name`` as :func:`~weft.graphs.registry.default_graphs` builds it, over an empty
    knowledge base in ``settings.data_dir`` and without memory."""
    from weft.components.embeddings import HashingEmbeddings
    from weft.graphs.demo import build_demo_graph
    from weft.graphs.hybrid import build_hybrid_graph
    from weft.graphs.knowledge import KnowledgeBase
    from weft.graphs.rag import build_rag_graph

    if name == "demo":
        return build_demo_graph()
    if name == "resume":
        from weft.graphs.resume import build_resume_graph

        return build_resume_graph()
    if name == "health":
        from weft.graphs.health.graph import build_health_graph

        return build_health_graph(settings.data_dir, recover=False)
    kb = KnowledgeBase(settings, embedding=HashingEmbeddings())
    if name == "hybrid":
        return build_hybrid_graph(kb, k=settings.top_k)
    return build_rag_graph(kb, settings=settings)


# -- parsers ---------------------------------------------------------------------------------------


def add_commands(subparsers: Any) -> None:
    """Add ``ingest``, ``chat`` and ``graph`` to the CLI's subparsers."""
    ingest = subparsers.add_parser(
        "ingest",
        help="read files and folders into the knowledge base",
        description=(
            "Read .txt, .md, .html and .pdf files (folders recursively), split them into "
            "chunks and add them to the knowledge base's Chroma collection and BM25 index. "
            "Re-ingesting the same files adds nothing. Bad files are skipped with a reason. "
            "One ingest of a data dir runs at a time; another waits for it (or, with "
            "--no-wait, fails). Ends with a summary: files, chunks, skipped files and time taken."
        ),
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to ingest")
    ingest.add_argument("--data-dir", help=_DATA_DIR_HELP)
    ingest.add_argument(
        "--reset", action="store_true", help="empty the knowledge base first, then ingest"
    )
    ingest.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    ingest.add_argument(
        "--encoding",
        default="utf-8",
        metavar="CODEC",
        help="the text files' encoding, e.g. cp1252 or latin-1 (default: utf-8; a UTF-16 "
        "file is recognised by its byte order mark)",
    )
    ingest.add_argument(
        "--no-wait",
        action="store_true",
        help="fail (exit 2) instead of waiting when another ingest of the data dir is running",
    )
    ingest.set_defaults(handler=_guard(_ingest))

    chat = subparsers.add_parser(
        "chat",
        help="ask the knowledge base; streams an answer with its sources",
        description=(
            "Answer a question from the knowledge base with the RAG chat graph, streaming the "
            "answer and then listing its numbered sources. Without a question, chat in a loop "
            "with memory, reading questions from stdin until EOF or 'exit'. An empty knowledge "
            "base is an error (exit 2) that says how to ingest. Offline unless OPENAI_API_KEY "
            "or OPENAI_BASE_URL is set."
        ),
    )
    chat.add_argument(
        "question",
        nargs="*",
        help="the question (its words, quoted or not); leave it out to chat in a loop",
    )
    chat.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object {answer, sources, usage, fallback} per question instead "
        "of streaming",
    )
    chat.add_argument("--session", metavar="ID", help="continue (or start) the session ID")
    chat.add_argument(
        "--strict",
        action="store_true",
        help="offline, quote only a sentence that meets every word of the question, read in "
        "context: refuses more, answers fewer paraphrases (as WEFT_STRICT_ANSWERS=true)",
    )
    chat.add_argument("--data-dir", help=_DATA_DIR_HELP)
    chat.set_defaults(handler=_guard(_chat))

    graph = subparsers.add_parser(
        "graph",
        help="inspect the ready graphs",
        description=f"Inspect the ready graphs: {_names('and')}.",
    )
    graph_sub = graph.add_subparsers(dest="graph_command", metavar="ACTION", required=True)
    show = graph_sub.add_parser(
        "show",
        help="print a graph as Mermaid and as an ASCII diagram",
        description=f"Print the graph NAME ({_names('or')}) as Mermaid and as ASCII.",
    )
    show.add_argument("name", metavar="NAME", help=_names("or"))
    show.add_argument("--data-dir", help=_DATA_DIR_HELP)
    show.set_defaults(handler=_guard(_graph_show))
    listing = graph_sub.add_parser(
        "list",
        help="list the ready graphs with what each takes and returns",
        description="List the ready graphs (the names weft graph show and the server take).",
    )
    listing.add_argument("--data-dir", help=_DATA_DIR_HELP)
    listing.set_defaults(handler=_guard(_graph_list))

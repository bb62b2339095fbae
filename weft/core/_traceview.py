"""Spans as JSON lines on disk, and the text waterfall ``weft trace`` prints from them."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pydantic
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from weft.core.errors import WeftError

__all__ = [
    "JsonlSpanExporter",
    "add_trace_command",
    "default_trace_path",
    "last_trace",
    "read_spans",
    "render_trace",
]


def default_trace_path() -> Path:
    """``traces.jsonl`` in the settings' data dir (``WEFT_DATA_DIR``, or the settings file's),
    else ``./.weft/traces.jsonl``."""
    from weft.core.settings import get_settings

    try:
        return get_settings().traces_path
    except (pydantic.ValidationError, WeftError):  # other settings are invalid: keep tracing
        base = os.environ.get("WEFT_DATA_DIR")
        return (Path(base).expanduser() if base else Path(".weft")) / "traces.jsonl"


def _value(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """One span as the JSON object :class:`JsonlSpanExporter` writes."""
    ctx = span.context
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "status_message": span.status.description,
        "attributes": {k: _value(v) for k, v in (span.attributes or {}).items()},
        "events": [
            {
                "name": e.name,
                "time": e.timestamp,
                "attributes": {k: _value(v) for k, v in (e.attributes or {}).items()},
            }
            for e in span.events
        ],
    }


class JsonlSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON object per line.

    ``weft trace`` reads the file back and prints the last run as a tree. The file is opened per
    batch, so several processes may append to it, and it can be deleted between runs.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        >>> provider = TracerProvider()
        >>> provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter("t.jsonl")))
        ... # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_trace_path()
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(
            json.dumps(span_to_dict(s), ensure_ascii=False, default=str) + "\n" for s in spans
        )
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: the file is closed after each batch."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _is_span(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and bool(record.get("trace_id"))
        and isinstance(record.get("span_id"), str)
        and isinstance(record.get("parent_id"), str | None)
        and isinstance(record.get("name"), str)
        and isinstance(record.get("start"), int | float)
        and "end" in record
        and isinstance(record["end"], int | float | None)
        and isinstance(record.get("attributes", {}), dict | None)
    )


def _read(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The spans in a trace file, and why each other non-blank line is not one."""
    spans: list[dict[str, Any]] = []
    bad: list[str] = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.rstrip(b"\r\n").decode("utf-8"))
            except UnicodeDecodeError:
                bad.append(f"line {n} is not UTF-8 text")
                continue
            except json.JSONDecodeError as exc:
                bad.append(f"line {n} is not JSON ({exc.msg})")
                continue
            if _is_span(record):
                spans.append(record)
            else:
                bad.append(
                    f"line {n} is not a span (a span has trace_id, span_id, name, start, end)"
                )
    return spans, bad


def read_spans(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The spans in a JSONL trace file, in the order they were written; lines that are not
    spans (a write cut short) are skipped."""
    return _read(Path(path) if path is not None else default_trace_path())[0]


def last_trace(
    spans: Sequence[dict[str, Any]], trace_id: str | None = None
) -> list[dict[str, Any]]:
    """The spans of one trace: ``trace_id`` (a prefix is enough), else the last one to finish."""
    if trace_id is None:
        roots = [s for s in spans if s.get("parent_id") is None]
        pick = (roots or list(spans))[-1:] if spans else []
        if not pick:
            return []
        trace_id = str(pick[0]["trace_id"])
    return [s for s in spans if str(s["trace_id"]).startswith(trace_id)]


def _detail(span: dict[str, Any]) -> str:
    a = span.get("attributes") or {}
    bits = []
    if "gen_ai.usage.input_tokens" in a or "gen_ai.usage.output_tokens" in a:
        tokens_in = a.get("gen_ai.usage.input_tokens", 0)
        bits.append(f"tokens {tokens_in}→{a.get('gen_ai.usage.output_tokens', 0)}")
    if "gen_ai.response.time_to_first_chunk" in a:
        bits.append(f"ttft {float(a['gen_ai.response.time_to_first_chunk']) * 1000:.1f} ms")
    if span.get("status") == "ERROR":
        bits.append(f"✗ {a.get('error.type', 'error')}")
    return "  " + ", ".join(bits) if bits else ""


def render_trace(spans: Sequence[dict[str, Any]], *, bar_width: int = 30) -> str:
    """One trace as an indented tree with durations and a text waterfall bar per span.

    Example:
        >>> print(render_trace([{"trace_id": "ab", "span_id": "1", "parent_id": None,
        ...     "name": "invoke_workflow demo", "start": 0, "end": 2_000_000}]))
        trace ab  invoke_workflow demo  2.0 ms  1 span
        invoke_workflow demo  2.0 ms  |██████████████████████████████|
    """
    if not spans:
        return "no spans"
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s.get("parent_id") if s.get("parent_id") in ids else None
        children.setdefault(parent, []).append(s)
    for kids in children.values():
        kids.sort(key=lambda s: (s["start"], s["span_id"]))
    t0 = min(s["start"] for s in spans)
    t1 = max(s["end"] or s["start"] for s in spans)
    total = max(t1 - t0, 1)

    rows: list[tuple[str, dict[str, Any]]] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        rows.append(("  " * depth + span["name"], span))
        for kid in children.get(span["span_id"], []):
            walk(kid, depth + 1)

    roots = children.get(None, [])
    for root in roots:
        walk(root, 0)
    label_w = max(len(label) for label, _ in rows)
    ms = [f"{((s['end'] or s['start']) - s['start']) / 1e6:.1f} ms" for _, s in rows]
    ms_w = max(len(m) for m in ms)
    n = len(spans)
    head = roots[0]["name"] if roots else ""
    lines = [
        f"trace {str(spans[0]['trace_id'])[:16]}  {head}  {total / 1e6:.1f} ms  "
        f"{n} span{'s' if n != 1 else ''}"
    ]
    for (label, s), dur in zip(rows, ms, strict=True):
        start = int((s["start"] - t0) / total * bar_width)
        length = max(1, round(((s["end"] or s["start"]) - s["start"]) / total * bar_width))
        length = min(length, bar_width - start) if start < bar_width else 0
        bar = " " * start + "█" * length
        bar = bar.ljust(bar_width)[:bar_width]
        lines.append(f"{label.ljust(label_w)}  {dur.rjust(ms_w)}  |{bar}|{_detail(s)}")
    return "\n".join(lines)


def _bad(message: str) -> int:
    sys.stderr.write(f"weft trace: error: {message}\n")
    return 2


def _trace_command(args: argparse.Namespace, out: TextIO) -> int:
    if args.path is not None and not args.path.strip():
        return _bad("the trace file path is empty; pass the file enable_tracing() writes")
    if args.data_dir is not None and not args.data_dir.strip():
        return _bad("--data-dir is empty; leave it out for the default, or give a folder")
    if args.path:
        path = Path(args.path)
    elif args.data_dir:
        path = Path(args.data_dir).expanduser() / "traces.jsonl"
    else:
        path = default_trace_path()  # the settings' data dir, even if other settings are bad
    if path.is_dir():
        inside = path / "traces.jsonl"
        hint = f"pass {inside}" if inside.is_file() else "pass the file enable_tracing() writes"
        return _bad(f"{path} is a folder, not a trace file; {hint}")
    if path.exists() and not path.is_file():  # a pipe or a device: reading could wait forever
        return _bad(f"{path} is not a regular file; pass the file enable_tracing() writes")
    try:
        spans, bad = _read(path)
    except FileNotFoundError:
        sys.stderr.write(
            f"weft trace: no trace file at {path}; turn tracing on with weft.enable_tracing() "
            "(or weft serve --trace) and run a graph, or pass the file's path\n"
        )
        return 1
    except OSError as exc:
        return _bad(f"cannot read {path} ({exc.strerror or exc})")
    if bad and not spans:
        return _bad(
            f"{path} is not a trace file: {bad[0]}; pass the JSON-lines file that "
            f"enable_tracing() writes"
        )
    if bad:
        # A process killed mid-write leaves a torn line; the other spans are still good.
        lines = f"{len(bad)} line{'s' if len(bad) != 1 else ''}"
        sys.stderr.write(f"weft trace: skipped {lines} of {path}; {bad[0]}\n")
    picked = last_trace(spans, args.trace_id)
    ids = sorted({str(s["trace_id"]) for s in picked})
    if len(ids) > 1:
        shown = ", ".join(i[:16] for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        return _bad(
            f"{len(ids)} traces in {path} start with '{args.trace_id}' ({shown}); "
            "give more of the trace id"
        )
    if not picked:
        which = f"trace {args.trace_id}" if args.trace_id else "spans"
        sys.stderr.write(f"weft trace: no {which} in {path}\n")
        return 1
    try:
        tree = render_trace(picked, bar_width=args.width)
    except (ValueError, OverflowError, RecursionError, TypeError) as exc:
        # Parseable but impossible: a span its own ancestor, an end of Infinity, ids repeated.
        return _bad(f"cannot draw the trace in {path}: its spans do not form a tree ({exc})")
    out.write(tree + "\n")
    return 0


def _width(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 10 <= value <= 500:
        raise argparse.ArgumentTypeError(f"{value} is out of range; pass 10 to 500")
    return value


def add_trace_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``weft trace`` to the CLI's subparsers (``parser.add_subparsers()``'s result)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "trace",
        help="print the last traced run as a tree with durations",
        description=(
            "Print the last run recorded in a JSONL trace file (written by "
            "enable_tracing(), by default ./.weft/traces.jsonl or $WEFT_DATA_DIR/traces.jsonl) "
            "as an indented tree of spans with durations and a waterfall bar."
        ),
    )
    p.add_argument(
        "path", nargs="?", default=None, help="trace file (default: traces.jsonl in the data dir)"
    )
    p.add_argument("--data-dir", help="read DIR/traces.jsonl (default: $WEFT_DATA_DIR or ./.weft)")
    p.add_argument("--trace-id", help="show this trace (a prefix is enough) instead of the last")
    p.add_argument(
        "--width", type=_width, default=30, help="waterfall bar width, 10 to 500 (default 30)"
    )
    p.set_defaults(handler=_trace_command)
    return p

"""The handler side of callbacks: what a run is (:class:`RunInfo`), the four hooks
(:class:`Handler`), objects with hooks seen as handlers, and the ready handlers (see
:mod:`weft.core.callbacks`)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

__all__ = [
    "HOOKS",
    "CallbackEvent",
    "ConsoleHandler",
    "Handler",
    "HookAdapter",
    "MemoryHandler",
    "RunInfo",
    "RunKind",
    "as_handler",
]

RunKind = Literal["graph", "node", "chat_model", "retriever", "tool", "chain"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Where a run sits: its graph and node, what it is, and its place in the run tree.

    ``parent_run_id`` is the nearest enclosing run that handlers were told about (a graph, a
    node, or a model/retriever/tool call), so the ids form a tree handlers can rebuild.
    """

    kind: RunKind
    name: str
    run_id: UUID
    parent_run_id: UUID | None
    graph: str | None = None
    node: str | None = None
    component: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    params: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Invocation parameters of a model call (model name, temperature, ...), as langchain-core
    reports them; a tool call's ``tool_call_id`` and ``description``; empty for other runs."""


class Handler:
    """Override any of the four hooks. ``nodes`` limits events to runs inside those nodes.

    Example:
        >>> class Printer(Handler):
        ...     def on_start(self, info: RunInfo, input: Any) -> None:
        ...         print("start", info.kind, info.name)
    """

    nodes: frozenset[str] | None = None

    def on_start(self, info: RunInfo, input: Any) -> None:
        """A run started."""

    def on_end(self, info: RunInfo, output: Any) -> None:
        """A run finished with ``output``."""

    def on_error(self, info: RunInfo, error: BaseException) -> None:
        """A run raised ``error``."""

    def on_stream_chunk(self, info: RunInfo, chunk: Any) -> None:
        """A streaming run produced ``chunk`` (a token, a message chunk, a lambda's yield)."""


HOOKS = ("on_start", "on_end", "on_error", "on_stream_chunk")


class HookAdapter(Handler):
    """An object that has the hooks but is no :class:`Handler`, seen as one."""

    def __init__(self, target: Any, nodes: frozenset[str] | None) -> None:
        self.target = target
        self.nodes = nodes
        for hook in HOOKS:
            fn = getattr(target, hook, None)
            if fn is not None:
                setattr(self, hook, fn)


def as_handler(handler: Any) -> Handler:
    """``handler`` as a :class:`Handler`: itself, or an object with the hooks, wrapped.

    Raises:
        TypeError: ``handler`` has none of the hooks, a hook that is not callable, an ``on_``
            method that is no hook (a misspelt one), or is a langchain-core callback handler.
    """
    if isinstance(handler, Handler):
        return handler
    what = f"{type(handler).__name__} object {handler!r}"
    fix = (
        "subclass weft.Handler and override the hooks you need (on_start, on_end, on_error, "
        "on_stream_chunk)"
    )
    if isinstance(handler, BaseCallbackHandler):
        raise TypeError(
            f"{what} is a langchain-core callback handler, not a weft handler; pass it in the "
            f"config (config={{'callbacks': [handler]}}) or {fix}"
        )
    present = [h for h in HOOKS if getattr(handler, h, None) is not None]
    if not present:
        raise TypeError(f"{what} is not a weft handler: it has none of the hooks; {fix}")
    for hook in present:
        if not callable(getattr(handler, hook)):
            raise TypeError(f"{what}: its {hook} is not callable; {fix}")
    unknown = sorted(
        n for n in dir(handler) if n.startswith("on_") and n not in HOOKS and not n.startswith("__")
    )
    if unknown:
        raise TypeError(
            f"{what} has {', '.join(unknown)}, which no weft hook is called; the hooks are "
            f"{', '.join(HOOKS)}: rename it, or {fix}"
        )
    nodes = getattr(handler, "nodes", None)
    if nodes is not None:
        if isinstance(nodes, str) or not all(isinstance(n, str) for n in nodes):
            raise TypeError(f"{what}: its nodes must be a set of node names or None, got {nodes!r}")
        nodes = frozenset(nodes)
    return HookAdapter(handler, nodes)


# -- ready handlers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackEvent:
    """One recorded hook call."""

    event: Literal["start", "end", "error", "chunk"]
    info: RunInfo
    payload: Any
    time: float


class MemoryHandler(Handler):
    """Records every event in memory, in order; safe to share between threads.

    Example:
        >>> recorder = MemoryHandler()
        >>> recorder.events
        []
    """

    def __init__(self, nodes: Iterable[str] | None = None) -> None:
        self.nodes = frozenset(nodes) if nodes is not None else None
        self.events: list[CallbackEvent] = []
        self._lock = threading.Lock()

    def _add(self, event: Literal["start", "end", "error", "chunk"], info: RunInfo, p: Any) -> None:
        with self._lock:
            self.events.append(CallbackEvent(event, info, p, time.perf_counter()))

    def on_start(self, info: RunInfo, input: Any) -> None:
        self._add("start", info, input)

    def on_end(self, info: RunInfo, output: Any) -> None:
        self._add("end", info, output)

    def on_error(self, info: RunInfo, error: BaseException) -> None:
        self._add("error", info, error)

    def on_stream_chunk(self, info: RunInfo, chunk: Any) -> None:
        self._add("chunk", info, chunk)

    def of(self, event: str | None = None, kind: RunKind | None = None) -> list[CallbackEvent]:
        """Events filtered by hook name and run kind."""
        return [
            e
            for e in self.events
            if (event is None or e.event == event) and (kind is None or e.info.kind == kind)
        ]

    def clear(self) -> None:
        with self._lock:
            self.events.clear()


class ConsoleHandler(Handler):
    """Prints runs as an indented tree with durations, to stderr by default.

    Output looks like::

        ▶ graph demo
          ▶ node upper  lambda:TypedLambda
          ✓ node upper  0.2 ms
        ✓ graph demo  1.1 ms
    """

    def __init__(self, stream: TextIO | None = None, *, show_chunks: bool = False) -> None:
        self.stream = stream
        self.show_chunks = show_chunks
        self._depth: dict[UUID, int] = {}
        self._t0: dict[UUID, float] = {}
        self._lock = threading.Lock()

    def _write(self, depth: int, text: str) -> None:
        out = self.stream or sys.stderr
        out.write("  " * depth + text + "\n")
        out.flush()

    def on_start(self, info: RunInfo, input: Any) -> None:
        with self._lock:
            depth = self._depth.get(info.parent_run_id, -1) + 1 if info.parent_run_id else 0
            self._depth[info.run_id] = depth
            self._t0[info.run_id] = time.perf_counter()
            extra = f"  {info.component}" if info.component else ""
            self._write(depth, f"▶ {info.kind} {info.name}{extra}")

    def _finish(self, info: RunInfo, mark: str, tail: str) -> None:
        with self._lock:
            depth = self._depth.pop(info.run_id, 0)
            ms = (time.perf_counter() - self._t0.pop(info.run_id, time.perf_counter())) * 1000
            self._write(depth, f"{mark} {info.kind} {info.name}  {ms:.1f} ms{tail}")

    def on_end(self, info: RunInfo, output: Any) -> None:
        self._finish(info, "✓", "")

    def on_error(self, info: RunInfo, error: BaseException) -> None:
        self._finish(info, "✗", f"  {type(error).__name__}: {error}")

    def on_stream_chunk(self, info: RunInfo, chunk: Any) -> None:
        if self.show_chunks:
            with self._lock:
                self._write(self._depth.get(info.run_id, 0) + 1, f"· {chunk!r}")

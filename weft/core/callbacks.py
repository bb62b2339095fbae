"""Callbacks: four hooks (start, end, error, stream chunk) with a record of where each run sits.

A :class:`Handler` sees every graph run, every node, and every chat model, retriever and tool
call inside the nodes, in sync, async, batch and thread-pool runs. weft bridges the hooks onto
langchain-core's callback system, so LangChain components report through them too.

Register a handler for every run with :func:`add_handler`, or for one call by putting it in the
config: ``graph.invoke(x, config={"callbacks": [handler]})``. Set ``handler.nodes`` to receive
only the events of chosen nodes.

Example:
    >>> recorder = MemoryHandler()
    >>> # graph.invoke("hi", config={"callbacks": [recorder]})
    >>> # [e.info.name for e in recorder.events if e.event == "start"]
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager

__all__ = [
    "CallbackBridge",
    "CallbackEvent",
    "ConsoleHandler",
    "Handler",
    "MemoryHandler",
    "RunInfo",
    "RunKind",
    "add_handler",
    "global_handlers",
    "remove_handler",
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
    reports them; empty for other runs."""


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


_GLOBAL: list[Handler] = []
_GLOBAL_LOCK = threading.Lock()


def add_handler(handler: Handler) -> None:
    """Register ``handler`` for every graph run in this process."""
    with _GLOBAL_LOCK:
        if handler not in _GLOBAL:
            _GLOBAL.append(handler)


def remove_handler(handler: Handler) -> None:
    """Stop sending events to a handler registered with :func:`add_handler`."""
    with _GLOBAL_LOCK:
        if handler in _GLOBAL:
            _GLOBAL.remove(handler)


def global_handlers() -> tuple[Handler, ...]:
    """The handlers registered with :func:`add_handler`."""
    return tuple(_GLOBAL)


# run_id -> graph name, for the runs a compiled graph starts while handlers listen.
_GRAPH_RUNS: dict[UUID, str] = {}


@dataclass(slots=True)
class _Tracked:
    info: RunInfo | None  # None: an inner run handlers are not told about
    graph: str | None
    node: str | None
    emitted_parent: UUID | None


class CallbackBridge(BaseCallbackHandler):
    """A langchain-core callback handler that turns its events into weft :class:`Handler` hooks."""

    run_inline = True  # keep events in order; the hooks are cheap

    def __init__(self, handlers: Iterable[Handler]) -> None:
        self.handlers = list(handlers)
        self._runs: dict[UUID, _Tracked] = {}
        # Most handlers take every event; only those with ``nodes`` need a check per event.
        self._filtered = any(h.nodes is not None for h in self.handlers)

    # -- run tracking -------------------------------------------------------------------------

    def _track(
        self,
        kind: RunKind | None,
        name: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        params: dict[str, Any] | None = None,
    ) -> RunInfo | None:
        parent = self._runs.get(parent_run_id) if parent_run_id else None
        graph = parent.graph if parent else None
        node = parent.node if parent else None
        emitted_parent = None
        if parent is not None:
            emitted_parent = parent.info.run_id if parent.info else parent.emitted_parent
        component = None
        meta = metadata or {}
        if run_id in _GRAPH_RUNS:
            kind, graph, node = "graph", _GRAPH_RUNS[run_id], None
        elif kind == "chain" and parent is not None and parent.info and parent.info.kind == "graph":
            kind, node = "node", name
            component = meta.get("weft_component")
        if kind == "chain":
            info = None
        else:
            assert kind is not None
            info = RunInfo(
                kind=kind,
                name=name,
                run_id=run_id,
                parent_run_id=emitted_parent,
                graph=graph,
                node=node,
                component=component,
                metadata=meta,
                params=params or {},
            )
        self._runs[run_id] = _Tracked(info, graph, node, emitted_parent)
        return info

    def _targets(self, info: RunInfo) -> Iterable[Handler]:
        if not self._filtered:
            return self.handlers
        return [
            h
            for h in self.handlers
            if h.nodes is None or (info.node is not None and info.node in h.nodes)
        ]

    def _start(
        self,
        kind: RunKind,
        name: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        payload: Any,
        params: dict[str, Any] | None = None,
    ) -> None:
        info = self._track(kind, name, run_id, parent_run_id, metadata, params)
        if info is not None:
            for h in self._targets(info):
                h.on_start(info, payload)

    def _end(self, run_id: UUID, output: Any) -> None:
        tracked = self._runs.pop(run_id, None)
        if tracked is not None and tracked.info is not None:
            for h in self._targets(tracked.info):
                h.on_end(tracked.info, output)

    def _error(self, run_id: UUID, error: BaseException) -> None:
        tracked = self._runs.pop(run_id, None)
        if tracked is not None and tracked.info is not None:
            for h in self._targets(tracked.info):
                h.on_error(tracked.info, error)

    def chunk(self, run_id: UUID | None, chunk: Any) -> None:
        """Report a chunk produced inside the run ``run_id`` (used by streaming lambdas)."""
        tracked = self._runs.get(run_id) if run_id else None
        if tracked is not None and tracked.info is not None:
            for h in self._targets(tracked.info):
                h.on_stream_chunk(tracked.info, chunk)

    # -- langchain-core events ---------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "chain"
        self._start("chain", name, run_id, parent_run_id, metadata, inputs)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "chat_model"
        params = kwargs.get("invocation_params")
        self._start("chat_model", name, run_id, parent_run_id, metadata, messages, params)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "llm"
        params = kwargs.get("invocation_params")
        self._start("chat_model", name, run_id, parent_run_id, metadata, prompts, params)

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: Any = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.chunk(run_id, chunk.message if hasattr(chunk, "message") else (chunk or token))

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "retriever"
        self._start("retriever", name, run_id, parent_run_id, metadata, query)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, documents)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        self._start("tool", name, run_id, parent_run_id, metadata, inputs or input_str)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(run_id, error)


def bridges_in(callbacks: Any) -> list[CallbackBridge]:
    """The weft bridges attached to a config's ``callbacks`` (a manager or a list)."""
    if isinstance(callbacks, BaseCallbackManager):
        return [h for h in callbacks.handlers if isinstance(h, CallbackBridge)]
    if isinstance(callbacks, list):
        return [h for h in callbacks if isinstance(h, CallbackBridge)]
    return []


def prepare_callbacks(callbacks: Any) -> tuple[Any, bool]:
    """Turn weft handlers in a config's ``callbacks`` into a bridge; add global handlers.

    Returns the callbacks to pass on and whether any weft bridge listens.
    """
    if isinstance(callbacks, BaseCallbackManager):
        # Already inside a run: its handlers, global ones included, are inherited.
        return callbacks, bool(bridges_in(callbacks))
    items: Sequence[Any] = callbacks or ()
    weft_handlers = [h for h in items if isinstance(h, Handler)]
    others = [h for h in items if not isinstance(h, Handler)]
    weft_handlers.extend(h for h in _GLOBAL if h not in weft_handlers)
    if weft_handlers:
        others.append(CallbackBridge(weft_handlers))
    listening = any(isinstance(h, CallbackBridge) for h in others)
    return (others or None), listening


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

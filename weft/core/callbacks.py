"""Callbacks: four hooks (start, end, error, stream chunk) with a record of where each run sits.

A :class:`Handler` sees every graph run, every node, and every chat model, retriever and tool
call inside the nodes, in sync, async, batch and thread-pool runs. A compiled graph reports its
own runs and its nodes' straight to the handlers. Inside a node, weft joins langchain-core's
callback system, so LangChain models, retrievers and tools called there report too, as children
of the node.

Register a handler for every run with :func:`add_handler`, or for one call by putting it in the
config: ``graph.invoke(x, config={"callbacks": [handler]})``. Set ``handler.nodes`` to receive
only the events of chosen nodes. A handler is a :class:`Handler` subclass, or any object with
some of the four hooks (``on_start``, ``on_end``, ``on_error``, ``on_stream_chunk``); anything
else is refused when it is added, with an error saying to subclass :class:`Handler`.

Example:
    >>> recorder = MemoryHandler()
    >>> # graph.invoke("hi", config={"callbacks": [recorder]})
    >>> # [e.info.name for e in recorder.events if e.event == "start"]
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.context import register_configure_hook

from weft.core._handlers import HOOKS as HOOKS
from weft.core._handlers import (
    CallbackEvent,
    ConsoleHandler,
    Handler,
    HookAdapter,
    MemoryHandler,
    RunInfo,
    RunKind,
    as_handler,
)

__all__ = [
    "CallbackBridge",
    "CallbackEvent",
    "ConsoleHandler",
    "Handler",
    "MemoryHandler",
    "RunInfo",
    "RunKind",
    "add_handler",
    "as_handler",
    "global_handlers",
    "remove_handler",
]

_GLOBAL: list[Handler] = []
_GLOBAL_LOCK = threading.Lock()


def _registered(handler: Any) -> Handler | None:
    return next(
        (
            h
            for h in _GLOBAL
            if h is handler or (isinstance(h, HookAdapter) and h.target is handler)
        ),
        None,
    )


def add_handler(handler: Handler | Any) -> None:
    """Register ``handler`` for every graph run in this process.

    ``handler`` is a :class:`Handler`, or any object with some of its four hooks.

    Raises:
        TypeError: ``handler`` is neither; the message says to subclass :class:`Handler`.
    """
    adapted = as_handler(handler)
    with _GLOBAL_LOCK:
        if _registered(handler) is None:
            _GLOBAL.append(adapted)


def remove_handler(handler: Handler | Any) -> None:
    """Stop sending events to a handler registered with :func:`add_handler`."""
    with _GLOBAL_LOCK:
        found = _registered(handler)
        if found is not None:
            _GLOBAL.remove(found)


def global_handlers() -> tuple[Handler, ...]:
    """The handlers registered with :func:`add_handler`."""
    return tuple(_GLOBAL)


# The bridge of the node running now. While it is set, every langchain-core callback manager
# configured in this context (by a model, retriever or tool a node calls, with or without the
# node's config, in threads that copy the context) gets the bridge as an inheritable handler.
# Nodes set it only around their own work, so LangGraph's machinery between nodes never pays for
# callback dispatch.
ACTIVE: ContextVar[CallbackBridge | None] = ContextVar("weft_active_bridge", default=None)


def current_run() -> UUID | None:
    """The run the code running now belongs to, as the Runnable running it set it: inside a
    weft node, the node's run (LangGraph's run of the node's task, which weft reports as the
    node). The parent of runs there that name no parent a bridge knows (a model called with a
    callbacks list of its own, which starts a new tree)."""
    config = var_child_runnable_config.get()
    return getattr(config.get("callbacks"), "parent_run_id", None) if config else None


@dataclass(slots=True)
class _Tracked:
    info: RunInfo | None  # None: an inner run handlers are not told about
    graph: str | None
    node: str | None
    emitted_parent: UUID | None


class CallbackBridge(BaseCallbackHandler):
    """A langchain-core callback handler that turns its events into weft :class:`Handler` hooks."""

    run_inline = True  # keep events in order; the hooks are cheap

    def __init__(self, handlers: Iterable[Handler | Any]) -> None:
        self.handlers = [as_handler(h) for h in handlers]
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
        if parent is None:
            current = current_run()
            parent = self._runs.get(current) if current is not None else None
        graph = parent.graph if parent else None
        node = parent.node if parent else None
        emitted_parent = None
        if parent is not None:
            emitted_parent = parent.info.run_id if parent.info else parent.emitted_parent
        if kind == "chain" or kind is None:
            info = None
        else:
            info = RunInfo(
                kind=kind,
                name=name,
                run_id=run_id,
                parent_run_id=emitted_parent,
                graph=graph,
                node=node,
                metadata=metadata or {},
                params=params or {},
            )
        self._runs[run_id] = _Tracked(info, graph, node, emitted_parent)
        return info

    def _reported(self, run_id: UUID | None) -> UUID | None:
        """The nearest run at or above ``run_id`` that handlers were told about."""
        tracked = self._runs.get(run_id) if run_id is not None else None
        if tracked is None:
            return None
        return tracked.info.run_id if tracked.info is not None else tracked.emitted_parent

    # -- runs a compiled graph reports itself ---------------------------------------------------

    def start_graph(self, name: str, run_id: UUID, parent_run_id: UUID | None, input: Any) -> None:
        """A compiled graph run started under the reported run ``parent_run_id`` (if any)."""
        info = RunInfo("graph", name, run_id, parent_run_id, graph=name)
        self._runs[run_id] = _Tracked(info, name, None, parent_run_id)
        for h in self._targets(info):
            h.on_start(info, input)

    def start_node(
        self,
        graph: str,
        name: str,
        run_id: UUID,
        graph_run_id: UUID,
        component: str,
        metadata: dict[str, Any],
        input: Any,
    ) -> None:
        """A node of the graph run ``graph_run_id`` started."""
        info = RunInfo("node", name, run_id, graph_run_id, graph, name, component, metadata)
        self._runs[run_id] = _Tracked(info, graph, name, graph_run_id)
        for h in self._targets(info):
            h.on_start(info, input)

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

    def end(self, run_id: UUID, output: Any) -> None:
        """The run ``run_id`` finished with ``output``."""
        tracked = self._runs.pop(run_id, None)
        if tracked is not None and tracked.info is not None:
            for h in self._targets(tracked.info):
                h.on_end(tracked.info, output)

    def error(self, run_id: UUID, error: BaseException) -> None:
        """The run ``run_id`` raised ``error``."""
        tracked = self._runs.pop(run_id, None)
        if tracked is not None and tracked.info is not None:
            for h in self._targets(tracked.info):
                h.on_error(tracked.info, error)

    def chunk(self, run_id: UUID | None, chunk: Any) -> None:
        """Report a chunk produced inside the run ``run_id`` (a token, a streaming lambda's
        yield)."""
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
        self.end(run_id, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.error(run_id, error)

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
        self.end(run_id, response)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.error(run_id, error)

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
        self.end(run_id, documents)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.error(run_id, error)

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
        params = {
            "tool_call_id": kwargs.get("tool_call_id"),
            "description": (serialized or {}).get("description"),
        }
        self._start("tool", name, run_id, parent_run_id, metadata, inputs or input_str, params)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.end(run_id, output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.error(run_id, error)


def bridges_in(callbacks: Any) -> list[CallbackBridge]:
    """The weft bridges attached to a config's ``callbacks`` (a manager or a list)."""
    if isinstance(callbacks, BaseCallbackManager):
        return [h for h in callbacks.handlers if isinstance(h, CallbackBridge)]
    if isinstance(callbacks, list):
        return [h for h in callbacks if isinstance(h, CallbackBridge)]
    return []


def split(callbacks: Any) -> tuple[Any, list[Handler] | None]:
    """A config's ``callbacks`` without its weft handlers, and those handlers (with the handlers
    of its bridges) when it is a list that names any: such a list starts a new run tree for
    them. Otherwise ``(callbacks, None)``."""
    if not isinstance(callbacks, list):
        return callbacks, None
    handlers: list[Handler] = []
    others: list[Any] = []
    for h in callbacks:
        if isinstance(h, CallbackBridge):
            handlers.extend(h.handlers)
        elif isinstance(h, BaseCallbackHandler):
            others.append(h)
        else:
            handlers.append(as_handler(h))
    if not handlers:
        return callbacks, None
    return others or None, handlers


def listen(
    callbacks: Any, fresh: list[Handler] | None = None
) -> tuple[Any, CallbackBridge | None, UUID | None]:
    """Who listens to a graph run with the langchain-core ``callbacks`` it runs under.

    Returns those callbacks with weft's bridges taken out (a compiled graph reports to weft
    handlers itself), the bridge to report to, and the reported run to report the graph under.
    ``fresh`` handlers (from :func:`split`) start a new run tree, with the global handlers;
    otherwise the run continues the one it belongs to, reporting to the bridge of the node
    running now and those of the callback manager (or to the global handlers, at top level).
    """
    parent = None
    bridges: list[CallbackBridge] = []
    if isinstance(callbacks, BaseCallbackManager):
        parent = callbacks.parent_run_id
        bridges = bridges_in(callbacks)
        if bridges:
            callbacks = callbacks.copy()
            for b in bridges:
                callbacks.remove_handler(b)
    if fresh is not None:
        return callbacks, CallbackBridge(_unique([*fresh, *_GLOBAL])), None
    active = ACTIVE.get()
    if active is not None and active not in bridges:
        bridges.insert(0, active)
    if not bridges:
        return callbacks, (CallbackBridge(_GLOBAL) if _GLOBAL else None), None
    reported = next((r for b in bridges if (r := b._reported(parent)) is not None), None)
    if reported is None and active is not None:
        reported = active._reported(current_run())
    if len(bridges) == 1:
        return callbacks, bridges[0], reported
    return callbacks, CallbackBridge(_unique(h for b in bridges for h in b.handlers)), reported


def _unique(handlers: Iterable[Handler]) -> list[Handler]:
    return list({id(h): h for h in handlers}.values())


def with_bridge(config: Any, bridge: CallbackBridge) -> Any:
    """``config`` with ``bridge`` among its callbacks, for code that hands the config to a thread
    which does not copy the context (where :data:`ACTIVE` is not set)."""
    callbacks = config.get("callbacks")
    if isinstance(callbacks, BaseCallbackManager):
        if any(h is bridge for h in callbacks.handlers):
            return config
        callbacks = callbacks.copy()
        callbacks.add_handler(bridge, inherit=True)
    elif isinstance(callbacks, list):
        callbacks = [*callbacks, bridge]
    else:
        callbacks = [bridge]
    return {**config, "callbacks": callbacks}


register_configure_hook(ACTIVE, inheritable=True)

"""A run's context: the keys a run keeps in its config, where its stream goes, how a nested
run's config continues the enclosing run's, and the reports of graph and node runs to weft
handlers.

Nothing here names a backend: a node reports through :func:`begin_node` and :func:`end_node`,
and a graph run through :class:`GraphReport`, whichever executor runs them.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs, var_child_runnable_config

from weft.core import callbacks as _cb
from weft.core.runtime.events import TAP, Emitter

__all__ = [
    "BRIDGE",
    "CONF",
    "EMITTER",
    "GRAPH_RUN",
    "GraphReport",
    "NodeRun",
    "begin_node",
    "create_task",
    "end_node",
    "enter",
    "has_handlers",
    "leave",
    "merged_config",
    "nested",
    "run_context",
    "run_emitter",
    "start_graph_run",
]

CONF = "configurable"
BRIDGE = "__weft_bridge__"  # the run's weft callback bridge, when handlers listen
GRAPH_RUN = "__weft_graph_run__"  # the graph run's id, the parent of its nodes' runs

# Where the events of the run working in this context go, when it is streamed. It is not kept in
# the run's config: a config with any ``configurable`` key costs every LangGraph run more.
EMITTER: ContextVar[Emitter | None] = ContextVar("weft_emitter", default=None)

# What a config giving one of these addresses: its own checkpoints, not the enclosing run's.
_COORDINATES = ("thread_id", "checkpoint_ns", "checkpoint_id", "checkpoint_map")


def merged_config(config: RunnableConfig | None) -> dict[str, Any]:
    """``config`` over the config of the run this code runs inside (a node calling a graph), as
    LangGraph merges a nested run's: what ``config`` leaves out comes from the enclosing run,
    and a ``configurable`` naming its own thread or checkpoint replaces the enclosing one."""
    parent = var_child_runnable_config.get()
    if parent is None:
        return dict(config) if config else {}
    explicit: Mapping[str, Any] = (config or {}).get("configurable") or {}
    if any(explicit.get(k) for k in _COORDINATES):
        parent = {**parent, "configurable": {}}
    return dict(merge_configs(parent, config))


def has_handlers(callbacks: Any) -> bool:
    """Whether langchain-core ``callbacks`` (a list or a manager) name any handler."""
    return bool(getattr(callbacks, "handlers", callbacks))


# -- nested runs ------------------------------------------------------------------------------


def nested() -> bool:
    """Whether this runs inside another run (a node, a LangChain runnable), whose context the
    graph's own run must not see: see :func:`enter`."""
    return (
        _cb.ACTIVE.get() is not None
        or var_child_runnable_config.get() is not None
        or TAP.get() is not None
    )


_Tokens = tuple[Token[Any], Token[Any], Token[Any], Token[Any]]


def enter(cfg: Mapping[str, Any], stream: Emitter | None = None) -> _Tokens:
    """Set the context a nested graph run's own steps run in: no node's bridge or tap (the
    executor's steps must not report to the enclosing node's handlers or stream), ``cfg`` as
    the enclosing run's config, which already holds what would be merged from it (merged again,
    it would bring back the weft handlers taken out of ``cfg``), and the run's emitter (see
    :func:`run_emitter`)."""
    emitter = run_emitter(stream)
    return (
        _cb.ACTIVE.set(None),
        TAP.set(None),
        var_child_runnable_config.set(cfg),  # type: ignore[arg-type]
        EMITTER.set(emitter),
    )


def leave(tokens: _Tokens) -> None:
    EMITTER.reset(tokens[3])
    var_child_runnable_config.reset(tokens[2])
    TAP.reset(tokens[1])
    _cb.ACTIVE.reset(tokens[0])


def run_context(cfg: Mapping[str, Any], stream: Emitter) -> contextvars.Context:
    """A copy of the current context for a streamed run's steps: set up by :func:`enter` when
    the run is nested, and with ``stream`` as where its events go."""
    ctx = contextvars.copy_context()
    if nested():
        ctx.run(enter, cfg, stream)
    else:
        ctx.run(EMITTER.set, stream)
    return ctx


def create_task(coro: Any, ctx: contextvars.Context | None) -> asyncio.Task[Any]:
    """A task for ``coro`` running in ``ctx`` (the current context when None). A task copies
    the context it is created in; ``create_task(context=...)`` exists only from Python 3.11."""
    create = asyncio.get_running_loop().create_task
    return create(coro) if ctx is None else ctx.run(create, coro)


# -- reporting a graph run --------------------------------------------------------------------


class GraphReport:
    """Reports one graph run to the weft handlers listening to it (if any), and turns the
    executor's step-limit error into weft's.

    With ``isolate`` (invoke and ainvoke), the executor runs in the context :func:`enter` sets,
    when the run is nested; streams run it in a context set up that way instead.
    """

    __slots__ = ("cfg", "isolate", "limit_error", "on_limit", "run", "tokens")

    def __init__(
        self,
        cfg: Mapping[str, Any],
        isolate: bool,
        limit_error: type[BaseException],
        on_limit: Callable[[], BaseException],
    ) -> None:
        self.cfg = cfg
        self.isolate = isolate
        self.limit_error = limit_error
        self.on_limit = on_limit
        self.run: tuple[_cb.CallbackBridge, UUID] | None = None
        self.tokens: _Tokens | None = None

    def __enter__(self) -> None:
        if self.isolate and nested():
            self.tokens = enter(self.cfg)

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        if self.tokens is not None:
            leave(self.tokens)
        if isinstance(exc, self.limit_error):
            error = self.on_limit()
            self.fail(error)
            raise error from None
        if exc is not None:
            self.fail(exc)

    def fail(self, error: BaseException) -> None:
        if self.run is not None:
            self.run[0].error(self.run[1], error)

    def done(self, output: Any) -> None:
        if self.run is not None:
            self.run[0].end(self.run[1], output)


def start_graph_run(
    name: str,
    cfg: dict[str, Any],
    conf: dict[str, Any],
    fresh: list[_cb.Handler] | None,
    input: Any,
    report: GraphReport,
) -> None:
    """Find who listens to this run of graph ``name``, and tell them it started: fills the
    run's ``cfg`` callbacks and ``conf`` keys, and ``report``."""
    bridge = parent = None
    listening = fresh is not None or _cb._GLOBAL or _cb.ACTIVE.get() is not None
    if listening or cfg.get("callbacks") is not None:
        cfg["callbacks"], bridge, parent = _cb.listen(cfg.get("callbacks"), fresh)
    if bridge is None:
        if BRIDGE in conf:  # the enclosing run's; a config without one costs LangGraph less
            conf[BRIDGE] = conf[GRAPH_RUN] = None
        return
    run_id = cfg.get("run_id") or uuid.uuid4()
    if has_handlers(cfg.get("callbacks")):
        # LangChain callbacks see the executor's run of the graph under the same id. Only then:
        # LangGraph's run costs measurably more when it is given a run id.
        cfg["run_id"] = run_id
    conf[BRIDGE], conf[GRAPH_RUN] = bridge, run_id
    bridge.start_graph(name, run_id, parent, input)
    report.run = (bridge, run_id)


def run_emitter(stream: Emitter | None) -> Emitter | None:
    """Where a run's events go: ``stream`` for a streamed top-level run, else the stream of the
    node this run is nested in (its events then stream under that node's path)."""
    if stream is not None:
        return stream
    tap = TAP.get()
    return None if tap is None else Emitter(tap.put, tap.path, tap.answer)


# -- reporting a node run ---------------------------------------------------------------------


@dataclass(slots=True)
class NodeRun:
    """A node run that weft handlers listen to: the bridge, the run id, and the context token
    to reset when it ends."""

    bridge: _cb.CallbackBridge
    run_id: UUID
    active: Token[Any]


def begin_node(
    conf: Mapping[str, Any],
    config: Mapping[str, Any],
    graph: str,
    node: str,
    label: str,
    meta: dict[str, Any],
    input: Any,
) -> NodeRun | None:
    """Tell the run's weft handlers node ``node`` started, and let the LangChain components it
    calls report under it. None when no weft handler listens."""
    bridge: _cb.CallbackBridge | None = conf.get(BRIDGE)
    if bridge is None:
        return None
    # The node's run id is the one the executor gave this task, which its components' runs
    # name as their parent.
    run_id = getattr(config.get("callbacks"), "parent_run_id", None) or uuid.uuid4()
    bridge.start_node(graph, node, run_id, conf[GRAPH_RUN], label, meta, input)
    return NodeRun(bridge, run_id, _cb.ACTIVE.set(bridge))


def end_node(run: NodeRun | None, output: Any, error: BaseException | None) -> None:
    """Report the end of a node run: its output, or the ``error`` it raised."""
    if run is None:
        return
    _cb.ACTIVE.reset(run.active)
    if error is None:
        run.bridge.end(run.run_id, output)
    else:
        run.bridge.error(run.run_id, error)

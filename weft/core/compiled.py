"""The compiled graph: an immutable langchain-core Runnable backed by a compiled LangGraph graph.

Each weft node becomes one LangGraph node that reads only the channels it needs (its
upstream's output, and the shared state if it asked for it) and writes only what its
successors read, so a weft graph costs about what the same graph hand-written in LangGraph does.
The LangGraph graph is exposed as :attr:`CompiledGraph.langgraph` for interop: checkpointers,
interrupts and ``astream_events`` work as they do on any LangGraph graph.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

import pydantic
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph._internal._config import ensure_config as _merged_config
from langgraph._internal._runnable import RunnableCallable
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphBubbleUp, GraphRecursionError
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StreamWriter
from typing_extensions import is_typeddict

from weft.core import callbacks as _cb
from weft.core.component import ComponentSpec, TypedLambda, to_message
from weft.core.errors import GraphInputError, NodeError, StepLimitError
from weft.core.graph import END, START, BranchDef, GraphPlan, NodeDef
from weft.core.stream import Chunk, FinalOutput, NodeFinished, NodeStarted, StreamEvent
from weft.core.stream import concat_chunks as _concat
from weft.core.types import type_name, typed_dict

__all__ = ["CompiledGraph", "Interrupted", "thread"]

InT = TypeVar("InT")
OutT = TypeVar("OutT")

_IN = "__in__"
_OUT = "__out__"
_STREAM = "__weft_stream__"
_BRIDGE = "__weft_bridge__"  # the run's weft callback bridge, when handlers listen
_GRAPH_RUN = "__weft_graph_run__"  # the graph run's id, the parent of its nodes' runs
_CONF = "configurable"


def thread(thread_id: str, **config: Any) -> RunnableConfig:
    """A config that runs a graph in a conversation thread (needs a checkpointer).

    Example:
        >>> thread("session-1")
        {'configurable': {'thread_id': 'session-1'}}
    """
    conf = dict(config.pop("configurable", {}))
    conf["thread_id"] = thread_id
    out: RunnableConfig = {**config, "configurable": conf}  # type: ignore[typeddict-item]
    return out


@dataclass(frozen=True)
class Interrupted:
    """What a run returns when it paused: at a breakpoint or an ``interrupt()`` in a node.

    Resume with ``graph.invoke(None, config)`` (or ``Command(resume=value)`` for an
    ``interrupt()``), using the same ``thread_id``.
    """

    next: tuple[str, ...]
    interrupts: tuple[Any, ...] = ()


def _last(_old: Any, new: Any) -> Any:
    return new


def _out_key(n: str) -> str:
    return f"out:{n}"


def _inbox_key(n: str) -> str:
    return f"in:{n}"


def _state_fields(state: Any) -> dict[str, Any]:
    if state is None:
        return {}
    if isinstance(state, type) and issubclass(state, pydantic.BaseModel):
        return {
            name: Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
            for name, f in state.model_fields.items()
        }
    if is_typeddict(state):
        import typing

        return dict(typing.get_type_hints(state, include_extras=True))
    raise TypeError(
        f"state must be a TypedDict or a pydantic model, got {state!r}; declare e.g. "
        f"class ChatState(TypedDict): history: Annotated[list[BaseMessage], add_messages]"
    )


def _resolve_checkpointer(
    checkpointer: BaseCheckpointSaver[Any] | str | None,
) -> BaseCheckpointSaver[Any] | None:
    if checkpointer is None or isinstance(checkpointer, BaseCheckpointSaver):
        return checkpointer
    if checkpointer == "memory":
        return InMemorySaver()
    from weft.core._checkpoint import open_sqlite_checkpointer

    return open_sqlite_checkpointer(checkpointer)


# A node run that weft handlers listen to: the bridge, the run id, and the context token to
# reset when it ends.
_NodeRun = tuple[_cb.CallbackBridge, UUID, Token[Any]]


class _Node:
    """Runs one weft node inside LangGraph: read inputs, call the component, write outputs."""

    def __init__(self, graph: str, node: NodeDef, plan: GraphPlan, state_keys: list[str]):
        self.graph = graph
        self.name = node.name
        self.node = node
        spec = node.spec
        self.spec: ComponentSpec | None = spec
        self.label = spec.type_label if spec else "passthrough"
        self.component: Any = spec.component if spec else None
        self.kind = spec.kind if spec else "passthrough"
        self.meta: dict[str, Any] = {"weft_component": self.label, "weft_kind": self.kind}
        self.lam: TypedLambda | None = self.component if self.kind == "lambda" else None
        # A lambda given its config may hand it to a thread that does not copy the context,
        # so its config carries the run's bridge as well.
        self.takes_config = bool(self.lam is not None and self.lam.accepts_config)
        # Lambdas that return (not yield) and passthroughs have no chunks to stream.
        self.streams = self.kind in ("chat_model", "graph", "runnable") or bool(
            self.lam is not None and self.lam.streams
        )
        trigger = plan.triggers[node.name]
        preds = plan.preds[node.name] + plan.branch_preds[node.name]
        # Where the input comes from.
        self.fan_in: tuple[str, ...] = ()
        if trigger == "any" and len(preds) > 1:
            self.in_key = _inbox_key(node.name)
        elif len(preds) > 1:
            self.in_key = ""
            self.fan_in = tuple(preds)
        else:
            self.in_key = _IN if preds[0] == START else _out_key(preds[0])
        self.merge = node.merge
        # What it writes: its output for successors that read it, the graph output, inboxes.
        self.out_keys = tuple(plan_out_keys(plan, node.name))
        self.branch: BranchDef | None = plan.branches.get(node.name)
        self.branch_targets = (
            frozenset(self.branch.targets.values()) if self.branch is not None else frozenset()
        )
        self.ends = node.name in plan.end_nodes
        self.state_keys = state_keys
        self.state_model = plan.state
        self.wants_state = bool(state_keys) and (
            node.pre is not None
            or node.post is not None
            or (self.lam is not None and self.lam.accepts_state)
            or (self.branch is not None and self.branch.wants_state)
        )
        self.input_keys = (
            [self.in_key] if self.in_key else [_out_key(p) if p != START else _IN for p in preds]
        )
        if self.wants_state:
            self.input_keys += state_keys

    # -- inputs and outputs ---------------------------------------------------------------------

    def input_of(self, values: dict[str, Any]) -> Any:
        """The node's input (before its ``pre`` hook) from the channels LangGraph hands it."""
        if self.in_key:
            return values.get(self.in_key)
        x = {p: values.get(_IN if p == START else _out_key(p)) for p in self.fan_in}
        return self.merge(x) if self.merge is not None else x

    def output_of(self, writes: dict[str, Any]) -> Any:
        """The node's output from the writes it made (as LangGraph's task stream reports)."""
        for key in self.out_keys:
            if key in writes:
                return writes[key]
        return None

    def prepare(self, raw: Any, values: dict[str, Any]) -> tuple[Any, Any]:
        """The input the component gets (after ``pre``) and the state view, if the node reads it."""
        state = self.state_view(values) if self.wants_state else None
        x = self.node.pre(raw, state) if self.node.pre is not None else raw
        return x, state

    def state_view(self, values: dict[str, Any]) -> Any:
        view = {k: values[k] for k in self.state_keys if k in values}
        if isinstance(self.state_model, type) and issubclass(self.state_model, pydantic.BaseModel):
            return self.state_model.model_validate(view)
        return view

    def write(self, y: Any, state: Any) -> dict[str, Any] | Command[Any]:
        update = dict.fromkeys(self.out_keys, y)
        if self.node.post is not None:
            extra = self.node.post(y, state)
            if extra:
                bad = [k for k in extra if k not in self.state_keys]
                if bad:
                    raise KeyError(
                        f"post of node '{self.name}' updates unknown state keys {bad}; state "
                        f"keys: {', '.join(self.state_keys) or '(no state declared)'}"
                    )
                update.update(extra)
        if self.branch is None:
            return update
        return Command(update=update, goto=self.route(y, state))

    def route(self, y: Any, state: Any) -> list[str]:
        assert self.branch is not None
        b = self.branch
        picked = b.condition(y, state=state) if b.wants_state else b.condition(y)
        labels = [picked] if isinstance(picked, str) else list(picked)
        goto: list[str] = []
        for label in labels:
            target = b.targets.get(label)
            if target is None:
                raise ValueError(
                    f"branch after '{self.name}' returned {label!r}; valid choices: "
                    f"{', '.join(map(repr, b.targets))}"
                )
            if target != END:
                goto.append(target)
        return goto

    def fail(self, exc: Exception) -> NodeError:
        error = NodeError(self.graph, self.name, self.label, exc)
        error.__cause__ = exc  # set now: handlers see the failure before it is raised
        return error

    # -- reporting to weft handlers --------------------------------------------------------------

    def begin(self, conf: dict[str, Any], config: RunnableConfig, raw: Any) -> _NodeRun | None:
        """Tell the run's weft handlers this node started, and let the LangChain components it
        calls report under it. None when no weft handler listens."""
        bridge: _cb.CallbackBridge | None = conf.get(_BRIDGE)
        if bridge is None:
            return None
        # The node's run id is the one LangGraph gave this task, which its components' runs
        # name as their parent.
        run_id = getattr(config.get("callbacks"), "parent_run_id", None) or uuid.uuid4()
        bridge.start_node(
            self.graph, self.name, run_id, conf[_GRAPH_RUN], self.label, self.meta, raw
        )
        return bridge, run_id, _cb.ACTIVE.set(bridge)

    def emitter(self, conf: dict[str, Any], writer: StreamWriter, raw: Any) -> StreamWriter | None:
        """Where this node reports its stream events (having reported its start), or None when
        the run is not streamed: the run's sink in ``astream``, LangGraph's writer in ``stream``."""
        stream = conf.get(_STREAM)
        if not stream:
            return None
        emit: StreamWriter = stream.put if isinstance(stream, _Sink) else writer
        emit(("start", (self.name,), raw))
        return emit

    def failed(self, run: _NodeRun | None, exc: BaseException) -> BaseException:
        """Report a failed run of this node; what to raise for ``exc``: a :class:`NodeError`
        for an error, ``exc`` itself for LangGraph's interrupts and for cancellation."""
        error = (
            self.fail(exc)
            if isinstance(exc, Exception) and not isinstance(exc, GraphBubbleUp)
            else exc
        )
        self.finish(run, None, error)
        return error

    @staticmethod
    def finish(
        run: _NodeRun | None,
        y: Any,
        error: BaseException | None,
    ) -> None:
        if run is None:
            return
        bridge, run_id, active = run
        _cb.ACTIVE.reset(active)
        if error is None:
            bridge.end(run_id, y)
        else:
            bridge.error(run_id, error)

    # -- sync -----------------------------------------------------------------------------------

    def run(self, values: dict[str, Any], config: RunnableConfig, writer: StreamWriter) -> Any:
        conf = config["configurable"]
        run = None
        y = None
        try:
            raw = self.input_of(values)
            run = self.begin(conf, config, raw)
            if run is not None and self.takes_config:
                config = _cb.with_bridge(config, run[0])
            x, state = self.prepare(raw, values)
            emit = self.emitter(conf, writer, raw)
            if emit is not None:
                y = self.run_streaming(x, state, config, emit, run)
            else:
                y = self.call(x, state, config)
            update = self.write(y, state)
        except BaseException as exc:
            raise self.failed(run, exc)  # noqa: B904 (a NodeError's cause is set by fail)
        self.finish(run, y, None)
        return update

    def call(self, x: Any, state: Any, config: RunnableConfig) -> Any:
        if self.lam is not None:
            return self.lam.call(x, config, state)
        if self.component is None:
            return x
        return to_message(self.component.invoke(x, config))

    def chunks(self, x: Any, state: Any, config: RunnableConfig) -> Iterator[Any]:
        if self.lam is not None:
            return self.lam.call_stream(x, config, state)
        if self.component is None:
            return iter([x])
        return iter(self.component.stream(x, config))

    def run_streaming(
        self,
        x: Any,
        state: Any,
        config: RunnableConfig,
        emit: StreamWriter,
        run: _NodeRun | None,
    ) -> Any:
        if self.kind == "graph":
            y = None
            for ev in self.component.stream(x, config):
                y = self.forward(ev, emit)
        elif not self.streams:
            y = self.call(x, state, config)
        else:
            # A chat model reports its own tokens; other streaming nodes' chunks are the node's.
            report = run if run is not None and self.kind != "chat_model" else None
            parts: list[Any] = []
            for c in self.chunks(x, state, config):
                parts.append(c)
                emit(("chunk", (self.name,), c, self.ends))
                if report is not None:
                    report[0].chunk(report[1], c)
            y = to_message(_concat(parts))
        emit(("end", (self.name,), y))
        return y

    def forward(self, ev: StreamEvent, emit: StreamWriter) -> Any:
        """Re-emit a subgraph's event under this node; return its output when it is final."""
        if isinstance(ev, FinalOutput):
            return ev.output
        path = (self.name, *ev.path)
        if isinstance(ev, Chunk):
            emit(("chunk", path, ev.chunk, ev.final and self.ends))
        elif isinstance(ev, NodeStarted):
            emit(("start", path, ev.input))
        else:
            emit(("end", path, ev.output))
        return None

    # -- async ----------------------------------------------------------------------------------

    async def arun(
        self, values: dict[str, Any], config: RunnableConfig, writer: StreamWriter
    ) -> Any:
        conf = config["configurable"]
        run = None
        y = None
        try:
            raw = self.input_of(values)
            run = self.begin(conf, config, raw)
            if run is not None and self.takes_config:
                config = _cb.with_bridge(config, run[0])
            x, state = self.prepare(raw, values)
            emit = self.emitter(conf, writer, raw)
            if emit is not None:
                y = await self.arun_streaming(x, state, config, emit, run)
            else:
                y = await self.acall(x, state, config)
            update = self.write(y, state)
        except BaseException as exc:
            raise self.failed(run, exc)  # noqa: B904 (a NodeError's cause is set by fail)
        self.finish(run, y, None)
        return update

    async def acall(self, x: Any, state: Any, config: RunnableConfig) -> Any:
        if self.lam is not None:
            return await self.lam.acall(x, config, state)
        if self.component is None:
            return x
        return to_message(await self.component.ainvoke(x, config))

    async def arun_streaming(
        self,
        x: Any,
        state: Any,
        config: RunnableConfig,
        emit: StreamWriter,
        run: _NodeRun | None,
    ) -> Any:
        if self.kind == "graph":
            y = None
            async for ev in self.component.astream(x, config):
                y = self.forward(ev, emit)
        elif not self.streams:
            y = await self.acall(x, state, config)
        else:
            report = run if run is not None and self.kind != "chat_model" else None
            parts: list[Any] = []
            if self.lam is not None:
                it: AsyncIterator[Any] = self.lam.acall_stream(x, config, state)
            elif self.component is None:
                it = _aiter_one(x)
            else:
                it = self.component.astream(x, config)
            async for c in it:
                parts.append(c)
                emit(("chunk", (self.name,), c, self.ends))
                if report is not None:
                    report[0].chunk(report[1], c)
            y = to_message(_concat(parts))
        emit(("end", (self.name,), y))
        return y


async def _aiter_one(x: Any) -> AsyncIterator[Any]:
    yield x


def plan_out_keys(plan: GraphPlan, name: str) -> list[str]:
    """The channels node ``name`` writes: what its successors read, and the graph output."""
    keys: list[str] = []
    succ = list(plan.succs.get(name, ()))
    if name in plan.branches:
        succ += [t for t in plan.branches[name].targets.values() if t not in succ]
    for s in succ:
        if s == END:
            continue
        n_in = len(plan.preds[s]) + len(plan.branch_preds[s])
        key = _inbox_key(s) if plan.triggers[s] == "any" and n_in > 1 else _out_key(name)
        if key not in keys:
            keys.append(key)
    if name in plan.end_nodes:
        keys.append(_OUT)
    return keys


def _build(
    plan: GraphPlan,
    checkpointer: BaseCheckpointSaver[Any] | None,
    interrupt_before: Sequence[str],
    interrupt_after: Sequence[str],
) -> tuple[CompiledStateGraph[Any, Any, Any, Any], dict[str, Any], dict[str, _Node]]:
    state_fields = _state_fields(plan.state)
    fields: dict[str, Any] = dict(state_fields)
    fields[_IN] = Any
    fields[_OUT] = Annotated[Any, _last]
    nodes = {n: _Node(plan.name, d, plan, list(state_fields)) for n, d in plan.nodes.items()}
    start_inboxes: dict[str, Any] = {}
    for n in plan.nodes:
        fields[_out_key(n)] = Any
        if nodes[n].in_key == _inbox_key(n):
            fields[_inbox_key(n)] = Annotated[Any, _last]
            if START in plan.preds[n]:
                start_inboxes[_inbox_key(n)] = None
    schema = typed_dict(f"{_safe(plan.name)}State", fields)
    output_schema = typed_dict(f"{_safe(plan.name)}Output", {_OUT: Annotated[Any, _last]})
    input_schema = typed_dict(
        f"{_safe(plan.name)}Input", {k: fields[k] for k in [_IN, _OUT, *start_inboxes]}
    )
    sg: StateGraph[Any, Any, Any, Any] = StateGraph(
        schema, input_schema=input_schema, output_schema=output_schema
    )
    for n, node in nodes.items():
        node_input = typed_dict(
            f"{_safe(n)}Input", {k: fields[k] for k in dict.fromkeys(node.input_keys)}
        )
        sg.add_node(
            n,
            RunnableCallable(node.run, node.arun, name=n, trace=False),
            input_schema=node_input,
            metadata={"weft_component": node.label, "weft_kind": node.kind},
            destinations=tuple(t for t in node.branch_targets if t != END) or None,
        )
    for n in plan.nodes:
        preds = plan.preds[n]
        if not preds:
            continue
        if plan.triggers[n] == "all" and len(preds) > 1:
            sg.add_edge(list(preds), n)
        else:
            for p in preds:
                sg.add_edge(p, n)
    for p, succs in plan.succs.items():
        if END in succs and p != START:
            sg.add_edge(p, END)
    compiled = sg.compile(
        checkpointer=checkpointer,
        interrupt_before=list(interrupt_before) or None,
        interrupt_after=list(interrupt_after) or None,
        name=plan.name,
    )
    return compiled, start_inboxes, nodes


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).title().replace("_", "") or "Graph"


class CompiledGraph(Runnable[InT, OutT], Generic[InT, OutT]):
    """A checked, immutable graph that runs. Made by ``Graph.compile()`` or ``Chain.compile()``.

    It is a langchain-core Runnable: ``invoke``/``ainvoke``, ``batch``/``abatch`` (with
    ``max_concurrency`` in the config and ``return_exceptions=True`` to keep one bad input from
    sinking the rest), and ``astream_events``. ``stream``/``astream`` yield typed
    :mod:`~weft.core.stream` events; ``stream_output``/``astream_output`` yield only the final
    output's chunks.

    Example:
        >>> for event in graph.stream("hi"):  # doctest: +SKIP
        ...     print(event)
    """

    __weft_graph__ = True

    def __init__(
        self,
        plan: GraphPlan,
        *,
        checkpointer: BaseCheckpointSaver[Any] | str | None = None,
        interrupt_before: tuple[str, ...] = (),
        interrupt_after: tuple[str, ...] = (),
        step_limit: int | None = None,
        durability: Literal["sync", "async", "exit"] = "sync",
    ) -> None:
        saver = _resolve_checkpointer(checkpointer)
        langgraph, start_inboxes, nodes = _build(plan, saver, interrupt_before, interrupt_after)
        d = self.__dict__
        d["name"] = plan.name
        d["plan"] = plan
        d["input_type"] = plan.input_type
        d["output_type"] = plan.output_type
        d["langgraph"] = langgraph
        d["checkpointer"] = saver
        d["interrupts"] = bool(interrupt_before or interrupt_after)
        d["step_limit"] = step_limit or max(25, 2 * len(plan.nodes) + 5)
        d["_start_inboxes"] = start_inboxes
        d["_nodes"] = nodes
        # Only graphs with a node that can stream chunks need their nodes to report events
        # while they run: in ``stream`` through LangGraph's "custom" mode (which runs each step
        # on a worker thread so chunks flow while a node runs), in ``astream`` into the run's
        # own sink. The rest stream from LangGraph's "tasks" mode, as cheap as "updates".
        d["_custom_stream"] = any(n.streams for n in nodes.values())
        d["_validate"] = _validator(plan.input_type)
        # "sync" writes each step's checkpoint before the next step starts, so a process that
        # dies mid-run resumes from its last completed step.
        d["_run_kw"] = {"durability": durability} if saver is not None else {}

    name: str
    plan: GraphPlan
    input_type: Any
    output_type: Any
    langgraph: CompiledStateGraph[Any, Any, Any, Any]
    """The compiled LangGraph graph this runs on."""
    checkpointer: BaseCheckpointSaver[Any] | None
    interrupts: bool
    step_limit: int
    _start_inboxes: dict[str, Any]
    _nodes: dict[str, _Node]
    _custom_stream: bool
    _validate: Callable[[Any], Any] | None
    _run_kw: dict[str, Any]

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(
            f"compiled graph '{self.name}' is immutable; change the Graph builder and compile again"
        )

    @property
    def InputType(self) -> Any:
        return self.input_type

    @property
    def OutputType(self) -> Any:
        return self.output_type

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return name or self.name

    # -- preparing a run ------------------------------------------------------------------------

    def _input(self, input: Any) -> Any:
        if input is None and self.checkpointer is not None:
            return None  # resume the thread's pending run
        if isinstance(input, Command):
            return input
        if self._validate is not None:
            try:
                input = self._validate(input)
            except pydantic.ValidationError as exc:
                raise GraphInputError(
                    self.name, type_name(self.input_type), _describe(exc, input)
                ) from None
        values = {_IN: input, _OUT: None}
        for k in self._start_inboxes:
            values[k] = input
        return values

    def _config(
        self,
        config: RunnableConfig | None,
        stream: bool | _Sink,
        input: Any,
        *,
        isolate: bool = True,
    ) -> tuple[RunnableConfig, _Report]:
        """The config LangGraph runs with, and the report of this run to weft handlers (which
        this starts, when any listen)."""
        explicit = config or {}
        callbacks, fresh = _cb.split(explicit.get("callbacks"))
        if fresh is not None:
            config = {**explicit, "callbacks": callbacks}
        if var_child_runnable_config.get() is not None:
            # Inside a run (a node calling this graph): what the config leaves out comes from
            # the run's, as LangGraph would merge it, so it is known here which run this
            # continues, and the enclosing run's stream and handlers can be replaced below.
            cfg: dict[str, Any] = dict(_merged_config(config))
        else:
            cfg = dict(config) if config else {}
        conf = dict(cfg.get(_CONF) or {})
        if conf.get("checkpoint_ns") or "recursion_limit" not in explicit:
            cfg["recursion_limit"] = self.step_limit
        conf[_STREAM] = stream
        bridge = parent = None
        listening = fresh is not None or _cb._GLOBAL or _cb.ACTIVE.get() is not None
        if listening or cfg.get("callbacks") is not None:
            cfg["callbacks"], bridge, parent = _cb.listen(cfg.get("callbacks"), fresh)
        report = _Report(self, cfg, isolate)
        if bridge is not None:
            run_id = cfg.get("run_id") or uuid.uuid4()
            if _has_handlers(cfg.get("callbacks")):
                # LangChain callbacks see LangGraph's run of the graph under the same id. Only
                # then: LangGraph's run costs measurably more when it is given a run id.
                cfg["run_id"] = run_id
            conf[_BRIDGE], conf[_GRAPH_RUN] = bridge, run_id
            bridge.start_graph(self.name, run_id, parent, input)
            report.run = (bridge, run_id)
        else:
            conf[_BRIDGE] = conf[_GRAPH_RUN] = None
        cfg[_CONF] = conf
        return cfg, report  # type: ignore[return-value]

    def _result(self, values: Any, cfg: RunnableConfig) -> Any:
        if isinstance(values, dict):
            if "__interrupt__" in values:
                return Interrupted(self._next(cfg), tuple(values["__interrupt__"]))
            if self.interrupts:
                pending = self._next(cfg)
                if pending:
                    return Interrupted(pending)
            return values.get(_OUT)
        return values

    def _next(self, cfg: RunnableConfig) -> tuple[str, ...]:
        if self.checkpointer is None:
            return ()
        return tuple(self.langgraph.get_state(cfg).next)

    def _step_limit_error(self, cfg: Mapping[str, Any]) -> StepLimitError:
        return StepLimitError(self.name, int(cfg.get("recursion_limit", self.step_limit)))

    # -- running --------------------------------------------------------------------------------

    def invoke(self, input: InT, config: RunnableConfig | None = None, **kwargs: Any) -> OutT:
        values = self._input(input)
        cfg, report = self._config(config, False, input)
        with report:
            out = self._result(self.langgraph.invoke(values, cfg, **self._run_kw), cfg)
        report.done(out)
        return out  # type: ignore[no-any-return]

    async def ainvoke(
        self, input: InT, config: RunnableConfig | None = None, **kwargs: Any
    ) -> OutT:
        values = self._input(input)
        cfg, report = self._config(config, False, input)
        with report:
            out = self._result(await self.langgraph.ainvoke(values, cfg, **self._run_kw), cfg)
        report.done(out)
        return out  # type: ignore[no-any-return]

    def resume(self, config: RunnableConfig) -> OutT:
        """Continue the thread's paused or crashed run from its last completed step."""
        return self.invoke(None, config)  # type: ignore[arg-type]

    async def aresume(self, config: RunnableConfig) -> OutT:
        """Async :meth:`resume`."""
        return await self.ainvoke(None, config)  # type: ignore[arg-type]

    def stream(  # type: ignore[override]
        self, input: InT, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[StreamEvent]:
        """Yield typed events: nodes starting, chunks as they are produced, nodes finishing,
        and the final output last."""
        values = self._input(input)
        cfg, report = self._config(config, self._custom_stream, input, isolate=False)
        tracker = _FinalTracker(self)
        mode: Literal["custom", "tasks"] = "custom" if self._custom_stream else "tasks"
        with report:
            steps = self.langgraph.stream(values, cfg, stream_mode=mode, **self._run_kw)
            for data in _detached(steps, cfg):
                event = tracker.event(data, mode)
                if event is not None:
                    yield event
            result = self._stream_result(tracker.final, cfg)
        report.done(result)
        yield FinalOutput(result)

    async def astream(  # type: ignore[override]
        self, input: InT, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent]:
        """Async :meth:`stream`."""
        values = self._input(input)
        tracker = _FinalTracker(self)
        if not self._custom_stream:
            cfg, report = self._config(config, False, input, isolate=False)
            with report:
                steps = self.langgraph.astream(values, cfg, stream_mode="tasks", **self._run_kw)
                async for data in _adetached(steps, cfg):
                    event = tracker.event(data, "tasks")
                    if event is not None:
                        yield event
                result = self._stream_result(tracker.final, cfg)
            report.done(result)
            yield FinalOutput(result)
            return
        # Nodes put their events straight into this run's sink, and the events that are ready
        # are handed on together: LangGraph's custom stream mode wakes its loop through a
        # thread-safe call and a fresh waiter task for every chunk.
        sink = _Sink(asyncio.get_running_loop())
        cfg, report = self._config(config, sink, input, isolate=False)
        with report:
            run = asyncio.get_running_loop().create_task(
                self.langgraph.ainvoke(values, cfg, **self._run_kw), context=_nested_context(cfg)
            )
            run.add_done_callback(sink.wake)
            try:
                while True:
                    while sink.items:
                        event = tracker.event(sink.items.popleft(), "custom")
                        if event is not None:
                            yield event
                    if run.done():
                        break
                    await sink.wait()
                result = self._result(run.result(), cfg)
            finally:
                if not run.done():  # the consumer stopped early or was cancelled
                    run.cancel()
                    await asyncio.wait([run])
                if not run.cancelled():
                    run.exception()  # retrieved: raised above, or superseded by the consumer's
        report.done(result)
        yield FinalOutput(result)

    def _stream_result(self, final: Any, cfg: RunnableConfig) -> Any:
        if self.checkpointer is not None:
            snapshot = self.langgraph.get_state(cfg)
            if snapshot.next:
                interrupts = tuple(i for task in snapshot.tasks for i in task.interrupts)
                return Interrupted(tuple(snapshot.next), interrupts)
        return final

    def stream_output(self, input: InT, config: RunnableConfig | None = None) -> Iterator[Any]:
        """Yield only the final output's chunks (e.g. the answer's tokens), as they come.

        If the nodes that produce the output do not stream, the whole output is one chunk.
        """
        sent = False
        for ev in self.stream(input, config):
            if isinstance(ev, Chunk) and ev.final:
                sent = True
                yield ev.chunk
            elif isinstance(ev, FinalOutput) and not sent:
                yield ev.output

    async def astream_output(
        self, input: InT, config: RunnableConfig | None = None
    ) -> AsyncIterator[Any]:
        """Async :meth:`stream_output`."""
        sent = False
        async for ev in self.astream(input, config):
            if isinstance(ev, Chunk) and ev.final:
                sent = True
                yield ev.chunk
            elif isinstance(ev, FinalOutput) and not sent:
                yield ev.output

    def transform(
        self, input: Iterator[InT], config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[OutT]:
        # Inside an LCEL sequence a graph streams its output, like any other Runnable.
        yield from self.stream_output(_concat(list(input)), config)

    async def atransform(
        self, input: AsyncIterator[InT], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[OutT]:
        async for chunk in self.astream_output(_concat([x async for x in input]), config):
            yield chunk

    # -- state ----------------------------------------------------------------------------------

    def get_state(self, config: RunnableConfig) -> dict[str, Any]:
        """The shared state of a thread (needs a checkpointer)."""
        values = self.langgraph.get_state(config).values
        return {k: values[k] for k in _state_fields(self.plan.state) if k in values}

    def get_graph(self, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.langgraph.get_graph(config, **kwargs)

    def __repr__(self) -> str:
        return (
            f"CompiledGraph({self.name!r}: {type_name(self.input_type)} -> "
            f"{type_name(self.output_type)}, nodes={list(self.plan.nodes)})"
        )


def _has_handlers(callbacks: Any) -> bool:
    """Whether langchain-core ``callbacks`` (a list or a manager) name any handler."""
    return bool(getattr(callbacks, "handlers", callbacks))


def _nested() -> bool:
    """Whether this runs inside another run (a node, a LangChain runnable), whose context the
    graph's own run must not see: see :func:`_enter`."""
    return _cb.ACTIVE.get() is not None or var_child_runnable_config.get() is not None


def _enter(cfg: Mapping[str, Any]) -> tuple[Token[Any], Token[Any]]:
    """Set the context a nested graph run's LangGraph steps run in: no node's bridge (LangGraph's
    own steps must not report to the enclosing node's handlers), and ``cfg`` as the enclosing
    run's config, which already holds what LangGraph would merge from it (merged again, it would
    bring back the weft handlers taken out of ``cfg``)."""
    return _cb.ACTIVE.set(None), var_child_runnable_config.set(cfg)  # type: ignore[arg-type]


def _leave(tokens: tuple[Token[Any], Token[Any]]) -> None:
    var_child_runnable_config.reset(tokens[1])
    _cb.ACTIVE.reset(tokens[0])


def _nested_context(cfg: Mapping[str, Any]) -> contextvars.Context | None:
    """A copy of the current context set up by :func:`_enter`, for a task; None at top level."""
    if not _nested():
        return None
    ctx = contextvars.copy_context()
    ctx.run(_enter, cfg)
    return ctx


def _detached(steps: Iterator[Any], cfg: Mapping[str, Any]) -> Iterator[Any]:
    """``steps``, each advanced in the context :func:`_enter` sets (when nested)."""
    return _each_detached(steps, cfg) if _nested() else steps


def _each_detached(steps: Iterator[Any], cfg: Mapping[str, Any]) -> Iterator[Any]:
    while True:
        tokens = _enter(cfg)
        try:
            item = next(steps)
        except StopIteration:
            return
        finally:
            _leave(tokens)
        yield item


def _adetached(steps: AsyncIterator[Any], cfg: Mapping[str, Any]) -> AsyncIterator[Any]:
    """Async :func:`_detached`."""
    return _each_adetached(steps, cfg) if _nested() else steps


async def _each_adetached(steps: AsyncIterator[Any], cfg: Mapping[str, Any]) -> AsyncIterator[Any]:
    try:
        while True:
            tokens = _enter(cfg)
            try:
                item = await anext(steps)
            except StopAsyncIteration:
                return
            finally:
                _leave(tokens)
            yield item
    finally:
        aclose = getattr(steps, "aclose", None)
        if aclose is not None:
            await aclose()


class _Sink:
    """Where a node puts its stream events (start, chunk, end) during :meth:`astream`.

    Puts from the event loop's thread are a deque append (and waking the consumer if it waits);
    puts from other threads hop onto the loop.
    """

    __slots__ = ("items", "loop", "thread", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.items: deque[Any] = deque()
        self.loop = loop
        self.thread = threading.get_ident()
        self.waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        if threading.get_ident() != self.thread:
            self.loop.call_soon_threadsafe(self.put, item)
            return
        self.items.append(item)
        self.wake()

    def wake(self, *_: Any) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until something is put or :meth:`wake` is called."""
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


class _Report:
    """Reports one compiled-graph run to the weft handlers listening to it (if any), and turns
    LangGraph's recursion error into weft's step-limit error.

    With ``isolate`` (invoke and ainvoke), LangGraph runs in the context :func:`_enter` sets,
    when the run is nested; streams set it around each of LangGraph's steps instead.
    """

    __slots__ = ("cfg", "graph", "isolate", "run", "tokens")

    def __init__(
        self, graph: CompiledGraph[Any, Any], cfg: Mapping[str, Any], isolate: bool
    ) -> None:
        self.graph = graph
        self.cfg = cfg
        self.isolate = isolate
        self.run: tuple[_cb.CallbackBridge, UUID] | None = None
        self.tokens: tuple[Token[Any], Token[Any]] | None = None

    def __enter__(self) -> None:
        if self.isolate and _nested():
            self.tokens = _enter(self.cfg)

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        if self.tokens is not None:
            _leave(self.tokens)
        if isinstance(exc, GraphRecursionError):
            error = self.graph._step_limit_error(self.cfg)
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


class _FinalTracker:
    """Turns LangGraph stream items into weft events and remembers the graph's output: the
    last output of a node that leads to END, as the graph's output channel keeps it."""

    def __init__(self, graph: CompiledGraph[Any, Any]) -> None:
        self.nodes = graph._nodes
        self.end_nodes = graph.plan.end_nodes
        self.final: Any = None

    def event(self, data: Any, mode: str) -> StreamEvent | None:
        if mode == "custom":
            kind = data[0]
            if kind == "chunk":
                return Chunk(data[1], data[2], data[3])
            if kind == "start":
                return NodeStarted(data[1], data[2])
            if len(data[1]) == 1 and data[1][0] in self.end_nodes:
                self.final = data[2]
            return NodeFinished(data[1], data[2])
        node = self.nodes.get(data.get("name"))
        if node is None:
            return None
        if "input" in data:
            return NodeStarted((node.name,), node.input_of(data["input"]))
        if data.get("error") is not None or not isinstance(data.get("result"), dict):
            return None
        output = node.output_of(data["result"])
        if node.ends:
            self.final = output
        return NodeFinished((node.name,), output)


def _validator(tp: Any) -> Callable[[Any], Any] | None:
    if tp is Any or tp is object:
        return None
    try:
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(tp)
    except Exception:
        try:
            adapter = pydantic.TypeAdapter(
                tp, config=pydantic.ConfigDict(arbitrary_types_allowed=True)
            )
        except Exception:
            return None
    return adapter.validate_python


def _describe(exc: pydantic.ValidationError, value: Any) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more + f" (got {type(value).__name__})"

"""The compiled graph: an immutable langchain-core Runnable, run by the DAG executor or LangGraph.

``compile(executor=...)`` picks the executor (see ``Graph.compile``). The LangGraph graph is
exposed as :attr:`CompiledGraph.langgraph` for interop, built on first use when the DAG executor
runs the graph: checkpointers, interrupts and ``astream_events`` work as on any LangGraph graph.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import pydantic
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from weft.core import callbacks as _cb
from weft.core.errors import GraphCompileError, GraphInputError, StepLimitError
from weft.core.graph import GraphPlan
from weft.core.runtime.context import (
    CONF,
    GraphReport,
    create_task,
    merged_config,
    run_context,
    start_graph_run,
)
from weft.core.runtime.dag import DagExecutor
from weft.core.runtime.events import AnswerChunks, Emitter, Pipe, Sink
from weft.core.runtime.langgraph import SIGNALS, LangGraphExecutor, build, resolve_checkpointer
from weft.core.runtime.layout import IN, OUT, Laid, lay_out, state_fields
from weft.core.stream import FinalOutput, StreamEvent
from weft.core.stream import concat_chunks as _concat
from weft.core.types import type_name

__all__ = ["DEFAULT_EXECUTOR", "CompiledGraph", "Executor", "Interrupted", "thread"]

Executor = Literal["auto", "langgraph", "dag"]

DEFAULT_EXECUTOR: Executor = "auto"
"""The executor ``compile()`` picks when it is not told one."""

InT = TypeVar("InT")
OutT = TypeVar("OutT")


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


# The threads that run the graphs a caller reads with ``events()``.
_POOL_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=64, thread_name_prefix="weft-run"))
        return _POOL[0]


class CompiledGraph(Runnable[InT, OutT], Generic[InT, OutT]):
    """A checked, immutable graph that runs. Made by ``Graph.compile()`` or ``Chain.compile()``.

    It is a langchain-core Runnable: ``invoke``/``ainvoke``, ``batch``/``abatch`` (with
    ``max_concurrency`` in the config and ``return_exceptions=True`` to keep one bad input from
    sinking the rest), ``stream``/``astream`` (the output's chunks: the answer's tokens as they
    come) and ``astream_events``. ``events``/``aevents`` yield typed :mod:`~weft.core.stream`
    events: nodes starting and finishing, every chunk with its path, and the final output.

    Example:
        >>> for event in graph.events("hi"):  # doctest: +SKIP
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
        executor: Executor | None = None,
    ) -> None:
        validate = _validator(plan.name, plan.input_type)
        saver = resolve_checkpointer(checkpointer)
        laid = lay_out(plan, SIGNALS)
        interrupts = bool(interrupt_before or interrupt_after)
        chosen = _choose(plan, executor or DEFAULT_EXECUTOR, saver, interrupts)
        d = self.__dict__
        d["name"] = plan.name
        d["plan"] = plan
        d["input_type"] = plan.input_type
        d["output_type"] = plan.output_type
        d["executor"] = chosen
        d["checkpointer"] = saver
        d["interrupts"] = interrupts
        d["step_limit"] = step_limit or max(25, 2 * len(plan.nodes) + 5)
        d["live"] = any(n.live for n in laid.nodes.values())
        d["_laid"] = laid
        d["_breaks"] = (tuple(interrupt_before), tuple(interrupt_after))
        d["_start_inboxes"] = laid.start_inboxes
        d["_validate"] = validate
        # "sync" writes each step's checkpoint before the next step starts, so a process that
        # dies mid-run resumes from its last completed step.
        run_kw = {"durability": durability} if saver is not None else {}
        d["_exec"] = (
            DagExecutor(plan, laid)
            if chosen == "dag"
            else LangGraphExecutor(
                self.langgraph,
                run_kw,
                updates_only=saver is None and not interrupts and len(plan.end_nodes) <= 1,
            )
        )

    @functools.cached_property
    def langgraph(self) -> CompiledStateGraph[Any, Any, Any, Any]:
        """The compiled LangGraph graph: what this runs on when :attr:`executor` is
        ``"langgraph"``, built on first use otherwise (for LangGraph's own tools on a DAG)."""
        return build(self.plan, self._laid, self.checkpointer, *self._breaks)

    name: str
    plan: GraphPlan
    input_type: Any
    output_type: Any
    executor: Literal["langgraph", "dag"]
    """What runs the graph: LangGraph, or the DAG executor (see ``Graph.compile``)."""
    checkpointer: BaseCheckpointSaver[Any] | None
    interrupts: bool
    step_limit: int
    live: bool
    """Whether a node can make chunks while it runs (a chat model, a lambda that yields, a
    LangChain runnable or tool, a live nested graph): :meth:`events` then runs that node (on
    LangGraph, the whole graph) on a worker thread, so those chunks reach the reader as they
    come."""
    _laid: Laid
    _breaks: tuple[tuple[str, ...], tuple[str, ...]]
    _start_inboxes: dict[str, Any]
    _validate: Callable[[Any], Any] | None
    _exec: DagExecutor | LangGraphExecutor

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
        values = {IN: input}
        if self.checkpointer is not None:
            values[OUT] = None  # a thread's new run does not end with its last run's output
        for k in self._start_inboxes:
            values[k] = input
        return values

    def _config(
        self, config: RunnableConfig | None, input: Any, isolate: bool
    ) -> tuple[RunnableConfig, GraphReport]:
        """The config the executor runs with, and the report of this run to weft handlers (which
        this starts, when any listen)."""
        explicit = config or {}
        callbacks, fresh = _cb.split(explicit.get("callbacks"))
        if fresh is not None:
            config = {**explicit, "callbacks": callbacks}
        # Inside a run (a node calling this graph), what the config leaves out comes from the
        # run's, so it is known here which run this continues, and the enclosing run's handlers
        # can be replaced below.
        cfg = merged_config(config)
        conf = dict(cfg.get(CONF) or {})
        if conf.get("checkpoint_ns") or "recursion_limit" not in explicit:
            cfg["recursion_limit"] = self.step_limit
        report = GraphReport(cfg, isolate, self._exec.limit_error, lambda: self._limit(cfg))
        start_graph_run(self.name, cfg, conf, fresh, input, report)
        if conf:
            cfg[CONF] = conf
        return cfg, report  # type: ignore[return-value]

    def _result(self, values: Any, cfg: RunnableConfig) -> Any:
        if isinstance(values, dict):
            if "__interrupt__" in values:
                return Interrupted(self._next(cfg), tuple(values["__interrupt__"]))
            if self.interrupts:
                pending = self._next(cfg)
                if pending:
                    return Interrupted(pending)
            return values.get(OUT)
        return values

    def _next(self, cfg: RunnableConfig) -> tuple[str, ...]:
        if self.checkpointer is None:
            return ()
        return tuple(self.langgraph.get_state(cfg).next)

    def _limit(self, cfg: Mapping[str, Any]) -> StepLimitError:
        return StepLimitError(self.name, int(cfg.get("recursion_limit", self.step_limit)))

    # -- running --------------------------------------------------------------------------------

    def invoke(self, input: InT, config: RunnableConfig | None = None, **kwargs: Any) -> OutT:
        _refuse(self.name, "invoke", kwargs)
        values = self._input(input)
        cfg, report = self._config(config, input, True)
        with report:
            out = self._result(self._exec.invoke(values, cfg), cfg)
        report.done(out)
        return out  # type: ignore[no-any-return]

    async def ainvoke(
        self, input: InT, config: RunnableConfig | None = None, **kwargs: Any
    ) -> OutT:
        _refuse(self.name, "ainvoke", kwargs)
        values = self._input(input)
        cfg, report = self._config(config, input, True)
        with report:
            out = self._result(await self._exec.ainvoke(values, cfg), cfg)
        report.done(out)
        return out  # type: ignore[no-any-return]

    def resume(self, config: RunnableConfig) -> OutT:
        """Continue the thread's paused or crashed run from its last completed step."""
        return self.invoke(None, config)  # type: ignore[arg-type]

    async def aresume(self, config: RunnableConfig) -> OutT:
        """Async :meth:`resume`."""
        return await self.ainvoke(None, config)  # type: ignore[arg-type]

    def events(
        self, input: InT, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[StreamEvent]:
        """Yield typed events as the run goes: nodes starting, chunks (the tokens of every chat
        model the run calls, and what streaming lambdas yield) with the path they came from,
        nodes finishing, and the final output last.

        The run's steps run in the caller's thread, and the events of each step arrive as the
        step ends; but a node that makes chunks as it runs (:attr:`live`: a chat model, a lambda
        that yields, a LangChain runnable or tool) runs on a worker thread, so its chunks arrive
        while it runs. The DAG executor hands over only the steps with such a node; on
        LangGraph, a live graph's whole run goes to the worker. Closing the iterator early ends
        the run at its next event.
        """
        _refuse(self.name, "events", kwargs)
        values = self._input(input)
        dag = self._exec if isinstance(self._exec, DagExecutor) else None
        if self.live and dag is None:
            yield from self._events_on_worker(values, input, config)
            return
        pipe = Pipe()
        cfg, report = self._config(config, input, False)
        # Each step runs in one context of its own: what LangGraph sets while it runs must not
        # reach the reader's code between steps.
        ctx = run_context(cfg, Emitter(pipe.put))
        with report:
            steps: Generator[Future[Any] | None, None, Any]
            if dag is None:
                steps = self._exec.steps(values, cfg)
            else:
                steps = dag.steps(values, cfg, _pool().submit if self.live else None)
            ready = pipe.items  # the events put so far, read here without waiting for more
            try:
                while True:
                    try:
                        running = ctx.run(next, steps)
                    except StopIteration as stop:
                        outcome = stop.value
                        break
                    if running is not None:  # a step on a worker: its events as they come
                        running.add_done_callback(pipe.done)
                        while (event := pipe.get()) is not None:
                            yield event
                    while not ready.empty():
                        yield ready.get_nowait()
            finally:
                pipe.closed = True  # a step still running on a worker ends at its next event
                ctx.run(steps.close)  # a run still going ends here
            while not ready.empty():
                yield ready.get_nowait()
            result = self._result(outcome, cfg)
        report.done(result)
        yield FinalOutput(result)

    def _events_on_worker(
        self, values: Any, input: Any, config: RunnableConfig | None
    ) -> Iterator[StreamEvent]:
        pipe = Pipe()
        cfg, report = self._config(config, input, False)
        ctx = run_context(cfg, Emitter(pipe.put))
        with report:
            work = functools.partial(self._exec.invoke, values, cfg)
            run = _pool().submit(ctx.run, work)
            run.add_done_callback(pipe.done)
            try:
                while (event := pipe.get()) is not None:
                    yield event
            finally:
                pipe.closed = True  # a run still going ends at its next event
            result = self._result(run.result(), cfg)
        report.done(result)
        yield FinalOutput(result)

    async def aevents(
        self, input: InT, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamEvent]:
        """Async :meth:`events`. Closing it early (``aclose()``) cancels the run."""
        _refuse(self.name, "aevents", kwargs)
        values = self._input(input)
        # Nodes put their events straight into this run's sink, and the events that are ready
        # are handed on together.
        sink = Sink(asyncio.get_running_loop())
        cfg, report = self._config(config, input, False)
        with report:
            coro = self._exec.ainvoke(values, cfg)
            run = create_task(coro, run_context(cfg, Emitter(sink.put)))
            run.add_done_callback(sink.wake)
            try:
                while True:
                    while sink.items:
                        yield sink.items.popleft()
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

    def stream(
        self, input: InT, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[OutT]:
        """Yield the output's chunks as they come: the tokens of the answer (see
        :class:`~weft.core.stream.Chunk`), or the whole output once when none of it streams."""
        _refuse(self.name, "stream", kwargs)
        events = self.events(input, config)
        pick = AnswerChunks()
        try:
            for event in events:
                taken, piece = pick.take(event)
                if taken:
                    yield piece
        finally:
            events.close()  # type: ignore[attr-defined]

    async def astream(
        self, input: InT, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[OutT]:
        """Async :meth:`stream`. Closing it early (``aclose()``) cancels the run."""
        _refuse(self.name, "astream", kwargs)
        events = self.aevents(input, config)
        pick = AnswerChunks()
        try:
            async for event in events:
                taken, piece = pick.take(event)
                if taken:
                    yield piece
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    def stream_output(self, input: InT, config: RunnableConfig | None = None) -> Iterator[OutT]:
        """:meth:`stream`, by the name that says what it yields."""
        return self.stream(input, config)

    def astream_output(
        self, input: InT, config: RunnableConfig | None = None
    ) -> AsyncIterator[OutT]:
        """Async :meth:`stream_output`."""
        return self.astream(input, config)

    def transform(
        self, input: Iterator[InT], config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[OutT]:
        # Inside an LCEL sequence a graph streams its output, like any other Runnable.
        yield from self.stream(_concat(list(input)), config, **kwargs)

    async def atransform(
        self,
        input: AsyncIterator[InT],
        config: RunnableConfig | None = None,
        **kwargs: Any | None,
    ) -> AsyncIterator[OutT]:
        async for chunk in self.astream(_concat([x async for x in input]), config, **kwargs):
            yield chunk

    # -- state ----------------------------------------------------------------------------------

    def get_state(self, config: RunnableConfig) -> dict[str, Any]:
        """The shared state of a thread (needs a checkpointer)."""
        values = self.langgraph.get_state(config).values
        return {k: values[k] for k in state_fields(self.plan.state) if k in values}

    def get_graph(self, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.langgraph.get_graph(config, **kwargs)

    def __repr__(self) -> str:
        return (
            f"CompiledGraph({self.name!r}: {type_name(self.input_type)} -> "
            f"{type_name(self.output_type)}, nodes={list(self.plan.nodes)})"
        )


def _choose(
    plan: GraphPlan, executor: str, saver: BaseCheckpointSaver[Any] | None, interrupts: bool
) -> Literal["langgraph", "dag"]:
    """The executor that runs ``plan``: the DAG executor when asked for (``"dag"``) or allowed
    (``"auto"``), LangGraph when asked for or when the graph needs it."""
    if executor not in ("auto", "langgraph", "dag"):
        raise GraphCompileError(
            plan.name, [f"executor {executor!r} is unknown; valid: 'auto', 'langgraph', 'dag'"]
        )
    needs = [
        why
        for why, present in (
            ("it has a cycle", plan.has_cycle),
            ("it has a checkpointer", saver is not None),
            ("it pauses at interrupts", interrupts),
        )
        if present
    ]
    if executor == "langgraph" or (executor == "auto" and needs):
        return "langgraph"
    if needs:
        raise GraphCompileError(
            plan.name,
            [
                f"executor='dag' cannot run this graph: {', '.join(needs)}; compile it with "
                f"executor='auto' or 'langgraph'"
            ],
        )
    return "dag"


def _refuse(graph: str, method: str, kwargs: Mapping[str, Any]) -> None:
    """Unknown keyword arguments are a mistake to report, not options to drop."""
    if kwargs:
        names = ", ".join(repr(k) for k in sorted(kwargs))
        raise TypeError(
            f"graph '{graph}': {method}() got unexpected keyword arguments {names}; a weft graph "
            f"takes its run options in the config, e.g. {method}(input, config={{'callbacks': "
            f"[...], 'configurable': {{...}}}})"
        )


def _validator(graph: str, tp: Any) -> Callable[[Any], Any] | None:
    """How a run's input is checked against the graph's input type. Raises
    :class:`GraphCompileError` when pydantic cannot check that type."""
    if tp is Any or tp is object:
        return None
    try:
        return _adapter(tp, None).validator.validate_python
    except Exception:
        pass
    try:
        adapter = _adapter(tp, pydantic.ConfigDict(arbitrary_types_allowed=True))
        return adapter.validator.validate_python
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    raise GraphCompileError(
        graph,
        [
            f"input type {type_name(tp)} cannot be validated by pydantic ({reason}); declare an "
            f"input type pydantic can check (a class, TypedDict, pydantic model, or a builtin "
            f"container of those), or Any to take inputs unchecked"
        ],
    )


def _adapter(tp: Any, config: pydantic.ConfigDict | None) -> pydantic.TypeAdapter[Any]:
    """A type adapter for ``tp``, built now: one pydantic would build lazily (a forward
    reference) or one that would check nothing (it warns) is an error here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(tp, config=config)
        adapter.rebuild(raise_errors=True)
    return adapter


def _describe(exc: pydantic.ValidationError, value: Any) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more + f" (got {type(value).__name__})"

"""The DAG executor: runs an acyclic plan that needs no checkpointer and no interrupt.

It takes the steps LangGraph's Pregel loop takes (the nodes a step triggers run together, their
writes apply when the step ends, in node-name order, through the same reducers), so a graph
gives the same outputs and the same events on both executors; what it leaves out is what these
graphs do not use: channels, checkpoints, task ids, and a fresh thread pool per sync run. The
nodes are the same :class:`~weft.core.runtime.node.NodeRunner` objects the LangGraph backend
runs. Parallel nodes of a sync run share one bounded pool for the process (the caller runs one
of them itself, and takes back any the pool has not started); those of an async run are tasks.
A streamed sync run (``events()``) runs its steps in the reader's thread, but for the steps
with a node that makes chunks as it runs, which run on a worker thread while the reader reads.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import uuid
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, get_args, get_origin

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.runnables import RunnableConfig
from langgraph.errors import InvalidUpdateError

from weft.core.graph import END, START, GraphPlan
from weft.core.runtime.context import BRIDGE, has_handlers
from weft.core.runtime.layout import OUT, Laid, reducer_of
from weft.core.runtime.node import NodeRunner, Update

__all__ = ["DagExecutor", "OutOfSteps", "branch_pool"]

_POOL_LOCK = threading.Lock()
_POOL: list[ThreadPoolExecutor] = []


def branch_pool() -> ThreadPoolExecutor:
    """The threads that run the parallel nodes of sync DAG runs, shared by the process."""
    with _POOL_LOCK:
        if not _POOL:
            workers = min(32, (os.cpu_count() or 1) + 4)
            _POOL.append(ThreadPoolExecutor(workers, thread_name_prefix="weft-dag"))
        return _POOL[0]


class OutOfSteps(Exception):
    """A run took more steps than its ``recursion_limit`` allows."""


class InvalidUpdate(InvalidUpdateError):
    """Two nodes of one step wrote a state key that keeps one value: the error LangGraph raises
    then, so code that catches it works on both executors."""


# A step: the values its nodes read, the nodes to run and the config each runs with.
Tasks = list[tuple[NodeRunner, RunnableConfig]]
Step = tuple[Mapping[str, Any], Tasks]
Loop = Generator[Step, list[Update], dict[str, Any]]
# Where a step runs when it is not run in the caller's thread: ``ThreadPoolExecutor.submit``.
Offload = Callable[..., Future[list[Update]]]


class DagExecutor:
    """Runs one plan: whole (:meth:`invoke`, :meth:`ainvoke`) or a step at a time."""

    limit_error = OutOfSteps

    def __init__(self, plan: GraphPlan, laid: Laid) -> None:
        self.name = plan.name
        self.nodes = laid.nodes
        self.reducers: dict[str, Callable[[Any, Any], Any]] = {
            k: r for k, t in laid.fields.items() if (r := reducer_of(t)) is not None
        }
        self.initial: dict[str, Any] = {}
        for k in laid.state_keys:
            if k in self.reducers:
                empty = _empty(laid.fields[k])
                if empty is not _MISSING:
                    self.initial[k] = empty
        # Fan-ins that wait for every upstream node, and who they wait for. START has written
        # the input before any node runs, so a fan-in waits only for its other upstream nodes,
        # and START does not start it (as on LangGraph, whose joins do not take START).
        joins = {
            n: [p for p in plan.preds[n] if p != START]
            for n in plan.nodes
            if plan.triggers[n] == "all" and len(plan.preds[n]) > 1
        }
        self.barriers = {n: frozenset(w) for n, w in joins.items() if len(w) > 1}
        self.first = tuple(s for s in plan.succs[START] if s != END and s not in joins)
        self.succs = {n: tuple(s for s in plan.succs[n] if s != END) for n in plan.nodes}

    # -- the schedule ---------------------------------------------------------------------------

    def _loop(self, values: Mapping[str, Any], cfg: RunnableConfig, calls: _Calls) -> Loop:
        """The run's steps: yields each step's tasks and is sent their updates, in order;
        returns the values at the end."""
        vals = {**self.initial, **values}
        seen: dict[str, set[str]] = {n: set() for n in self.barriers}
        todo = self._triggered(START, self.first, None, seen, set())
        limit = int(cfg.get("recursion_limit", 25))
        step = 0
        while todo:
            if step + 2 > limit:
                raise OutOfSteps(f"graph '{self.name}' reached its step limit {limit}")
            order = sorted(todo)
            updates = yield vals, [(self.nodes[n], calls.config(step)) for n in order]
            todo = set()
            written: set[str] = set()
            for n, (update, goto) in zip(order, updates, strict=True):
                for k, v in update.items():
                    reduce = self.reducers.get(k)
                    if reduce is not None:
                        vals[k] = reduce(vals[k], v) if k in vals else v
                    elif k in written:
                        raise InvalidUpdate(
                            f"graph '{self.name}': two nodes of one step wrote state key {k!r}, "
                            f"which keeps one value; give it a reducer, e.g. "
                            f"Annotated[list[...], operator.add]"
                        )
                    else:
                        written.add(k)
                        vals[k] = v
                self._triggered(n, self.succs[n], goto, seen, todo)
            step += 1
        return vals

    def _triggered(
        self,
        source: str,
        succs: tuple[str, ...],
        goto: list[str] | None,
        seen: dict[str, set[str]],
        into: set[str],
    ) -> set[str]:
        for s in succs:
            wait = self.barriers.get(s)
            if wait is None:
                into.add(s)
                continue
            got = seen[s]
            got.add(source)
            if got >= wait:
                into.add(s)
                got.clear()
        if goto:
            into.update(goto)
        return into

    # -- driving it ---------------------------------------------------------------------------

    def steps(
        self, values: Any, cfg: RunnableConfig, offload: Offload | None = None
    ) -> Generator[Future[list[Update]] | None, None, Any]:
        """The run a step at a time: yields after each step, returns the run's values.

        With ``offload``, a step with a node that makes chunks as it runs (a chat model, a
        lambda that yields...) is handed to it instead: the step yields the future of its
        updates while it runs, so the caller can read the chunks as they come, and takes them
        when the caller steps on. Every other step runs in the caller's thread."""
        calls = _Calls(self.name, cfg)
        calls.start(values)
        loop = self._loop(values, cfg, calls)
        try:
            step = next(loop)
            while True:
                if offload is not None and any(r.live for r, _ in step[1]):
                    running = offload(contextvars.copy_context().run, _run_sync, step)
                    yield running
                    updates = running.result()
                else:
                    updates = _run_sync(step)
                    yield None
                step = loop.send(updates)
        except StopIteration as stop:
            out: dict[str, Any] = stop.value
        except BaseException as exc:
            calls.failed(exc)
            raise
        finally:
            loop.close()
        calls.done(out)
        return out

    def invoke(self, values: Any, cfg: RunnableConfig) -> Any:
        steps = self.steps(values, cfg)
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value

    async def ainvoke(self, values: Any, cfg: RunnableConfig) -> Any:
        calls = _Calls(self.name, cfg)
        await calls.astart(values)
        loop = self._loop(values, cfg, calls)
        try:
            step = next(loop)
            while True:
                step = loop.send(await _run_async(step))
        except StopIteration as stop:
            out: dict[str, Any] = stop.value
        except BaseException as exc:
            await calls.afailed(exc)
            raise
        finally:
            loop.close()
        await calls.adone(out)
        return out


_MISSING = object()


def _empty(annotation: Any) -> Any:
    """What a reduced state key starts as, as LangGraph starts it: its type's empty value."""
    base = get_args(annotation)[0] if get_args(annotation) else annotation
    base = get_origin(base) or base
    try:
        return base()
    except Exception:
        return _MISSING


# -- one node's call, and the callbacks around it -----------------------------------------------


class _Calls:
    """The configs a run's nodes run with, and the run tree LangChain callbacks see: the graph
    as a chain run and each node as a child of it, as on LangGraph. Without LangChain
    callbacks, a node's config only names the node's run (when weft handlers listen), so the
    models it calls report under it."""

    __slots__ = ("cfg", "graph", "handlers", "name", "reported", "run_id")

    def __init__(self, name: str, cfg: RunnableConfig) -> None:
        self.name = name
        self.run_id = cfg.get("run_id")
        # The run id names the graph's run; what its nodes run is not that run.
        self.cfg: RunnableConfig = {k: v for k, v in cfg.items() if k != "run_id"}  # type: ignore[assignment]
        self.graph: Any = None
        self.handlers = has_handlers(cfg.get("callbacks"))
        conf: Mapping[str, Any] = cfg.get("configurable") or {}
        self.reported = self.handlers or conf.get(BRIDGE) is not None

    def _manager(self, cls: Any) -> Any:
        cfg = self.cfg
        return cls.configure(
            cfg.get("callbacks"),
            inheritable_tags=cfg.get("tags"),
            inheritable_metadata=cfg.get("metadata"),
        )

    def start(self, input: Any) -> None:
        if self.handlers:
            manager = self._manager(CallbackManager)
            self.graph = manager.on_chain_start(None, input, name=self.name, run_id=self.run_id)

    async def astart(self, input: Any) -> None:
        if self.handlers:
            manager = self._manager(AsyncCallbackManager)
            self.graph = await manager.on_chain_start(
                None, input, name=self.name, run_id=self.run_id
            )

    def config(self, step: int) -> RunnableConfig:
        if not self.reported:
            return self.cfg
        if self.graph is None:
            manager = CallbackManager([], parent_run_id=uuid.uuid4())
            return {**self.cfg, "callbacks": manager}
        return {**self.cfg, "callbacks": self.graph.get_child(f"graph:step:{step}")}

    def done(self, values: Mapping[str, Any]) -> None:
        if self.graph is not None:
            self.graph.on_chain_end({OUT: values.get(OUT)})

    def failed(self, exc: BaseException) -> None:
        if self.graph is not None:
            self.graph.on_chain_error(exc)

    async def adone(self, values: Mapping[str, Any]) -> None:
        if self.graph is not None:
            await self.graph.on_chain_end({OUT: values.get(OUT)})

    async def afailed(self, exc: BaseException) -> None:
        if self.graph is not None:
            await self.graph.on_chain_error(exc)


def _node_run(runner: NodeRunner, config: RunnableConfig, input: Any) -> Any:
    """The node's own chain run, when LangChain callbacks listen: its child config and run."""
    manager = config.get("callbacks")
    if not isinstance(manager, CallbackManager) or not manager.handlers:
        return config, None
    run = manager.on_chain_start(None, input, name=runner.name)
    return {**config, "callbacks": run.get_child()}, run


def _call(runner: NodeRunner, values: Mapping[str, Any], config: RunnableConfig) -> Update:
    config, run = _node_run(runner, config, values)
    if run is None:
        return runner.run(values, config)
    try:
        update = runner.run(values, config)
    except BaseException as exc:
        run.on_chain_error(exc)
        raise
    run.on_chain_end(update[0])
    return update


async def _acall(runner: NodeRunner, values: Mapping[str, Any], config: RunnableConfig) -> Update:
    manager = config.get("callbacks")
    if not isinstance(manager, AsyncCallbackManager) or not manager.handlers:
        return await runner.arun(values, config)
    run = await manager.on_chain_start(None, values, name=runner.name)
    try:
        update = await runner.arun(values, {**config, "callbacks": run.get_child()})
    except BaseException as exc:
        await run.on_chain_error(exc)
        raise
    await run.on_chain_end(update[0])
    return update


def _run_sync(step: Step) -> list[Update]:
    values, tasks = step
    if len(tasks) == 1:
        runner, config = tasks[0]
        return [_call(runner, values, config)]
    pool = branch_pool()
    futures: list[Future[Update]] = []
    for runner, config in tasks[1:]:
        ctx = contextvars.copy_context()
        futures.append(pool.submit(ctx.run, _call, runner, values, config))
    results: list[Update | _Failed] = [_attempt(_call, tasks[0][0], values, tasks[0][1])]
    for (runner, config), future in zip(tasks[1:], futures, strict=True):
        if future.cancel():  # not started: the pool is busy, so run it here
            ctx = contextvars.copy_context()
            results.append(_attempt(ctx.run, _call, runner, values, config))
        else:
            results.append(_attempt(future.result))
    done: list[Update] = []
    for r in results:
        if isinstance(r, _Failed):
            raise r.error
        done.append(r)
    return done


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _attempt(fn: Callable[..., Update], *args: Any) -> Update | _Failed:
    try:
        return fn(*args)
    except BaseException as exc:
        return _Failed(exc)


async def _run_async(step: Step) -> list[Update]:
    values, tasks = step
    if len(tasks) == 1:
        runner, config = tasks[0]
        return [await _acall(runner, values, config)]
    running = [asyncio.ensure_future(_acall(r, values, c)) for r, c in tasks]
    try:
        return list(await asyncio.gather(*running))
    except BaseException:
        for t in running:
            t.cancel()
        raise

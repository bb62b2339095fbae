"""The node runner: what one weft node does when it runs, whichever executor runs it.

It reads the node's input from the values the executor hands it, applies ``pre``, calls the
component (or streams it, when the run is streamed), applies ``post`` and ``merge``, and picks
the branch targets. It knows no executor's types: the executor gives it a :class:`Layout` (the
keys its input and output live under) and the exceptions it must let through untouched, and
turns the ``(update, goto)`` it returns into its own kind of write.

A run's logic is in :meth:`NodeRunner.begin` and :meth:`NodeRunner.finish` (or
:meth:`NodeRunner.abort`); :meth:`NodeRunner.run` and :meth:`NodeRunner.arun` call them around
the call itself, which is all they do their own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import Token
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pydantic
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from weft.core import callbacks as _cb
from weft.core.component import ComponentSpec, TypedLambda, to_message
from weft.core.errors import NodeError
from weft.core.graph import END, BranchDef, NodeDef
from weft.core.runtime.context import EMITTER, NodeRun, begin_node, end_node
from weft.core.runtime.events import TAP, NodeTap
from weft.core.stream import concat_chunks as _concat

__all__ = ["Layout", "NodeRunner"]


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a node's input and output live in the values an executor keeps.

    ``in_key`` holds the input (empty for a fan-in, whose inputs are ``fan_in``: upstream node
    name -> key); ``out_keys`` are the keys the output is written under.
    """

    in_key: str
    fan_in: tuple[tuple[str, str], ...]
    out_keys: tuple[str, ...]


@dataclass(slots=True)
class _Work:
    """A run of the node between :meth:`NodeRunner.begin` and its end: the call to make, and
    the context variables to reset when it ends."""

    x: Any
    state: Any
    config: RunnableConfig
    tap: NodeTap | None
    run: NodeRun | None
    current: Token[Any] | None
    active: Token[Any] | None

    def leave(self) -> None:
        if self.active is not None:
            TAP.reset(self.active)
        if self.current is not None:
            var_child_runnable_config.reset(self.current)


Update = tuple[dict[str, Any], list[str] | None]

_EMPTY: Mapping[str, Any] = MappingProxyType({})

_LIVE = frozenset({"chat_model", "runnable", "tool"})


class NodeRunner:
    """Runs one weft node: read its input, call the component, write its output."""

    def __init__(
        self,
        graph: str,
        node: NodeDef,
        layout: Layout,
        branch: BranchDef | None,
        state_keys: list[str],
        state_model: Any,
        *,
        answer: bool,
        passthrough: tuple[type[BaseException], ...] = (),
    ) -> None:
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
        # A lambda that yields chunks streams them itself; every other node's chunks are the
        # tokens of the chat models it calls.
        self.yields = bool(self.lam is not None and self.lam.streams)
        self.tokens = not self.yields
        # Whether the node can make chunks while it runs, which a reader should get as they
        # come: a chat model, a lambda that yields, a LangChain runnable or tool, a graph that is
        # itself live. A plain function's own model calls stream too, once it returns.
        self.live = (
            self.yields
            or self.kind in _LIVE
            or (self.kind == "graph" and bool(getattr(self.component, "live", True)))
        )
        self.answer = answer
        self.passthrough = passthrough
        self.layout = layout
        self.branch = branch
        self.state_keys = state_keys
        self.state_model = state_model
        self.wants_state = bool(state_keys) and (
            node.pre is not None
            or node.post is not None
            or (self.lam is not None and self.lam.accepts_state)
            or (branch is not None and branch.wants_state)
        )
        # Whether the component's input is other than the node's (a pre hook), or the node
        # reads the state.
        self.prepares = self.wants_state or node.pre is not None

    # -- inputs and outputs ---------------------------------------------------------------------

    def input_of(self, values: Mapping[str, Any]) -> Any:
        """The node's input (before its ``pre`` hook) from the values the executor hands it."""
        if self.layout.in_key:
            return values.get(self.layout.in_key)
        x = {p: values.get(k) for p, k in self.layout.fan_in}
        return self.node.merge(x) if self.node.merge is not None else x

    def prepare(self, raw: Any, values: Mapping[str, Any]) -> tuple[Any, Any]:
        """The input the component gets (after ``pre``) and the state view, if the node reads it."""
        state = self.state_view(values) if self.wants_state else None
        x = self.node.pre(raw, state) if self.node.pre is not None else raw
        return x, state

    def state_view(self, values: Mapping[str, Any]) -> Any:
        view = {k: values[k] for k in self.state_keys if k in values}
        if isinstance(self.state_model, type) and issubclass(self.state_model, pydantic.BaseModel):
            return self.state_model.model_validate(view)
        return view

    def write(self, y: Any, state: Any) -> Update:
        """What the node writes for output ``y``, and where it goes next when it branches."""
        update = dict.fromkeys(self.layout.out_keys, y)
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
        return update, (None if self.branch is None else self.route(y, state))

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

    def failed(self, run: NodeRun | None, exc: BaseException) -> BaseException:
        """Report a failed run of this node; what to raise for ``exc``: a :class:`NodeError`
        for an error, ``exc`` itself for the executor's own signals and for cancellation."""
        error = (
            self.fail(exc)
            if isinstance(exc, Exception) and not isinstance(exc, self.passthrough)
            else exc
        )
        end_node(run, None, error)
        return error

    # -- one run, sync or async: begin, the call, then finish (or abort) --------------------------

    def begin(self, values: Mapping[str, Any], config: RunnableConfig) -> _Work:
        """Start a run of the node: report it, prepare its input, and set the context its call
        runs in (until :meth:`finish` or :meth:`abort`)."""
        conf: Mapping[str, Any] = config.get("configurable") or _EMPTY
        run = None
        try:
            raw = self.input_of(values)
            run = begin_node(conf, config, self.graph, self.name, self.label, self.meta, raw)
            if run is not None and self.takes_config:
                config = _cb.with_bridge(config, run.bridge)
            x, state = self.prepare(raw, values) if self.prepares else (raw, None)
            emitter = EMITTER.get()
            tap = None
            if emitter is not None:
                tap = emitter.node(self.name, self.answer, self.tokens)
                tap.start(raw)
        except BaseException as exc:
            raise self.failed(run, exc)  # noqa: B904 (a NodeError's cause is set by fail)
        # The executor may not have made this node's config the current one: LangGraph
        # cannot on Python 3.10, where a task cannot be given a context. The models and
        # graphs the node calls find it there.
        current = (
            var_child_runnable_config.set(config)
            if var_child_runnable_config.get() is not config
            else None
        )
        active = TAP.set(tap) if tap is not None else None
        return _Work(x, state, config, tap, run, current, active)

    def finish(self, w: _Work, y: Any) -> Update:
        """End a run whose call returned ``y``: report it and say what the node writes."""
        w.leave()
        try:
            if w.tap is not None:
                w.tap.end(y)
            update = self.write(y, w.state)
        except BaseException as exc:
            raise self.failed(w.run, exc)  # noqa: B904 (a NodeError's cause is set by fail)
        end_node(w.run, y, None)
        return update

    def abort(self, w: _Work, exc: BaseException) -> BaseException:
        """End a run whose call raised ``exc``; what to raise (see :meth:`failed`)."""
        w.leave()
        return self.failed(w.run, exc)

    def run(self, values: Mapping[str, Any], config: RunnableConfig) -> Update:
        w = self.begin(values, config)
        try:
            y = self.call(w)
        except BaseException as exc:
            raise self.abort(w, exc)  # noqa: B904 (a NodeError's cause is set by fail)
        return self.finish(w, y)

    async def arun(self, values: Mapping[str, Any], config: RunnableConfig) -> Update:
        w = self.begin(values, config)
        try:
            y = await self.acall(w)
        except BaseException as exc:
            raise self.abort(w, exc)  # noqa: B904 (a NodeError's cause is set by fail)
        return self.finish(w, y)

    # -- the call itself ----------------------------------------------------------------------

    def call(self, w: _Work) -> Any:
        if self.lam is not None:
            if w.tap is not None and self.yields:
                collect = _Collect(w.tap, w.run)
                for c in self.lam.call_stream(w.x, w.config, w.state):
                    collect.add(c)
                return collect.value()
            return self.lam.call(w.x, w.config, w.state)
        if self.component is None:
            return w.x
        return to_message(self.component.invoke(w.x, w.config))

    async def acall(self, w: _Work) -> Any:
        if self.lam is not None:
            if w.tap is not None and self.yields:
                collect = _Collect(w.tap, w.run)
                async for c in self.lam.acall_stream(w.x, w.config, w.state):
                    collect.add(c)
                return collect.value()
            return await self.lam.acall(w.x, w.config, w.state)
        if self.component is None:
            return w.x
        return to_message(await self.component.ainvoke(w.x, w.config))

    def __repr__(self) -> str:
        return f"NodeRunner({self.graph!r}, {self.name!r}, {self.label})"


class _Collect:
    """The chunks a lambda yields: streamed as they come, reported to handlers, and added up."""

    __slots__ = ("parts", "run", "tap")

    def __init__(self, tap: NodeTap, run: NodeRun | None) -> None:
        self.tap = tap
        self.run = run
        self.parts: list[Any] = []

    def add(self, chunk: Any) -> None:
        self.parts.append(chunk)
        self.tap.chunk(chunk)
        if self.run is not None:
            self.run.bridge.chunk(self.run.run_id, chunk)

    def value(self) -> Any:
        return to_message(_concat(self.parts))

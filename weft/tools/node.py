"""The tool node: a model's tool calls in, one ``ToolMessage`` per call out.

:class:`ToolNode` takes an ``AIMessage`` with ``tool_calls`` (or a message list whose last
message is one), runs the calls in parallel under a concurrency bound and a timeout per call, and
returns the ``ToolMessage`` list in the order of the calls. Each call goes through the tool's own
callbacks, so handlers see ``on_tool_start``/``on_tool_end`` and tracing makes an
``execute_tool`` span per call. In a streamed graph run, every call also streams a
:class:`~weft.core.stream.ToolStarted` event when it starts and a
:class:`~weft.core.stream.ToolFinished` event, with its ``ToolMessage``, when it ends.

A call that names an unknown tool, has invalid arguments, raises or times out becomes an error
``ToolMessage`` (``status="error"``) that names the problem, so the model can correct itself;
``on_error="raise"`` raises :class:`~weft.core.errors.ToolCallError` instead.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> from weft.tools import tool
    >>> @tool
    ... def double(n: int) -> int:
    ...     '''Double a number.'''
    ...     return 2 * n
    >>> node = ToolNode([double])
    >>> call = {"name": "double", "args": {"n": 21}, "id": "c1"}
    >>> [m.content for m in node.invoke(AIMessage("", tool_calls=[call]))]
    ['42']
    >>> bad = {"name": "triple", "args": {}, "id": "c2"}
    >>> node.invoke(AIMessage("", tool_calls=[bad]))[0].content
    "unknown tool 'triple'; available tools: double"
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from langchain_core.messages import AIMessage, BaseMessage, ToolCall, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langchain_core.runnables.config import ContextThreadPoolExecutor
from langchain_core.tools import BaseTool
from pydantic import ValidationError

from weft.core.errors import ComponentTypeError, ToolCallError
from weft.core.runtime.events import TAP, NodeTap
from weft.core.stream import ToolFinished, ToolStarted
from weft.tools.base import tool as make_tool

__all__ = ["OnError", "ToolNode", "ToolNodeInput"]

ToolNodeInput = Union[AIMessage, Sequence[BaseMessage]]  # noqa: UP007
"""What a tool node takes: the model's message, or the conversation ending with it."""

OnError = Literal["return", "raise"]


class _TimedOut(Exception):
    pass


@dataclass(frozen=True)
class _Planned:
    """One call, resolved before anything runs: its tool, or the problem that stops it."""

    call: ToolCall
    tool: BaseTool | None
    problem: str | None = None


class ToolNode(Runnable[ToolNodeInput, list[ToolMessage]]):
    """Runs a model's tool calls in parallel and returns their ``ToolMessage``s in call order.

    Args:
        tools: LangChain tools (any ``BaseTool``) or typed functions, made tools with
            :func:`~weft.tools.tool`. Names must be unique.
        max_concurrency: How many calls run at once; the rest wait for a free slot.
        timeout: Seconds one call may take once it has started; ``None`` for no limit.
        on_error: ``"return"`` turns a failed call into an error ``ToolMessage`` the model
            reads; ``"raise"`` raises :class:`~weft.core.errors.ToolCallError`.
        name: The node's name in traces.

    Raises:
        ComponentTypeError: two tools share a name, or a setting is out of range.
    """

    def __init__(
        self,
        tools: Sequence[BaseTool | Callable[..., Any]],
        *,
        max_concurrency: int = 8,
        timeout: float | None = 60.0,
        on_error: OnError = "return",
        name: str = "tools",
    ) -> None:
        if max_concurrency < 1:
            raise ComponentTypeError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if timeout is not None and timeout <= 0:
            raise ComponentTypeError(f"timeout must be positive seconds or None, got {timeout}")
        if on_error not in ("return", "raise"):
            raise ComponentTypeError(f"on_error must be 'return' or 'raise', got {on_error!r}")
        self.tools: dict[str, BaseTool] = {}
        for item in tools:
            made = item if isinstance(item, BaseTool) else make_tool(item)
            if made.name in self.tools:
                raise ComponentTypeError(
                    f"two tools are named '{made.name}'; a model calls tools by name, so give "
                    f"each its own (tool(fn, name=...) or @tool(name=...))"
                )
            self.tools[made.name] = made
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.on_error: OnError = on_error
        self.name = name

    @property
    def InputType(self) -> Any:
        return ToolNodeInput

    @property
    def OutputType(self) -> Any:
        return list[ToolMessage]

    def __repr__(self) -> str:
        return f"ToolNode({', '.join(self.tools)})"

    # -- what both paths share ----------------------------------------------------------------

    def _plan(self, input: Any) -> list[_Planned]:
        message = input
        if isinstance(input, Sequence) and not isinstance(input, (str, BaseMessage)) and input:
            message = input[-1]
        if not isinstance(message, AIMessage):
            raise ToolCallError(
                f"tool node '{self.name}' takes an AIMessage with tool_calls, or a list of "
                f"messages whose last one is; got {type(message).__name__}"
            )
        planned = []
        for call in message.tool_calls:
            full: ToolCall = {**call, "type": "tool_call"}
            tool = self.tools.get(call["name"])
            problem = None
            if tool is None:
                problem = (
                    f"unknown tool '{call['name']}'; available tools: "
                    f"{', '.join(sorted(self.tools)) or '(none)'}"
                )
            planned.append(_Planned(full, tool, problem))
        for bad in message.invalid_tool_calls:
            name = bad.get("name") or "(unnamed)"
            invalid: ToolCall = {
                "name": name,
                "args": {},
                "id": bad.get("id"),
                "type": "tool_call",
            }
            problem = (
                f"invalid arguments for tool '{name}': {bad.get('error') or 'not a JSON object'}; "
                f"send the arguments as a JSON object"
            )
            planned.append(_Planned(invalid, None, problem))
        return planned

    def _start(self, tap: NodeTap | None, planned: _Planned) -> None:
        if tap is not None:
            call = planned.call
            tap.put(ToolStarted(tap.path, call["name"], dict(call["args"]), call.get("id") or ""))

    def _finish(
        self,
        tap: NodeTap | None,
        planned: _Planned,
        result: Any,
        error: BaseException | None,
    ) -> ToolMessage:
        call = planned.call
        name, call_id = call["name"], call.get("id") or ""
        failed = error is not None or planned.problem is not None
        if not failed:
            if isinstance(result, ToolMessage):
                message = result
            else:
                content = result if isinstance(result, str) else json.dumps(result, default=str)
                message = ToolMessage(content, tool_call_id=call_id, name=name)
        else:
            problem = planned.problem or _describe(name, error, self.timeout)
            message = ToolMessage(problem, tool_call_id=call_id, name=name, status="error")
        if tap is not None:
            tap.put(ToolFinished(tap.path, name, call_id, message, message.status == "error"))
        if failed and self.on_error == "raise":
            raise ToolCallError(f"{message.content} (tool call id '{call_id}')") from error
        return message

    # -- running --------------------------------------------------------------------------------

    def invoke(
        self, input: ToolNodeInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[ToolMessage]:
        planned = self._plan(input)
        child = _child_config(config)
        tap = TAP.get()

        def one(p: _Planned) -> ToolMessage:
            self._start(tap, p)
            if p.tool is None:
                return self._finish(tap, p, None, None)
            tool = p.tool
            try:
                result = _call_with_timeout(lambda: tool.invoke(p.call, child), self.timeout)
            except Exception as exc:
                return self._finish(tap, p, None, exc)
            return self._finish(tap, p, result, None)

        if len(planned) <= 1:
            return [one(p) for p in planned]
        with ContextThreadPoolExecutor(max_workers=min(self.max_concurrency, len(planned))) as ex:
            return list(ex.map(one, planned))

    async def ainvoke(
        self, input: ToolNodeInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> list[ToolMessage]:
        planned = self._plan(input)
        child = _child_config(config)
        slots = asyncio.Semaphore(self.max_concurrency)
        tap = TAP.get()

        async def one(p: _Planned) -> ToolMessage:
            if p.tool is None:
                self._start(tap, p)
                return self._finish(tap, p, None, None)
            async with slots:
                self._start(tap, p)
                task = asyncio.ensure_future(p.tool.ainvoke(p.call, child))
                done, _ = await asyncio.wait({task}, timeout=self.timeout)
                if not done:
                    task.cancel()
                    return self._finish(tap, p, None, _TimedOut())
                if task.exception() is not None:
                    return self._finish(tap, p, None, task.exception())
                return self._finish(tap, p, task.result(), None)

        tasks = [asyncio.ensure_future(one(p)) for p in planned]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            raise


def _child_config(config: RunnableConfig | None) -> RunnableConfig:
    # Each call is its own run: a run_id given for the node must not be reused by every tool.
    cfg = ensure_config(config)
    cfg.pop("run_id", None)
    return cfg


def _describe(name: str, error: BaseException | None, timeout: float | None) -> str:
    if isinstance(error, _TimedOut):
        return f"tool '{name}' timed out after {timeout:g} s; try simpler arguments or another tool"
    if isinstance(error, ValidationError):
        details = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or '(arguments)'}: {e['msg']}"
            for e in error.errors()
        )
        return f"invalid arguments for tool '{name}': {details}; call it again with fixed arguments"
    return f"tool '{name}' failed: {type(error).__name__}: {error}"


def _call_with_timeout(fn: Callable[[], Any], timeout: float | None) -> Any:
    """Run ``fn`` in this thread, or in a daemon thread that is abandoned after ``timeout``."""
    if timeout is None:
        return fn()
    outcome: list[Any] = []
    failure: list[BaseException] = []
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.append(context.run(fn))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=target, name="weft-tool", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _TimedOut()
    if failure:
        raise failure[0]
    return outcome[0]

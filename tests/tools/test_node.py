"""ToolNode: parallel calls under a bound and a timeout, errors returned to the model or raised."""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import Iterator
from typing import Annotated, Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool as langchain_tool
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typing_extensions import TypedDict

from weft import END, START, Graph
from weft.core.callbacks import CallbackBridge
from weft.core.errors import ComponentTypeError, ToolCallError
from weft.core.stream import Chunk, ToolFinished, ToolStarted
from weft.core.tracing import OTelHandler
from weft.testing import ScriptedChatModel
from weft.tools import Tool, ToolNode, tool


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


@tool
def explode(reason: str) -> str:
    """Fail on purpose."""
    raise RuntimeError(f"the fuse blew: {reason}")


def calls(*specs: tuple[str, dict[str, Any]]) -> AIMessage:
    return AIMessage(
        "", tool_calls=[{"name": n, "args": a, "id": f"c{i}"} for i, (n, a) in enumerate(specs)]
    )


def test_each_call_gets_its_tool_message_in_call_order() -> None:
    out = ToolNode([add]).invoke(calls(("add", {"a": 1, "b": 2}), ("add", {"a": 40, "b": 2})))
    assert [(m.content, m.tool_call_id, m.name, m.status) for m in out] == [
        ("3", "c0", "add", "success"),
        ("42", "c1", "add", "success"),
    ]


def test_a_message_list_ending_with_the_tool_calls_is_accepted() -> None:
    history = [HumanMessage("add"), calls(("add", {"a": 2, "b": 2}))]
    assert [m.content for m in ToolNode([add]).invoke(history)] == ["4"]


def test_input_that_is_not_a_tool_calling_message_fails_clearly() -> None:
    with pytest.raises(ToolCallError, match=r"with tool_calls.*got HumanMessage"):
        ToolNode([add]).invoke([HumanMessage("hi")])


def test_unknown_tool_is_returned_to_the_model_with_the_available_tools() -> None:
    out = ToolNode([add, explode]).invoke(calls(("mul", {"a": 2}), ("add", {"a": 1, "b": 1})))
    assert out[0].status == "error" and out[0].tool_call_id == "c0"
    assert out[0].content == "unknown tool 'mul'; available tools: add, explode"
    assert out[1].content == "2"


def test_invalid_arguments_are_returned_naming_each_field() -> None:
    out = ToolNode([add]).invoke(calls(("add", {"a": "two", "b": 1}), ("add", {"a": 1})))
    assert out[0].status == "error"
    assert str(out[0].content).startswith("invalid arguments for tool 'add': a: Input should be")
    assert out[1].content == (
        "invalid arguments for tool 'add': b: Field required; call it again with fixed arguments"
    )


def test_unparseable_arguments_from_the_model_are_returned_as_an_error() -> None:
    message = AIMessage(
        "", invalid_tool_calls=[{"name": "add", "args": "{a: 1", "id": "c9", "error": "bad JSON"}]
    )
    [out] = ToolNode([add]).invoke(message)
    assert out.status == "error" and out.tool_call_id == "c9"
    assert out.content.startswith("invalid arguments for tool 'add': bad JSON")


async def test_a_raised_exception_is_returned_to_the_model() -> None:
    message = calls(("explode", {"reason": "wet"}))
    for out in (ToolNode([explode]).invoke(message), await ToolNode([explode]).ainvoke(message)):
        assert out[0].status == "error"
        assert out[0].content == "tool 'explode' failed: RuntimeError: the fuse blew: wet"


async def test_raise_mode_raises_tool_call_error_with_the_cause() -> None:
    node = ToolNode([add, explode], on_error="raise")
    with pytest.raises(ToolCallError, match=r"unknown tool 'mul'.*tool call id 'c0'"):
        node.invoke(calls(("mul", {})))
    with pytest.raises(ToolCallError, match="the fuse blew") as err:
        await node.ainvoke(calls(("add", {"a": 1, "b": 1}), ("explode", {"reason": "x"})))
    assert isinstance(err.value.__cause__, RuntimeError)
    with pytest.raises(ToolCallError, match="invalid arguments for tool 'add'"):
        node.invoke(calls(("add", {})))


def ping_pong() -> list[Tool]:
    """Two async tools that each wait for the other: only concurrent calls both finish."""
    first, second = asyncio.Event(), asyncio.Event()

    @tool
    async def ping() -> str:
        """Wait for pong."""
        first.set()
        await second.wait()
        return "ping"

    @tool
    async def pong() -> str:
        """Wait for ping."""
        second.set()
        await first.wait()
        return "pong"

    return [ping, pong]


async def test_async_calls_run_in_parallel() -> None:
    out = await ToolNode(ping_pong(), timeout=5).ainvoke(calls(("ping", {}), ("pong", {})))
    assert [m.content for m in out] == ["ping", "pong"]


async def test_async_calls_respect_the_concurrency_bound() -> None:
    node = ToolNode(ping_pong(), max_concurrency=1, timeout=0.2)
    out = await node.ainvoke(calls(("ping", {}), ("pong", {})))
    # One slot: ping waits alone until its timeout, then pong runs and finds ping's event set.
    assert out[0].content == (
        "tool 'ping' timed out after 0.2 s; try simpler arguments or another tool"
    )
    assert out[1].content == "pong"


async def test_no_more_than_max_concurrency_calls_run_at_once() -> None:
    running, peak = 0, 0

    @tool
    async def work(n: int) -> int:
        """Do some work."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return n

    node = ToolNode([work], max_concurrency=2)
    out = await node.ainvoke(calls(*[("work", {"n": i}) for i in range(5)]))
    assert [m.content for m in out] == ["0", "1", "2", "3", "4"]
    assert peak == 2


def test_sync_calls_run_in_parallel_threads_under_the_bound() -> None:
    barrier = threading.Barrier(2, timeout=2)

    @tool
    def meet(side: str) -> str:
        """Meet the other side."""
        barrier.wait()
        return side

    message = calls(("meet", {"side": "left"}), ("meet", {"side": "right"}))
    assert [m.content for m in ToolNode([meet]).invoke(message)] == ["left", "right"]
    barrier = threading.Barrier(2, timeout=0.2)
    out = ToolNode([meet], max_concurrency=1).invoke(message)
    assert {m.status for m in out} == {"error"}
    assert "BrokenBarrierError" in str(out[0].content)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let the abandoned worker thread finish


async def test_a_call_past_its_timeout_becomes_an_error(release: threading.Event) -> None:
    @tool
    def stuck() -> str:
        """Never answers in time."""
        release.wait(5)
        return "late"

    @tool
    async def astuck() -> str:
        """Never answers in time either."""
        await asyncio.sleep(5)
        return "late"

    message = calls(("stuck", {}), ("astuck", {}), ("add", {"a": 1, "b": 2}))
    node = ToolNode([stuck, astuck, add], timeout=0.1)
    for out in (node.invoke(message), await node.ainvoke(message)):
        assert [m.status for m in out] == ["error", "error", "success"]
        assert out[0].content.startswith("tool 'stuck' timed out after 0.1 s")
        assert out[1].content.startswith("tool 'astuck' timed out after 0.1 s")
    release.set()  # before the event loop closes, which waits for its executor's threads
    with pytest.raises(ToolCallError, match="timed out"):
        await ToolNode([astuck], timeout=0.05, on_error="raise").ainvoke(calls(("astuck", {})))


def test_settings_and_duplicate_names_are_checked() -> None:
    with pytest.raises(ComponentTypeError, match="two tools are named 'add'"):
        ToolNode([add, add])
    with pytest.raises(ComponentTypeError, match="max_concurrency must be at least 1"):
        ToolNode([add], max_concurrency=0)
    with pytest.raises(ComponentTypeError, match="on_error must be"):
        ToolNode([add], on_error="ignore")  # type: ignore[arg-type]


def test_plain_functions_and_langchain_tools_are_accepted() -> None:
    def halve(n: float) -> float:
        """Halve a number."""
        return n / 2

    @langchain_tool
    def negate(n: int) -> int:
        """Negate a number."""
        return -n

    out = ToolNode([halve, negate]).invoke(calls(("halve", {"n": 3}), ("negate", {"n": 3})))
    assert [m.content for m in out] == ["1.5", "-3"]


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        self.events.append(("start", kwargs.get("tool_call_id")))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append(("end", output.tool_call_id))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append(("error", type(error).__name__))


async def test_every_call_goes_through_the_tools_callbacks() -> None:
    message = calls(("add", {"a": 1, "b": 2}), ("explode", {"reason": "x"}))
    for run in (ToolNode([add, explode]).invoke, ToolNode([add, explode]).ainvoke):
        recorder = Recorder()
        result = run(message, {"callbacks": [recorder]})
        if asyncio.iscoroutine(result):
            await result
        assert sorted(recorder.events, key=str) == sorted(
            [("start", "c0"), ("end", "c0"), ("start", "c1"), ("error", "RuntimeError")], key=str
        )


def spans_recorder() -> tuple[OTelHandler, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OTelHandler(provider), exporter


def test_every_call_makes_an_execute_tool_span() -> None:
    handler, exporter = spans_recorder()
    message = calls(("add", {"a": 1, "b": 2}), ("explode", {"reason": "x"}), ("mul", {}))
    ToolNode([add, explode]).invoke(message, {"callbacks": [CallbackBridge([handler])]})
    spans = {s.attributes["gen_ai.tool.call.id"]: s for s in exporter.get_finished_spans()}  # type: ignore[index]
    assert sorted(spans) == ["c0", "c1"]  # the unknown tool never ran
    assert spans["c0"].name == "execute_tool add" and spans["c0"].status.is_ok
    assert spans["c1"].name == "execute_tool explode" and not spans["c1"].status.is_ok


# -- a model -> tools -> model loop built with weft's Graph ---------------------------------------


class Conversation(TypedDict):
    messages: Annotated[list[BaseMessage], operator.add]


def agent_loop(model: ScriptedChatModel) -> Any:
    def user(messages: list[BaseMessage]) -> list[BaseMessage]:
        return messages

    g = Graph[list[BaseMessage], AIMessage]("loop", state=Conversation)
    g.add_node("user", user, post=lambda out, state: {"messages": out})
    g.add_node(
        "model",
        model.bind_tools([add]),
        pre=lambda _, state: state["messages"],
        post=lambda out, state: {"messages": [out]},
    )
    g.add_node("tools", ToolNode([add]), post=lambda out, state: {"messages": out})
    g.add_edge(START, "user").add_edge("user", "model").add_edge("tools", "model")
    g.add_branch("model", lambda m: "tools" if m.tool_calls else END, ["tools", END])
    return g.compile(step_limit=20)


def script() -> ScriptedChatModel:
    return ScriptedChatModel(
        replies=[
            calls(("add", {"a": 2, "b": 3}), ("mul", {"a": 2, "b": 3})),
            calls(("add", {"a": 5, "b": 5})),
            "The sum is 10.",
        ]
    )


async def test_model_tools_model_loop_runs_offline_with_the_scripted_model() -> None:
    handler, exporter = spans_recorder()
    model = script()
    answer = agent_loop(model).invoke(
        [HumanMessage("add 2 and 3, twice")], {"callbacks": [handler]}
    )
    assert answer.content == "The sum is 10."
    assert model.remaining == 0
    second = model.received[1]
    assert [type(m).__name__ for m in second] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "ToolMessage",
    ]
    results = [m for m in second if isinstance(m, ToolMessage)]
    assert results[0].content == "5"
    assert results[1].content == "unknown tool 'mul'; available tools: add"
    assert [m.content for m in model.received[2] if isinstance(m, ToolMessage)][-1] == "10"
    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    names = [s.name for s in spans]
    assert names.count("execute_tool add") == 2 and names.count("node tools") == 2
    by_id = {s.context.span_id: s for s in spans}
    for span in spans:
        if span.name == "execute_tool add":
            assert span.parent is not None and by_id[span.parent.span_id].name == "node tools"

    streamed = script()
    final = None
    async for chunk in agent_loop(streamed).astream([HumanMessage("again")]):
        final = chunk
    assert final is not None and streamed.remaining == 0


def tool_events(events: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, ToolStarted):
            out.append(("start", e.path, e.name, e.args, e.id))
        elif isinstance(e, ToolFinished):
            out.append(("end", e.path, e.name, e.id, e.output.content, e.error))
    return out


def test_a_streamed_run_reports_every_tool_call_start_and_end() -> None:
    events = list(agent_loop(script()).events([HumanMessage("add")]))
    seen = tool_events(events)
    starts = sorted(s for s in seen[:4] if s[0] == "start")
    assert starts == [
        ("start", ("tools",), "add", {"a": 2, "b": 3}, "c0"),
        ("start", ("tools",), "mul", {"a": 2, "b": 3}, "c1"),
    ]
    ends = sorted(s for s in seen[:4] if s[0] == "end")
    assert ends == [
        ("end", ("tools",), "add", "c0", "5", False),
        ("end", ("tools",), "mul", "c1", "unknown tool 'mul'; available tools: add", True),
    ]
    assert seen[4:] == [
        ("start", ("tools",), "add", {"a": 5, "b": 5}, "c0"),
        ("end", ("tools",), "add", "c0", "10", False),
    ]
    # Each call's events sit between its node's start and finish.
    kinds = [type(e).__name__ for e in events if not isinstance(e, Chunk)]
    first_tools = kinds.index("ToolStarted")
    assert kinds[first_tools - 1] == "NodeStarted"
    assert kinds[first_tools + 4] == "NodeFinished"


async def test_an_async_streamed_run_reports_tool_calls_too() -> None:
    events = [e async for e in agent_loop(script()).aevents([HumanMessage("add")])]
    seen = tool_events(events)
    assert len(seen) == 6
    assert sorted(s[2] for s in seen if s[0] == "end") == ["add", "add", "mul"]
    assert [s[5] for s in seen if s[0] == "end" and s[2] == "mul"] == [True]

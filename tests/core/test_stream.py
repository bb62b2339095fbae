import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict

from weft import END, START, Chunk, FinalOutput, Graph, NodeFinished, NodeStarted, lambda_
from weft.core.stream import concat_chunks


def ask(q: str) -> dict[str, Any]:
    return {"question": q}


def text(m: AIMessage) -> str:
    return str(m.content).upper()


def rag_like(answer: str = "tokens arrive in order") -> Any:
    """question -> prompt -> chat model (middle) -> post-processing lambda."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content=answer)] * 20))
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    g = Graph[str, str]("rag").add_node("ask", ask).add_node("prompt", prompt)
    g.add_node("model", model).add_node("text", text)
    g.add_edge(START, "ask").add_edge("ask", "prompt").add_edge("prompt", "model")
    return g.add_edge("model", "text").add_edge("text", END).compile()


def test_chat_model_in_the_middle_streams_tokens_in_order() -> None:
    events = list(rag_like().events("why?"))
    kinds = [(type(e).__name__, getattr(e, "path", None)) for e in events]
    model_chunks = [e.chunk.content for e in events if isinstance(e, Chunk)]
    assert "".join(model_chunks) == "tokens arrive in order"
    assert len(model_chunks) > 3
    start = kinds.index(("NodeStarted", ("model",)))
    end = kinds.index(("NodeFinished", ("model",)))
    first_chunk = kinds.index(("Chunk", ("model",)))
    assert start < first_chunk < end < kinds.index(("NodeStarted", ("text",)))
    assert isinstance(events[-1], FinalOutput) and events[-1].output == "TOKENS ARRIVE IN ORDER"
    # The node downstream of the streaming model received the whole message.
    finished = next(e for e in events if isinstance(e, NodeFinished) and e.node == "model")
    assert (
        isinstance(finished.output, AIMessage)
        and finished.output.content == "tokens arrive in order"
    )


def test_tokens_stream_out_of_a_subgraph_with_their_path() -> None:
    outer = Graph[str, str]("outer").add_node("sub", rag_like("deep tokens here"))
    outer = outer.add_edge(START, "sub").add_edge("sub", END)
    events = list(outer.compile().events("q"))
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert {c.path for c in chunks} == {("sub", "model")}
    assert "".join(c.chunk.content for c in chunks) == "deep tokens here"
    starts = [e.path for e in events if isinstance(e, NodeStarted)]
    assert starts[:2] == [("sub",), ("sub", "ask")]
    assert events[-1] == FinalOutput("DEEP TOKENS HERE")


def test_stream_output_yields_only_the_final_outputs_chunks() -> None:
    def words(s: str) -> Iterator[str]:
        for w in s.split():
            yield w + " "

    def upper(s: str) -> str:
        return s.upper()

    g = Graph[str, str]("w").add_node("upper", upper).add_node("words", words)
    compiled = (
        g.add_edge(START, "upper").add_edge("upper", "words").add_edge("words", END).compile()
    )
    assert list(compiled.stream_output("a b c")) == ["A ", "B ", "C "]
    assert list(compiled.stream("a b c")) == ["A ", "B ", "C "]
    # A graph whose output nothing streams yields its whole output once.
    plain = Graph[str, str]("plain").add_node("upper", upper)
    assert list(plain.add_edge(START, "upper").add_edge("upper", END).compile().stream("x")) == [
        "X"
    ]


def test_chunks_are_delivered_while_the_node_is_still_running() -> None:
    release = threading.Event()

    def slow_words(s: str) -> Iterator[str]:
        yield "first"
        # Only a consumer that already saw "first" can set this; a buffered stream would time out.
        if not release.wait(timeout=5):
            raise TimeoutError("the first chunk was not delivered before the node finished")
        yield "second"

    g = Graph[str, str]("live").add_node("w", slow_words)
    compiled = g.add_edge(START, "w").add_edge("w", END).compile()
    seen = []
    for chunk in compiled.stream_output("x"):
        seen.append(chunk)
        release.set()
    assert seen == ["first", "second"]


def test_a_graph_of_plain_functions_streams_from_the_readers_own_thread() -> None:
    ran_in: list[int] = []

    def inc(x: int) -> int:
        ran_in.append(threading.get_ident())
        return x + 1

    g = Graph[int, int]("plain").add_node("a", inc).add_node("b", inc)
    compiled = g.add_edge(START, "a").add_edge("a", "b").add_edge("b", END).compile()
    assert not compiled.live
    assert list(compiled.events(1))[-1] == FinalOutput(3)
    assert ran_in == [threading.get_ident()] * 2
    # A graph with a node that streams as it runs hands that node's work to a worker thread.
    assert rag_like().live


def test_a_streaming_graph_runs_only_its_streaming_node_off_the_readers_thread(
    executor: str,
) -> None:
    ran_in: dict[str, int] = {}
    release = threading.Event()

    def before(s: str) -> str:
        ran_in["before"] = threading.get_ident()
        return s

    def words(s: str) -> Iterator[str]:
        ran_in["words"] = threading.get_ident()
        yield "first"
        # Only a reader that already saw "first" can set this; a buffered stream would time out.
        if not release.wait(timeout=5):
            raise TimeoutError("the first chunk was not delivered before the node finished")
        yield "second"

    def after(s: str) -> str:
        ran_in["after"] = threading.get_ident()
        return s.upper()

    g = Graph[str, str]("live").add_node("before", before).add_node("words", words)
    g.add_node("after", after).add_edge(START, "before").add_edge("before", "words")
    compiled = g.add_edge("words", "after").add_edge("after", END).compile()
    seen = []
    for event in compiled.events("x"):
        seen.append(event)
        if isinstance(event, Chunk):
            release.set()
    assert [e.chunk for e in seen if isinstance(e, Chunk)] == ["first", "second"]
    assert seen[-1] == FinalOutput("FIRSTSECOND")
    assert ran_in["words"] != threading.get_ident()
    # The DAG executor runs the other steps in the reader's thread; LangGraph runs it all on one.
    others = {ran_in["before"], ran_in["after"]}
    assert others == ({threading.get_ident()} if executor == "dag" else {ran_in["words"]})


def test_closing_the_events_of_a_plain_graph_stops_it_before_its_next_step() -> None:
    ran: list[str] = []

    def first(x: int) -> int:
        ran.append("first")
        return x

    def second(x: int) -> int:
        ran.append("second")
        return x

    g = Graph[int, int]("two").add_node("first", first).add_node("second", second)
    events = g.add_edge(START, "first").add_edge("first", "second").add_edge("second", END)
    stream = events.compile().events(1)
    assert next(stream) == NodeStarted(("first",), 1)
    stream.close()
    assert ran == ["first"]


def test_closing_the_events_of_a_streaming_graph_ends_its_run_at_its_next_event() -> None:
    closed, ended = threading.Event(), threading.Event()
    ran: list[str] = []

    def words(s: str) -> Iterator[str]:
        try:
            yield "first"
            closed.wait(timeout=5)
            yield "second"
            ran.append("words went on")
        finally:
            ended.set()

    def after(s: str) -> str:
        ran.append("after")
        return s

    g = Graph[str, str]("live").add_node("words", words).add_node("after", after)
    compiled = g.add_edge(START, "words").add_edge("words", "after").add_edge("after", END)
    stream = compiled.compile().events("x")
    assert next(e for e in stream if isinstance(e, Chunk)).chunk == "first"
    stream.close()
    closed.set()
    assert ended.wait(timeout=5)
    assert ran == []


def test_the_readers_code_between_events_runs_outside_the_graph_run() -> None:
    from langchain_core.runnables.config import var_child_runnable_config

    def inc(x: int) -> int:
        return x + 1

    g = Graph[int, int]("steps").add_node("a", inc).add_node("b", inc)
    compiled = g.add_edge(START, "a").add_edge("a", "b").add_edge("b", END).compile()
    seen = [var_child_runnable_config.get() for _ in compiled.events(1)]
    assert seen == [None] * len(seen)
    # A graph the reader runs between events is a run of its own, not one nested in the first.
    outputs = [compiled.invoke(10) for _ in compiled.events(1)]
    assert outputs == [12] * len(outputs)


def test_a_node_paused_by_interrupt_ends_the_stream_with_interrupted() -> None:
    from langgraph.types import Command, interrupt

    from weft import Interrupted, thread

    def approve(x: str) -> str:
        return f"{x}:{interrupt('send?')}"

    g = Graph[str, str]("ask").add_node("approve", approve)
    graph = g.add_edge(START, "approve").add_edge("approve", END).compile(checkpointer="memory")
    paused = list(graph.events("mail", thread("s")))[-1]
    assert isinstance(paused, FinalOutput) and isinstance(paused.output, Interrupted)
    assert paused.output.next == ("approve",) and paused.output.interrupts[0].value == "send?"
    resumed = list(graph.events(Command(resume="yes"), thread("s")))  # type: ignore[arg-type]
    assert resumed[-1] == FinalOutput("mail:yes")


def test_non_streaming_node_downstream_receives_concatenated_value() -> None:
    def parts(s: str) -> Iterator[list[str]]:
        yield [s]
        yield [s + "!"]

    def count(items: list[str]) -> int:
        return len(items)

    g = Graph[str, int]("cat").add_node("parts", parts).add_node("count", count)
    compiled = (
        g.add_edge(START, "parts").add_edge("parts", "count").add_edge("count", END).compile()
    )
    assert compiled.invoke("a") == 2
    assert list(compiled.events("a"))[-1] == FinalOutput(2)


async def test_astream_matches_stream() -> None:
    async def agen(s: str) -> AsyncIterator[str]:
        for ch in s:
            await asyncio.sleep(0)
            yield ch

    g = Graph[str, str]("a").add_node("chars", agen)
    compiled = g.add_edge(START, "chars").add_edge("chars", END).compile()
    events = [e async for e in compiled.aevents("abc")]
    assert [e.chunk for e in events if isinstance(e, Chunk)] == ["a", "b", "c"]
    assert events[-1] == FinalOutput("abc")
    assert [c async for c in compiled.astream_output("xy")] == ["x", "y"]
    sync_events = await asyncio.to_thread(lambda: list(rag_like().events("q")))
    async_events = [e async for e in rag_like().aevents("q")]
    assert [type(e) for e in sync_events] == [type(e) for e in async_events]
    assert sync_events[-1] == async_events[-1]


async def test_astream_events_reports_the_model_tokens() -> None:
    events = [e async for e in rag_like("one two").astream_events("q", version="v2")]
    tokens = [e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(tokens) == "one two"


def test_concat_chunks_rules() -> None:
    assert concat_chunks(["a", "b"]) == "ab"
    assert concat_chunks([[1], [2]]) == [1, 2]
    assert concat_chunks([{"a": 1}, {"b": 2}]) == {"a": 1, "b": 2}
    assert concat_chunks([1, 2, 3]) == 6
    assert concat_chunks([]) is None
    assert concat_chunks([object, str]) is str  # no + : the last chunk wins


def test_graph_without_streaming_nodes_streams_node_events_and_output() -> None:
    def inc(x: int) -> int:
        return x + 1

    def total(parts: dict[str, int]) -> int:
        return parts["a"] + parts["b"]

    g = Graph[int, int]("plain").add_node("a", inc).add_node("b", inc)
    g.add_node("sum", lambda_(lambda x: x * 10, input_type=int, output_type=int), merge=total)
    g.add_edge(START, "a").add_edge(START, "b").add_edge("a", "sum").add_edge("b", "sum")
    events = list(g.add_edge("sum", END).compile().events(1))
    started = {e.node: e.input for e in events if isinstance(e, NodeStarted)}
    finished = {e.node: e.output for e in events if isinstance(e, NodeFinished)}
    assert started == {"a": 1, "b": 1, "sum": 4}
    assert finished == {"a": 2, "b": 2, "sum": 40}
    assert not any(isinstance(e, Chunk) for e in events)
    assert events[-1] == FinalOutput(40)
    order = [(type(e).__name__, getattr(e, "node", None)) for e in events]
    assert order.index(("NodeFinished", "a")) < order.index(("NodeStarted", "sum"))


def test_stream_of_an_interrupted_run_ends_with_interrupted() -> None:
    from weft import Interrupted, thread

    def up(s: str) -> str:
        return s.upper()

    g = Graph[str, str]("pause").add_node("a", up).add_node("b", up)
    g.add_edge(START, "a").add_edge("a", "b").add_edge("b", END)
    compiled = g.compile(checkpointer="memory", interrupt_before=["b"])
    events = list(compiled.events("x", thread("p")))
    assert events[-1] == FinalOutput(Interrupted(next=("b",)))
    resumed = list(compiled.events(None, thread("p")))  # type: ignore[arg-type]
    assert resumed[-1] == FinalOutput("X")


async def test_astream_of_a_streaming_graph_paused_at_a_breakpoint_ends_with_interrupted() -> None:
    from weft import Interrupted, thread

    async def chars(s: str) -> AsyncIterator[str]:
        for ch in s:
            yield ch

    def up(s: str) -> str:
        return s.upper()

    g = Graph[str, str]("pause").add_node("a", chars).add_node("b", up)
    g.add_edge(START, "a").add_edge("a", "b").add_edge("b", END)
    compiled = g.compile(checkpointer="memory", interrupt_before=["b"])
    events = [e async for e in compiled.aevents("xy", thread("ap"))]
    assert [e.chunk for e in events if isinstance(e, Chunk)] == ["x", "y"]
    assert events[-1] == FinalOutput(Interrupted(next=("b",)))
    resumed = [e async for e in compiled.aevents(None, thread("ap"))]  # type: ignore[arg-type]
    assert resumed[-1] == FinalOutput("XY")


async def test_closing_an_astream_early_cancels_the_run() -> None:
    cancelled = asyncio.Event()

    async def endless(s: str) -> AsyncIterator[str]:
        yield s
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        yield "never"

    g = Graph[str, str]("endless").add_node("e", endless)
    stream = g.add_edge(START, "e").add_edge("e", END).compile().astream_output("first")
    assert await anext(stream) == "first"
    await stream.aclose()
    await asyncio.wait_for(cancelled.wait(), timeout=1)


async def test_astream_sink_takes_events_from_other_threads() -> None:
    from weft.core.runtime.events import Sink

    sink = Sink(asyncio.get_running_loop())
    waiting = asyncio.ensure_future(sink.wait())
    await asyncio.sleep(0)
    threading.Thread(target=sink.put, args=("from a thread",)).start()
    await asyncio.wait_for(waiting, timeout=2)
    assert list(sink.items) == ["from a thread"]


# -- which tokens stream, and which are the answer ------------------------------------------------


def fake_model(*answers: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=a) for a in answers]))


def texts(chunks: list[Any]) -> str:
    return "".join(str(getattr(c, "content", c)) for c in chunks)


def test_a_model_called_inside_a_lambda_streams_its_tokens_as_the_answer() -> None:
    model = fake_model("rivers carve canyons slowly")

    def explain(q: str) -> str:
        return str(model.invoke(q).content)

    g = Graph[str, str]("explain").add_node("explain", explain)
    compiled = g.add_edge(START, "explain").add_edge("explain", END).compile()
    events = list(compiled.events("how do canyons form?"))
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert len(chunks) > 3
    assert {(c.path, c.final) for c in chunks} == {(("explain",), True)}
    assert texts([c.chunk for c in chunks]) == "rivers carve canyons slowly"
    assert events[-1] == FinalOutput("rivers carve canyons slowly")


def test_generate_then_format_streams_the_generated_tokens_as_the_answer() -> None:
    graph = rag_like("tides follow the moon")  # prompt -> model -> text (upper-cases) -> END
    chunks = [e for e in graph.events("why tides?") if isinstance(e, Chunk)]
    assert chunks and all(c.final and c.path == ("model",) for c in chunks)
    streamed = list(graph.stream("why tides?"))
    assert len(streamed) > 3
    assert texts(streamed) == "tides follow the moon"
    assert graph.invoke("why tides?") == "TIDES FOLLOW THE MOON"


def test_a_model_whose_output_a_later_model_rewrites_is_not_the_answer() -> None:
    draft, final = fake_model("rough draft"), fake_model("polished text")

    def review(m: AIMessage) -> list[BaseMessage]:
        return [HumanMessage(f"improve: {m.content}")]

    g = Graph[str, AIMessage]("edit").add_node("draft", draft).add_node("review", review)
    g.add_node("edit", final).add_edge(START, "draft").add_edge("draft", "review")
    g.add_edge("review", "edit").add_edge("edit", END)
    chunks = [e for e in g.compile().events("write") if isinstance(e, Chunk)]
    assert texts([c.chunk for c in chunks if c.node == "draft"]) == "rough draft"
    assert texts([c.chunk for c in chunks if c.final]) == "polished text"


def test_a_nested_graph_streams_its_answer_tokens_through_the_outer_graph() -> None:
    outer = Graph[str, str]("outer").add_node("sub", rag_like("glaciers move downhill"))
    compiled = outer.add_edge(START, "sub").add_edge("sub", END).compile()
    chunks = [e for e in compiled.events("q") if isinstance(e, Chunk)]
    assert {(c.path, c.final) for c in chunks} == {(("sub", "model"), True)}
    assert texts(list(compiled.stream("q"))) == "glaciers move downhill"


def test_a_graph_run_inside_a_lambda_streams_under_the_lambdas_path() -> None:
    inner = rag_like("volcanoes vent magma")

    def ask_inner(q: str) -> str:
        return str(inner.invoke(q))

    g = Graph[str, str]("outer").add_node("wrap", ask_inner)
    compiled = g.add_edge(START, "wrap").add_edge("wrap", END).compile()
    events = list(compiled.events("q"))
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert {(c.path, c.final) for c in chunks} == {(("wrap", "model"), True)}
    starts = [e.path for e in events if isinstance(e, NodeStarted)]
    assert starts[:2] == [("wrap",), ("wrap", "ask")]


async def test_aevents_stream_a_model_inside_a_lambda_too() -> None:
    model = fake_model("sand dunes migrate")

    async def explain(q: str) -> str:
        return str((await model.ainvoke(q)).content)

    g = Graph[str, str]("explain").add_node("explain", explain)
    compiled = g.add_edge(START, "explain").add_edge("explain", END).compile()
    streamed = [c async for c in compiled.astream("q")]
    assert len(streamed) > 2 and texts(streamed) == "sand dunes migrate"


class Turns(TypedDict):
    history: Annotated[list[AnyMessage], add_messages]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.mark.server
def test_a_tool_calling_turn_is_never_the_answer() -> None:
    from weft.components.models import openai_chat_model
    from weft.testing import OpenAIServer, Reply, ToolCall

    def ask(q: str) -> list[BaseMessage]:
        return [HumanMessage(q)]

    def run_tools(m: AIMessage) -> list[BaseMessage]:
        return [ToolMessage(str(add(**c["args"])), tool_call_id=c["id"]) for c in m.tool_calls]

    def history(x: Any, state: Turns) -> list[AnyMessage]:
        return state["history"]

    turns = [
        Reply(text="let me add that up", tool_calls=[ToolCall("add", {"a": 40, "b": 2})]),
        Reply(text="the sum of both is 42"),
    ]
    with OpenAIServer(turns) as server:
        model = openai_chat_model(base_url=server.base_url, api_key="sk-test", max_retries=0)
        g = Graph[str, AIMessage]("adder", state=Turns)
        g.add_node("ask", ask, post=lambda msgs, state: {"history": msgs})
        g.add_node(
            "model",
            model.bind_tools([add]),
            pre=history,
            post=lambda m, state: {"history": [m]},
        )
        g.add_node("tools", run_tools, post=lambda msgs, state: {"history": msgs})
        g.add_edge(START, "ask").add_edge("ask", "model").add_edge("tools", "model")
        g.add_branch("model", lambda m: "tools" if m.tool_calls else END, ["tools", END])
        events = list(g.compile(step_limit=20).events("what is 40 + 2?"))
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert "let me add that up" in texts([c.chunk for c in chunks if not c.final])
    assert texts([c.chunk for c in chunks if c.final]) == "the sum of both is 42"
    output = events[-1]
    assert isinstance(output, FinalOutput) and output.output.content == "the sum of both is 42"


def test_a_langchain_chain_used_as_a_node_streams_its_models_tokens() -> None:
    from langchain_core.output_parsers import StrOutputParser

    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    chain = prompt | fake_model("ice ages recur") | StrOutputParser()
    g = Graph[str, str]("lcel").add_node("ask", ask).add_node("chain", chain)
    compiled = g.add_edge(START, "ask").add_edge("ask", "chain").add_edge("chain", END).compile()
    events = list(compiled.events("why?"))
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert len(chunks) > 2 and {(c.path, c.final) for c in chunks} == {(("chain",), True)}
    assert texts([c.chunk for c in chunks]) == "ice ages recur"
    assert events[-1] == FinalOutput("ice ages recur")

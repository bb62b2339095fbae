import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ContextThreadPoolExecutor

from tests.core._graphs import Shelf, parallel_graph
from weft import END, START, ConsoleHandler, Graph, MemoryHandler, add_handler, remove_handler
from weft.core.callbacks import CallbackEvent, global_handlers


def check_tree(events: list[CallbackEvent]) -> dict[str, Any]:
    """Every run starts before it ends, and its parent started before it and ends after it."""
    by_id: dict[UUID, dict[str, int]] = {}
    for i, e in enumerate(events):
        by_id.setdefault(e.info.run_id, {})[e.event] = i
    infos = {e.info.run_id: e.info for e in events}
    for run_id, pos in by_id.items():
        assert pos["start"] < pos.get("end", pos.get("error", -1))
        parent = infos[run_id].parent_run_id
        if parent is not None:
            assert by_id[parent]["start"] < pos["start"]
            assert by_id[parent]["end"] > pos["end"]
    return {i.name: i for i in infos.values()}


def test_callbacks_see_graph_nodes_and_inner_calls_as_a_tree() -> None:
    rec = MemoryHandler()
    assert parallel_graph().invoke("cats", {"callbacks": [rec]}) == "doc about cats | hi there"
    runs = check_tree(rec.events)
    graph = runs["par"]
    assert graph.kind == "graph" and graph.parent_run_id is None
    for node in ("left", "right", "join"):
        assert runs[node].kind == "node" and runs[node].parent_run_id == graph.run_id
        assert runs[node].component == "lambda:TypedLambda" and runs[node].graph == "par"
    assert runs["Shelf"].kind == "retriever" and runs["Shelf"].parent_run_id == runs["left"].run_id
    chat = runs["GenericFakeChatModel"]
    assert chat.kind == "chat_model" and chat.node == "right"
    assert chat.parent_run_id == runs["right"].run_id
    # the join starts only after both parallel branches ended
    pos = {(e.event, e.info.name): i for i, e in enumerate(rec.events)}
    assert pos[("start", "join")] > max(pos[("end", "left")], pos[("end", "right")])


async def test_callbacks_under_async_match_sync() -> None:
    rec_sync, rec_async = MemoryHandler(), MemoryHandler()
    await asyncio.to_thread(parallel_graph().invoke, "q", {"callbacks": [rec_sync]})
    await parallel_graph().ainvoke("q", {"callbacks": [rec_async]})
    check_tree(rec_async.events)

    def shape(rec: MemoryHandler) -> list[tuple[str, str, str]]:
        return sorted((e.event, e.info.kind, e.info.name) for e in rec.events)

    assert shape(rec_sync) == shape(rec_async)


def test_batch_gives_each_input_its_own_graph_run() -> None:
    rec = MemoryHandler()
    parallel_graph().batch(["a", "b", "c"], {"callbacks": [rec], "max_concurrency": 3})
    check_tree(rec.events)
    graphs = rec.of("start", "graph")
    assert len(graphs) == 3
    nodes = rec.of("start", "node")
    assert {n.info.parent_run_id for n in nodes} == {g.info.run_id for g in graphs}


def test_runs_in_a_thread_pool_keep_their_parent() -> None:
    shelf = Shelf()

    def fan(q: str) -> list[str]:
        # no config passed: the context (with the current run) is copied into the workers
        with ContextThreadPoolExecutor(max_workers=3) as pool:
            docs = list(pool.map(shelf.invoke, [q + "1", q + "2", q + "3"]))
        return [d[0].page_content for d in docs]

    g = Graph[str, list[str]]("pool").add_node("fan", fan)
    rec = MemoryHandler()
    g.add_edge(START, "fan").add_edge("fan", END).compile().invoke("x", {"callbacks": [rec]})
    runs = check_tree(rec.events)
    retrievals = rec.of("start", "retriever")
    assert len(retrievals) == 3
    assert {r.info.parent_run_id for r in retrievals} == {runs["fan"].run_id}


def test_handler_aimed_at_chosen_nodes_sees_only_them() -> None:
    rec = MemoryHandler(nodes=["right"])
    parallel_graph().invoke("q", {"callbacks": [rec]})
    assert {e.info.node for e in rec.events} == {"right"}
    assert {e.info.kind for e in rec.events} == {"node", "chat_model"}


def test_global_handler_sees_every_run_until_removed() -> None:
    rec = MemoryHandler()
    add_handler(rec)
    try:
        parallel_graph().invoke("q")
    finally:
        remove_handler(rec)
    assert len(rec.of("start", "graph")) == 1
    parallel_graph().invoke("q")
    assert len(rec.of("start", "graph")) == 1


def test_error_hook_fires_for_the_failing_node_and_graph() -> None:
    def boom(x: str) -> str:
        raise RuntimeError("kaput")

    rec = MemoryHandler()
    g = Graph[str, str]("bad").add_node("boom", boom)
    with pytest.raises(Exception, match="kaput"):
        g.add_edge(START, "boom").add_edge("boom", END).compile().invoke("x", {"callbacks": [rec]})
    failed = [(e.info.kind, e.info.name) for e in rec.of("error")]
    assert failed == [("node", "boom"), ("graph", "bad")]


def test_stream_chunk_hook_fires_for_model_tokens_and_lambda_chunks() -> None:
    from collections.abc import Iterator

    model = GenericFakeChatModel(messages=iter([AIMessage(content="a b")]))

    def words(m: AIMessage) -> Iterator[str]:
        yield from str(m.content).split()

    rec = MemoryHandler()
    g = Graph[str, str]("s").add_node("model", model).add_node("words", words)
    g.add_edge(START, "model").add_edge("model", "words").add_edge("words", END)
    list(g.compile().events("q", {"callbacks": [rec]}))
    chunks = rec.of("chunk")
    model_tokens = [e.payload.content for e in chunks if e.info.kind == "chat_model"]
    assert "".join(model_tokens) == "a b"
    assert [e.payload for e in chunks if e.info.kind == "node"] == ["a", "b"]


def test_console_handler_prints_an_indented_tree() -> None:
    out = io.StringIO()
    parallel_graph().invoke("q", {"callbacks": [ConsoleHandler(out)]})
    lines = out.getvalue().splitlines()
    assert lines[0] == "▶ graph par"
    assert lines[-1].startswith("✓ graph par")
    assert any(line.startswith("  ▶ node left  lambda:TypedLambda") for line in lines)
    assert any(line.startswith("    ▶ retriever Shelf") for line in lines)
    assert all(" ms" in line for line in lines if line.lstrip().startswith("✓"))


def test_handlers_get_exactly_the_graph_and_node_runs_with_inputs_and_outputs() -> None:
    rec = MemoryHandler()
    g = Graph[str, str]("two").add_node("up", str.upper, input_type=str, output_type=str)
    g.add_node("twice", lambda s: s * 2, input_type=str, output_type=str)
    g.add_edge(START, "up").add_edge("up", "twice").add_edge("twice", END)
    assert g.compile().invoke("ab", {"callbacks": [rec]}) == "ABAB"
    assert [(e.event, e.info.kind, e.info.name, e.payload) for e in rec.events] == [
        ("start", "graph", "two", "ab"),
        ("start", "node", "up", "ab"),
        ("end", "node", "up", "AB"),
        ("start", "node", "twice", "AB"),
        ("end", "node", "twice", "ABAB"),
        ("end", "graph", "two", "ABAB"),
    ]


def test_graph_called_inside_a_node_without_config_nests_under_the_node() -> None:
    inner_b = Graph[str, str]("inner").add_node("shout", str.upper, input_type=str, output_type=str)
    inner = inner_b.add_edge(START, "shout").add_edge("shout", END).compile()

    def call_inner(s: str) -> str:
        return inner.invoke(s) + "!"

    rec = MemoryHandler()
    outer = Graph[str, str]("outer").add_node("wrap", call_inner)
    assert (
        outer.add_edge(START, "wrap")
        .add_edge("wrap", END)
        .compile()
        .invoke("hi", {"callbacks": [rec]})
        == "HI!"
    )
    runs = check_tree(rec.events)
    assert runs["inner"].kind == "graph" and runs["inner"].parent_run_id == runs["wrap"].run_id
    assert runs["shout"].parent_run_id == runs["inner"].run_id
    assert runs["shout"].graph == "inner"
    # once the outer run is over, the inner graph alone reports nothing
    rec.clear()
    assert inner.invoke("x") == "X" and rec.events == []


def test_bridge_inside_a_langchain_sequence_reports_the_graph_under_it() -> None:
    from langchain_core.runnables import RunnableLambda

    from weft.core.callbacks import CallbackBridge

    rec = MemoryHandler()
    g = Graph[str, str]("g").add_node("up", str.upper, input_type=str, output_type=str)
    seq = RunnableLambda(lambda s: s + "?") | g.add_edge(START, "up").add_edge("up", END).compile()
    assert seq.invoke("ok", {"callbacks": [CallbackBridge([rec])]}) == "OK?"
    runs = check_tree(rec.events)
    assert runs["g"].kind == "graph" and runs["g"].parent_run_id is None
    assert runs["up"].parent_run_id == runs["g"].run_id
    assert {e.info.kind for e in rec.events} == {"graph", "node"}


def _inner_graph() -> Any:
    g = Graph[str, str]("inner").add_node("shout", str.upper, input_type=str, output_type=str)
    return g.add_edge(START, "shout").add_edge("shout", END).compile()


async def test_a_graph_awaited_inside_a_node_of_a_stream_keeps_its_events_to_itself() -> None:
    inner = _inner_graph()

    async def call_inner(s: str) -> str:
        return await inner.ainvoke(s, {"tags": ["inner"]}) + "!"

    async def chars(s: str) -> AsyncIterator[str]:
        for ch in s:
            yield ch

    rec = MemoryHandler()
    outer = Graph[str, str]("outer").add_node("wrap", call_inner).add_node("spell", chars)
    compiled = outer.add_edge(START, "wrap").add_edge("wrap", "spell").add_edge("spell", END)
    config: Any = {"callbacks": [rec]}
    chunks = [c async for c in compiled.compile().astream_output("hi", config)]
    assert chunks == ["H", "I", "!"]
    runs = check_tree(rec.events)
    assert runs["inner"].parent_run_id == runs["wrap"].run_id
    assert runs["shout"].parent_run_id == runs["inner"].run_id


def test_a_model_called_from_a_plain_thread_with_the_config_reports_under_its_node() -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = GenericFakeChatModel(messages=iter([AIMessage(content="from a thread")]))

    def ask(q: str, config: RunnableConfig) -> str:
        with ThreadPoolExecutor(max_workers=1) as pool:  # does not copy the context
            return str(pool.submit(model.invoke, q, config).result().content)

    rec = MemoryHandler()
    g = Graph[str, str]("t").add_node("ask", ask).add_edge(START, "ask").add_edge("ask", END)
    assert g.compile().invoke("q", {"callbacks": [rec]}) == "from a thread"
    runs = check_tree(rec.events)
    chat = runs["GenericFakeChatModel"]
    assert chat.parent_run_id == runs["ask"].run_id and chat.node == "ask"


def test_a_model_given_its_own_callbacks_list_inside_a_node_still_reports_under_it() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    model = GenericFakeChatModel(messages=iter([AIMessage(content="own callbacks")]))
    seen: list[str] = []

    class Tap(BaseCallbackHandler):
        def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            seen.append("tap")

    def ask(q: str) -> str:
        return str(model.invoke(q, {"callbacks": [Tap()]}).content)

    rec = MemoryHandler()
    g = Graph[str, str]("t").add_node("ask", ask).add_edge(START, "ask").add_edge("ask", END)
    assert g.compile().invoke("q", {"callbacks": [rec]}) == "own callbacks"
    runs = check_tree(rec.events)
    assert seen == ["tap"]
    assert runs["GenericFakeChatModel"].parent_run_id == runs["ask"].run_id


def test_a_graph_streamed_inside_a_node_with_its_own_handlers_reports_to_them_only() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="inner words")]))
    g_in = Graph[str, AIMessage]("inner").add_node("model", model)
    inner = g_in.add_edge(START, "model").add_edge("model", END).compile()
    own = MemoryHandler()

    def call_inner(s: str) -> str:
        events = list(inner.events(s, {"callbacks": [own], "run_id": uuid.uuid4()}))
        return str(events[-1].output.content)

    rec = MemoryHandler()
    outer = Graph[str, str]("outer").add_node("wrap", call_inner)
    compiled = outer.add_edge(START, "wrap").add_edge("wrap", END).compile()
    assert compiled.invoke("q", {"callbacks": [rec]}) == "inner words"
    assert {e.info.name for e in rec.events} == {"outer", "wrap"}
    inner_runs = check_tree(own.events)
    assert {"inner", "model", "GenericFakeChatModel"} <= set(inner_runs)
    assert [e.event for e in own.events if e.info.kind == "graph"] == ["start", "end"]


def test_every_bridge_of_a_langchain_sequence_hears_the_graph() -> None:
    from langchain_core.runnables import RunnableLambda

    from weft.core.callbacks import CallbackBridge

    a, b = MemoryHandler(), MemoryHandler()
    seq = RunnableLambda(lambda s: s + "?") | _inner_graph()
    assert seq.invoke("ok", {"callbacks": [CallbackBridge([a]), CallbackBridge([b])]}) == "OK?"
    for rec in (a, b):
        runs = check_tree(rec.events)
        assert runs["shout"].parent_run_id == runs["inner"].run_id


def test_langchain_handlers_see_the_graph_run_under_weft_s_run_id() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    roots: list[UUID] = []

    class Roots(BaseCallbackHandler):
        def on_chain_start(self, *args: Any, run_id: UUID, parent_run_id: Any = None, **kw: Any):
            if parent_run_id is None:
                roots.append(run_id)

    rec = MemoryHandler()
    _inner_graph().invoke("x", {"callbacks": [rec, Roots()]})
    assert roots == [rec.of("start", "graph")[0].info.run_id]


class PlainRecorder:
    """A handler written as docs/core.md sketches it: a plain class with the four hooks."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def on_start(self, info: Any, input: Any) -> None:
        self.seen.append(("start", info.kind, info.name))

    def on_end(self, info: Any, output: Any) -> None:
        self.seen.append(("end", info.kind, info.name))

    def on_error(self, info: Any, error: BaseException) -> None:
        self.seen.append(("error", info.kind, info.name))

    def on_stream_chunk(self, info: Any, chunk: Any) -> None:
        self.seen.append(("chunk", info.kind, info.name))


def test_a_plain_class_with_the_hooks_works_as_a_global_handler() -> None:
    plain = PlainRecorder()
    add_handler(plain)
    try:
        parallel_graph().invoke("q")
    finally:
        remove_handler(plain)
    assert ("start", "graph", "par") in plain.seen and ("end", "graph", "par") in plain.seen
    assert ("start", "chat_model", "GenericFakeChatModel") in plain.seen
    count = len(plain.seen)
    parallel_graph().invoke("q")  # removed by the object it was added as
    assert len(plain.seen) == count


async def test_a_plain_handler_in_the_config_sees_only_its_nodes() -> None:
    plain = PlainRecorder()
    plain.nodes = {"right"}  # type: ignore[attr-defined]
    await parallel_graph().ainvoke("q", {"callbacks": [plain]})
    assert {kind for _, kind, _ in plain.seen} == {"node", "chat_model"}
    assert ("start", "node", "right") in plain.seen


def test_a_handler_needs_only_the_hooks_it_uses() -> None:
    class Starts:
        def __init__(self) -> None:
            self.names: list[str] = []

        def on_start(self, info: Any, input: Any) -> None:
            self.names.append(info.name)

    starts = Starts()
    parallel_graph().invoke("q", {"callbacks": [starts]})
    assert starts.names[0] == "par" and "left" in starts.names


class NoHooks:
    def handle(self, event: Any) -> None: ...


class Misspelt(PlainRecorder):
    def on_chunk(self, info: Any, chunk: Any) -> None: ...


class NotCallable:
    on_start = "start"


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (NoHooks(), "it has none of the hooks; subclass weft.Handler"),
        (Misspelt(), "has on_chunk, which no weft hook is called"),
        (NotCallable(), "its on_start is not callable; subclass weft.Handler"),
        (print, "it has none of the hooks; subclass weft.Handler"),
    ],
    ids=["no-hooks", "misspelt-hook", "hook-not-callable", "a-function"],
)
def test_add_handler_refuses_what_is_no_handler_and_says_to_subclass_handler(
    handler: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        add_handler(handler)
    assert handler not in [getattr(h, "target", h) for h in global_handlers()]


def test_a_langchain_callback_handler_is_pointed_to_the_config() -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    with pytest.raises(TypeError, match=r"langchain-core callback handler.*config=\{'callbacks'"):
        add_handler(BaseCallbackHandler())


def test_something_that_is_no_handler_in_the_config_fails_before_the_run() -> None:
    rec = MemoryHandler()
    with pytest.raises(TypeError, match=r"subclass weft\.Handler"):
        parallel_graph().invoke("q", {"callbacks": [rec, NoHooks()]})
    assert rec.events == []

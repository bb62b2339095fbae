"""OTelHandler: span names, kinds, attributes and parentage; content opt-in and masking; metrics."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.retrievers import LangSmithRetrieverParams
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ContextThreadPoolExecutor
from langchain_core.tools import tool
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.core._graphs import Shelf, parallel_graph
from weft import END, START, Graph
from weft.components.models import OpenAIChatModel, openai_chat_model
from weft.core.callbacks import CallbackBridge
from weft.core.errors import MissingExtraError
from weft.core.tracing import (
    OTelHandler,
    PrometheusTextReader,
    disable_tracing,
    embeddings_span,
    enable_tracing,
    read_spans,
    record_cache_lookup,
)
from weft.testing import Fault, OpenAIServer


@dataclass
class Otel:
    handler: OTelHandler
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    provider: TracerProvider

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def by_name(self) -> dict[str, ReadableSpan]:
        spans = self.spans
        named = {s.name: s for s in spans}
        assert len(named) == len(spans), f"duplicate span names: {[s.name for s in spans]}"
        return named

    def metric_points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            p
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.data.data_points
        ]


def make_otel(**kwargs: Any) -> Otel:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    handler = OTelHandler(provider, MeterProvider(metric_readers=[reader]), **kwargs)
    return Otel(handler, exporter, reader, provider)


@pytest.fixture
def otel() -> Otel:
    return make_otel()


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    matches = [s for s in spans if s.context.span_id == span.parent.span_id]
    assert len(matches) == 1, f"parent of {span.name} is not among the finished spans"
    return matches[0]


def shape(spans: list[ReadableSpan]) -> set[tuple[str, str | None]]:
    """(span, parent span) name pairs: the tree's shape."""
    out = set()
    for s in spans:
        p = parent_of(s, spans)
        out.add((s.name, p.name if p else None))
    return out


PARALLEL_SHAPE = {
    ("invoke_workflow par", None),
    ("node left", "invoke_workflow par"),
    ("node right", "invoke_workflow par"),
    ("node join", "invoke_workflow par"),
    ("retrieval shelf", "node left"),
    ("chat GenericFakeChatModel", "node right"),
}


# -- names, kinds, attributes, parentage ----------------------------------------------------------


def test_graph_run_becomes_a_workflow_span_with_node_and_call_children(otel: Otel) -> None:
    assert parallel_graph().invoke("cats", {"callbacks": [otel.handler]}) == (
        "doc about cats | hi there"
    )
    spans = otel.spans
    assert shape(spans) == PARALLEL_SHAPE
    assert len({s.context.trace_id for s in spans}) == 1
    named = otel.by_name()
    wf = named["invoke_workflow par"]
    assert wf.kind == SpanKind.INTERNAL
    assert wf.attributes == {
        "gen_ai.operation.name": "invoke_workflow",
        "gen_ai.workflow.name": "par",
    }
    left = named["node left"]
    assert left.kind == SpanKind.INTERNAL
    assert left.attributes is not None
    assert left.attributes["weft.node.name"] == "left"
    assert left.attributes["weft.graph.name"] == "par"
    assert left.attributes["weft.component.kind"] == "lambda"
    assert left.attributes["weft.component"] == "lambda:TypedLambda"
    chat = named["chat GenericFakeChatModel"]
    assert chat.kind == SpanKind.CLIENT
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert "gen_ai.provider.name" in chat.attributes
    retrieval = named["retrieval shelf"]
    assert retrieval.attributes is not None
    assert retrieval.attributes["gen_ai.operation.name"] == "retrieval"
    assert retrieval.attributes["gen_ai.data_source.id"] == "shelf"
    assert retrieval.attributes["weft.retrieval.document_count"] == 1
    # children lie inside their parents in time
    for s in spans:
        p = parent_of(s, spans)
        if p is not None:
            assert p.start_time <= s.start_time and s.end_time <= p.end_time  # type: ignore[operator]


async def test_async_run_has_the_same_tree(otel: Otel) -> None:
    await parallel_graph().ainvoke("q", {"callbacks": [otel.handler]})
    assert shape(otel.spans) == PARALLEL_SHAPE


def test_batch_gives_each_input_its_own_trace(otel: Otel) -> None:
    parallel_graph().batch(["a", "b", "c"], {"callbacks": [otel.handler], "max_concurrency": 3})
    spans = otel.spans
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["invoke_workflow par"] * 3
    assert len({s.context.trace_id for s in spans}) == 3
    for s in spans:
        if s.parent is not None:
            root = s
            while root.parent is not None:
                p = parent_of(root, spans)
                assert p is not None
                root = p
            assert root.context.trace_id == s.context.trace_id
    assert sorted(n for n, _ in shape(spans)) == sorted(n for n, _ in PARALLEL_SHAPE)


def test_calls_in_a_thread_pool_nest_under_their_node(otel: Otel) -> None:
    shelf = Shelf()

    def fan(q: str) -> list[str]:
        with ContextThreadPoolExecutor(max_workers=3) as pool:
            docs = list(pool.map(shelf.invoke, [q + "1", q + "2", q + "3"]))
        return [d[0].page_content for d in docs]

    g = Graph[str, list[str]]("pool").add_node("fan", fan)
    g.add_edge(START, "fan").add_edge("fan", END).compile().invoke(
        "x", {"callbacks": [otel.handler]}
    )
    spans = otel.spans
    retrievals = [s for s in spans if s.name == "retrieval shelf"]
    assert len(retrievals) == 3
    assert {p.name for r in retrievals if (p := parent_of(r, spans))} == {"node fan"}


def test_nested_graph_nests_its_workflow_under_the_node(otel: Otel) -> None:
    inner = Graph[str, str]("inner").add_node("shout", str.upper, input_type=str, output_type=str)
    inner_graph = inner.add_edge(START, "shout").add_edge("shout", END).compile()
    outer = Graph[str, str]("outer").add_node("sub", inner_graph)
    outer.add_edge(START, "sub").add_edge("sub", END)
    assert outer.compile().invoke("hi", {"callbacks": [otel.handler]}) == "HI"
    assert shape(otel.spans) == {
        ("invoke_workflow outer", None),
        ("node sub", "invoke_workflow outer"),
        ("invoke_workflow inner", "node sub"),
        ("node shout", "invoke_workflow inner"),
    }
    assert otel.by_name()["node sub"].attributes["weft.component.kind"] == "graph"  # type: ignore[index]


def test_top_level_run_joins_the_callers_current_span(otel: Otel) -> None:
    tracer = otel.provider.get_tracer("app")
    with tracer.start_as_current_span("http request"):
        parallel_graph().invoke("q", {"callbacks": [otel.handler]})
    spans = otel.spans
    wf = otel.by_name()["invoke_workflow par"]
    parent = parent_of(wf, spans)
    assert parent is not None and parent.name == "http request"


def test_failing_node_marks_node_and_graph_spans_with_error_type(otel: Otel) -> None:
    def boom(x: str) -> str:
        raise RuntimeError("write to li.lei@example.com failed")

    g = Graph[str, str]("bad").add_node("boom", boom)
    with pytest.raises(Exception, match="failed"):
        g.add_edge(START, "boom").add_edge("boom", END).compile().invoke(
            "x", {"callbacks": [otel.handler]}
        )
    named = otel.by_name()
    node = named["node boom"]
    assert node.status.status_code == StatusCode.ERROR
    assert node.attributes["error.type"] == "RuntimeError"  # type: ignore[index]
    assert (node.status.description or "").endswith("RuntimeError: write to [EMAIL] failed")
    assert [e.name for e in node.events] == ["exception"]
    assert named["invoke_workflow bad"].status.status_code == StatusCode.ERROR
    errors = otel.metric_points("weft.errors")
    assert {(p.attributes["weft.run.kind"], p.value) for p in errors} == {("node", 1), ("graph", 1)}


# -- chat model calls over HTTP -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as s:
        yield s


def model_graph(model: Any) -> Any:
    g = Graph[str, AIMessage]("ask").add_node("model", model)
    return g.add_edge(START, "model").add_edge("model", END).compile()


@pytest.mark.server
def test_streamed_chat_call_records_usage_ttft_server_and_request_params(
    otel: Otel, server: OpenAIServer
) -> None:
    server.reset()
    server.script("Paris is the capital of France.")
    model = OpenAIChatModel(
        model="gpt-4o-mini",
        base_url=server.base_url,
        api_key="test",
        temperature=0.2,
        max_tokens=64,
        max_retries=0,
    )
    events = list(model_graph(model).events("Capital of France?", {"callbacks": [otel.handler]}))
    final = events[-1].output  # type: ignore[union-attr]
    assert final.content == "Paris is the capital of France."
    named = otel.by_name()
    chat = named["chat gpt-4o-mini"]
    a = dict(chat.attributes or {})
    assert chat.kind == SpanKind.CLIENT
    assert parent_of(chat, otel.spans).name == "node model"  # type: ignore[union-attr]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == server.port
    usage = final.usage_metadata
    assert a["gen_ai.usage.input_tokens"] == usage["input_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] == usage["output_tokens"] > 0
    assert a["gen_ai.request.stream"] is True
    assert str(a["gen_ai.response.id"]).startswith("chatcmpl-")
    duration = (chat.end_time - chat.start_time) / 1e9  # type: ignore[operator]
    assert 0 < a["gen_ai.response.time_to_first_chunk"] <= duration  # type: ignore[operator]
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    wf = dict(named["invoke_workflow ask"].attributes or {})
    assert wf["weft.usage.input_tokens"] == usage["input_tokens"]
    assert wf["weft.usage.output_tokens"] == usage["output_tokens"]
    # metrics
    durations = otel.metric_points("gen_ai.client.operation.duration")
    assert [p.attributes["gen_ai.request.model"] for p in durations] == ["gpt-4o-mini"]
    assert durations[0].attributes["server.port"] == server.port
    # the conventions' bucket advice, up to 81.92 s
    assert durations[0].explicit_bounds[-3:] == (20.48, 40.96, 81.92)
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in otel.metric_points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": usage["input_tokens"], "output": usage["output_tokens"]}
    assert len(otel.metric_points("gen_ai.client.operation.time_to_first_chunk")) == 1


@pytest.mark.server
def test_unstreamed_chat_call_records_response_id_and_no_ttft(
    otel: Otel, server: OpenAIServer
) -> None:
    server.reset()
    server.script("Bonjour !")
    model = openai_chat_model(base_url=server.base_url, api_key="test", max_retries=0)
    out = model_graph(model).invoke("Say hello", {"callbacks": [otel.handler]})
    a = dict(otel.by_name()["chat gpt-4o-mini"].attributes or {})
    assert a["gen_ai.response.id"] == out.response_metadata["id"]
    assert str(a["gen_ai.response.id"]).startswith("chatcmpl-")
    assert "gen_ai.response.time_to_first_chunk" not in a
    assert (a["server.address"], a["server.port"]) == ("127.0.0.1", server.port)


@pytest.mark.server
def test_failed_chat_call_sets_error_type_on_chat_node_and_graph(
    otel: Otel, server: OpenAIServer
) -> None:
    server.reset()
    server.script(Fault.bad_request("Invalid 'messages': call 13812345678."))
    model = openai_chat_model(base_url=server.base_url, api_key="test", max_retries=0)
    with pytest.raises(Exception, match="rejected the request"):
        model_graph(model).invoke("hi", {"callbacks": [otel.handler]})
    named = otel.by_name()
    for name in ("chat gpt-4o-mini", "node model", "invoke_workflow ask"):
        span = named[name]
        assert span.status.status_code == StatusCode.ERROR, name
        assert span.attributes["error.type"] == "weft.core.errors.BadRequestError", name  # type: ignore[index]
    assert "13812345678" not in (named["chat gpt-4o-mini"].status.description or "")
    [point] = otel.metric_points("gen_ai.client.operation.duration")
    assert point.attributes["error.type"] == "weft.core.errors.BadRequestError"


# -- content --------------------------------------------------------------------------------------

PII_QUESTION = "I am li.lei@example.com, phone 13812345678, card 4111 1111 1111 1111"


def echo_graph() -> Any:
    model = GenericFakeChatModel(messages=iter([AIMessage("Noted: call +86 139 0000 1111")]))
    return model_graph(model)


def test_message_content_is_not_recorded_by_default(otel: Otel) -> None:
    echo_graph().invoke(PII_QUESTION, {"callbacks": [otel.handler]})
    for span in otel.spans:
        assert not any(
            k in (span.attributes or {})
            for k in ("gen_ai.input.messages", "gen_ai.output.messages")
        )
        assert "li.lei" not in json.dumps(dict(span.attributes or {}))


def test_recorded_content_is_masked_by_default() -> None:
    otel = make_otel(capture_content=True)
    echo_graph().invoke(PII_QUESTION, {"callbacks": [otel.handler]})
    a = dict(otel.by_name()["chat GenericFakeChatModel"].attributes or {})
    inputs = json.loads(str(a["gen_ai.input.messages"]))
    assert inputs == [
        {
            "role": "user",
            "parts": [{"type": "text", "content": "I am [EMAIL], phone [PHONE], card [BANK_CARD]"}],
        }
    ]
    outputs = json.loads(str(a["gen_ai.output.messages"]))
    assert outputs[0]["role"] == "assistant"
    assert outputs[0]["parts"] == [{"type": "text", "content": "Noted: call [PHONE]"}]


def test_recorded_content_is_raw_when_masking_is_off() -> None:
    otel = make_otel(capture_content=True, mask=False)
    echo_graph().invoke(PII_QUESTION, {"callbacks": [otel.handler]})
    a = dict(otel.by_name()["chat GenericFakeChatModel"].attributes or {})
    assert PII_QUESTION in json.loads(str(a["gen_ai.input.messages"]))[0]["parts"][0]["content"]


def test_content_after_line_breaks_is_masked_and_stays_valid_json() -> None:
    otel = make_otel(capture_content=True)
    model = GenericFakeChatModel(messages=iter([AIMessage("Call\n13812345678 or\tli@x.io")]))
    list(
        model_graph(model).events(
            "Mail:\nli.lei@example.com\nID:\t11010519491231002X", {"callbacks": [otel.handler]}
        )
    )
    a = dict(otel.by_name()["chat GenericFakeChatModel"].attributes or {})
    inputs = json.loads(str(a["gen_ai.input.messages"]))
    assert inputs[0]["parts"][0]["content"] == "Mail:\n[EMAIL]\nID:\t[ID_CARD]"
    outputs = json.loads(str(a["gen_ai.output.messages"]))  # streamed: the model's chunks
    assert outputs[0]["role"] == "assistant"
    assert outputs[0]["parts"][0]["content"] == "Call\n[PHONE] or\t[EMAIL]"


def test_tool_messages_follow_the_conventions_message_schema() -> None:
    otel = make_otel(capture_content=True)
    model = GenericFakeChatModel(messages=iter([AIMessage("3")]))
    call = {"id": "c1", "name": "add", "args": {"a": 1, "b": 2}}
    messages = [
        HumanMessage("add"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("3", tool_call_id="c1"),
    ]
    model.invoke(messages, {"callbacks": [CallbackBridge([otel.handler])]})
    a = dict(otel.by_name()["chat GenericFakeChatModel"].attributes or {})
    inputs = json.loads(str(a["gen_ai.input.messages"]))
    assert [m["role"] for m in inputs] == ["user", "assistant", "tool"]
    assert inputs[1]["parts"] == [
        {"type": "tool_call", "id": "c1", "name": "add", "arguments": {"a": 1, "b": 2}}
    ]
    assert inputs[2]["parts"] == [{"type": "tool_call_response", "id": "c1", "response": "3"}]


# -- retrievers, tools, embeddings ----------------------------------------------------------------


class KShelf(Shelf):
    k: int = 2

    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        params = super()._get_ls_params(**kwargs)
        params["weft_top_k"] = self.k  # type: ignore[typeddict-unknown-key]
        return params

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        with embeddings_span("text-embedding-3-small", callbacks=run_manager) as call:
            call.record(input_tokens=3, dimensions=8)
        return super()._get_relevant_documents(query, run_manager=run_manager)


def test_retrieval_span_has_top_k_query_opt_in_and_embeddings_child() -> None:
    otel = make_otel(capture_content=True)
    g = Graph[str, list[Document]]("rag").add_node("retrieve", KShelf())
    g.add_edge(START, "retrieve").add_edge("retrieve", END).compile().invoke(
        "mail a@b.io", {"callbacks": [otel.handler]}
    )
    named = otel.by_name()
    assert named["retrieval kshelf"].kind == SpanKind.CLIENT
    r = dict(named["retrieval kshelf"].attributes or {})
    assert r["gen_ai.request.top_k"] == 2.0
    assert r["gen_ai.retrieval.query.text"] == "mail [EMAIL]"
    assert json.loads(str(r["gen_ai.retrieval.documents"])) == [{"id": "d1", "score": None}]
    emb = named["embeddings text-embedding-3-small"]
    assert emb.kind == SpanKind.CLIENT
    assert parent_of(emb, otel.spans).name == "retrieval kshelf"  # type: ignore[union-attr]
    assert emb.attributes["gen_ai.usage.input_tokens"] == 3  # type: ignore[index]
    assert emb.attributes["gen_ai.embeddings.dimension.count"] == 8  # type: ignore[index]


def test_embeddings_span_without_run_manager_joins_the_current_node(otel: Otel) -> None:
    def embed(text: str) -> int:
        with embeddings_span("emb", base_url="https://api.example.com/v1") as call:
            call.record(input_tokens=1)
        return len(text)

    g = Graph[str, int]("e").add_node("embed", embed)
    g.add_edge(START, "embed").add_edge("embed", END).compile().invoke(
        "x", {"callbacks": [otel.handler]}
    )
    emb = otel.by_name()["embeddings emb"]
    assert parent_of(emb, otel.spans).name == "node embed"  # type: ignore[union-attr]
    assert emb.attributes["server.address"] == "api.example.com"  # type: ignore[index]
    assert emb.attributes["server.port"] == 443  # type: ignore[index]


def test_embeddings_span_records_error_type(otel: Otel) -> None:
    def embed(text: str) -> int:
        with embeddings_span("emb"):
            raise TimeoutError("slow")

    g = Graph[str, int]("e").add_node("embed", embed)
    with pytest.raises(Exception, match="slow"):
        g.add_edge(START, "embed").add_edge("embed", END).compile().invoke(
            "x", {"callbacks": [otel.handler]}
        )
    emb = otel.by_name()["embeddings emb"]
    assert emb.attributes["error.type"] == "TimeoutError"  # type: ignore[index]


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def test_tool_call_becomes_execute_tool_span() -> None:
    otel = make_otel(capture_content=True)

    def calc(x: int, config: RunnableConfig) -> int:
        return int(add.invoke({"a": x, "b": 2}, config))

    g = Graph[int, int]("calc").add_node("calc", calc)
    g.add_edge(START, "calc").add_edge("calc", END).compile().invoke(
        40, {"callbacks": [otel.handler]}
    )
    span = otel.by_name()["execute_tool add"]
    assert span.kind == SpanKind.INTERNAL
    assert parent_of(span, otel.spans).name == "node calc"  # type: ignore[union-attr]
    a = dict(span.attributes or {})
    assert a["gen_ai.tool.name"] == "add" and a["gen_ai.operation.name"] == "execute_tool"
    assert json.loads(str(a["gen_ai.tool.call.arguments"])) == {"a": 40, "b": 2}
    assert a["gen_ai.tool.call.result"] == "42"
    assert a["gen_ai.tool.description"] == "Add two numbers."


def test_a_model_requested_tool_call_carries_its_call_id() -> None:
    otel = make_otel()

    def calc(x: int, config: RunnableConfig) -> int:
        call = {"name": "add", "args": {"a": x, "b": 2}, "id": "call_7", "type": "tool_call"}
        return int(add.invoke(call, config).content)

    g = Graph[int, int]("calc").add_node("calc", calc)
    g.add_edge(START, "calc").add_edge("calc", END).compile().invoke(
        40, {"callbacks": [otel.handler]}
    )
    a = dict(otel.by_name()["execute_tool add"].attributes or {})
    assert a["gen_ai.tool.call.id"] == "call_7"


# -- metrics --------------------------------------------------------------------------------------


def test_graph_and_node_latency_histograms_and_cache_counter(otel: Otel) -> None:
    parallel_graph().invoke("q", {"callbacks": [otel.handler]})
    record_cache_lookup(True, cache="answers")
    record_cache_lookup(False, cache="answers")
    record_cache_lookup(True, cache="answers", level="disk")
    nodes = otel.metric_points("weft.node.duration")
    assert {p.attributes["weft.node.name"]: p.count for p in nodes} == {
        "left": 1,
        "right": 1,
        "join": 1,
    }
    [graph] = otel.metric_points("weft.graph.duration")
    assert graph.count == 1 and graph.attributes["weft.graph.name"] == "par"
    assert graph.explicit_bounds[-1] >= 120  # a graph that calls models takes seconds
    assert graph.sum >= max(p.sum for p in nodes)
    cache = {
        (p.attributes["weft.cache.level"], p.attributes["weft.cache.result"]): p.value
        for p in otel.metric_points("weft.cache.requests")
    }
    assert cache == {("memory", "hit"): 1, ("memory", "miss"): 1, ("disk", "hit"): 1}
    ops = {
        p.attributes["gen_ai.operation.name"]
        for p in otel.metric_points("gen_ai.client.operation.duration")
    }
    assert ops == {"chat", "retrieval"}


def test_node_metrics_off_keeps_node_spans_and_graph_latency() -> None:
    otel = make_otel(node_metrics=False)
    parallel_graph().invoke("q", {"callbacks": [otel.handler]})
    assert shape(otel.spans) == PARALLEL_SHAPE
    assert otel.metric_points("weft.node.duration") == []
    [graph] = otel.metric_points("weft.graph.duration")
    assert graph.count == 1


class _Wrapped(trace.TracerProvider):
    """A tracer provider that is not the SDK's: its tracers only have ``start_span``."""

    def __init__(self, inner: TracerProvider) -> None:
        self.inner = inner

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        sdk_tracer = self.inner.get_tracer(*args, **kwargs)

        class _Tracer:
            def start_span(self, *a: Any, **kw: Any) -> Any:
                return sdk_tracer.start_span(*a, **kw)

        return _Tracer()


def test_a_tracer_that_is_not_the_sdks_gets_ordinary_node_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = OTelHandler(_Wrapped(provider), MeterProvider(metric_readers=[]))
    assert handler._scope is None  # no span processor to hand finished spans to
    parallel_graph().invoke("q", {"callbacks": [handler]})
    assert shape(list(exporter.get_finished_spans())) == PARALLEL_SHAPE


def test_prometheus_text_renders_histograms_and_counters() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = PrometheusTextReader()
    handler = OTelHandler(provider, MeterProvider(metric_readers=[reader]))
    parallel_graph().invoke("q", {"callbacks": [handler]})
    record_cache_lookup(False, cache="c")
    text = reader.text()
    lines = text.splitlines()
    assert "# TYPE weft_node_duration_seconds histogram" in lines
    inf = [
        ln
        for ln in lines
        if ln.startswith("weft_node_duration_seconds_bucket") and 'le="+Inf"' in ln
    ]
    assert len(inf) == 3 and all(ln.endswith(" 1") for ln in inf)
    assert any('weft_node_name="join"' in ln for ln in inf)
    assert "# TYPE weft_cache_requests_total counter" in lines
    assert (
        'weft_cache_requests_total{weft_cache_level="memory",weft_cache_name="c",'
        'weft_cache_result="miss"} 1' in lines
    )
    # buckets are cumulative
    join = [
        ln for ln in lines if ln.startswith("weft_node_duration_seconds_bucket") and '"join"' in ln
    ]
    counts = [int(ln.rsplit(" ", 1)[1]) for ln in join]
    assert counts == sorted(counts)


# -- setup ----------------------------------------------------------------------------------------


def test_enable_tracing_writes_jsonl_and_leaves_the_global_provider_alone(tmp_path: Any) -> None:
    before = trace.get_tracer_provider()
    path = tmp_path / "t.jsonl"
    handler = enable_tracing(path=str(path))
    try:
        parallel_graph().invoke("q")  # a global handler: no callbacks in the config
        assert "weft_graph_duration_seconds_count" in handler.metrics_text()
    finally:
        disable_tracing(handler)
    parallel_graph().invoke("q")  # no longer traced
    assert trace.get_tracer_provider() is before
    spans = read_spans(path)
    assert sorted(s["name"] for s in spans) == sorted(n for n, _ in PARALLEL_SHAPE)
    ids = {s["span_id"]: s for s in spans}
    pairs = {(s["name"], ids[s["parent_id"]]["name"] if s["parent_id"] else None) for s in spans}
    assert pairs == PARALLEL_SHAPE
    chat = next(s for s in spans if s["name"].startswith("chat"))
    assert chat["kind"] == "CLIENT" and chat["attributes"]["gen_ai.operation.name"] == "chat"
    assert all(s["end"] >= s["start"] for s in spans)


def test_otlp_without_the_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(MissingExtraError, match=r'pip install "weft\[otlp\]"'):
        enable_tracing("otlp")


def test_handler_given_to_one_call_does_not_trace_others(otel: Otel) -> None:
    parallel_graph().invoke("q")
    assert otel.spans == []
    asyncio.run(parallel_graph().ainvoke("q", {"callbacks": [otel.handler]}))
    assert len(otel.spans) == len(PARALLEL_SHAPE)


def test_a_completion_model_call_is_a_text_completion_span(otel: Otel) -> None:
    from langchain_core.language_models import FakeListLLM

    llm = FakeListLLM(responses=["four"])
    g = Graph[str, str]("complete").add_node("llm", llm)
    out = (
        g.add_edge(START, "llm")
        .add_edge("llm", END)
        .compile()
        .invoke("2 + 2 =", {"callbacks": [otel.handler]})
    )
    assert out == "four"
    (span,) = [s for s in otel.spans if s.kind == SpanKind.CLIENT]
    assert span.name.startswith("text_completion ")
    assert dict(span.attributes or {})["gen_ai.operation.name"] == "text_completion"
    assert parent_of(span, otel.spans).name == "node llm"  # type: ignore[union-attr]

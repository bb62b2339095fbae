"""OpenTelemetry tracing and metrics for graph runs, following the GenAI semantic conventions.

Turn it on with one line; it writes spans to ``./.weft/traces.jsonl`` for ``weft trace``::

    from weft.core.tracing import enable_tracing; enable_tracing()

or send them elsewhere: ``enable_tracing("console")``, ``enable_tracing("otlp")`` (needs
``pip install "weft[otlp]"``), or your own ``tracer_provider=``/``meter_provider=``. weft never
sets the global OpenTelemetry providers unless ``set_global=True``.

What each run becomes:

- graph: ``invoke_workflow {graph}``, INTERNAL, with ``gen_ai.workflow.name``;
- node: ``node {node}``, INTERNAL, with ``weft.node.name`` and ``weft.component.kind``;
- chat model call: ``chat {model}`` (``text_completion {model}`` for a completion model),
  CLIENT, with the provider, request parameters, response id, model and finish reasons, token
  usage, time to first chunk when streamed, and ``server.address``/``server.port`` when the
  model reports its base URL;
- retriever call: ``retrieval {data source}``, CLIENT, with ``gen_ai.data_source.id`` and
  ``gen_ai.request.top_k`` when the retriever reports it;
- tool call: ``execute_tool {tool}``, INTERNAL, with ``gen_ai.tool.name``;
- embeddings: ``embeddings {model}``, CLIENT, from :func:`embeddings_span`.

Failures set ``error.type`` and an ERROR status. Message content (``gen_ai.input.messages``,
``gen_ai.output.messages``, tool arguments and results, retrieval queries) is recorded only with
``capture_content=True``, and then masked with :func:`weft.core.masking.mask_pii` unless
``mask=False``.

Spans are parented explicitly from the callback run tree (``RunInfo.parent_run_id``), never from
the current context, because callbacks of parallel branches and thread pools fire in other
threads. A top-level graph run does join the caller's current span, so a graph invoked inside an
HTTP request's span nests under it.

Metrics: ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` (the GenAI
histograms), ``weft.graph.duration``, ``weft.node.duration``, ``weft.errors`` and
``weft.cache.requests`` (fed by :func:`record_cache_lookup`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
)
from opentelemetry.util.types import AttributeValue
from pydantic_core import to_jsonable_python

from weft.core._prometheus import CONTENT_TYPE, PrometheusTextReader, render_prometheus
from weft.core._traceview import (
    JsonlSpanExporter,
    add_trace_command,
    default_trace_path,
    read_spans,
    render_trace,
)
from weft.core.callbacks import (
    ACTIVE,
    CallbackBridge,
    Handler,
    RunInfo,
    add_handler,
    bridges_in,
    global_handlers,
    remove_handler,
)
from weft.core.masking import mask_pii, mask_value
from weft.core.usage import UsageTracker, model_name, reported_usage

__all__ = [
    "CONTENT_TYPE",
    "JsonlSpanExporter",
    "OTelHandler",
    "PrometheusTextReader",
    "add_trace_command",
    "default_trace_path",
    "disable_tracing",
    "embeddings_span",
    "nest_under",
    "enable_tracing",
    "error_type",
    "read_spans",
    "record_cache_lookup",
    "render_prometheus",
    "render_trace",
]

_SCOPE = "weft"

# langchain's ``ls_provider`` -> the GenAI conventions' well-known ``gen_ai.provider.name``.
_PROVIDERS = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "google_genai": "gcp.gen_ai",
    "google_vertexai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
}

# invocation parameter -> request attribute
_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "n": "gen_ai.request.choice.count",
}
_LS_PARAMS = {
    "ls_temperature": "gen_ai.request.temperature",
    "ls_max_tokens": "gen_ai.request.max_tokens",
}
_ROLES = {
    "human": "user",
    "HumanMessageChunk": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "system": "system",
    "SystemMessageChunk": "system",
    "tool": "tool",
    "ToolMessageChunk": "tool",
}

# Bucket advice from the GenAI conventions; graph and node latencies sit much lower.
_DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
_TOKEN_BUCKETS = tuple(4.0**i for i in range(14))
_STEP_BUCKETS = (1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0)
_UNSET = Status(StatusCode.UNSET)


def error_type(error: BaseException) -> str:
    """``error.type`` for an exception: its qualified class name, a node failure's cause's.

    Example:
        >>> error_type(TimeoutError()), error_type(ValueError("x"))
        ('TimeoutError', 'ValueError')
    """
    if type(error).__name__ == "NodeError" and error.__cause__ is not None:
        error = error.__cause__
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _server(url: Any) -> tuple[str, int] | None:
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url if "//" in url else f"//{url}")
    if not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _content(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts = []
    for p in content or ():
        if isinstance(p, str):
            parts.append({"type": "text", "content": p})
        elif isinstance(p, dict) and p.get("type") == "text":
            parts.append({"type": "text", "content": p.get("text", "")})
    return parts


def _message(m: Any) -> dict[str, Any]:
    if isinstance(m, str):
        return {"role": "user", "parts": _content(m)}
    msg_type = getattr(m, "type", "human")
    role = getattr(m, "role", None) if msg_type in ("chat", "ChatMessageChunk") else None
    out: dict[str, Any] = {"role": role or _ROLES.get(msg_type, msg_type)}
    parts = _content(getattr(m, "content", ""))
    for call in getattr(m, "tool_calls", None) or ():
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": call["name"],
                "arguments": call["args"],
            }
        )
    if out["role"] == "tool":
        parts = [
            {
                "type": "tool_call_response",
                "id": getattr(m, "tool_call_id", None),
                "response": getattr(m, "content", ""),
            }
        ]
    out["parts"] = parts
    return out


@dataclass(slots=True, eq=False)
class _Open:
    span: Span | None  # None: a node span, built in one piece when the node ends
    ctx: SpanContext
    kind: str
    t0: float
    parent: _Open | None
    attrs: dict[str, AttributeValue]  # the metric attributes
    name: str = ""
    span_attrs: dict[str, AttributeValue] | None = None
    start_ns: int = 0
    first_chunk: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0

    def context(self) -> Context:
        """An OpenTelemetry context whose current span is this run's span, for its children."""
        return trace.set_span_in_context(self.span or NonRecordingSpan(self.ctx))


class OTelHandler(Handler):
    """A callback handler that turns graph runs into OpenTelemetry spans and metrics.

    Args:
        tracer_provider: where spans go; the global provider when None.
        meter_provider: where metrics go; the global provider when None.
        capture_content: record message content, tool arguments and results, and retrieval
            queries (opt-in, as the GenAI conventions ask).
        mask: when content is recorded, mask personal data in it: True for
            :func:`~weft.core.masking.mask_pii`, False for none, or your own ``str -> str``.
        node_metrics: record ``weft.node.duration`` for every node. Each record costs about
            as much as the node's span, so graphs of many tiny nodes on a hot path may turn it
            off and read node latency from the spans; failures are counted either way.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        >>> from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        ...     InMemorySpanExporter)
        >>> spans = InMemorySpanExporter()
        >>> provider = TracerProvider()
        >>> provider.add_span_processor(SimpleSpanProcessor(spans))
        >>> handler = OTelHandler(tracer_provider=provider)
        >>> # graph.invoke(x, {"callbacks": [handler]}); spans.get_finished_spans()
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        capture_content: bool = False,
        mask: bool | Callable[[str], str] = True,
        node_metrics: bool = True,
    ) -> None:
        self.node_metrics = node_metrics
        self.tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(_SCOPE)
        # With the SDK's tracer, a node's span is built in one piece when the node ends and
        # handed straight to the span processors: the mutable SDK span (its lock, attribute
        # checks and copy on end) costs several times more, and a node has nothing to add to
        # its span between start and end. Other tracers get ordinary spans.
        self._processor: Any = getattr(self.tracer, "span_processor", None)
        self._resource: Any = getattr(self.tracer, "resource", None)
        ids = getattr(self.tracer, "id_generator", None)
        self._new_span_id: Callable[[], int] | None = ids.generate_span_id if ids else None
        self._scope: Any = None
        if self._processor is not None and self._new_span_id is not None:
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope

            self._scope = InstrumentationScope(_SCOPE)
        meter = (meter_provider or otel_metrics.get_meter_provider()).get_meter(_SCOPE)
        self.capture_content = capture_content
        self.mask: Callable[[str], str] | None = (
            mask_pii if mask is True else (mask if callable(mask) else None)
        )
        self.metric_reader: PrometheusTextReader | None = None
        self._owned: list[Any] = []  # providers enable_tracing made, shut down with the handler
        self._open: dict[UUID, _Open] = {}
        self._node_cache: dict[
            tuple[Any, ...], tuple[str, dict[str, AttributeValue], dict[str, AttributeValue]]
        ] = {}
        self._lock = threading.Lock()
        self._op_duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._ttft = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._graph_duration = meter.create_histogram(
            "weft.graph.duration",
            unit="s",
            description="Graph run latency",
            explicit_bucket_boundaries_advisory=_STEP_BUCKETS,
        )
        self._node_duration = meter.create_histogram(
            "weft.node.duration",
            unit="s",
            description="Node latency",
            explicit_bucket_boundaries_advisory=_STEP_BUCKETS,
        )
        self._errors = meter.create_counter(
            "weft.errors",
            unit="{error}",
            description="Failed graph, node, model, retriever and tool runs",
        )
        self._cache = meter.create_counter(
            "weft.cache.requests", unit="{request}", description="Component cache lookups"
        )
        _HANDLERS.add(self)

    # -- span lifecycle -------------------------------------------------------------------------

    def _masked(self, text: str) -> str:
        return self.mask(text) if self.mask is not None else text

    def _masked_json(self, value: Any) -> str:
        """``value`` as JSON, its strings masked first: masking the encoded text would miss
        data after an escape (``\\n13812345678``) and could break the escapes themselves."""
        if self.mask is None:
            return _json(value)
        return _json(mask_value(to_jsonable_python(value, fallback=str), self.mask))

    def _masked_content(self, value: Any) -> str:
        """A tool's arguments or result: text as it is, anything else as JSON; masked."""
        return self._masked(value) if isinstance(value, str) else self._masked_json(value)

    def on_start(self, info: RunInfo, input: Any) -> None:
        parent = self._open.get(info.parent_run_id) if info.parent_run_id else None
        kind = info.kind
        if kind == "node" and parent is not None and self._scope is not None:
            self._node_start(info, parent)
            return
        span_kind = SpanKind.INTERNAL
        attrs: dict[str, AttributeValue]
        span_attrs: dict[str, AttributeValue]
        if kind == "node":
            name, attrs, span_attrs = self._node_static(info)
        elif kind == "graph":
            name = f"invoke_workflow {info.name}"
            attrs = {"weft.graph.name": info.name}
            span_attrs = {
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": info.name,
            }
        elif kind == "chat_model":
            name, span_kind, attrs, span_attrs = self._chat_start(info, input)
        elif kind == "retriever":
            source = str(
                info.metadata.get("weft_data_source")
                or info.metadata.get("ls_vector_store_provider")
                or info.metadata.get("ls_retriever_name")
                or info.name
            )
            name = f"retrieval {source}"
            span_kind = SpanKind.CLIENT  # as the conventions' retrieval span asks
            attrs = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": source}
            span_attrs = dict(attrs)
            top_k = info.metadata.get("weft_top_k", info.metadata.get("ls_retriever_k"))
            if isinstance(top_k, (int, float)):
                span_attrs["gen_ai.request.top_k"] = float(top_k)
            if self.capture_content and isinstance(input, str):
                span_attrs["gen_ai.retrieval.query.text"] = self._masked(input)
        elif kind == "tool":
            name = f"execute_tool {info.name}"
            attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": info.name}
            span_attrs = {**attrs, "gen_ai.tool.type": "function"}
            for key, attr in (
                ("tool_call_id", "gen_ai.tool.call.id"),
                ("description", "gen_ai.tool.description"),
            ):
                if info.params.get(key):
                    span_attrs[attr] = str(info.params[key])
            if self.capture_content:
                span_attrs["gen_ai.tool.call.arguments"] = self._masked_content(input)
        else:
            name, attrs, span_attrs = f"{kind} {info.name}", {}, {}
        ctx = parent.context() if parent is not None else None
        span = self.tracer.start_span(name, context=ctx, kind=span_kind, attributes=span_attrs)
        self._open[info.run_id] = _Open(
            span, span.get_span_context(), kind, time.perf_counter(), parent, attrs
        )

    def _node_static(
        self, info: RunInfo
    ) -> tuple[str, dict[str, AttributeValue], dict[str, AttributeValue]]:
        """A node's span name, metric attributes and span attributes: the same on every run of
        the node, so built once."""
        key = (info.graph, info.name, info.component, info.metadata.get("weft_kind"))
        static = self._node_cache.get(key)
        if static is None:
            attrs: dict[str, AttributeValue] = {
                "weft.graph.name": info.graph or "",
                "weft.node.name": info.name,
                "weft.component.kind": str(info.metadata.get("weft_kind", "")),
            }
            static = (f"node {info.name}", attrs, {**attrs, "weft.component": info.component or ""})
            if len(self._node_cache) < 10_000:
                self._node_cache[key] = static
        return static

    def _node_start(self, info: RunInfo, parent: _Open) -> None:
        assert self._new_span_id is not None
        pctx = parent.ctx
        ctx = SpanContext(
            pctx.trace_id, self._new_span_id(), False, pctx.trace_flags, pctx.trace_state
        )
        name, attrs, span_attrs = self._node_static(info)
        self._open[info.run_id] = _Open(
            None, ctx, "node", 0.0, parent, attrs, name, span_attrs, time.time_ns()
        )

    def _node_end(self, rec: _Open, error: BaseException | None) -> None:
        """Hand a node's finished span to the span processors, and record its latency."""
        end = time.time_ns()
        etype = error_type(error) if error is not None else None
        if rec.ctx.trace_flags.sampled:
            attrs = rec.span_attrs
            status = _UNSET
            events: tuple[Event, ...] = ()
            if error is not None:
                assert etype is not None
                message, event = self._failure(error, etype)
                attrs = {**(attrs or {}), "error.type": etype}
                status = Status(StatusCode.ERROR, message)
                events = (Event("exception", event, end),)
            assert rec.parent is not None
            self._processor.on_end(
                ReadableSpan(
                    rec.name,
                    rec.ctx,
                    rec.parent.ctx,
                    self._resource,
                    attrs,
                    events,
                    (),
                    SpanKind.INTERNAL,
                    status=status,
                    start_time=rec.start_ns,
                    end_time=end,
                    instrumentation_scope=self._scope,
                )
            )
        self._record(rec, (end - rec.start_ns) / 1e9, etype)

    def _failure(self, error: BaseException, etype: str) -> tuple[str, dict[str, AttributeValue]]:
        """A failed run's status message and ``exception`` event attributes, masked."""
        message = self._masked(str(error))
        return message, {"exception.type": etype, "exception.message": message}

    def _chat_start(
        self, info: RunInfo, input: Any
    ) -> tuple[str, SpanKind, dict[str, AttributeValue], dict[str, AttributeValue]]:
        model = model_name(info)
        ls_provider = str(info.metadata.get("ls_provider") or "")
        provider = _PROVIDERS.get(ls_provider, ls_provider or "_OTHER")
        # A completion model (langchain's BaseLLM: prompt strings in, text out) is not a chat.
        operation = "text_completion" if info.metadata.get("ls_model_type") == "llm" else "chat"
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        server = _server(info.metadata.get("weft_base_url") or info.params.get("base_url"))
        if server is not None:
            attrs["server.address"], attrs["server.port"] = server
        span_attrs = dict(attrs)
        for key, attr in _LS_PARAMS.items():
            if info.metadata.get(key) is not None:
                span_attrs[attr] = info.metadata[key]
        for key, attr in _PARAMS.items():
            value = info.params.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                span_attrs[attr] = value
        stop = info.params.get("stop") or info.metadata.get("ls_stop")
        if stop:
            span_attrs["gen_ai.request.stop_sequences"] = (
                [stop] if isinstance(stop, str) else list(stop)
            )
        if span_attrs.get("gen_ai.request.choice.count") == 1:
            del span_attrs["gen_ai.request.choice.count"]
        if self.capture_content:
            messages = [
                _message(m)
                for batch in input or ()
                for m in (batch if isinstance(batch, list) else [batch])
            ]
            span_attrs["gen_ai.input.messages"] = self._masked_json(messages)
        return f"{operation} {model}", SpanKind.CLIENT, attrs, span_attrs

    def on_stream_chunk(self, info: RunInfo, chunk: Any) -> None:
        if info.kind == "chat_model":
            rec = self._open.get(info.run_id)
            if rec is not None and rec.first_chunk is None:
                rec.first_chunk = time.perf_counter()

    def on_end(self, info: RunInfo, output: Any) -> None:
        rec = self._open.pop(info.run_id, None)
        if rec is None:
            return
        span = rec.span
        if span is None:
            self._node_end(rec, None)
            return
        kind = rec.kind
        if kind == "chat_model":
            self._chat_end(rec, info, output)
        elif kind == "graph" and (rec.tokens_in or rec.tokens_out):
            # weft.* rather than gen_ai.usage.*: backends that sum gen_ai.usage over a trace
            # would count every model call twice.
            span.set_attribute("weft.usage.input_tokens", rec.tokens_in)
            span.set_attribute("weft.usage.output_tokens", rec.tokens_out)
        elif kind == "retriever" and isinstance(output, list):
            span.set_attribute("weft.retrieval.document_count", len(output))
            if self.capture_content:
                docs = [
                    {
                        "id": getattr(d, "id", None),
                        "score": (getattr(d, "metadata", None) or {}).get("score"),
                    }
                    for d in output
                ]
                span.set_attribute("gen_ai.retrieval.documents", self._masked_json(docs))
        elif kind == "tool" and self.capture_content:
            result = getattr(output, "content", output)
            span.set_attribute("gen_ai.tool.call.result", self._masked_content(result))
        span.end()
        self._record(rec, time.perf_counter() - rec.t0, None)

    def _chat_end(self, rec: _Open, info: RunInfo, output: Any) -> None:
        span = rec.span
        assert span is not None
        gens = [g for batch in getattr(output, "generations", None) or () for g in batch]
        finish: list[str] = []
        response_id = response_model = None
        out_messages = []
        for gen in gens:
            msg = getattr(gen, "message", None)
            meta = dict(getattr(msg, "response_metadata", None) or {})
            meta.update(getattr(gen, "generation_info", None) or {})
            response_id = response_id or meta.get("id")
            response_model = response_model or meta.get("model_name") or meta.get("model")
            reason = meta.get("finish_reason") or meta.get("stop_reason")
            if reason:
                finish.append(str(reason))
            if self.capture_content:
                m = (
                    _message(msg)
                    if msg is not None
                    else {"role": "assistant", "parts": _content(gen.text)}
                )
                m["finish_reason"] = reason or ""
                out_messages.append(m)
        if response_id:
            span.set_attribute("gen_ai.response.id", str(response_id))
        if response_model:
            span.set_attribute("gen_ai.response.model", str(response_model))
            rec.attrs["gen_ai.response.model"] = str(response_model)
        if finish:
            span.set_attribute("gen_ai.response.finish_reasons", finish)
        if rec.first_chunk is not None:
            ttft = rec.first_chunk - rec.t0
            span.set_attribute("gen_ai.request.stream", True)
            span.set_attribute("gen_ai.response.time_to_first_chunk", ttft)
            self._ttft.record(ttft, rec.attrs)
        if out_messages:
            span.set_attribute("gen_ai.output.messages", self._masked_json(out_messages))
        usage = reported_usage(output)
        if usage is not None:
            tokens_in, tokens_out, cached = usage
            span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
            span.set_attribute("gen_ai.usage.output_tokens", tokens_out)
            if cached:
                span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached)
            self._token_usage.record(tokens_in, {**rec.attrs, "gen_ai.token.type": "input"})
            self._token_usage.record(tokens_out, {**rec.attrs, "gen_ai.token.type": "output"})
            with self._lock:
                p = rec.parent
                while p is not None:
                    if p.kind == "graph":
                        p.tokens_in += tokens_in
                        p.tokens_out += tokens_out
                    p = p.parent

    def on_error(self, info: RunInfo, error: BaseException) -> None:
        rec = self._open.pop(info.run_id, None)
        if rec is None:
            return
        span = rec.span
        if span is None:
            self._node_end(rec, error)
            return
        etype = error_type(error)
        message, event = self._failure(error, etype)
        span.set_attribute("error.type", etype)
        span.set_status(Status(StatusCode.ERROR, message))
        span.add_event("exception", event)
        span.end()
        self._record(rec, time.perf_counter() - rec.t0, etype)

    def _record(self, rec: _Open, seconds: float, etype: str | None) -> None:
        attrs = rec.attrs if etype is None else {**rec.attrs, "error.type": etype}
        kind = rec.kind
        if kind == "node":
            if self.node_metrics:
                self._node_duration.record(seconds, attrs)
        elif kind == "graph":
            self._graph_duration.record(seconds, attrs)
        elif kind in ("chat_model", "retriever", "tool"):
            self._op_duration.record(seconds, attrs)
        if etype is not None:
            self._errors.add(1, {"weft.run.kind": kind, "error.type": etype})

    # -- outputs --------------------------------------------------------------------------------

    def metrics_text(self) -> str:
        """Prometheus text of this handler's metrics, when :func:`enable_tracing` made its
        meter provider (else empty)."""
        return self.metric_reader.text() if self.metric_reader is not None else ""

    def force_flush(self) -> None:
        for provider in self._owned:
            provider.force_flush()

    def shutdown(self) -> None:
        """Flush and shut down the providers :func:`enable_tracing` made for this handler."""
        for provider in self._owned:
            provider.shutdown()
        self._owned.clear()


# -- embeddings, which langchain-core reports no callbacks for -----------------------------------


class _EmbeddingsCall:
    def __init__(
        self,
        spans: list[tuple[OTelHandler, Span, dict[str, AttributeValue]]],
        model: str = "",
        trackers: Sequence[tuple[UsageTracker, UUID | None]] = (),
    ) -> None:
        self._spans = spans
        self._model = model
        self._trackers = trackers

    def record(
        self,
        *,
        input_tokens: int | None = None,
        dimensions: int | None = None,
        response_model: str | None = None,
    ) -> None:
        """Add what the response said: tokens used, vector size, the model that answered."""
        if input_tokens is not None:
            for tracker, run_id in self._trackers:
                tracker.record_embeddings(self._model, input_tokens, run_id)
        for handler, span, attrs in self._spans:
            if input_tokens is not None:
                span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
                handler._token_usage.record(input_tokens, {**attrs, "gen_ai.token.type": "input"})
            if dimensions is not None:
                span.set_attribute("gen_ai.embeddings.dimension.count", dimensions)
            if response_model is not None:
                span.set_attribute("gen_ai.response.model", response_model)


_UNDER: ContextVar[Any] = ContextVar("weft_embeddings_under", default=None)


@contextlib.contextmanager
def nest_under(callbacks: Any) -> Iterator[None]:
    """Embeddings requested inside the block join the run ``callbacks`` belongs to.

    A retriever wraps its search in this with its ``run_manager``, so the embeddings its
    vector store asks for (the store cannot pass callbacks on) nest under its retrieval span.
    """
    token = _UNDER.set(callbacks)
    try:
        yield
    finally:
        _UNDER.reset(token)


def _listening(callbacks: Any) -> list[tuple[Handler, UUID | None]]:
    """The weft handlers that listen to the run ``callbacks`` belongs to, each with the id of
    that run's nearest run they were told of."""
    if callbacks is None:
        callbacks = _UNDER.get()
    if callbacks is None:
        from langchain_core.runnables.config import var_child_runnable_config

        config = var_child_runnable_config.get()
        callbacks = config.get("callbacks") if config else None
    run_id = getattr(callbacks, "run_id", None) or getattr(callbacks, "parent_run_id", None)
    handlers = getattr(callbacks, "handlers", None)
    bridges = [h for h in handlers or () if isinstance(h, CallbackBridge)] or bridges_in(callbacks)
    active = ACTIVE.get()
    if active is not None and active not in bridges:
        bridges.append(active)  # called inside a node, with the node's config or none
    if not bridges:
        return [(h, None) for h in global_handlers()]
    found: list[tuple[Handler, UUID | None]] = []
    for bridge in bridges:
        tracked = bridge._runs.get(run_id) if run_id else None
        reported = None
        if tracked is not None:
            reported = tracked.info.run_id if tracked.info else tracked.emitted_parent
        found += [(h, reported) for h in bridge.handlers]
    return found


@contextlib.contextmanager
def embeddings_span(
    model: str,
    *,
    provider: str = "openai",
    base_url: str | None = None,
    callbacks: Any = None,
) -> Iterator[_EmbeddingsCall]:
    """Trace one embeddings request as an ``embeddings {model}`` CLIENT span.

    langchain-core has no callbacks for embeddings, so an embedder calls this around its
    request. The span joins the run it is called from: pass the retriever's ``run_manager`` as
    ``callbacks`` to nest it under the retriever; without it, the nearest node or graph run is
    found from langchain's run context. With no tracing handler listening this costs nothing.

    Example:
        >>> with embeddings_span("text-embedding-3-small") as call:
        ...     call.record(input_tokens=12, dimensions=1536)
    """
    listening = _listening(callbacks)
    trackers = [(h, run) for h, run in listening if isinstance(h, UsageTracker)]
    listeners = [
        (h, h._open.get(run) if run else None) for h, run in listening if isinstance(h, OTelHandler)
    ]
    if not listeners:
        yield _EmbeddingsCall([], model, trackers)
        return
    attrs: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": _PROVIDERS.get(provider, provider),
        "gen_ai.request.model": model,
    }
    server = _server(base_url)
    if server is not None:
        attrs["server.address"], attrs["server.port"] = server
    spans = []
    for handler, parent in listeners:
        ctx = parent.context() if parent is not None else None
        span = handler.tracer.start_span(
            f"embeddings {model}", context=ctx, kind=SpanKind.CLIENT, attributes=attrs
        )
        spans.append((handler, span, attrs))
    t0 = time.perf_counter()
    try:
        yield _EmbeddingsCall(spans, model, trackers)
    except BaseException as exc:
        etype = error_type(exc)
        for handler, span, _ in spans:
            span.set_attribute("error.type", etype)
            span.set_status(Status(StatusCode.ERROR, handler._masked(str(exc))))
            span.end()
            handler._op_duration.record(time.perf_counter() - t0, {**attrs, "error.type": etype})
            handler._errors.add(1, {"weft.run.kind": "embeddings", "error.type": etype})
        raise
    for handler, span, _ in spans:
        span.end()
        handler._op_duration.record(time.perf_counter() - t0, attrs)


# -- cache metrics --------------------------------------------------------------------------------

_HANDLERS: weakref.WeakSet[OTelHandler] = weakref.WeakSet()


def record_cache_lookup(
    hit: bool, *, cache: str = "cache", level: Literal["memory", "disk"] = "memory"
) -> None:
    """Count one cache lookup in every live tracing handler's ``weft.cache.requests`` counter.

    Caches call this on each lookup; with no tracing handler alive it does nothing.

    Example:
        >>> record_cache_lookup(True, cache="embeddings")
    """
    if not _HANDLERS:
        return
    attrs: Mapping[str, AttributeValue] = {
        "weft.cache.name": cache,
        "weft.cache.level": level,
        "weft.cache.result": "hit" if hit else "miss",
    }
    for handler in list(_HANDLERS):
        handler._cache.add(1, attrs)


# -- one-line setup ------------------------------------------------------------------------------

Exporter = Literal["jsonl", "console", "otlp", "memory", "none"]


def enable_tracing(
    exporter: Exporter | Any = "jsonl",
    *,
    path: str | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    capture_content: bool = False,
    mask: bool | Callable[[str], str] = True,
    node_metrics: bool = True,
    set_global: bool = False,
    service_name: str = "weft",
) -> OTelHandler:
    """Trace every graph run in this process; returns the handler (see :func:`disable_tracing`).

    Args:
        exporter: where spans go when no ``tracer_provider`` is given: ``"jsonl"`` (``path``,
            default ``./.weft/traces.jsonl``; read it with ``weft trace``), ``"console"``,
            ``"otlp"`` (OTLP over HTTP, configured by the ``OTEL_EXPORTER_OTLP_*`` variables;
            needs ``pip install "weft[otlp]"``), ``"memory"``, ``"none"``, or any
            ``SpanExporter``.
        tracer_provider, meter_provider: use these instead of making new ones.
        capture_content, mask, node_metrics: see :class:`OTelHandler`.
        set_global: also install the providers as OpenTelemetry's global ones.

    Without ``meter_provider`` the metrics stay in-process; ``handler.metrics_text()`` renders
    them as Prometheus text for a ``/metrics`` route (OTLP also exports them).

    Example:
        >>> handler = enable_tracing("none")
        >>> disable_tracing(handler)
    """
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    owned: list[Any] = []
    resource = Resource.create({"service.name": service_name})
    reader: PrometheusTextReader | None = None
    if tracer_provider is None:
        sdk_tracer = SdkTracerProvider(resource=resource)
        if exporter == "jsonl":
            sdk_tracer.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path)))
        elif exporter == "console":
            sdk_tracer.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif exporter == "memory":
            sdk_tracer.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        elif exporter == "otlp":
            sdk_tracer.add_span_processor(
                BatchSpanProcessor(_otlp("trace_exporter").OTLPSpanExporter())
            )
        elif exporter != "none":
            sdk_tracer.add_span_processor(SimpleSpanProcessor(exporter))
        tracer_provider = sdk_tracer
        owned.append(sdk_tracer)
    if meter_provider is None:
        reader = PrometheusTextReader()
        readers: list[Any] = [reader]
        if exporter == "otlp":
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            readers.append(
                PeriodicExportingMetricReader(_otlp("metric_exporter").OTLPMetricExporter())
            )
        meter_provider = SdkMeterProvider(metric_readers=readers, resource=resource)
        owned.append(meter_provider)
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        otel_metrics.set_meter_provider(meter_provider)
    handler = OTelHandler(
        tracer_provider,
        meter_provider,
        capture_content=capture_content,
        mask=mask,
        node_metrics=node_metrics,
    )
    handler.metric_reader = reader
    handler._owned = [] if set_global else owned
    add_handler(handler)
    return handler


def _otlp(module: str) -> Any:
    from weft.core._extras import import_optional

    return import_optional(
        f"opentelemetry.exporter.otlp.proto.http.{module}", extra="otlp", feature="OTLP export"
    )


def disable_tracing(handler: OTelHandler) -> None:
    """Stop tracing runs with ``handler`` and flush what it made."""
    remove_handler(handler)
    handler.shutdown()

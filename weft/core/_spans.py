""":class:`OTelHandler`, the callback handler that turns graph runs into OpenTelemetry spans and
metrics, and the cache lookups it counts (see :mod:`weft.core.tracing`)."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
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

from weft.core._genai import (
    DURATION_BUCKETS,
    LS_PARAMS,
    PARAMS,
    PROVIDERS,
    STEP_BUCKETS,
    TOKEN_BUCKETS,
    error_type,
    genai_message,
    genai_parts,
    server_of,
    to_json,
)
from weft.core._prometheus import PrometheusTextReader
from weft.core.callbacks import Handler, RunInfo
from weft.core.masking import mask_pii, mask_value
from weft.core.usage import model_name, reported_usage

__all__ = ["OTelHandler", "record_cache_lookup"]

_SCOPE = "weft"
_UNSET = Status(StatusCode.UNSET)


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
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._token_usage = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._ttft = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._graph_duration = meter.create_histogram(
            "weft.graph.duration",
            unit="s",
            description="Graph run latency",
            explicit_bucket_boundaries_advisory=STEP_BUCKETS,
        )
        self._node_duration = meter.create_histogram(
            "weft.node.duration",
            unit="s",
            description="Node latency",
            explicit_bucket_boundaries_advisory=STEP_BUCKETS,
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
            return to_json(value)
        return to_json(mask_value(to_jsonable_python(value, fallback=str), self.mask))

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
        provider = PROVIDERS.get(ls_provider, ls_provider or "_OTHER")
        # A completion model (langchain's BaseLLM: prompt strings in, text out) is not a chat.
        operation = "text_completion" if info.metadata.get("ls_model_type") == "llm" else "chat"
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        server = server_of(info.metadata.get("weft_base_url") or info.params.get("base_url"))
        if server is not None:
            attrs["server.address"], attrs["server.port"] = server
        span_attrs = dict(attrs)
        for key, attr in LS_PARAMS.items():
            if info.metadata.get(key) is not None:
                span_attrs[attr] = info.metadata[key]
        for key, attr in PARAMS.items():
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
                genai_message(m)
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
                    genai_message(msg)
                    if msg is not None
                    else {"role": "assistant", "parts": genai_parts(gen.text)}
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

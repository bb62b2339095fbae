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
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Literal
from uuid import UUID

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.util.types import AttributeValue

from weft.core._genai import PROVIDERS, error_type, server_of
from weft.core._prometheus import CONTENT_TYPE, PrometheusTextReader, render_prometheus
from weft.core._spans import OTelHandler, record_cache_lookup
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
    add_handler,
    bridges_in,
    global_handlers,
    remove_handler,
)
from weft.core.usage import UsageTracker

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
        "gen_ai.provider.name": PROVIDERS.get(provider, provider),
        "gen_ai.request.model": model,
    }
    server = server_of(base_url)
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

"""The server's own metrics, next to the graph metrics of :mod:`weft.core.tracing` on /metrics.

- ``http.server.request.duration`` (s): every request, by method, route template and status;
- ``weft.server.active_runs``: graph runs going now;
- ``weft.server.rejected_requests``: requests the guards turned away, by reason;
- ``weft.server.time_to_first_token`` (s): from a chat request's arrival to its first token;
- ``weft.server.model_fallbacks``: chat answers the fallback model gave because the chat model
  failed before its first token.
"""

from __future__ import annotations

import time

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from weft.core.tracing import PrometheusTextReader
from weft.graphs.schema import ChatOutput

__all__ = ["ServerMetrics"]

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    """Instruments on a private meter provider, rendered by :meth:`text`."""

    def __init__(self) -> None:
        self.reader = PrometheusTextReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        meter = self.provider.get_meter("weft.server")
        self.duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS,
        )
        # Read when the metrics are collected, so a request only moves a plain counter.
        self.active = 0
        meter.create_observable_up_down_counter(
            "weft.server.active_runs",
            callbacks=[self._observe_active],
            unit="{run}",
            description="Graph runs in progress",
        )
        self.rejected = meter.create_counter(
            "weft.server.rejected_requests",
            unit="{request}",
            description="Requests rejected by the auth, rate, body size and concurrency guards",
        )
        self.ttft = meter.create_histogram(
            "weft.server.time_to_first_token",
            unit="s",
            description="From a chat request's arrival to its first answer token",
            explicit_bucket_boundaries_advisory=_LATENCY_BUCKETS,
        )

        self.fallbacks = meter.create_counter(
            "weft.server.model_fallbacks",
            unit="{answer}",
            description="Chat answers given by the fallback model, the chat model having failed",
        )

    def answered(self, output: ChatOutput) -> None:
        """Count a chat answer that came from the fallback model."""
        if output.fallback:
            self.fallbacks.add(1)

    def reject(self, reason: str) -> None:
        self.rejected.add(1, {"reason": reason})

    def run_change(self, delta: int) -> None:
        self.active += delta

    def _observe_active(self, options: CallbackOptions) -> list[Observation]:
        return [Observation(self.active)]

    def text(self) -> str:
        return self.reader.text()

    def shutdown(self) -> None:
        self.provider.shutdown()


class AccessMetrics:
    """ASGI middleware that records each request's duration by its route template."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            # The template, never the raw path, so unknown paths cannot blow up the label set.
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.duration.record(
                time.perf_counter() - t0,
                {
                    "http.request.method": scope["method"],
                    "http.route": template,
                    "http.response.status_code": status,
                },
            )

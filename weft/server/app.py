"""The chat server: a Starlette app that streams RAG answers over SSE and serves every graph.

Routes::

    GET  /                              the web chat page
    POST /v1/chat                       SSE: token, sources, usage, done (or error) events
    GET  /v1/chat/sessions/{id}         a conversation's history, for the caller that owns it
    POST /v1/chat/completions           OpenAI-compatible, stream true or false
    GET  /v1/models                     the graphs, as OpenAI models
    POST /v1/graphs/{name}/invoke       run a graph: {"input": ...} -> {"output": ...}
    POST /v1/graphs/{name}/stream       SSE of the run's typed events
    POST /v1/graphs/{name}/batch        {"inputs": [...]} -> {"outputs": [...]}
    GET  /healthz, /readyz, /metrics    liveness, readiness (stores open), Prometheus text

Graphs and the chat streamer are parameters, so tests (yours too) can pass fakes. Run it with
``weft serve``, or with any ASGI server: ``uvicorn --factory weft.server.app:create_app``.

Example:
    >>> app = create_app()  # the registry's graphs, built when the app starts
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from weft.core.settings import Settings, get_settings
from weft.core.tracing import OTelHandler
from weft.server._errors import error_response, exception_handlers
from weft.server._guards import (
    AuthGuard,
    BodyLimitGuard,
    HeaderLimitGuard,
    RateLimitGuard,
    RunCapGuard,
)
from weft.server._metrics import AccessMetrics
from weft.server._routes import _T0, _routes
from weft.server._runs import _batch as _batch
from weft.server._server import ChatStreamer, Graphs, GraphsFactory, ReadinessCheck, _Server
from weft.server._sessions import OWNER_HEADER

__all__ = ["ChatStreamer", "GraphsFactory", "Graphs", "ReadinessCheck", "create_app"]


class _Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the JSON error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        reason = bytes(response.body).decode(errors="replace")
        return error_response(
            400,
            f"the CORS preflight was refused ({reason}); the allowed origins are set with "
            "WEFT_CORS_ORIGINS",
        )


class _Arrival:
    """Stamps each request's arrival time, for the time-to-first-token metric."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope[_T0] = time.perf_counter()
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    graphs: Graphs | GraphsFactory | None = None,
    chat: ChatStreamer | None = None,
    chat_graph: str | None = None,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    tracing: OTelHandler | bool = True,
    freeze_gc: bool = False,
    source_root: str | Path | None = None,
) -> Starlette:
    """Make the server's ASGI app.

    Args:
        settings: host, limits, keys, CORS...; from ``WEFT_*`` variables if None.
        graphs: the graphs to serve, or a function of the settings that builds them at startup
            (in a worker thread); if None, :func:`weft.graphs.registry.default_graphs` ("rag",
            "hybrid", "demo", "health"), with the knowledge base's stores in the readiness checks.
        chat: streams chat answers (``/v1/chat``, ``/v1/chat/completions``) from graphs that
            take a :class:`~weft.graphs.schema.ChatInput`; :func:`weft.graphs.rag.astream_chat`
            if None. Graphs that take a string are asked the question directly.
        chat_graph: the graph ``/v1/chat`` uses; ``"rag"`` (else ``"demo"``) if None.
        readiness: extra checks for ``/readyz``, by name; each checkpointer is checked anyway.
        tracing: True traces graph runs for ``/metrics`` while the app runs; or your
            :class:`~weft.core.tracing.OTelHandler`; False for server metrics only.
        freeze_gc: once start-up has built the graphs, move every object alive into Python's
            permanent generation (:func:`gc.freeze`), so the cycle collector never walks them
            again. For a process that runs this one app, as ``weft serve`` does; objects
            frozen there are freed by reference counting alone, so an app made and dropped
            many times in one process should leave it off.
        source_root: the folder the graphs' document sources are shown relative to; sources
            elsewhere show as their file name, never as a server path. With the default graphs,
            the deepest folder holding every file of the knowledge base if None.
    """
    settings = settings if settings is not None else get_settings()
    server = _Server(settings, graphs, chat, chat_graph, readiness, tracing, freeze_gc, source_root)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    reject = server.metrics.reject
    middleware = [Middleware(_Arrival)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                _Cors,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                # Any request header: OpenAI clients send their own (x-stainless-*) on every call.
                allow_headers=["*"],
                expose_headers=["Retry-After", OWNER_HEADER],
                max_age=600,
            )
        )
    middleware += [
        Middleware(AccessMetrics, metrics=server.metrics),
        Middleware(
            HeaderLimitGuard,
            max_headers=settings.server_max_headers,
            max_bytes=settings.server_max_header_bytes,
            reject=reject,
        ),
        # Before auth, so wrong keys are limited too (by address).
        Middleware(
            RateLimitGuard,
            per_minute=settings.rate_limit_per_minute,
            keys=settings.api_keys,
            reject=reject,
            shared=server.shared_buckets,
        ),
        Middleware(AuthGuard, keys=settings.api_keys, reject=reject),
        Middleware(
            BodyLimitGuard,
            max_bytes=settings.max_body_bytes,
            timeout=settings.server_body_timeout_seconds,
            reject=reject,
        ),
        Middleware(RunCapGuard, slots=server.slots, reject=reject),
    ]
    app = Starlette(
        routes=_routes(server),
        middleware=middleware,
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    # Starlette would answer /metrics/ with a redirect to an absolute URL built from the
    # request's Host header; a path that is not a route is a 404 instead.
    app.router.redirect_slashes = False
    app.state.weft = server
    return app

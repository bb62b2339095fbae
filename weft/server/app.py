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

import asyncio
import contextlib
import gc
import html
import inspect
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread
import pydantic
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, TypeAdapter
from pydantic_core import to_jsonable_python
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from weft.core.compiled import CompiledGraph, thread
from weft.core.errors import ConfigurationError
from weft.core.settings import Settings, get_settings
from weft.core.stream import Chunk, FinalOutput, NodeFinished, NodeStarted
from weft.core.tracing import CONTENT_TYPE, OTelHandler, disable_tracing, enable_tracing
from weft.graphs.schema import (
    ChatDone,
    ChatEvent,
    ChatInput,
    ChatOutput,
    ChatSources,
    ChatToken,
    ChatUsage,
)
from weft.server import _openai
from weft.server._errors import (
    ApiError,
    error_body,
    error_response,
    exception_handlers,
    from_exception,
    invalid,
    validation_error,
)
from weft.server._guards import (
    AuthGuard,
    BodyLimitGuard,
    HeaderLimitGuard,
    RateLimitGuard,
    RunCapGuard,
    RunSlots,
    take_run_slots,
)
from weft.server._metrics import AccessMetrics, ServerMetrics
from weft.server._sessions import OWNER_HEADER, SessionOwners, valid_key
from weft.server._sources import SourcePaths, common_root, knowledge_base_sources
from weft.server._sse import EventStream, disconnected

__all__ = ["ChatStreamer", "GraphsFactory", "Graphs", "ReadinessCheck", "create_app"]

logger = logging.getLogger("weft.server")

STATIC_DIR = Path(__file__).resolve().parent / "static"
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_MAX_BATCH = 100
_T0 = "weft.t0"  # scope key: when the request arrived
T = TypeVar("T")
R = TypeVar("R", bound=Response)


class ChatStreamer(Protocol):
    """Streams a chat answer as :data:`~weft.graphs.schema.ChatEvent` records: the signature of
    :func:`weft.graphs.rag.astream_chat`. A test passes a fake with the same shape."""

    def __call__(
        self,
        graph: CompiledGraph[Any, Any],
        chat_input: ChatInput,
        /,
        *,
        settings: Settings,
        config: RunnableConfig | None = ...,
    ) -> AsyncIterator[ChatEvent]: ...


Graphs = Mapping[str, CompiledGraph[Any, Any]]
GraphsFactory = Callable[[Settings], Graphs]
ReadinessCheck = Callable[[], Any]
"""Returns (or awaits to) anything when ready; raises to say what is not."""


# -- the default graphs, chat streamer and readiness --------------------------------------------


def _default_graphs(settings: Settings) -> Graphs:
    from weft.graphs.registry import default_graphs

    return default_graphs(settings)


def _default_chat() -> ChatStreamer:
    from weft.graphs.rag import astream_chat

    return astream_chat


def _greeting(settings: Settings) -> str:
    """The chat page's first line: which knowledge base answers, or that it is empty."""
    name = settings.data_dir.resolve().name or "default"
    chunks = 0
    if settings.chroma_dir.exists():
        from weft.graphs.registry import knowledge_base

        try:
            chunks = knowledge_base(settings).count()
        except Exception:  # the page still loads; /readyz reports the store's failure
            logger.warning("could not count the knowledge base for the greeting", exc_info=True)
    if not chunks:
        return (
            f"The knowledge base '{name}' is empty: ingest documents with weft ingest, "
            "or start the server with --demo for weft's own handbook."
        )
    return (
        f"Ask about the documents in the knowledge base '{name}' ({chunks} passages). Answers "
        "quote them, with the sources they cite."
    )


def _default_readiness(settings: Settings) -> dict[str, ReadinessCheck]:
    from weft.graphs.registry import knowledge_base

    def stores_open() -> None:
        kb = knowledge_base(settings)
        kb.count()  # Chroma answers; BM25 loads with the graphs
        if kb.changed_on_disk():
            raise ConfigurationError(
                f"the knowledge base in '{settings.data_dir}' changed on disk since the server "
                "opened it (weft ingest); restart weft serve to answer from the new contents"
            )

    return {"knowledge_base": stores_open}


def _default_source_root(settings: Settings) -> str | None:
    from weft.graphs.registry import knowledge_base

    return common_root(knowledge_base_sources(knowledge_base(settings).store))


# -- records --------------------------------------------------------------------------------------


class InvokeRequest(BaseModel):
    """``POST /v1/graphs/{name}/invoke`` and ``/stream``."""

    model_config = pydantic.ConfigDict(extra="forbid")

    input: Any = Field(description="the graph's input, checked against its input type")
    session_id: str | None = Field(
        default=None, description="thread id, for graphs with a checkpointer", max_length=200
    )


class ChatRequest(ChatInput):
    """``POST /v1/chat``: a :class:`~weft.graphs.schema.ChatInput`, refusing unknown fields (a
    misspelt ``session_id`` would otherwise start a conversation that is never remembered)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    session_id: str | None = Field(
        default=None, description="continues a conversation", min_length=1, max_length=200
    )


class BatchRequest(BaseModel):
    """``POST /v1/graphs/{name}/batch``."""

    model_config = pydantic.ConfigDict(extra="forbid")

    inputs: list[Any] = Field(min_length=1, max_length=_MAX_BATCH)
    max_concurrency: int = Field(default=4, ge=1, le=32, strict=True)


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value, fallback=repr)


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))


def _sse(event: str, n: int, data: Any) -> bytes:
    # json.dumps escapes newlines, so the payload is always one data: line.
    return f"id: {n}\nevent: {event}\ndata: {_dumps(data)}\n\n".encode()


def _chunk_text(chunk: Any) -> str:
    content = getattr(chunk, "content", chunk)
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text", "")) if isinstance(p, dict) else str(p)
        for p in (content if isinstance(content, list) else [content])
    )


async def _stream_plain_graph(
    graph: CompiledGraph[Any, Any],
    chat_input: ChatInput,
    /,
    *,
    settings: Settings,
    config: RunnableConfig | None = None,
) -> AsyncIterator[ChatEvent]:
    """Chat with a graph that takes the question as a string (e.g. the demo graph)."""
    parts: list[str] = []
    async for event in graph.aevents(chat_input.question, config):
        if isinstance(event, Chunk) and event.final:
            text = _chunk_text(event.chunk)
            parts.append(text)
            yield ChatToken(text)
        elif isinstance(event, FinalOutput) and not parts:
            parts.append(_chunk_text(event.output))
            yield ChatToken(parts[0])
    yield ChatDone(ChatOutput(answer="".join(parts)))


class _Server:
    """What the routes share: settings, graphs, the chat streamer, metrics."""

    def __init__(
        self,
        settings: Settings,
        graphs: Graphs | GraphsFactory | None,
        chat: ChatStreamer | None,
        chat_graph: str | None,
        readiness: Mapping[str, ReadinessCheck] | None,
        tracing: OTelHandler | bool,
        freeze_gc: bool,
        source_root: str | Path | None = None,
    ) -> None:
        self.settings = settings
        self.shown = SourcePaths(source_root)
        self.freeze_gc = freeze_gc
        self.factory: GraphsFactory | None = None
        self.graphs: dict[str, CompiledGraph[Any, Any]] | None = None
        if graphs is None:
            self.factory = _default_graphs
        elif callable(graphs):
            self.factory = graphs
        else:
            self.graphs = dict(graphs)
        self.chat: ChatStreamer = chat if chat is not None else _default_chat()
        self.chat_graph_name = chat_graph
        self.readiness = dict(readiness or {})
        if graphs is None and readiness is None:
            self.readiness = _default_readiness(settings)
        self.tracing = tracing
        self.handler: OTelHandler | None = tracing if isinstance(tracing, OTelHandler) else None
        self.metrics = ServerMetrics()
        self.slots = RunSlots(settings.max_concurrent_runs, on_change=self.metrics.run_change)
        self.startup_error: str | None = None
        self.owners = SessionOwners(settings.data_dir / "sessions.sqlite", settings.api_keys)
        self._failing: dict[str, str] = {}  # readiness check -> the error it last logged
        self._adapters: dict[str, TypeAdapter[Any] | None] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.tracing is True:
            self.handler = enable_tracing("none")
        if self.graphs is None and self.factory is not None:
            try:
                self.graphs = dict(await anyio.to_thread.run_sync(self.factory, self.settings))
            except Exception as exc:
                logger.exception("the graphs could not be built")
                self.startup_error = f"the graphs could not be built: {from_exception(exc).message}"
        if self.graphs is not None and self.factory is _default_graphs and not self.shown.root:
            try:
                root = await anyio.to_thread.run_sync(_default_source_root, self.settings)
                self.shown = SourcePaths(root)
            except Exception:  # sources then show as file names alone
                logger.exception("the knowledge base's folder could not be found")
        if self.freeze_gc:
            # What start-up built lives as long as the process. Frozen, the cycle collector's
            # full passes skip it and walk only what requests made: under a burst of streams
            # those passes stalled every stream for up to 180 ms on a 2-CPU machine.
            gc.collect()
            gc.freeze()

    async def stop(self) -> None:
        if self.tracing is True and self.handler is not None:
            disable_tracing(self.handler)
            self.handler = None
        self.metrics.shutdown()
        self.owners.close()

    # -- graphs ---------------------------------------------------------------------------------

    def all_graphs(self) -> dict[str, CompiledGraph[Any, Any]]:
        if self.graphs is None:
            raise ApiError(
                503,
                self.startup_error or "the server is starting; try again shortly",
                headers={"Retry-After": "1"},
            )
        return self.graphs

    def graph(self, name: str) -> CompiledGraph[Any, Any]:
        graphs = self.all_graphs()
        graph = graphs.get(name)
        if graph is None:
            known = ", ".join(sorted(graphs)) or "none"
            raise ApiError(404, f"no graph named '{name}'; the graphs are: {known}")
        return graph

    def chat_graph(self, name: str | None = None) -> CompiledGraph[Any, Any]:
        if name is not None:
            graph = self.graph(name)
            if not _answers(graph):
                raise ApiError(
                    400,
                    f"graph '{name}' does not answer questions (it takes "
                    f"{_type_name(graph.input_type)} and returns {_type_name(graph.output_type)}); "
                    f"chat with {', '.join(self.chat_graph_names()) or 'a chat graph'}, or call "
                    f"/v1/graphs/{name}/invoke",
                )
            return graph
        if self.chat_graph_name is not None:
            return self.graph(self.chat_graph_name)
        graphs = self.all_graphs()
        for preferred in ("rag", "demo"):
            if preferred in graphs:
                return graphs[preferred]
        return self.graph(next(iter(graphs), "rag"))

    def chat_graph_names(self) -> list[str]:
        return [n for n, g in self.all_graphs().items() if _answers(g)]

    def chat_events(
        self, graph: CompiledGraph[Any, Any], chat_input: ChatInput
    ) -> AsyncIterator[ChatEvent]:
        if _takes_chat_input(graph):
            events = self.chat(graph, chat_input, settings=self.settings)
        else:
            events = _stream_plain_graph(graph, chat_input, settings=self.settings)
        return self.shown.events(events)

    # -- readiness ------------------------------------------------------------------------------

    def check_failed(self, name: str, exc: Exception) -> str:
        """The message of a failed readiness check; its traceback is logged once, not on every
        poll: again only when the error changes or after the check has passed."""
        message = from_exception(exc).message
        seen = f"{type(exc).__name__}: {message}"
        if self._failing.get(name) != seen:
            self._failing[name] = seen
            logger.warning("readiness check '%s' failed", name, exc_info=exc)
        return message

    def check_passed(self, name: str) -> None:
        if self._failing.pop(name, None) is not None:
            logger.info("readiness check '%s' passes again", name)

    def adapter(self, name: str, graph: CompiledGraph[Any, Any]) -> TypeAdapter[Any] | None:
        if name not in self._adapters:
            try:
                self._adapters[name] = TypeAdapter(graph.input_type)
            except Exception:  # a type pydantic cannot build a schema for: the graph checks it
                self._adapters[name] = None
        return self._adapters[name]

    def validate_input(
        self, name: str, graph: CompiledGraph[Any, Any], value: Any, loc: tuple[Any, ...]
    ) -> Any:
        adapter = self.adapter(name, graph)
        if adapter is None:
            return value
        try:
            return adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise validation_error(exc, loc, what="graph input") from None

    def check_question(self, value: Any, where: str) -> None:
        """422 for a question over ``WEFT_SERVER_MAX_QUESTION_CHARS``: a chat input's question,
        or a graph's string input (every string a weft graph takes is a question)."""
        question, field = value, where
        if isinstance(value, ChatInput):
            question, field = value.question, f"{where}.question" if where else "question"
        limit = self.settings.server_max_question_chars
        if isinstance(question, str) and len(question) > limit:
            message = (
                f"the question is {len(question)} characters long, more than the {limit} the "
                "server accepts (WEFT_SERVER_MAX_QUESTION_CHARS); ask a shorter one"
            )
            raise invalid("request body", [{"field": field, "message": message}])


def _answers(graph: CompiledGraph[Any, Any]) -> bool:
    """Whether chat can use ``graph``: it takes a ChatInput, or a question as a string and
    answers with text or a message."""
    if _takes_chat_input(graph):
        return True
    out = graph.output_type
    return graph.input_type is str and (
        out is str or (isinstance(out, type) and issubclass(out, BaseMessage))
    )


def _type_name(tp: Any) -> str:
    """``list[Document]`` for ``list[langchain_core.documents.base.Document]``."""
    if isinstance(tp, type) and not getattr(tp, "__args__", None):
        return tp.__name__
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(tp))


def _takes_chat_input(graph: CompiledGraph[Any, Any]) -> bool:
    tp = graph.input_type
    return isinstance(tp, type) and issubclass(tp, ChatInput)


def _run_config(graph: CompiledGraph[Any, Any], value: Any, session: str | None) -> RunnableConfig:
    chat = _takes_chat_input(graph)
    own = getattr(value, "session_id", None) if chat else None
    if session and own and session != own:
        message = (
            f"two conversations named: input.session_id is '{own}' and session_id is "
            f"'{session}'; send one of them"
        )
        raise invalid("request body", [{"field": "session_id", "message": message}])
    if graph.checkpointer is None:
        return {}
    if chat:
        # A chat graph picks its thread from the input's session_id (a throwaway one without).
        return thread(session) if session else {}
    return thread(session or uuid.uuid4().hex)


def _session_of(graph: CompiledGraph[Any, Any], value: Any, session: str | None) -> str | None:
    """The conversation a run continues: ``session``, else a chat input's own."""
    own = getattr(value, "session_id", None) if _takes_chat_input(graph) else None
    return session or (own if isinstance(own, str) else None)


def _owned(response: R, issued: str | None) -> R:
    """``response``, carrying the owner token issued for this request, if any."""
    if issued is not None:
        response.headers[OWNER_HEADER] = issued
    return response


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _body(request: Request, model: type[pydantic.BaseModel]) -> Any:
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise ApiError(499, "the client closed the connection while sending the body") from None
    content_type = request.headers.get("content-type", "")
    if raw and not _is_json(content_type):
        # Also what stops a web page from starting runs with a form post, which needs no
        # CORS preflight.
        raise ApiError(
            415,
            f"the body must be JSON, sent with 'Content-Type: application/json' "
            f"(it came as '{content_type or 'no content type'}')",
        )
    try:
        return model.model_validate_json(raw or b"{}")
    except pydantic.ValidationError as exc:
        raise validation_error(exc) from None


async def _unless_gone(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first, so an abandoned request
    gives its run slot back at once rather than when the run ends."""

    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(disconnected(request.receive))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ApiError(499, "the client closed the connection; its run was cancelled")
    return task.result()


async def _batch(
    graph: CompiledGraph[Any, Any],
    values: list[Any],
    configs: list[RunnableConfig],
    concurrency: int,
) -> list[Any]:
    """Each input's output or exception, at most ``concurrency`` runs at once. Every run is a
    task from the start, so cancelling the batch cancels them all and leaves no coroutine
    unawaited (``abatch`` makes its coroutines first and starts them as slots free up)."""
    slots = asyncio.Semaphore(concurrency)

    async def one(value: Any, config: RunnableConfig) -> Any:
        async with slots:
            try:
                return await graph.ainvoke(value, config)
            except Exception as exc:
                return exc

    return await asyncio.gather(*(one(v, c) for v, c in zip(values, configs, strict=True)))


@contextlib.asynccontextmanager
async def _closing(events: AsyncIterator[Any]) -> AsyncIterator[AsyncIterator[Any]]:
    """Close the stream when the response ends early (a client gone, an error), so the run is
    cancelled now rather than when the garbage collector finds the generator."""
    try:
        yield events
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def _error_data(exc: BaseException) -> dict[str, Any]:
    api = from_exception(exc)
    if api.status >= 500:
        logger.error("a streamed run failed", exc_info=exc)
    return error_body(api.status, api.message, type=api.type, fields=api.fields)


def _event_stream(server: _Server, content: AsyncIterator[bytes]) -> EventStream:
    return EventStream(content, heartbeat=server.settings.heartbeat_seconds, headers=_SSE_HEADERS)


# -- routes ---------------------------------------------------------------------------------------


def _routes(server: _Server) -> list[Route | Mount]:
    async def bind(
        request: Request, graph: CompiledGraph[Any, Any], *sessions: str | None
    ) -> str | None:
        # The sessions a run names, bound to its caller; an owner token issued now, if any.
        return await server.owners.bind(request.scope, graph.checkpointer, list(sessions))

    async def index(request: Request) -> Response:
        page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        hello = await anyio.to_thread.run_sync(_greeting, server.settings)
        page = page.replace("{{greeting}}", html.escape(hello, quote=False))
        return Response(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks: dict[str, str] = {}
        ready = True
        if server.graphs is None:
            ready = False
            checks["graphs"] = server.startup_error or "starting"
        else:
            checks["graphs"] = "ok: " + ", ".join(sorted(server.graphs))
            for name, check in _checkpointer_checks(server.graphs).items():
                server.readiness.setdefault(name, check)
        for name, check in server.readiness.items():
            try:
                if inspect.iscoroutinefunction(check):
                    await check()
                else:  # a store's client call may block: keep it off the event loop
                    result = await anyio.to_thread.run_sync(check)
                    if inspect.isawaitable(result):
                        await result
                checks[name] = "ok"
                server.check_passed(name)
            except Exception as exc:
                ready = False
                checks[name] = f"failed: {server.check_failed(name, exc)}"
        body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
        keys = server.settings.api_keys
        if not keys or valid_key(request.scope, keys):
            # What failed and where (paths, store errors) is for the operator, not any caller.
            body["checks"] = checks
        return JSONResponse(body, 200 if ready else 503, headers={"Cache-Control": "no-cache"})

    async def metrics(request: Request) -> Response:
        graph_metrics = server.handler.metrics_text() if server.handler is not None else ""
        return Response(graph_metrics + server.metrics.text(), media_type=CONTENT_TYPE)

    async def models(request: Request) -> Response:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "weft"}
            for name in sorted(server.all_graphs())
        ]
        return JSONResponse({"object": "list", "data": data})

    async def model(request: Request) -> Response:
        name = request.path_params["name"]
        server.graph(name)  # 404 naming the graphs there are
        return JSONResponse({"id": name, "object": "model", "created": 0, "owned_by": "weft"})

    async def chat(request: Request) -> Response:
        chat_input = ChatInput.model_validate(dict(await _body(request, ChatRequest)))
        server.check_question(chat_input, "")
        graph = server.chat_graph(request.query_params.get("graph"))
        issued = await bind(request, graph, _session_of(graph, chat_input, None))
        take_run_slots(request.scope)
        arrived: float = request.scope.get(_T0, time.perf_counter())
        return _owned(_event_stream(server, _chat_sse(server, graph, chat_input, arrived)), issued)

    async def completions(request: Request) -> Response:
        body: _openai.CompletionRequest = await _body(request, _openai.CompletionRequest)
        try:
            chat_input = _openai.chat_input(body)
        except pydantic.ValidationError as exc:  # the last message's text is the question
            where = f"messages.{len(body.messages) - 1}.content"
            reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise invalid("request body", [{"field": where, "message": reason}]) from None
        except ValueError as exc:
            raise ApiError(
                422,
                "the last message must be the user's question",
                fields=[{"field": str(exc), "message": "expected role 'user'"}],
            ) from None
        server.check_question(chat_input.question, f"messages.{len(body.messages) - 1}.content")
        graph = server.chat_graph(body.model if body.model in server.all_graphs() else None)
        take_run_slots(request.scope)
        events = server.chat_events(graph, chat_input)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            frames = _completion_sse(events, body.model, include_usage, server.metrics)
            return _event_stream(server, frames)
        completion = _completion(events, body.model, server.metrics)
        return JSONResponse(await _unless_gone(request, completion))

    async def session(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        graph = server.chat_graph(request.query_params.get("graph"))
        await server.owners.check(request.scope, session_id)
        history: list[Any] = []
        if graph.checkpointer is not None:
            state = await anyio.to_thread.run_sync(graph.get_state, thread(session_id))
            found = state.get("history") if isinstance(state, dict) else None
            history = list(found or [])
        return JSONResponse({"session_id": session_id, "history": _jsonable(history)})

    async def invoke(request: Request) -> Response:
        name = request.path_params["name"]
        graph = server.graph(name)
        body: InvokeRequest = await _body(request, InvokeRequest)
        value = server.validate_input(name, graph, body.input, ("input",))
        server.check_question(value, "input")
        config = _run_config(graph, value, body.session_id)
        issued = await bind(request, graph, _session_of(graph, value, body.session_id))
        take_run_slots(request.scope)
        try:
            output = await _unless_gone(request, graph.ainvoke(value, config))
        except Exception as exc:
            api = from_exception(exc)
            if api.status >= 500:
                logger.error("graph '%s' failed", name, exc_info=exc)
            raise api from None
        return _owned(JSONResponse({"output": server.shown(_jsonable(output))}), issued)

    async def stream(request: Request) -> Response:
        name = request.path_params["name"]
        graph = server.graph(name)
        body: InvokeRequest = await _body(request, InvokeRequest)
        value = server.validate_input(name, graph, body.input, ("input",))
        server.check_question(value, "input")
        config = _run_config(graph, value, body.session_id)
        issued = await bind(request, graph, _session_of(graph, value, body.session_id))
        take_run_slots(request.scope)
        sse = _graph_sse(graph, value, config, server.shown)
        return _owned(_event_stream(server, sse), issued)

    async def batch(request: Request) -> Response:
        name = request.path_params["name"]
        graph = server.graph(name)
        body: BatchRequest = await _body(request, BatchRequest)
        values, refused = [], []
        for i, v in enumerate(body.inputs):
            try:
                values.append(server.validate_input(name, graph, v, ("inputs", i)))
                server.check_question(values[-1], f"inputs.{i}")
            except ApiError as exc:
                refused.append(exc)
        if refused:  # every bad input at once, not only the first
            raise invalid("graph input", [f for exc in refused for f in exc.fields or ()])
        configs = [_run_config(graph, v, None) for v in values]
        issued = await bind(request, graph, *[_session_of(graph, v, None) for v in values])
        for c in configs:
            c["max_concurrency"] = body.max_concurrency
        # A slot for each run the batch has going at once.
        at_once = min(len(values), body.max_concurrency)
        take_run_slots(
            request.scope,
            at_once,
            what=f"{at_once} runs at once (a batch of {len(values)} inputs at max_concurrency "
            f"{body.max_concurrency}; a smaller max_concurrency may fit)",
        )
        results = await _unless_gone(request, _batch(graph, values, configs, body.max_concurrency))
        outputs: list[dict[str, Any]] = []
        for result in results:
            if isinstance(result, Exception):
                api = from_exception(result)
                if api.status >= 500:
                    logger.error("graph '%s' failed on a batch input", name, exc_info=result)
                outputs.append(error_body(api.status, api.message, type=api.type))
            else:
                outputs.append({"output": server.shown(_jsonable(result))})
        return _owned(JSONResponse({"outputs": outputs}), issued)

    return [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{name}", model, methods=["GET"]),
        Route("/v1/chat", chat, methods=["POST"]),
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/chat/sessions/{session_id}", session, methods=["GET"]),
        Route("/v1/graphs/{name}/invoke", invoke, methods=["POST"]),
        Route("/v1/graphs/{name}/stream", stream, methods=["POST"]),
        Route("/v1/graphs/{name}/batch", batch, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def _checkpointer_checks(graphs: Graphs) -> dict[str, ReadinessCheck]:
    checks: dict[str, ReadinessCheck] = {}
    for name, graph in graphs.items():
        saver = graph.checkpointer
        if saver is None:
            continue
        config: RunnableConfig = thread("weft-readyz")

        async def check(saver: Any = saver, config: RunnableConfig = config) -> None:
            try:
                await saver.aget_tuple(config)
            except NotImplementedError:  # a sync-only saver (SqliteSaver)
                await anyio.to_thread.run_sync(saver.get_tuple, config)

        checks[f"checkpointer:{name}"] = check
    return checks


# -- streams --------------------------------------------------------------------------------------


async def _chat_sse(
    server: _Server, graph: CompiledGraph[Any, Any], chat_input: ChatInput, arrived: float
) -> AsyncIterator[bytes]:
    n = 0
    started = time.perf_counter()
    first: float | None = None
    try:
        async with _closing(server.chat_events(graph, chat_input)) as events:
            async for event in events:
                n += 1
                if isinstance(event, ChatToken):
                    if first is None:
                        first = time.perf_counter()
                        server.metrics.ttft.record(first - arrived)
                    yield _sse("token", n, {"text": event.text})
                elif isinstance(event, ChatSources):
                    yield _sse("sources", n, {"sources": event.sources})
                elif isinstance(event, ChatUsage):
                    yield _sse("usage", n, {"usage": event.usage})
                elif isinstance(event, ChatDone):
                    server.metrics.answered(event.output)
                    done = time.perf_counter()
                    data = event.output.model_dump(mode="json")
                    data["session_id"] = chat_input.session_id
                    # The graph's own time to first token, so a client can tell the server's
                    # share of the latency it saw.
                    data["timing"] = {
                        "graph_ttft_ms": round(((first or done) - started) * 1000, 3),
                        "graph_total_ms": round((done - started) * 1000, 3),
                    }
                    yield _sse("done", n, data)
    except Exception as exc:
        yield _sse("error", n + 1, _error_data(exc))


async def _graph_sse(
    graph: CompiledGraph[Any, Any], value: Any, config: RunnableConfig, shown: SourcePaths
) -> AsyncIterator[bytes]:
    n = 0
    try:
        async for event in graph.aevents(value, config):
            n += 1
            if isinstance(event, NodeStarted):
                yield _sse("node_started", n, {"path": event.path})
            elif isinstance(event, Chunk):
                data = {"path": event.path, "text": _chunk_text(event.chunk), "final": event.final}
                yield _sse("chunk", n, data)
            elif isinstance(event, NodeFinished):
                output = shown(_jsonable(event.output))
                yield _sse("node_finished", n, {"path": event.path, "output": output})
            elif isinstance(event, FinalOutput):
                yield _sse("done", n, {"output": shown(_jsonable(event.output))})
    except Exception as exc:
        yield _sse("error", n + 1, _error_data(exc))


async def _completion(
    events: AsyncIterator[ChatEvent], model: str, metrics: ServerMetrics
) -> dict[str, Any]:
    parts: list[str] = []
    output: ChatOutput | None = None
    try:
        async with _closing(events) as stream:
            async for event in stream:
                if isinstance(event, ChatToken):
                    parts.append(event.text)
                elif isinstance(event, ChatDone):
                    output = event.output
                    metrics.answered(output)
    except Exception as exc:
        api = from_exception(exc)
        if api.status >= 500:
            logger.error("a chat completion failed", exc_info=exc)
        raise api from None
    if output is None:
        output = ChatOutput(answer="".join(parts))
    return _openai.completion(
        _openai.new_id(), model, output.answer, output.usage, output.sources, output.fallback
    )


def _data(payload: Any) -> bytes:
    return f"data: {_dumps(payload)}\n\n".encode()


async def _completion_sse(
    events: AsyncIterator[ChatEvent], model: str, include_usage: bool, metrics: ServerMetrics
) -> AsyncIterator[bytes]:
    cid, created = _openai.new_id(), int(time.time())
    usage: dict[str, Any] = {}
    try:
        yield _data(_openai.chunk(cid, model, created, role=True, content=""))
        async with _closing(events) as stream:
            async for event in stream:
                if isinstance(event, ChatToken):
                    yield _data(_openai.chunk(cid, model, created, content=event.text))
                elif isinstance(event, ChatUsage):
                    usage = event.usage
                elif isinstance(event, ChatDone):
                    output = event.output
                    metrics.answered(output)
                    usage = output.usage or usage
                    finish = _openai.chunk(
                        cid, model, created, finish=True, sources=output.sources,
                        fallback=output.fallback,
                    )  # fmt: skip
                    yield _data(finish)
        if include_usage:
            yield _data(_openai.chunk(cid, model, created, usage=usage))
    except Exception as exc:
        # The openai client raises an APIError for a data line with an "error" key.
        yield _data(_error_data(exc))
    yield b"data: [DONE]\n\n"


# -- the app --------------------------------------------------------------------------------------


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
            "hybrid", "demo"), with the knowledge base's stores in the readiness checks.
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

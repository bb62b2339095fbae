"""The routes: each request's body read and checked, its run started, its response made."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import pydantic
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from weft.core.compiled import CompiledGraph, thread
from weft.core.settings import Settings
from weft.core.tracing import CONTENT_TYPE
from weft.graphs.schema import ChatInput
from weft.server import _openai
from weft.server._agent import agent_routes
from weft.server._errors import ApiError, error_body, from_exception, invalid, validation_error
from weft.server._guards import on_run_end, take_run_slots, valid_key
from weft.server._readiness import _run_checks
from weft.server._runs import (
    _batch,
    _chat_sse,
    _completion,
    _completion_sse,
    _event_stream,
    _graph_sse,
    _jsonable,
)
from weft.server._server import _Server, _takes_chat_input
from weft.server._sessions import OWNER_HEADER
from weft.server._sse import disconnected

logger = logging.getLogger("weft.server")

STATIC_DIR = Path(__file__).resolve().parent / "static"
_MAX_BATCH = 100
_T0 = "weft.t0"  # scope key: when the request arrived
T = TypeVar("T")
R = TypeVar("R", bound=Response)


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


# -- routes ---------------------------------------------------------------------------------------


def _routes(server: _Server) -> list[Route | Mount]:
    async def bind(
        request: Request, graph: CompiledGraph[Any, Any], *sessions: str | None
    ) -> str | None:
        # The sessions a run names, bound to its caller; an owner token issued now, if any.
        await server.follow_ingests()
        issued = await server.owners.bind(request.scope, graph.checkpointer, list(sessions))
        named = [s for s in dict.fromkeys(sessions) if s]
        if graph.checkpointer is not None and named:  # one turn of a session at a time
            on_run_end(request.scope, await server.runs.hold(named))
        return issued

    async def index(request: Request) -> Response:
        page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        hello = await anyio.to_thread.run_sync(_greeting, server.settings)
        page = page.replace("{{greeting}}", html.escape(hello, quote=False))
        return Response(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready, checks = await _run_checks(server)
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
        await server.follow_ingests()
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

    async def start_run(
        request: Request,
    ) -> tuple[str, CompiledGraph[Any, Any], Any, RunnableConfig, str | None]:
        # /invoke and /stream: the graph named, its input checked, the session bound, a slot taken.
        name = request.path_params["name"]
        graph = server.graph(name)
        body: InvokeRequest = await _body(request, InvokeRequest)
        value = server.validate_input(name, graph, body.input, ("input",))
        server.check_question(value, "input")
        config = _run_config(graph, value, body.session_id)
        issued = await bind(request, graph, _session_of(graph, value, body.session_id))
        take_run_slots(request.scope)
        return name, graph, value, config, issued

    async def invoke(request: Request) -> Response:
        name, graph, value, config, issued = await start_run(request)
        try:
            output = await _unless_gone(request, graph.ainvoke(value, config))
        except Exception as exc:
            api = from_exception(exc)
            if api.status >= 500:
                logger.error("graph '%s' failed", name, exc_info=exc)
            raise api from None
        return _owned(JSONResponse({"output": server.shown(_jsonable(output))}), issued)

    async def stream(request: Request) -> Response:
        _, graph, value, config, issued = await start_run(request)
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
        *agent_routes(server, _body, _unless_gone),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]

"""A run's response body: the SSE streams of /v1/chat and /v1/graphs/{name}/stream, the OpenAI
completion (streamed or whole), and a batch."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from pydantic_core import to_jsonable_python

from weft.core.compiled import CompiledGraph
from weft.core.settings import Settings
from weft.core.stream import Chunk, FinalOutput, NodeFinished, NodeStarted
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
from weft.server._errors import error_body, from_exception
from weft.server._metrics import ServerMetrics
from weft.server._sources import SourcePaths
from weft.server._sse import EventStream, closing

if TYPE_CHECKING:
    from weft.server._server import _Server

logger = logging.getLogger("weft.server")

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


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


def _error_data(exc: BaseException) -> dict[str, Any]:
    api = from_exception(exc)
    if api.status >= 500:
        logger.error("a streamed run failed", exc_info=exc)
    return error_body(api.status, api.message, type=api.type, fields=api.fields)


def _event_stream(server: _Server, content: AsyncIterator[bytes]) -> EventStream:
    return EventStream(content, heartbeat=server.settings.heartbeat_seconds, headers=_SSE_HEADERS)


# -- streams --------------------------------------------------------------------------------------


async def _chat_sse(
    server: _Server, graph: CompiledGraph[Any, Any], chat_input: ChatInput, arrived: float
) -> AsyncIterator[bytes]:
    n = 0
    started = time.perf_counter()
    first: float | None = None
    try:
        async with closing(server.chat_events(graph, chat_input)) as events:
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
        async with closing(events) as stream:
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
        async with closing(events) as stream:
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

"""The state the routes share: settings, graphs, the chat streamer, metrics, readiness."""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
import pydantic
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from pydantic import TypeAdapter

from weft.core._database import database_of
from weft.core.compiled import CompiledGraph
from weft.core.settings import Settings
from weft.core.tracing import OTelHandler, disable_tracing, enable_tracing
from weft.graphs.schema import ChatEvent, ChatInput
from weft.server._errors import ApiError, from_exception, invalid, validation_error
from weft.server._guards import RunSlots
from weft.server._metrics import ServerMetrics
from weft.server._readiness import _default_readiness
from weft.server._redis import RedisBuckets
from weft.server._runs import _stream_plain_graph
from weft.server._sessions import SessionOwners, SessionRuns
from weft.server._sources import SourcePaths, common_root, knowledge_base_sources

if TYPE_CHECKING:
    from weft.graphs.knowledge import KnowledgeBase

logger = logging.getLogger("weft.server")


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


# -- the default graphs and chat streamer -------------------------------------------------------


def _default_graphs(settings: Settings) -> Graphs:
    from weft.graphs.registry import default_graphs

    return default_graphs(settings)


def _default_chat() -> ChatStreamer:
    from weft.graphs.rag import astream_chat

    return astream_chat


def _default_source_root(settings: Settings) -> str | None:
    from weft.graphs.registry import knowledge_base

    return common_root(knowledge_base_sources(knowledge_base(settings).store))


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
        self.database = database_of(settings)
        self.owners = SessionOwners(
            settings.data_dir / "sessions.sqlite", settings.api_keys, self.database
        )
        self.runs = SessionRuns(self.database)
        self.shared_buckets: RedisBuckets | None = None
        if settings.redis_url is not None:
            self.shared_buckets = RedisBuckets(settings.redis_url, settings.rate_limit_per_minute)
        self._kb: KnowledgeBase | None = None  # the default graphs', once a run looked it up
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
        if self.shared_buckets is not None:
            await self.shared_buckets.aclose()

    async def follow_ingests(self) -> None:
        """Before a run of the default graphs: read what another process (``weft ingest``,
        another replica) committed to the knowledge base since this one read it. The check is
        one small file read; only a change reloads, in a worker thread."""
        if self.factory is not _default_graphs or self.graphs is None:
            return
        if self._kb is None:
            from weft.graphs.registry import knowledge_base

            self._kb = knowledge_base(self.settings)
        kb = self._kb
        if kb.changed_on_disk():
            await anyio.to_thread.run_sync(kb.follow)

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

"""Readiness: the default checks (the knowledge base's stores, each checkpointer) and running them
for ``/readyz``."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from langchain_core.runnables import RunnableConfig

from weft.core._database import database_of
from weft.core.compiled import thread
from weft.core.settings import Settings
from weft.server._redis import redis_of

if TYPE_CHECKING:
    from weft.server._server import Graphs, ReadinessCheck, _Server


def _default_readiness(settings: Settings) -> dict[str, ReadinessCheck]:
    from weft.graphs.registry import knowledge_base

    def stores_open() -> None:
        kb = knowledge_base(settings)
        kb.follow()  # what another process ingested since
        kb.count()  # Chroma answers; BM25 loads with the graphs

    checks: dict[str, ReadinessCheck] = {"knowledge_base": stores_open}
    db = database_of(settings)
    if db is not None:
        checks["database"] = db.ping
    if settings.redis_url is not None:
        checks["redis"] = redis_of(settings.redis_url).ping
    return checks


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


async def _run_checks(server: _Server) -> tuple[bool, dict[str, str]]:
    """Whether the server is ready, and each check's result: "ok", or why it failed."""
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
    return ready, checks

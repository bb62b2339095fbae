"""``POST /v1/agent``: one question (or a conversation) answered by a tool-calling agent.

The body is ``{"question": "..."}`` or ``{"messages": [...]}`` (``{"role", "content"}`` objects
or ``[role, text]`` pairs), with ``"tools"`` chosen from ``kb``, ``calculator`` and ``time``. The
answer comes back with every tool call the agent made::

    {"answer": "...", "tool_calls": [{"name", "args", "id", "output", "error"}], "messages": [...]}

With no model configured the route answers 400 with the one line that says how to set one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from langchain_core.messages import AIMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from weft.core.errors import ConfigurationError
from weft.graphs._agent_setup import (
    NO_MODEL,
    TOOL_NAMES,
    agent_model,
    agent_tools,
    parse_tool_names,
)
from weft.graphs.agent import input_messages
from weft.server._errors import ApiError, from_exception
from weft.server._guards import take_run_slots
from weft.server._runs import _jsonable
from weft.server._server import _Server

__all__ = ["AgentRequest", "agent_routes"]

logger = logging.getLogger("weft.server")


class AgentRequest(BaseModel):
    """The body of ``POST /v1/agent``."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(default=None, min_length=1, max_length=20_000)
    messages: list[Any] | None = Field(default=None, min_length=1, max_length=500)
    tools: list[str] = Field(default_factory=lambda: list(TOOL_NAMES))


def agent_routes(
    server: _Server,
    read_body: Callable[[Request, type[BaseModel]], Awaitable[Any]],
    unless_gone: Callable[[Request, Awaitable[Any]], Awaitable[Any]],
) -> list[Route]:
    """The agent's route, reading its body with ``read_body`` and running under
    ``unless_gone`` (the server's own helpers)."""
    agents: dict[tuple[str, ...], Any] = {}

    def build(names: tuple[str, ...]) -> Any:
        from weft.graphs.agent import build_react_agent

        if names not in agents:
            agents[names] = build_react_agent(agent_model(), agent_tools(names, server.settings))
        return agents[names]

    async def agent(request: Request) -> Response:
        body: AgentRequest = await read_body(request, AgentRequest)
        if (body.question is None) == (body.messages is None):
            field = {"field": "question", "message": "give either question or messages"}
            raise ApiError(422, "give either 'question' or 'messages', not both", fields=[field])
        try:
            names = tuple(parse_tool_names(body.tools))
        except ConfigurationError as exc:
            raise ApiError(
                422, str(exc), fields=[{"field": "tools", "message": str(exc)}]
            ) from None
        try:
            graph = await anyio.to_thread.run_sync(build, names)
        except ConfigurationError as exc:
            status, message = (400, NO_MODEL) if str(exc) == NO_MODEL else (500, str(exc))
            raise ApiError(status, message) from None
        try:
            messages = input_messages(body.messages or [("user", body.question)])
        except ValueError as exc:
            field = {"field": "messages", "message": str(exc)}
            raise ApiError(422, str(exc), fields=[field]) from None
        take_run_slots(request.scope)
        try:
            out = await unless_gone(request, graph.ainvoke({"messages": messages}))
        except Exception as exc:
            api = from_exception(exc)
            if api.status >= 500:
                logger.error("the agent failed", exc_info=exc)
            raise api from None
        return JSONResponse(server.shown(_jsonable(_result(out["messages"]))))

    return [Route("/v1/agent", agent, methods=["POST"])]


def _result(messages: list[Any]) -> dict[str, Any]:
    results = {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}
    calls = []
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                done = results.get(call.get("id") or "")
                calls.append(
                    {
                        "name": call["name"],
                        "args": call["args"],
                        "id": call.get("id"),
                        "output": None if done is None else str(done.content),
                        "error": done is not None and done.status == "error",
                    }
                )
    return {"answer": str(messages[-1].content), "tool_calls": calls, "messages": messages}

"""The agent through the real openai client: tool calls scripted over HTTP, streamed or not."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessageChunk

from weft.components.models import openai_chat_model
from weft.core.stream import Chunk, ToolFinished, ToolStarted
from weft.graphs import build_react_agent
from weft.testing import OpenAIServer, Reply, ToolCall
from weft.tools import calculator, tool


@tool
def train_times(station: str) -> str:
    """The next departures from a railway station.

    Args:
        station: The station's name.
    """
    return {"Lyon": "09:12 to Paris, 09:40 to Marseille"}.get(station, "no departures")


@pytest.fixture
def server(shared: OpenAIServer) -> OpenAIServer:
    shared.reset()
    shared.script(
        Reply(
            tool_calls=[
                ToolCall("train_times", {"station": "Lyon"}, id="call_a"),
                ToolCall(
                    "calculator", {"expression": "(9 * 60 + 40) - (9 * 60 + 12)"}, id="call_b"
                ),
            ]
        ),
        "The 09:12 leaves for Paris, 28 minutes before the Marseille train.",
    )
    return shared


def agent(server: OpenAIServer, **client: Any):  # type: ignore[no-untyped-def]
    model = openai_chat_model(base_url=server.base_url, api_key="sk-test", max_retries=0, **client)
    return build_react_agent(model, [train_times, calculator])


ANSWER = "The 09:12 leaves for Paris, 28 minutes before the Marseille train."


def check_requests(server: OpenAIServer, streamed: bool) -> None:
    first, second = server.requests_to("/v1/chat/completions")
    assert first.stream is streamed and second.stream is streamed
    assert sorted(t["function"]["name"] for t in first.body["tools"]) == [
        "calculator",
        "train_times",
    ]
    sent = second.messages
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["call_a", "call_b"]
    assert {m["tool_call_id"]: m["content"] for m in sent[2:]} == {
        "call_a": "09:12 to Paris, 09:40 to Marseille",
        "call_b": "28",
    }


def test_the_agent_calls_tools_over_http_without_streaming(server: OpenAIServer) -> None:
    out = agent(server).invoke({"messages": [("user", "When is the next train from Lyon?")]})
    assert out["messages"][-1].content == ANSWER
    check_requests(server, streamed=False)


def test_streamed_tool_call_deltas_become_whole_calls_and_only_the_answer_streams(
    server: OpenAIServer,
) -> None:
    events = list(agent(server).events({"messages": ["When is the next train from Lyon?"]}))
    chunks = [e for e in events if isinstance(e, Chunk)]
    # The tool-calling turn streamed its call arguments in pieces, none of them as the answer.
    deltas = [c for c in chunks if isinstance(c.chunk, AIMessageChunk) and c.chunk.tool_call_chunks]
    assert len(deltas) > 2 and not any(c.final for c in deltas)
    answer = "".join(str(c.chunk.content) for c in chunks if c.final)
    assert answer == ANSWER
    started = {e.id: e.args for e in events if isinstance(e, ToolStarted)}
    assert started == {
        "call_a": {"station": "Lyon"},
        "call_b": {"expression": "(9 * 60 + 40) - (9 * 60 + 12)"},
    }
    assert sorted(e.output.content for e in events if isinstance(e, ToolFinished)) == [
        "09:12 to Paris, 09:40 to Marseille",
        "28",
    ]
    check_requests(server, streamed=True)


async def test_async_streaming_over_http_yields_the_answer_tokens(server: OpenAIServer) -> None:
    # langchain-openai caches its default async HTTP client across event loops; an own client,
    # closed here, keeps a connection from outliving this test's loop.
    async with openai.DefaultAsyncHttpxClient() as http:
        graph = agent(server, http_async_client=http)
        pieces = [c async for c in graph.astream({"messages": ["Next train from Lyon?"]})]
    assert len(pieces) > 1
    assert "".join(str(p.content) for p in pieces) == ANSWER
    check_requests(server, streamed=True)

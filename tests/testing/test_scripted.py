"""ScriptedChatModel: replies in order, tool calls, streamed tool-call chunks, bind_tools."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from pydantic import ValidationError

from weft.testing import ScriptedChatModel
from weft.tools import tool


@tool
def weather(city: str, days: int = 1) -> str:
    """Forecast the weather.

    Args:
        city: The city.
        days: How many days ahead.
    """
    return f"sunny in {city}"


CALLS = [
    {"name": "weather", "args": {"city": "Lima", "days": 2}, "id": "w1"},
    {"name": "weather", "args": {"city": "Oslo"}, "id": "w2"},
]


def script() -> ScriptedChatModel:
    return ScriptedChatModel(replies=[AIMessage("Checking.", tool_calls=CALLS), "Sunny in both."])


def test_replies_come_in_order_and_the_inputs_are_kept() -> None:
    model = script()
    first = model.invoke([HumanMessage("weather in Lima and Oslo?")])
    assert first.content == "Checking."
    assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [
        ("weather", {"city": "Lima", "days": 2}, "w1"),
        ("weather", {"city": "Oslo"}, "w2"),
    ]
    assert model.invoke("thanks").content == "Sunny in both."
    assert [[m.content for m in call] for call in model.received] == [
        ["weather in Lima and Oslo?"],
        ["thanks"],
    ]
    assert model.remaining == 0


def test_a_run_past_the_script_fails_naming_the_call() -> None:
    model = ScriptedChatModel(replies=["only one"])
    model.invoke("a")
    with pytest.raises(IndexError, match="no reply left for call 2: its script holds 1"):
        model.invoke("b")


def test_a_reply_of_another_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="reply 1 is a int; a reply is a string"):
        ScriptedChatModel(replies=["ok", 42])


def test_each_reply_is_a_fresh_copy() -> None:
    model = ScriptedChatModel(replies=[AIMessage("x", tool_calls=CALLS[:1])] * 2)
    first = model.invoke("a")
    first.tool_calls[0]["args"]["city"] = "changed"
    assert model.invoke("b").tool_calls[0]["args"]["city"] == "Lima"


def collect(chunks: list[Any]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


async def test_streaming_yields_words_and_tool_call_chunks() -> None:
    model = script()
    chunks = list(model.stream("q"))
    texts = [c.content for c in chunks if c.content]
    assert texts == ["Checking."]
    pieces = [c.tool_call_chunks[0] for c in chunks if c.tool_call_chunks]
    # every call's arguments arrive in two pieces; the first carries its name and id
    assert [(p["name"], p["id"], p["index"]) for p in pieces] == [
        ("weather", "w1", 0),
        (None, None, 0),
        ("weather", "w2", 1),
        (None, None, 1),
    ]
    whole = collect(chunks)
    assert whole.content == "Checking."
    assert [(c["name"], c["args"], c["id"]) for c in whole.tool_calls] == [
        ("weather", {"city": "Lima", "days": 2}, "w1"),
        ("weather", {"city": "Oslo"}, "w2"),
    ]
    streamed = [c.content async for c in model.astream("more") if c.content]
    assert streamed == ["Sunny ", "in ", "both."]


def test_bind_tools_passes_the_tool_schemas_and_shares_the_script() -> None:
    model = script()
    bound = model.bind_tools([weather], tool_choice="auto")
    assert bound.kwargs["tool_choice"] == "auto"  # type: ignore[attr-defined]
    [schema] = bound.kwargs["tools"]  # type: ignore[attr-defined]
    assert schema["function"]["name"] == "weather"
    assert schema["function"]["parameters"]["properties"]["city"]["description"] == "The city."
    assert bound.invoke("q").tool_calls[0]["id"] == "w1"
    assert model.invoke("q").content == "Sunny in both."

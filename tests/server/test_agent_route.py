"""``POST /v1/agent`` under real uvicorn: answers with the agent's tool calls, refuses in one
line without a model, and checks its body."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import FakeChat, LiveServer, ServeProcess, fake_graphs
from weft.core.settings import Settings
from weft.server import create_app
from weft.testing import OpenAIServer, Reply, ToolCall

pytestmark = pytest.mark.server


@pytest.fixture
def live(tmp_path: Path) -> Iterator[str]:
    app = create_app(
        Settings(rate_limit_per_minute=0, data_dir=tmp_path),
        graphs=fake_graphs(),
        chat=FakeChat(),
        tracing=False,
    )
    with LiveServer(app) as server:
        yield server.url


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "Traceback" not in response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_without_a_model_the_route_answers_400_saying_how_to_set_one(
    live: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    response = httpx.post(f"{live}/v1/agent", json={"question": "What is 2 + 2?"}, timeout=10)
    message = error_of(response, 400)["message"]
    assert message.startswith("the agent needs a tool-calling model")
    assert "OPENAI_API_KEY" in message and "OPENAI_BASE_URL" in message
    assert "\n" not in message


def test_weft_serve_answers_with_every_tool_call(tmp_path: Path) -> None:
    # weft serve in its own process: its async openai client keeps connections to the provider
    # open on its own event loop until it exits.
    with OpenAIServer(models=["gpt-4o-mini"]) as provider:
        provider.script(
            Reply(
                tool_calls=[
                    ToolCall("calculator", {"expression": "12 * 12"}, id="call_1"),
                    ToolCall("current_time", {"timezone": "Mars/Olympus"}, id="call_2"),
                ]
            ),
            "A gross is 144.",
        )
        env = {"OPENAI_BASE_URL": provider.base_url, "OPENAI_API_KEY": "test"}
        env["WEFT_MODEL"] = "gpt-4o-mini"
        with ServeProcess(tmp_path, WEFT_RATE_LIMIT_PER_MINUTE="0", **env) as weft:
            body = {
                "messages": [{"role": "user", "content": "How many in a gross?"}],
                "tools": ["calculator", "time"],
            }
            response = httpx.post(f"{weft.url}/v1/agent", json=body, timeout=30)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["answer"] == "A gross is 144."
    calls = {c["id"]: c for c in out["tool_calls"]}
    assert calls["call_1"] == {
        "name": "calculator",
        "args": {"expression": "12 * 12"},
        "id": "call_1",
        "output": "144",
        "error": False,
    }
    assert calls["call_2"]["error"] is True
    assert "Mars/Olympus" in calls["call_2"]["output"]
    assert [m["type"] for m in out["messages"]] == ["human", "ai", "tool", "tool", "ai"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": "hi", "messages": [["user", "hi"]]}, "question"),
        ({}, "question"),
        ({"question": "hi", "tools": ["weather"]}, "tools"),
        ({"messages": [["nobody", "hi"]]}, "messages"),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field(
    live: str, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], field: str
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    response = httpx.post(f"{live}/v1/agent", json=body, timeout=10)
    error = error_of(response, 422)
    assert error["fields"][0]["field"] == field

"""What a response may carry, over real HTTP: no model provider URL in an error, no server path in
a source, readiness details for the operator only, no redirect built from the Host header; and
a failing readiness check logs its traceback once, not on every poll."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import FakeChat, LiveServer, fake_graphs, read_sse
from weft import END, START, Graph
from weft.components.models import openai_chat_model
from weft.core.errors import ConfigurationError
from weft.core.settings import Settings
from weft.server import create_app
from weft.server._sources import SourcePaths, common_root
from weft.testing import OpenAIServer
from weft.testing._openai_server import Fault

pytestmark = pytest.mark.server

KEY = "operator-key-0123456789"


def serve(**kwargs: Any) -> LiveServer:
    settings = Settings(rate_limit_per_minute=0, api_keys=kwargs.pop("api_keys", []))
    kwargs.setdefault("graphs", fake_graphs())
    kwargs.setdefault("chat", FakeChat())
    return LiveServer(create_app(settings, tracing=False, **kwargs))


def events(text: str) -> list[dict[str, Any]]:
    return [r for r in read_sse(iter(text.splitlines())) if r["event"]]


# -- model provider URLs --------------------------------------------------------------------------


def test_a_provider_failure_reaches_the_client_without_the_providers_url() -> None:
    with OpenAIServer([Fault.server_error(503)] * 4) as provider:
        model = openai_chat_model("gpt-test", base_url=provider.base_url, max_retries=0)
        port = provider.base_url.split(":")[-1].split("/")[0]

        def ask(question: str) -> str:
            return str(model.invoke(question).content)

        graph = Graph[str, str]("ask")
        graph.add_node("model", ask).add_edge(START, "model").add_edge("model", END)
        with serve(graphs={"ask": graph.compile()}) as server:
            invoked = httpx.post(server.url + "/v1/graphs/ask/invoke", json={"input": "hi"})
            chatted = httpx.post(server.url + "/v1/chat", json={"question": "hi"})
    assert invoked.status_code == 503
    message = invoked.json()["error"]["message"]
    assert "HTTP 503" in message and "gpt-test" in message  # still says what failed
    (error,) = [e for e in events(chatted.text) if e["event"] == "error"]
    for text in (invoked.text, error["data"]):
        assert "127.0.0.1" not in text and port not in text and "http://" not in text


# -- source paths ---------------------------------------------------------------------------------


def test_chat_and_graph_sources_are_relative_to_the_knowledge_base_folder(
    sea_data: Path,
) -> None:
    settings = Settings(data_dir=sea_data, rate_limit_per_minute=0)
    with LiveServer(create_app(settings, tracing=False)) as server:
        chatted = httpx.post(
            server.url + "/v1/chat",
            json={"question": "How much does giant kelp grow in a day?"},
            timeout=30,
        ).text
        body = {"input": {"question": "How do otters sleep?"}}
        invoked = httpx.post(server.url + "/v1/graphs/rag/invoke", json=body, timeout=30).text
        streamed = httpx.post(server.url + "/v1/graphs/rag/stream", json=body, timeout=30).text
        hybrid = httpx.post(server.url + "/v1/graphs/hybrid/invoke", json={"input": "kelp"}).text
    for text in (chatted, invoked, streamed, hybrid):
        assert str(sea_data.parent) not in text
    chat_events = events(chatted)
    sent = json.loads(next(e for e in chat_events if e["event"] == "sources")["data"])
    done = json.loads(chat_events[-1]["data"])
    assert sent["sources"][0]["source"] == done["sources"][0]["source"] == "sea/kelp.md"
    assert json.loads(invoked)["output"]["sources"][0]["source"] == "otters.md"
    final = json.loads(events(streamed)[-1]["data"])
    assert final["output"]["sources"][0]["source"] == "otters.md"
    assert json.loads(hybrid)["output"][0]["metadata"]["source"] == "sea/kelp.md"


def test_a_source_outside_the_root_shows_as_its_file_name() -> None:
    shown = SourcePaths("/srv/notes")
    assert shown.path("/srv/notes/a/b.md") == "a/b.md"
    assert shown.path("/srv/notes-old/b.md") == "b.md"
    assert shown.path("C:\\Users\\ann\\c.md") == "c.md"
    assert shown.path("kb/d.md") == "kb/d.md"  # relative already: as it is
    assert SourcePaths()({"items": [{"source": "/home/ann/e.md"}]}) == {
        "items": [{"source": "e.md"}]
    }
    assert common_root(["/srv/notes/a.md", "/srv/notes/sea/b.md", "kb/c.md"]) == "/srv/notes"
    assert common_root(["kb/c.md"]) is None


# -- readiness ------------------------------------------------------------------------------------


def _not_ready() -> None:
    raise ConfigurationError("the store in '/srv/weft/private-data' cannot be opened")


def test_readyz_shows_its_checks_only_to_an_authenticated_caller_when_keys_are_set() -> None:
    with serve(api_keys=[KEY], readiness={"store": _not_ready}) as server:
        anonymous = httpx.get(server.url + "/readyz")
        wrong = httpx.get(server.url + "/readyz", headers={"Authorization": "Bearer nope"})
        operator = httpx.get(server.url + "/readyz", headers={"Authorization": f"Bearer {KEY}"})
    assert anonymous.status_code == wrong.status_code == operator.status_code == 503
    assert anonymous.json() == wrong.json() == {"status": "not ready"}
    assert "private-data" in operator.json()["checks"]["store"]
    with serve(readiness={"store": _not_ready}) as server:  # no keys: an open server
        assert "private-data" in httpx.get(server.url + "/readyz").json()["checks"]["store"]


def test_a_failing_readiness_check_logs_its_traceback_once_per_distinct_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = {"error": "the store is locked", "ok": False}

    def check() -> None:
        if not state["ok"]:
            raise ConfigurationError(str(state["error"]))

    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "weft.server" and r.exc_info]

    caplog.set_level(logging.INFO, logger="weft.server")
    with serve(readiness={"store": check}) as server:

        def poll(times: int) -> None:
            for _ in range(times):
                httpx.get(server.url + "/readyz")

        poll(5)
        assert len(logged()) == 1
        state["error"] = "the store is gone"
        poll(3)
        assert len(logged()) == 2
        state["ok"] = True
        poll(2)
        assert any("passes again" in r.getMessage() for r in caplog.records)
        state["ok"] = False
        poll(3)
    assert len(logged()) == 3


# -- redirects ------------------------------------------------------------------------------------


def test_a_trailing_slash_is_a_404_not_a_redirect_built_from_the_host_header() -> None:
    with serve() as server:
        for path in ("/metrics/", "/v1/models/", "/readyz/"):
            response = httpx.get(server.url + path, headers={"Host": "attacker.example"})
            assert response.status_code == 404, (path, response.headers)
            assert "location" not in response.headers
            assert "attacker.example" not in response.text
            assert response.json()["error"]["message"].endswith(f"try {path.rstrip('/')})")

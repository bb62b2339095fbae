"""The app at the ASGI level (httpx's ASGITransport, no socket): routes, bodies, guards, errors."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.server.conftest import SOURCES, USAGE, FakeChat, fake_graphs, read_sse
from weft import END, START, Graph
from weft.core.errors import (
    GraphInputError,
    ModelError,
    NodeError,
    ProviderUnavailableError,
)
from weft.core.settings import Settings
from weft.server import create_app
from weft.server._errors import from_exception
from weft.server._guards import TokenBuckets
from weft.server._openai import CompletionRequest, chat_input


def make_app(chat: FakeChat | None = None, **settings: Any) -> Starlette:
    return create_app(
        Settings(**{"rate_limit_per_minute": 0, **settings}),
        graphs=fake_graphs(),
        chat=chat or FakeChat(),
        tracing=False,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = make_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://weft"
    ) as c:
        yield c


def events(text: str) -> list[dict[str, Any]]:
    return [e for e in read_sse(iter(text.splitlines())) if e["event"] is not None]


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == status
    assert error["message"]
    return error


# -- chat -----------------------------------------------------------------------------------------


async def test_chat_streams_the_streamers_events_in_order_with_increasing_ids(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/chat", json={"question": "What is checked?"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    evs = events(response.text)
    names = [e["event"] for e in evs]
    assert names == ["sources", "token", "token", "token", "token", "token", "usage", "done"]
    assert [int(e["id"]) for e in evs] == list(range(1, len(evs) + 1))
    tokens = [json.loads(e["data"])["text"] for e in evs if e["event"] == "token"]
    assert "".join(tokens) == "Weft checks every edge [1]."
    assert json.loads(evs[0]["data"])["sources"][0]["title"] == "Compiling"
    assert json.loads(evs[-2]["data"])["usage"] == USAGE
    done = json.loads(evs[-1]["data"])
    assert done["answer"] == "Weft checks every edge [1]."
    assert [s["id"] for s in done["sources"]] == [s.id for s in SOURCES]
    assert done["timing"]["graph_ttft_ms"] >= 0


async def test_chat_passes_question_session_and_history_to_the_streamer() -> None:
    chat = FakeChat()
    app = make_app(chat)
    body = {
        "question": "  and then?  ",
        "session_id": "s-1",
        "history": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post("/v1/chat", json=body)
    assert response.status_code == 200
    (call,) = chat.calls
    assert call.question == "and then?"
    assert call.session_id == "s-1"
    assert [t.role for t in call.history] == ["user", "assistant"]
    assert json.loads(events(response.text)[-1]["data"])["session_id"] == "s-1"


async def test_chat_failure_mid_stream_is_an_error_event_without_the_exception_text() -> None:
    app = make_app(FakeChat(fail=RuntimeError("db password=hunter2")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post("/v1/chat", json={"question": "q"})
    evs = events(response.text)
    assert [e["event"] for e in evs][-1] == "error"
    assert "done" not in [e["event"] for e in evs]
    error = json.loads(evs[-1]["data"])["error"]
    assert error["code"] == 500
    assert "RuntimeError" in error["message"]
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert int(evs[-1]["id"]) == len(evs)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"question": "   "}, ["question"]),
        ({}, ["question"]),
        ({"question": "q", "history": [{"role": "robot", "content": "x"}]}, ["history.0.role"]),
        ({"question": "q", "sesion_id": "s1"}, ["sesion_id"]),  # a misspelt field
        ("not json", ["body"]),
    ],
)
async def test_chat_rejects_bad_bodies_with_422_naming_the_fields(
    client: httpx.AsyncClient, body: Any, fields: list[str]
) -> None:
    kwargs = (
        {"content": body, "headers": {"Content-Type": "application/json"}}
        if isinstance(body, str)
        else {"json": body}
    )
    response = await client.post("/v1/chat", **kwargs)  # type: ignore[arg-type]
    error = assert_error(response, 422)
    assert [f["field"] for f in error["fields"]] == fields


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_a_body_that_is_not_sent_as_json_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = b'{"question": "What is weft?"}'
    response = await client.post("/v1/chat", content=body, headers=headers)
    error = assert_error(response, 415)
    assert "application/json" in error["message"]
    ok = await client.post(
        "/v1/chat", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200


async def test_chat_with_a_string_graph_streams_its_output_as_tokens(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/chat?graph=words", json={"question": "a b"})
    evs = events(response.text)
    assert [json.loads(e["data"]).get("text") for e in evs if e["event"] == "token"] == [
        "A ",
        "B ",
    ]
    assert json.loads(evs[-1]["data"])["answer"] == "A B "


# -- graphs ---------------------------------------------------------------------------------------


async def test_invoke_runs_the_graph_and_returns_its_output(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/graphs/rag/invoke", json={"input": {"question": "hi"}})
    assert response.status_code == 200
    assert response.json()["output"]["answer"] == "echo: hi"
    response = await client.post("/v1/graphs/words/invoke", json={"input": "x y"})
    assert response.json() == {"output": "X Y "}


async def test_invoke_validates_the_input_against_the_graphs_input_type(
    client: httpx.AsyncClient,
) -> None:
    error = assert_error(await client.post("/v1/graphs/words/invoke", json={"input": 3}), 422)
    assert [f["field"] for f in error["fields"]] == ["input"]
    error = assert_error(
        await client.post("/v1/graphs/rag/invoke", json={"input": {"question": ""}}), 422
    )
    assert [f["field"] for f in error["fields"]] == ["input.question"]
    error = assert_error(await client.post("/v1/graphs/rag/invoke", json={"inptu": 1}), 422)
    assert {f["field"] for f in error["fields"]} == {"input", "inptu"}


async def test_unknown_graph_is_404_listing_the_graphs(client: httpx.AsyncClient) -> None:
    for action in ("invoke", "stream", "batch"):
        error = assert_error(await client.post(f"/v1/graphs/nope/{action}", json={}), 404)
        assert "boom, rag, words" in error["message"]


async def test_a_failing_node_is_500_naming_graph_and_node_but_not_the_exception_text(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/graphs/boom/invoke", json={"input": "x"})
    error = assert_error(response, 500)
    assert "graph 'boom', node 'explode'" in error["message"]
    assert "RuntimeError" in error["message"]
    assert "hunter2" not in response.text


async def test_stream_sends_typed_events_ending_in_done(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/graphs/words/stream", json={"input": "a b"})
    assert response.headers["cache-control"] == "no-cache"
    evs = events(response.text)
    names = [e["event"] for e in evs]
    assert names[0] == "node_started" and names[-1] == "done"
    chunks = [json.loads(e["data"]) for e in evs if e["event"] == "chunk"]
    assert [c["text"] for c in chunks] == ["A ", "B "]
    assert all(c["final"] for c in chunks)
    assert json.loads(evs[-1]["data"]) == {"output": "A B "}
    assert [int(e["id"]) for e in evs] == list(range(1, len(evs) + 1))


async def test_stream_of_a_failing_graph_ends_in_an_error_event(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/graphs/boom/stream", json={"input": "x"})
    evs = events(response.text)
    assert evs[-1]["event"] == "error"
    assert "hunter2" not in response.text


async def test_batch_returns_outputs_and_per_item_errors_in_order(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/graphs/words/batch", json={"inputs": ["a", "b c"]})
    assert response.json() == {"outputs": [{"output": "A "}, {"output": "B C "}]}
    response = await client.post("/v1/graphs/boom/batch", json={"inputs": ["a"]})
    (item,) = response.json()["outputs"]
    assert item["error"]["code"] == 500
    response = await client.post("/v1/graphs/words/batch", json={"inputs": ["a", 2]})
    error = assert_error(response, 422)
    assert [f["field"] for f in error["fields"]] == ["inputs.1"]
    error = assert_error(await client.post("/v1/graphs/words/batch", json={"inputs": []}), 422)
    assert [f["field"] for f in error["fields"]] == ["inputs"]


# -- OpenAI-compatible ----------------------------------------------------------------------------


async def test_models_lists_every_graph(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["boom", "rag", "words"]


async def test_completions_answers_with_usage_and_sources() -> None:
    chat = FakeChat()
    app = make_app(chat)
    body = {
        "model": "rag",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": [{"type": "text", "text": "second?"}]},
        ],
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post("/v1/chat/completions", json=body)
    out = response.json()
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": chat.answer}
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert out["sources"][0]["title"] == "Compiling"
    (call,) = chat.calls
    assert call.question == "second?"
    turns = [(t.role, t.content) for t in call.history]
    assert turns == [("user", "first"), ("assistant", "answer")]


async def test_completions_rejects_a_conversation_not_ending_with_the_user(
    client: httpx.AsyncClient,
) -> None:
    body = {"model": "rag", "messages": [{"role": "assistant", "content": "hi"}]}
    error = assert_error(await client.post("/v1/chat/completions", json=body), 422)
    assert error["fields"][0]["field"] == "messages.0.role"
    error = assert_error(await client.post("/v1/chat/completions", json={"model": "rag"}), 422)
    assert [f["field"] for f in error["fields"]] == ["messages"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"n": 2}, "n"),
        ({"max_tokens": 16}, "max_tokens"),
        ({"max_completion_tokens": 8}, "max_completion_tokens"),
    ],
)
async def test_completions_refuse_parameters_they_cannot_honour_by_name(
    client: httpx.AsyncClient, extra: dict[str, int], field: str
) -> None:
    body = {"model": "rag", "messages": [{"role": "user", "content": "hi"}], **extra}
    error = assert_error(await client.post("/v1/chat/completions", json=body), 422)
    assert [f["field"] for f in error["fields"]] == [field]
    assert "not supported" in error["fields"][0]["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/chat/completions", {"stream": "yes"}, "stream"),
        ("/v1/chat/completions", {"stream": 1}, "stream"),
        ("/v1/chat/completions", {"stream_options": {"include_usage": "true"}}, "stream_options"),
        ("/v1/graphs/words/batch", {"max_concurrency": "4"}, "max_concurrency"),
        ("/v1/graphs/words/batch", {"max_concurrency": 2.0}, "max_concurrency"),
    ],
)
async def test_switches_and_numbers_given_as_other_types_are_422_not_guessed(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    base: dict[str, Any] = (
        {"model": "rag", "messages": [{"role": "user", "content": "hi"}]}
        if path.endswith("completions")
        else {"inputs": ["a", "b"]}
    )
    error = assert_error(await client.post(path, json={**base, **body}), 422)
    assert error["fields"][0]["field"].startswith(field)


def test_chat_input_keeps_user_and_assistant_turns_and_drops_system() -> None:
    request = CompletionRequest.model_validate(
        {
            "model": "rag",
            "messages": [
                {"role": "system", "content": "x"},
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ],
        }
    )
    result = chat_input(request)
    assert result.question == "c"
    assert [t.content for t in result.history] == ["a", "b"]


# -- health, readiness, metrics, page -------------------------------------------------------------


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["graphs"] == "ok: boom, rag, words"


async def test_readyz_awaits_a_check_that_returns_an_awaitable_and_logs_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def ping() -> None:
        raise ConnectionError("no answer")

    app = create_app(
        Settings(), graphs=fake_graphs(), readiness={"store": lambda: ping()}, tracing=False
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["store"].startswith("failed")
    assert any("'store'" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_readyz_is_503_when_a_check_fails() -> None:
    def broken() -> None:
        raise OSError("the store is closed")

    app = create_app(Settings(), graphs=fake_graphs(), readiness={"store": broken}, tracing=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["store"].startswith("failed")


async def test_graph_routes_are_503_until_a_graphs_factory_has_run() -> None:
    app = create_app(Settings(), graphs=lambda settings: fake_graphs(), tracing=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/v1/models")  # no lifespan ran: nothing built yet
        assert_error(response, 503)
        assert response.headers["retry-after"] == "1"
        assert (await c.get("/readyz")).status_code == 503


@pytest.mark.parametrize("freeze", [True, False])
async def test_start_up_freezes_what_it_built_only_when_asked(freeze: bool) -> None:
    built: list[object] = []

    def graphs(settings: Settings) -> dict[str, Any]:
        out = fake_graphs()
        built.append(out)
        return out

    app = create_app(Settings(), graphs=graphs, tracing=False, freeze_gc=freeze)
    gc.unfreeze()
    try:
        async with app.router.lifespan_context(app):
            assert built, "start-up built no graphs"
            assert (gc.get_freeze_count() > 0) is freeze
            # the graphs themselves are among the frozen objects: no collection walks them
            assert all(gc.is_tracked(g) for g in built)
            assert (id(built[0]) not in {id(o) for o in gc.get_objects()}) is freeze
    finally:
        gc.unfreeze()


async def test_metrics_are_prometheus_text_with_request_durations(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/v1/models")
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'http_server_request_duration_seconds_count{http_request_method="GET",' in response.text
    assert 'http_route="/v1/models"' in response.text


def test_active_runs_are_read_when_metrics_are_collected() -> None:
    from weft.server._metrics import ServerMetrics

    metrics = ServerMetrics()
    metrics.run_change(1)
    metrics.run_change(1)
    assert "weft_server_active_runs 2" in metrics.text().splitlines()
    metrics.run_change(-1)
    assert "weft_server_active_runs 1" in metrics.text().splitlines()
    metrics.shutdown()


async def test_page_and_its_script_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js">' in page.text
    # The greeting names the knowledge base (here an empty one), not weft.
    assert "{{greeting}}" not in page.text and "Ask about weft" not in page.text
    assert "The knowledge base '" in page.text
    script = await client.get("/static/app.js")
    assert "/v1/chat" in script.text
    # The SSE reader the chat and health pages share, loaded before the page's own script.
    assert page.text.index('src="/static/sse.js"') < page.text.index('src="/static/app.js"')
    shared = await client.get("/static/sse.js")
    assert "async function* sseEvents" in shared.text


async def test_unknown_route_and_wrong_method_are_json(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/nope"), 404)
    assert_error(await client.get("/v1/chat"), 405)


# -- guards ---------------------------------------------------------------------------------------


async def test_api_keys_guard_the_api_but_not_the_page_or_health() -> None:
    app = make_app(api_keys=["k1", "k2"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        missing = await c.get("/v1/models")
        assert_error(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert_error(await c.get("/v1/models", headers={"Authorization": "Bearer nope"}), 401)
        assert_error(await c.get("/metrics", headers={"Authorization": "Basic k1"}), 401)
        ok = await c.get("/v1/models", headers={"Authorization": "Bearer k2"})
        assert ok.status_code == 200
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/healthz")).status_code == 200


async def test_body_over_the_limit_is_413_by_length_and_while_streaming() -> None:
    app = make_app(max_body_bytes=2048)
    big = json.dumps({"question": "x" * 5000})

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 500):
            yield big[i : i + 500].encode()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert_error(await c.post("/v1/chat", content=big), 413)
        response = await c.post("/v1/chat", content=chunked())
        assert "content-length" not in response.request.headers
        assert_error(response, 413)
        assert (await c.post("/v1/chat", json={"question": "small"})).status_code == 200


async def test_rate_limit_is_429_with_retry_after_per_client() -> None:
    app = make_app(rate_limit_per_minute=2, api_keys=["a", "b"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        key_a = {"Authorization": "Bearer a"}
        assert (await c.get("/v1/models", headers=key_a)).status_code == 200
        assert (await c.get("/v1/models", headers=key_a)).status_code == 200
        limited = await c.get("/v1/models", headers=key_a)
        assert_error(limited, 429)
        assert 1 <= int(limited.headers["retry-after"]) <= 30
        # Another key is another client; health is never limited.
        assert (await c.get("/v1/models", headers={"Authorization": "Bearer b"})).status_code == 200
        assert (await c.get("/healthz")).status_code == 200


def test_token_buckets_refill_over_time() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, clock=lambda: now[0])
    assert all(buckets.take("x") == 0.0 for _ in range(60))
    assert buckets.take("x") == pytest.approx(1.0)
    now[0] = 2.0
    assert buckets.take("x") == 0.0 and buckets.take("x") == 0.0
    assert buckets.take("x") > 0
    assert buckets.take("y") == 0.0


def test_token_buckets_forget_idle_clients_when_full() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, clock=lambda: now[0], max_clients=10)
    for i in range(10):
        buckets.take(f"c{i}")
    now[0] = 120.0
    buckets.take("new")
    assert len(buckets._buckets) == 1


async def _preflight(
    c: httpx.AsyncClient, path: str, origin: str, headers: str | None = None
) -> httpx.Response:
    """A browser's CORS preflight for a POST to ``path`` from ``origin``."""
    asked = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return await c.options(path, headers=asked)


async def test_cors_preflight_and_responses_carry_the_allowed_origin() -> None:
    app = make_app(cors_origins=["https://chat.example"], api_keys=["k"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        preflight = await _preflight(
            c, "/v1/chat", "https://chat.example", "authorization, content-type"
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://chat.example"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        denied = await c.get("/v1/models", headers={"Origin": "https://chat.example"})
        assert denied.status_code == 401  # CORS headers even on errors, so browsers show them
        assert denied.headers["access-control-allow-origin"] == "https://chat.example"
        other = await _preflight(c, "/v1/chat", "https://evil.example")
        assert other.status_code == 400
        assert "access-control-allow-origin" not in other.headers


async def test_cors_allows_any_request_header_and_refuses_other_origins_as_json() -> None:
    app = make_app(cors_origins=["https://chat.example"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        # The openai JS client sends its own headers on every call.
        preflight = await _preflight(
            c,
            "/v1/chat/completions",
            "https://chat.example",
            "authorization, content-type, x-stainless-os",
        )
        assert preflight.status_code == 200
        refused = await _preflight(c, "/v1/chat", "https://evil.example")
        error = assert_error(refused, 400)
        assert "WEFT_CORS_ORIGINS" in error["message"]


async def test_guards_apply_under_a_path_prefix() -> None:
    mounted = Starlette(routes=[Mount("/weft", make_app(api_keys=["k"], max_concurrent_runs=1))])
    key = {"Authorization": "Bearer k"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=mounted), base_url="http://t"
    ) as c:
        assert_error(await c.get("/weft/v1/models"), 401)
        assert (await c.get("/weft/v1/models", headers=key)).status_code == 200
    behind_proxy = make_app(rate_limit_per_minute=1)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=behind_proxy, root_path="/api"), base_url="http://t"
    ) as c:
        assert (await c.get("/api/v1/models")).status_code == 200
        assert_error(await c.get("/api/v1/models"), 429)


async def test_wrong_api_keys_use_up_the_addresss_rate_limit() -> None:
    app = make_app(rate_limit_per_minute=2, api_keys=["right"])
    wrong = {"Authorization": "Bearer guess"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        statuses = [(await c.get("/v1/models", headers=wrong)).status_code for _ in range(3)]
        assert statuses == [401, 401, 429]
        right = await c.get("/v1/models", headers={"Authorization": "Bearer right"})
        assert right.status_code == 200  # a valid key is its own client


async def test_a_batch_takes_a_run_slot_for_each_input_it_runs_at_once() -> None:
    app = make_app(max_concurrent_runs=2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        body = {"inputs": ["a", "b", "c"], "max_concurrency": 3}
        error = assert_error(await c.post("/v1/graphs/words/batch", json=body), 503)
        assert "max_concurrency" in error["message"]
        fits = await c.post("/v1/graphs/words/batch", json={**body, "max_concurrency": 2})
        assert fits.status_code == 200 and len(fits.json()["outputs"]) == 3
    assert app.state.weft.slots.active == 0


async def test_a_client_leaving_a_non_streaming_run_cancels_it_and_frees_its_slot() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(text: str) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return text

    g = Graph[str, str]("slow").add_node("wait", slow)
    app = create_app(
        Settings(rate_limit_per_minute=0),
        graphs={"slow": g.add_edge(START, "wait").add_edge("wait", END).compile()},
        readiness={},
        tracing=False,
    )
    body = json.dumps({"input": "x"}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await started.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/graphs/slow/invoke",
        "raw_path": b"/v1/graphs/slow/invoke",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("t", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    assert cancelled.is_set()
    assert sent[0]["status"] == 499
    assert app.state.weft.slots.active == 0


# -- error mapping --------------------------------------------------------------------------------


def test_errors_map_to_statuses() -> None:
    def in_node(cause: BaseException) -> NodeError:
        try:
            raise NodeError("rag", "generate", "chat_model", cause) from cause
        except NodeError as err:
            return err

    assert from_exception(in_node(ProviderUnavailableError("down"))).status == 503
    assert from_exception(in_node(ProviderUnavailableError("down"))).headers["Retry-After"]
    assert from_exception(in_node(ModelError("bad"))).status == 502
    assert from_exception(GraphInputError("g", "str", "bad")).status == 422
    generic = from_exception(in_node(KeyError("secret")))
    assert generic.status == 500 and "secret" not in generic.message


# -- what bad input is told -----------------------------------------------------------------------


async def test_a_validation_error_says_why_in_its_message(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.post("/v1/chat", json={"question": "  "}), 422)
    assert (
        error["message"] == "invalid request body: question: the question is empty; ask something"
    )
    body = {"model": "rag", "messages": [{"role": "user", "content": None}]}
    error = assert_error(await client.post("/v1/chat/completions", json=body), 422)
    assert error["message"].startswith("invalid request body: messages.0.content: ")
    assert [f["field"] for f in error["fields"]] == ["messages.0.content"]
    body["messages"] = [{"role": "user", "content": 5}]
    error = assert_error(await client.post("/v1/chat/completions", json=body), 422)
    # one field, not one per member of the str | list union pydantic tried
    assert [f["field"] for f in error["fields"]] == ["messages.0.content"]
    assert "valid string or " in error["fields"][0]["message"]


async def test_a_batch_names_every_bad_input(client: httpx.AsyncClient) -> None:
    body = {"inputs": ["fine", 5, "ok", None, {}]}
    error = assert_error(await client.post("/v1/graphs/words/batch", json=body), 422)
    assert [f["field"] for f in error["fields"]] == ["inputs.1", "inputs.3", "inputs.4"]


async def test_chat_refuses_a_graph_that_does_not_answer() -> None:
    def find(q: str) -> list[str]:
        return q.split()

    docs = Graph[str, list[str]]("docs")
    docs.add_node("find", find).add_edge(START, "find").add_edge("find", END)
    graphs = {**fake_graphs(), "docs": docs.compile()}
    app = create_app(Settings(), graphs=graphs, chat=FakeChat(), tracing=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        error = assert_error(await c.post("/v1/chat?graph=docs", json={"question": "hi"}), 400)
        assert "graph 'docs' does not answer questions" in error["message"]
        assert (
            "returns list[str]" in error["message"] and "/v1/graphs/docs/invoke" in error["message"]
        )
        assert "chat with rag, words, boom" in error["message"]
        body = {"model": "docs", "messages": [{"role": "user", "content": "hi"}]}
        assert_error(await c.post("/v1/chat/completions", json=body), 400)


def test_a_cancelled_batch_leaves_no_run_unawaited() -> None:
    import gc
    import warnings

    from weft.server.app import _batch

    async def slow(q: str) -> str:
        await asyncio.sleep(5)
        return q

    g = Graph[str, str]("slow").add_node("wait", slow)
    graph = g.add_edge(START, "wait").add_edge("wait", END).compile()

    async def client_leaves() -> None:  # what _unless_gone does when the client disconnects
        task = asyncio.ensure_future(_batch(graph, ["q"] * 20, [{}] * 20, 2))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(client_leaves())  # its own loop: the warnings come as the loop shuts down
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_a_model_can_be_retrieved_and_a_session_id_is_bounded(
    client: httpx.AsyncClient,
) -> None:
    got = await client.get("/v1/models/rag")
    assert got.status_code == 200 and got.json() == {
        "id": "rag",
        "object": "model",
        "created": 0,
        "owned_by": "weft",
    }
    assert_error(await client.get("/v1/models/nope"), 404)
    for session in ("", "x" * 201):
        body = {"question": "hi", "session_id": session}
        error = assert_error(await client.post("/v1/chat", json=body), 422)
        assert error["fields"][0]["field"] == "session_id"


@pytest.mark.parametrize("route", ["invoke", "stream"])
async def test_two_different_session_ids_for_one_chat_run_are_422(
    client: httpx.AsyncClient, route: str
) -> None:
    body = {"input": {"question": "hi", "session_id": "a"}, "session_id": "b"}
    error = assert_error(await client.post(f"/v1/graphs/rag/{route}", json=body), 422)
    assert error["fields"][0]["field"] == "session_id"
    assert "'a'" in error["message"] and "'b'" in error["message"]
    same = {"input": {"question": "hi", "session_id": "a"}, "session_id": "a"}
    assert (await client.post(f"/v1/graphs/rag/{route}", json=same)).status_code == 200

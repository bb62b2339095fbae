"""The server over real HTTP: uvicorn on 127.0.0.1 and a free port, httpx and the openai client.

Most tests serve fake graphs and a fake chat streamer in a thread; the restart test runs
``weft serve`` twice, as processes, with the real RAG graph over the bundled knowledge base, and
the tests of what ``weft serve`` admits share one process with small limits.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.graphs._bakery import NEAR_MISS, write_bakery
from tests.server.conftest import (
    USAGE,
    FakeChat,
    LiveServer,
    ServeProcess,
    connect,
    fake_graphs,
    read_response,
    read_sse,
)
from weft.cli import main
from weft.components.models import NO_ANSWER
from weft.core.settings import Settings
from weft.server import create_app

pytestmark = pytest.mark.server


def serve(chat: FakeChat | None = None, tracing: bool = False, **settings: Any) -> LiveServer:
    app = create_app(
        Settings(**{"rate_limit_per_minute": 0, **settings}),
        graphs=fake_graphs(),
        chat=chat or FakeChat(),
        tracing=tracing,
    )
    return LiveServer(app)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "Traceback" not in response.text and 'File "' not in response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == status
    return error


def test_chat_streams_tokens_as_they_come_then_usage_and_done(http: httpx.Client) -> None:
    chat = FakeChat(delay=0.05)
    with serve(chat) as server:
        arrivals: list[tuple[str, float]] = []
        records = []
        with http.stream("POST", server.url + "/v1/chat", json={"question": "q"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            for record in read_sse(response.iter_lines()):
                if record["event"] is not None:
                    records.append(record)
                    arrivals.append((record["event"], time.monotonic()))
    names = [r["event"] for r in records]
    assert names == ["sources"] + ["token"] * len(chat.tokens) + ["usage", "done"]
    assert [int(r["id"]) for r in records] == list(range(1, len(records) + 1))
    text = "".join(json.loads(r["data"])["text"] for r in records if r["event"] == "token")
    assert text == chat.answer
    assert json.loads(records[-2]["data"])["usage"] == USAGE
    assert json.loads(records[-1]["data"])["answer"] == chat.answer
    token_times = [t for name, t in arrivals if name == "token"]
    # Tokens are 50 ms apart at the source; buffered, they would all arrive at once.
    assert token_times[-1] - token_times[0] > 0.15


def test_chat_sends_heartbeat_comments_while_the_answer_is_slow(http: httpx.Client) -> None:
    chat = FakeChat(tokens=("slow ", "answer"), delay=0.4)
    with (
        serve(chat, heartbeat_seconds=0.1) as server,
        http.stream("POST", server.url + "/v1/chat", json={"question": "q"}) as response,
    ):
        records = list(read_sse(response.iter_lines()))
    comments = [r for r in records if r["event"] is None]
    assert len(comments) >= 3
    assert all(r["comment"] == "heartbeat" for r in comments)
    first_token = next(i for i, r in enumerate(records) if r["event"] == "token")
    assert any(r["event"] is None for r in records[:first_token])
    assert records[-1]["event"] == "done"


def test_client_disconnect_cancels_the_run_within_a_second(http: httpx.Client) -> None:
    chat = FakeChat(hang=True)
    with serve(chat, max_concurrent_runs=1) as server:
        with http.stream("POST", server.url + "/v1/chat", json={"question": "q"}) as response:
            # Hold the iterators: a dropped generator is finalized at once, which can close the
            # stream before we mean to disconnect.
            records = read_sse(response.iter_lines())
            for record in records:
                if record["event"] == "token":
                    break
            assert not chat.cancelled.is_set()
            closed = time.monotonic()
            records.close()
        assert chat.cancelled.wait(timeout=1.0), "the run was not cancelled within 1 s"
        assert chat.cancelled_at is not None and chat.cancelled_at - closed < 1.0
        assert not chat.finished.is_set()
        # The run's slot is free again: the next request is served, not refused with 503.
        deadline = time.monotonic() + 1.0
        status = 0
        while time.monotonic() < deadline:
            status = http.post(
                server.url + "/v1/graphs/words/invoke", json={"input": "a"}
            ).status_code
            if status == 200:
                break
            time.sleep(0.02)
        assert status == 200


def test_a_run_over_the_concurrency_cap_is_503_with_retry_after(http: httpx.Client) -> None:
    chat = FakeChat(hang=True)
    with (
        serve(chat, max_concurrent_runs=1) as server,
        http.stream("POST", server.url + "/v1/chat", json={"question": "q"}) as first,
    ):
        assert first.status_code == 200
        assert chat.first_token.wait(5)
        refused = http.post(server.url + "/v1/chat", json={"question": "again"})
        error = assert_json_error(refused, 503)
        assert refused.headers["retry-after"] == "1"
        assert "limit" in error["message"]
        # Reads are not runs: they still work while the cap is reached.
        assert http.get(server.url + "/v1/models").status_code == 200


def test_every_bad_input_gets_its_status_code(http: httpx.Client) -> None:
    auth = {"Authorization": "Bearer sesame"}
    with serve(api_keys=["sesame"], max_body_bytes=2048) as server:
        url = server.url
        missing = http.post(url + "/v1/chat", json={"question": "q"})
        assert assert_json_error(missing, 401)["type"] == "unauthorized"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = http.post(
            url + "/v1/chat", json={"question": "q"}, headers={"Authorization": "Bearer x"}
        )
        assert_json_error(wrong, 401)

        big = http.post(url + "/v1/chat", json={"question": "x" * 4000}, headers=auth)
        assert_json_error(big, 413)

        invalid = http.post(url + "/v1/chat", json={"question": ""}, headers=auth)
        assert [f["field"] for f in assert_json_error(invalid, 422)["fields"]] == ["question"]
        wrong_type = http.post(url + "/v1/graphs/words/invoke", json={"input": [1]}, headers=auth)
        assert [f["field"] for f in assert_json_error(wrong_type, 422)["fields"]] == ["input"]

        unknown = http.post(url + "/v1/graphs/nope/invoke", json={"input": "x"}, headers=auth)
        assert "rag" in assert_json_error(unknown, 404)["message"]

        failing = http.post(url + "/v1/graphs/boom/invoke", json={"input": "x"}, headers=auth)
        assert "hunter2" not in assert_json_error(failing, 500)["message"]

    with serve(rate_limit_per_minute=2) as server:
        assert http.get(server.url + "/v1/models").status_code == 200
        assert http.get(server.url + "/v1/models").status_code == 200
        limited = http.get(server.url + "/v1/models")
        assert_json_error(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1


def test_cors_preflight_over_http(http: httpx.Client) -> None:
    with serve(cors_origins=["http://ui.example"]) as server:
        response = http.options(
            server.url + "/v1/chat/completions",
            headers={
                "Origin": "http://ui.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "http://ui.example"
        assert "authorization" in response.headers["access-control-allow-headers"].lower()


def test_official_openai_client_non_streaming_and_streaming() -> None:
    chat = FakeChat()
    with serve(chat, api_keys=["sk-weft"]) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-weft", max_retries=0)
        assert sorted(m.id for m in client.models.list()) == ["boom", "rag", "words"]

        completion = client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "What is checked?"}]
        )
        assert completion.choices[0].message.content == chat.answer
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None and completion.usage.total_tokens == 17

        stream = client.chat.completions.create(
            model="rag",
            messages=[{"role": "user", "content": "What is checked?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        deltas, finish, usage = [], None, None
        for chunk in stream:
            if chunk.choices:
                deltas.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage is not None:
                usage = chunk.usage
        assert "".join(deltas) == chat.answer
        assert len([d for d in deltas if d]) == len(chat.tokens)
        assert finish == "stop"
        assert usage is not None and usage.prompt_tokens == 12

        bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="rag", messages=[{"role": "user", "content": "x"}])


def test_openai_client_sees_a_failed_stream_as_an_api_error() -> None:
    with serve(FakeChat(fail=RuntimeError("boom"))) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "q"}], stream=True
        )
        with pytest.raises(openai.APIError):
            list(stream)


def test_readyz_and_metrics_with_weft_graph_metrics(http: httpx.Client) -> None:
    with serve(tracing=True) as server:
        assert http.get(server.url + "/healthz").json() == {"status": "ok"}
        ready = http.get(server.url + "/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert http.post(server.url + "/v1/graphs/words/invoke", json={"input": "a"}).is_success
        http.post(server.url + "/v1/chat", json={"question": "q"})
        text = http.get(server.url + "/metrics").text
    assert 'weft_graph_duration_seconds_count{weft_graph_name="words"} 1' in text
    assert "weft_node_duration_seconds_bucket" in text
    assert 'http_route="/v1/graphs/{name}/invoke"' in text
    assert "weft_server_time_to_first_token_seconds_count 1" in text


@pytest.mark.slow
def test_memory_survives_a_server_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    session = "restart-session"

    owner: dict[str, str] = {}  # the token the server issues with the session's first answer

    def ask(url: str, question: str) -> dict[str, Any]:
        body = {"question": question, "session_id": session}
        chat = httpx.stream("POST", url + "/v1/chat", json=body, headers=owner, timeout=30)
        with chat as response:
            owner.setdefault("X-Weft-Owner", response.headers.get("X-Weft-Owner", ""))
            records = [r for r in read_sse(response.iter_lines()) if r["event"]]
        assert records[-1]["event"] == "done", records[-1]
        done: dict[str, Any] = json.loads(records[-1]["data"])
        return done

    def history(url: str) -> list[dict[str, str]]:
        found = httpx.get(f"{url}/v1/chat/sessions/{session}", headers=owner, timeout=10)
        turns: list[dict[str, str]] = found.json()["history"]
        return turns

    with ServeProcess(data_dir, demo=True) as first:
        answer = ask(first.url, "How do I install weft?")
        assert answer["sources"], "the bundled knowledge base was not ingested"
    assert first.proc is not None and first.proc.returncode is not None

    with ServeProcess(data_dir) as second:
        before = history(second.url)
        assert before == [
            {"role": "user", "content": "How do I install weft?"},
            {"role": "assistant", "content": answer["answer"]},
        ]
        ask(second.url, "And what does make test run?")
        after = history(second.url)
    assert [t["content"] for t in after if t["role"] == "user"] == [
        "How do I install weft?",
        "And what does make test run?",
    ]


@pytest.mark.slow
def test_an_ingest_from_another_process_is_answered_without_a_restart(tmp_path: Path) -> None:
    import subprocess
    import sys

    data_dir = tmp_path / "data"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zebras.md").write_text("# Zebras\n\nZebras are striped and graze in Africa.\n")

    def ingest(*extra: str) -> None:
        cmd = [sys.executable, "-m", "weft.cli", "ingest", str(docs), "--data-dir", str(data_dir)]
        subprocess.run([*cmd, "--no-progress", *extra], check=True, capture_output=True)

    def sources(url: str, question: str) -> list[str]:
        body = {"question": question}
        with httpx.stream("POST", url + "/v1/chat", json=body, timeout=30) as response:
            events = [r for r in read_sse(response.iter_lines()) if r["event"]]
        assert events[-1]["event"] == "done", events
        return [s["title"] for s in json.loads(events[-1]["data"])["sources"]]

    with ServeProcess(data_dir) as server:
        assert httpx.get(server.url + "/readyz").status_code == 200
        ingest()
        assert httpx.get(server.url + "/readyz").status_code == 200
        assert sources(server.url, "Where do zebras graze?")[:1] == ["Zebras"]
        (docs / "zebras.md").unlink()
        okapis = "# Okapis\n\nOkapis are shy giraffes that live in the forests of Congo.\n"
        (docs / "okapis.md").write_text(okapis)
        ingest("--reset")  # a new collection is swapped in under the server
        assert sources(server.url, "Where do okapis live?") == ["Okapis"]
        assert sources(server.url, "Where do zebras graze?") == []  # the old one is gone
        assert httpx.get(server.url + "/readyz").status_code == 200


def _raw_exchange(url: str, raw: bytes) -> httpx.Response:
    """Send ``raw`` bytes to the server at ``url`` and parse what it answers before it closes."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in header_lines]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


NOT_HTTP = {
    "a request line that is no request": b"GARBAGE\r\n\r\n",
    "a header line without a colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "a length that is no number": b"POST /v1/chat HTTP/1.1\r\nContent-Length: ab\r\n\r\n",
    "a TLS handshake to the plain HTTP port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
}


@pytest.fixture(scope="module")
def weft_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One ``weft serve``, with small limits, for the tests of what it admits."""
    env = {
        "WEFT_SERVER_HEADER_TIMEOUT_SECONDS": "1",
        "WEFT_SERVER_MAX_HEADER_BYTES": "2048",
        "WEFT_SERVER_MAX_HEADERS": "30",
        "WEFT_SERVER_MAX_CONNECTIONS_PER_CLIENT": "4",
    }
    with ServeProcess(tmp_path_factory.mktemp("serve") / "data", **env) as server:
        yield server


def test_weft_serve_answers_requests_that_are_not_http_with_a_json_400(
    weft_serve: ServeProcess,
) -> None:
    for what, raw in NOT_HTTP.items():
        response = _raw_exchange(weft_serve.url, raw)
        error = assert_json_error(response, 400)
        assert "could not be read as HTTP/1.1" in error["message"], what
        assert error["type"] == "bad_request"
        assert response.headers["connection"] == "close"
    # the server goes on serving
    assert httpx.get(weft_serve.url + "/healthz", timeout=10).status_code == 200


def test_weft_serve_applies_the_limits_from_its_settings(weft_serve: ServeProcess) -> None:
    """The limits' settings reach the protocol that ``weft serve`` gives uvicorn."""
    url = weft_serve.url
    with ExitStack() as stack:
        big = stack.enter_context(connect(url))
        big.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n")
        assert read_response(big)[0] == 431
        slow = stack.enter_context(connect(url))
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert read_response(slow)[0] == 408
        with httpx.Client(timeout=10) as http:
            many = {f"X-Loom-{i}": "jacquard" for i in range(40)}
            assert http.get(url + "/healthz", headers=many).status_code == 431
        for _ in range(4):
            stack.enter_context(connect(url))
        time.sleep(0.1)  # accepted, and well within the header timeout
        assert read_response(stack.enter_context(connect(url)))[0] == 429


def test_weft_serve_leaves_an_empty_data_dir_empty_without_demo(tmp_path: Path) -> None:
    with ServeProcess(tmp_path / "data") as server:
        page = httpx.get(server.url + "/", timeout=10).text
    said = "".join(server.output)
    assert "is empty; ingest documents with weft ingest" in said and "--demo" in said
    assert not (tmp_path / "data" / "bm25").exists()  # nothing of weft's own was ingested
    assert "The knowledge base 'data' is empty" in page


def test_weft_serve_strict_refuses_what_the_documents_do_not_say(
    tmp_path: Path, http: httpx.Client
) -> None:
    docs, data = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    assert main(["ingest", *map(str, write_bakery(docs)), "--data-dir", str(data)]) == 0
    with ServeProcess(data, args=["--strict"]) as server:
        asked = {"model": "rag", "messages": [{"role": "user", "content": NEAR_MISS}]}
        reply = http.post(server.url + "/v1/chat/completions", json=asked)
    assert reply.status_code == 200
    # Without --strict the same question gets "Spelt rolls are sold in bags of six." (test_rag).
    assert reply.json()["choices"][0]["message"]["content"] == NO_ANSWER

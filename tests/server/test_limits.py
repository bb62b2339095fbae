"""What the server admits before any work, against real uvicorn: header size and count, header,
body and keep-alive timeouts, connections per client, question length, and run slots that only
requests with a whole, valid body take."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest

from tests.server.conftest import (
    JSON,
    FakeChat,
    LiveServer,
    closes,
    connect,
    fake_graphs,
    read_response,
)
from weft.core.settings import Settings
from weft.server import create_app, uvicorn_options

pytestmark = pytest.mark.server


@contextmanager
def serve(**settings: Any) -> Iterator[tuple[LiveServer, Any]]:
    """The fake graphs under real uvicorn, admitted as ``weft serve`` admits requests."""
    config = Settings(**{"rate_limit_per_minute": 0, **settings})
    app = create_app(config, graphs=fake_graphs(), chat=FakeChat(), tracing=False)
    with LiveServer(app, **uvicorn_options(config)) as server:
        yield server, app


def stall_body(url: str, path: str) -> socket.socket:
    """A request that announces 100 bytes of body, sends 10 and stops."""
    sock = connect(url)
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {JSON}\r\nContent-Length: 100\r\n\r\n"
    sock.sendall(head.encode() + b'{"input": ')
    return sock


# -- run slots and the body timeout ---------------------------------------------------------------


def test_stalled_bodies_hold_no_run_slot_and_get_a_408_after_the_body_timeout() -> None:
    with (
        serve(max_concurrent_runs=2, server_body_timeout_seconds=2.0) as (server, app),
        ExitStack() as stack,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        stalled = [
            stack.enter_context(stall_body(server.url, "/v1/graphs/words/invoke")) for _ in range(6)
        ]
        time.sleep(0.3)  # every stalled request is in its route, reading the body
        assert app.state.weft.slots.active == 0
        for _ in range(3):  # more than the run cap, one after another
            ok = http.post("/v1/graphs/words/invoke", json={"input": "linen weave"})
            assert ok.status_code == 200, ok.text
            assert ok.json() == {"output": "LINEN WEAVE "}
        chat = http.post("/v1/chat", json={"question": "what is a twill?"})
        assert chat.status_code == 200 and "event: done" in chat.text
        for sock in stalled:
            status, body, closed = read_response(sock)
            assert status == 408 and closed
            assert "WEFT_SERVER_BODY_TIMEOUT_SECONDS" in body["error"]["message"]
        assert app.state.weft.slots.active == 0


def test_a_run_over_the_cap_is_refused_only_once_its_body_is_valid() -> None:
    app = create_app(
        Settings(rate_limit_per_minute=0, max_concurrent_runs=1),
        graphs=fake_graphs(),
        chat=FakeChat(hang=True),
        tracing=False,
    )
    with (
        LiveServer(app) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
        http.stream("POST", "/v1/chat", json={"question": "warp or weft?"}) as held,
    ):
        assert held.status_code == 200  # holds the only slot while it hangs
        bad = http.post("/v1/graphs/words/invoke", json={"input": 3})
        assert bad.status_code == 422  # told what is wrong, not to come back later
        busy = http.post("/v1/graphs/words/invoke", json={"input": "selvedge"})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"


# -- headers --------------------------------------------------------------------------------------


def test_headers_over_the_size_limit_are_a_431_and_the_connection_closes() -> None:
    with serve(server_max_header_bytes=4096) as (server, _):
        with connect(server.url) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 6000 + b"\r\n\r\n")
            status, body, closed = read_response(sock)
        assert status == 431 and closed
        assert "WEFT_SERVER_MAX_HEADER_BYTES" in body["error"]["message"]
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert http.get("/healthz", headers={"X-Pad": "a" * 3000}).status_code == 200


def test_a_huge_header_is_cut_off_without_reading_it() -> None:
    with serve() as (server, _), connect(server.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: ")
        sent = 0
        try:
            while sent < 64 * 2**20:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):  # the server closed it
            pass
        assert sent < 8 * 2**20  # it stopped reading far short of the 64 MB


def test_too_many_headers_are_a_431() -> None:
    with serve(server_max_headers=20) as (server, _), httpx.Client(timeout=10) as http:
        many = {f"X-Thread-{i}": "cotton" for i in range(40)}
        response = http.get(server.url + "/healthz", headers=many)
        assert response.status_code == 431
        assert response.headers["connection"] == "close"
        assert "WEFT_SERVER_MAX_HEADERS" in response.json()["error"]["message"]
        assert http.get(server.url + "/healthz", headers={"X-Thread": "wool"}).status_code == 200


# -- timeouts -------------------------------------------------------------------------------------


def test_headers_sent_slowly_get_a_408_and_the_connection_closes() -> None:
    with serve(server_header_timeout_seconds=0.5) as (server, _):
        with connect(server.url) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            started = time.monotonic()
            with pytest.raises(OSError):
                for i in range(50):  # a header line every 0.1 s: 5 s, ten times the timeout
                    sock.sendall(f"X-Stitch-{i}: chain\r\n".encode())
                    time.sleep(0.1)
            assert time.monotonic() - started < 3
        with connect(server.url) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            status, body, closed = read_response(sock)
        assert status == 408 and closed
        assert "WEFT_SERVER_HEADER_TIMEOUT_SECONDS" in body["error"]["message"]


def test_idle_connections_are_closed_before_and_between_requests() -> None:
    with serve(server_header_timeout_seconds=0.5, server_keep_alive_seconds=0.5) as (server, _):
        with connect(server.url) as silent:
            assert closes(silent)  # never sent a byte: closed, without a response
        kept = connect(server.url)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"200 OK" in kept.recv(65536)
        started = time.monotonic()
        assert closes(kept)
        assert time.monotonic() - started < 3
        kept.close()


def test_a_body_the_app_answered_without_reading_gets_the_body_timeout() -> None:
    settings = {"server_body_timeout_seconds": 1.0, "server_keep_alive_seconds": 0.5}
    with serve(**settings) as (server, _), connect(server.url) as sock:
        head = b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head + b"lace")
        assert b"405 Method Not Allowed" in sock.recv(65536)
        started = time.monotonic()
        with pytest.raises(OSError):
            for _ in range(50):  # a byte every 0.2 s, each sooner than the keep-alive time
                sock.sendall(b"x")
                time.sleep(0.2)
        assert time.monotonic() - started < 4


# -- connections per client -----------------------------------------------------------------------


def test_one_connection_more_than_the_per_client_cap_is_a_429() -> None:
    with serve(server_max_connections_per_client=3) as (server, _), ExitStack() as stack:
        held = [stack.enter_context(connect(server.url)) for _ in range(3)]
        time.sleep(0.2)
        with connect(server.url) as extra:
            status, body, closed = read_response(extra)
        assert status == 429 and closed
        assert "WEFT_SERVER_MAX_CONNECTIONS_PER_CLIENT" in body["error"]["message"]
        held[0].close()
        time.sleep(0.2)
        with httpx.Client(timeout=10) as http:  # a freed place is taken again
            assert http.get(server.url + "/healthz").status_code == 200


# -- question length ------------------------------------------------------------------------------


def test_a_question_over_the_limit_is_a_422_naming_the_setting() -> None:
    long = "why" + " why" * 29
    with (
        serve(server_max_question_chars=100) as (server, app),
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        refused = {
            "question": http.post("/v1/chat", json={"question": long}),
            "messages.1.content": http.post(
                "/v1/chat/completions",
                json={
                    "model": "rag",
                    "messages": [
                        {"role": "system", "content": "answer"},
                        {"role": "user", "content": long},
                    ],
                },
            ),
            "input.question": http.post(
                "/v1/graphs/rag/invoke", json={"input": {"question": long}}
            ),
            "input": http.post("/v1/graphs/words/stream", json={"input": long}),
            "inputs.1": http.post("/v1/graphs/words/batch", json={"inputs": ["ok", long]}),
        }
        for field, response in refused.items():
            assert response.status_code == 422, (field, response.text)
            error = response.json()["error"]
            assert error["param"] == field
            assert "WEFT_SERVER_MAX_QUESTION_CHARS" in error["message"]
            assert "119 characters" in error["message"]
        fits = http.post("/v1/graphs/words/invoke", json={"input": "why " * 25})
        assert fits.status_code == 200
        assert app.state.weft.slots.active == 0

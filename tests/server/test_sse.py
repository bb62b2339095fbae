"""The event-stream response, driven through its ASGI interface."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from weft.server._sse import HEARTBEAT, EventStream


class Client:
    """An ASGI peer: records what the response sends; disconnects when told to."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.leave = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def serve(frames: AsyncIterator[bytes], client: Client, heartbeat: float = 15.0) -> None:
    response = EventStream(frames, heartbeat=heartbeat, headers={"Cache-Control": "no-cache"})
    await response({"type": "http"}, client.receive, client.send)


async def test_frames_ready_at_once_go_out_as_one_write_in_order() -> None:
    async def frames() -> AsyncIterator[bytes]:
        for i in range(5):  # a burst: nothing awaited in between
            yield b"t%d;" % i
        await asyncio.sleep(0.01)
        yield b"late;"

    client = Client()
    await serve(frames(), client)
    start = client.sent[0]
    assert start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert (b"cache-control", b"no-cache") in start["headers"]
    assert client.bodies == [b"t0;t1;t2;t3;t4;", b"late;", b""]
    assert client.sent[-1]["more_body"] is False


async def test_frames_that_arrive_apart_go_out_apart() -> None:
    async def frames() -> AsyncIterator[bytes]:
        for i in range(3):
            await asyncio.sleep(0.01)
            yield b"%d" % i

    client = Client()
    await serve(frames(), client)
    assert client.bodies == [b"0", b"1", b"2", b""]


async def test_heartbeats_go_out_while_no_frame_is_ready() -> None:
    async def frames() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.35)
        yield b"answer"

    client = Client()
    await serve(frames(), client, heartbeat=0.1)
    assert client.bodies.count(HEARTBEAT) >= 2
    assert client.bodies[-2:] == [b"answer", b""]


async def test_a_client_that_leaves_closes_the_frames_and_ends_the_response() -> None:
    closed = asyncio.Event()

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await asyncio.sleep(60)
            yield b"never"
        finally:
            closed.set()

    client = Client()
    task = asyncio.ensure_future(serve(frames(), client))
    while not client.bodies:
        await asyncio.sleep(0.005)
    client.leave.set()
    await asyncio.wait_for(task, timeout=1)
    assert closed.is_set()
    assert client.bodies == [b"first"]


async def test_a_failing_source_ends_the_stream_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def frames() -> AsyncIterator[bytes]:
        yield b"ok"
        raise RuntimeError("source broke")

    client = Client()
    with caplog.at_level(logging.ERROR, logger="weft.server"):
        await serve(frames(), client)
    assert client.bodies == [b"ok", b""]
    assert "an event stream failed" in caplog.text


async def test_no_heartbeat_while_frames_keep_coming() -> None:
    async def frames() -> AsyncIterator[bytes]:
        for i in range(12):  # 0.6 s in all: a heartbeat would be due at 0.4 s without them
            await asyncio.sleep(0.05)
            yield b"%d" % i

    client = Client()
    await serve(frames(), client, heartbeat=0.4)
    assert HEARTBEAT not in client.bodies
    assert client.bodies[-1] == b""


async def test_a_slow_client_holds_the_reader_back() -> None:
    from weft.server._sse import MAX_READ_AHEAD

    produced = 0

    async def frames() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(3 * MAX_READ_AHEAD):
            produced += 1
            yield b"x"

    ahead: list[int] = []

    class Slow(Client):
        async def send(self, message: dict[str, Any]) -> None:
            await super().send(message)
            sent = sum(len(b) for b in self.bodies)
            ahead.append(produced - sent)
            await asyncio.sleep(0.002)

    client = Slow()
    await serve(frames(), client)
    assert b"".join(client.bodies) == b"x" * (3 * MAX_READ_AHEAD)
    assert max(ahead) <= MAX_READ_AHEAD


async def test_a_failing_connection_ends_the_response_and_closes_the_frames() -> None:
    closed = asyncio.Event()

    async def frames() -> AsyncIterator[bytes]:
        try:
            await asyncio.sleep(60)
            yield b"never"
        finally:
            closed.set()

    class Broken(Client):
        async def receive(self) -> dict[str, Any]:
            raise ConnectionError("connection reset")

    await asyncio.wait_for(serve(frames(), Broken()), timeout=1)
    assert closed.is_set()

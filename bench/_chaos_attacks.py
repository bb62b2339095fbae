"""The chaos benchmark's attacks on the HTTP layer: malformed requests, slowloris, stalled bodies.

- :func:`fuzz_cases`: raw requests by group (broken request lines, bad headers, huge and too
  many headers, bad JSON, wrong types, bad Content-Length, other protocols on the plain port,
  and seeded byte mutations of valid requests).
- :func:`fuzz`: sends them, a few at a time, and counts what came back by status class.
- :func:`under_attack`: a normal client's success rate and latency while slowloris or
  stalled-body connections, from another loopback address, hold the server's sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bench._chaos_server import ChatResult, Exchange, chat, exchange, pct

__all__ = [
    "ATTACKER",
    "HEADER_FLOODS",
    "AttackRow",
    "FuzzCount",
    "attacker_address_works",
    "fuzz",
    "fuzz_cases",
    "under_attack",
]

ATTACKER = "127.0.0.2"
"""Attack connections come from this loopback address, so a cap per client address (which
would count them) does not also count the normal client on 127.0.0.1."""

_CHAT = "/v1/chat"
_POSTS = (
    _CHAT,
    "/v1/chat/completions",
    "/v1/graphs/rag/invoke",
    "/v1/graphs/hybrid/stream",
    "/v1/graphs/demo/batch",
)


def _request(
    method: str, path: str, body: bytes = b"", headers: tuple[str, ...] = (), *, length: bool = True
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if length and (body or method == "POST"):
        lines.append(f"Content-Length: {len(body)}")
    if body:
        lines.append("Content-Type: application/json")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _json(path: str, value: object) -> bytes:
    return _request("POST", path, json.dumps(value).encode())


_TLS_HELLO = bytes.fromhex(
    "16030100a5010000a10303" + "00" * 32 + "000020c02bc02fc02cc030cca9cca8c013c014009c009d002f"
    "0035000a0100005800000014001200000f7777772e6578616d706c652e636f6d000b000403000102000a000a"
    "0008001d001700180019000d0018001604030503060308040805080604010501060102030201"
)


def _request_lines() -> list[bytes]:
    return [
        b"\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"get / http/1.1\r\nHost: x\r\n\r\n",
        b"FOO /v1/chat HTTP/1.1\r\nHost: x\r\n\r\n",
        b"DELETE /v1/chat HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n",
        _request("GET", "/" + "a" * 100_000),
        _request("GET", "/../../../../etc/passwd"),
        _request("GET", "/static/..%2f..%2f..%2fpyproject.toml"),
        _request("GET", "/static/%2e%2e/%2e%2e/app.py"),
        _request("GET", "/v1/chat/sessions/..%2f..%2fcheckpoints.sqlite"),
        _request("GET", "/v1/chat/sessions/" + "s" * 20_000),
        _request("GET", "/%00"),
        _request("GET", "/%zz"),
        _request("POST", "/v1/graphs/%2e%2e/invoke", b"{}"),
        _request("POST", "/v1/graphs/" + "g" * 5000 + "/invoke", b"{}"),
    ]


def _bad_headers() -> list[bytes]:
    chat = b'{"question": "What is a bylaw?"}'
    head = "POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n"
    raw = [
        "GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n",
        "GET /metrics/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x01\x02\r\n\r\n",
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: " + "B" * 10_000 + "\r\n\r\n",
        head + "Content-Type: application/json; charset=ebcdic\r\n\r\n",
        head + "Content-Type: text/html\r\n\r\n",
        head + "Transfer-Encoding: chunked\r\n\r\n",
        head + "Transfer-Encoding: gzip\r\n\r\n",
        head + "Transfer-Encoding: chunked, chunked\r\n\r\n",
        head + "Expect: 100-continue\r\n\r\n",
        head + "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        head + "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
        head + "Content-Encoding: gzip\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n" + "X" * 70_000 + "\r\n\r\n",
    ]
    return [r.encode("latin-1") + (chat if r.startswith("POST") else b"") for r in raw]


HEADER_FLOODS = "huge / too many headers"
"""The group of header blocks far past any sane limit (1 MB and more, 20,000 headers)."""


def _header_floods(quick: bool) -> list[bytes]:
    sizes = (1 << 20,) if quick else (1 << 20, 8 << 20)
    out = [_request("GET", "/healthz", headers=(f"X-Big: {'v' * size}",)) for size in sizes]
    out.append(_request("POST", _CHAT, b'{"question": "hi"}', (f"X-Big: {'v' * (1 << 20)}",)))
    flood = tuple(f"X-H{i}: {i}" for i in range(20_000))
    out += [
        _request("GET", "/healthz", headers=flood),
        _request("GET", "/v1/models", headers=flood),
    ]
    return out


def _bad_json() -> list[bytes]:
    bodies = [
        b"",
        b"{",
        b"}",
        b"null",
        b"[]",
        b'"x"',
        b"1e999999",
        b"NaN",
        b'{"question": NaN}',
        b'{"question": "\\ud800"}',
        b'{"question": "\xff\xfe"}',
        b"\xef\xbb\xbf{}",
        b'{"question": "a", "question": 5}',
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'{"question": ' + b"1" * 5000 + b"}",
        b'{"input": ' + b"9" * 5000 + b"}",
        b"\x00" * 64,
    ]
    return [_request("POST", path, body) for path in _POSTS for body in bodies]


def _wrong_types() -> list[bytes]:
    chat: list[object] = [
        {"question": 5},
        {"question": None},
        {"question": ["a"]},
        {"question": {}},
        {"question": ""},
        {"question": " " * 10},
        {},
        {"question": "x", "session_id": 5},
        {"question": "x", "session_id": "../../etc"},
        {"question": "x", "session_id": "s" * 10_000},
        {"question": "x", "history": "no"},
        {"question": "x", "extra": [1, 2, 3]},
    ]
    completions: list[object] = [
        {"messages": "x"},
        {"messages": []},
        {"messages": [{"role": 5}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        {"messages": [{"role": "user", "content": "x"}], "model": 5},
        {"messages": [{"role": "user", "content": "x"}], "model": "nope"},
        {"messages": [{"role": "user", "content": "x"}], "stream": "yes"},
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": -1},
        {"messages": [{"role": "user", "content": "x"}], "n": 1000},
        {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
        {"messages": [{"role": "user", "content": "x"}], "stream_options": 5},
    ]
    graphs: list[tuple[str, object]] = [
        ("/v1/graphs/rag/invoke", {"input": 5}),
        ("/v1/graphs/rag/invoke", {"input": {"question": 5}}),
        ("/v1/graphs/rag/invoke", {}),
        ("/v1/graphs/rag/invoke", {"input": {"question": "x"}, "config": "x"}),
        ("/v1/graphs/hybrid/stream", {"input": ["a"]}),
        ("/v1/graphs/demo/batch", {"inputs": 5}),
        ("/v1/graphs/demo/batch", {"inputs": ["a", "b"], "max_concurrency": "4"}),
        ("/v1/graphs/demo/batch", {"inputs": ["a"], "max_concurrency": -1}),
        ("/v1/graphs/nope/invoke", {"input": "x"}),
    ]
    out = [_json(_CHAT, v) for v in chat]
    out += [_json("/v1/chat/completions", v) for v in completions]
    return out + [_json(path, v) for path, v in graphs]


def _content_lengths() -> list[bytes]:
    body = b'{"question": "What is a bylaw?"}'
    head = "POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    lengths = ["abc", "-1", "1e3", "99999999999999999999", " 5", "5, 5", "0x20", ""]
    out = [f"{head}Content-Length: {v}\r\n\r\n".encode() + body for v in lengths]
    out += [
        f"{head}Content-Length: 32\r\nContent-Length: 40\r\n\r\n".encode() + body,
        f"{head}Content-Length: 10\r\n\r\n".encode() + body,
        f"{head}Content-Length: 0\r\n\r\n".encode() + body,
        f"{head}Content-Length: 2000000\r\n\r\n".encode() + body,
        f"{head}Transfer-Encoding: chunked\r\n\r\nzz\r\n".encode() + body + b"\r\n0\r\n\r\n",
        f"{head}Transfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n".encode(),
        f"{head}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n".encode() + body,
        f"{head}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n20\r\n".encode() + body,
        f"{head}Content-Length: 100\r\n\r\n".encode() + body[:10],  # stalls: a timeout here
    ]
    return out


def _other_protocols(rng: random.Random) -> list[bytes]:
    out = [
        _TLS_HELLO,
        _TLS_HELLO * 3,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"\x05\x01\x00",  # SOCKS5
        b"*1\r\n$4\r\nPING\r\n",  # a Redis command
    ]
    return out + [rng.randbytes(rng.randrange(1, 4096)) for _ in range(10)]


def _mutations(rng: random.Random, n: int) -> list[bytes]:
    seeds = [
        _json(_CHAT, {"question": "How tall may a fence be?"}),
        _json("/v1/chat/completions", {"messages": [{"role": "user", "content": "Fences?"}]}),
        _json("/v1/graphs/rag/invoke", {"input": {"question": "Parking?"}}),
        _json("/v1/graphs/demo/batch", {"inputs": ["a", "b"]}),
        _request("GET", "/v1/models"),
    ]
    out = []
    for _ in range(n):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 6)):
            # Same-length edits keep most Content-Lengths true, so few requests stall.
            data[rng.randrange(len(data))] = rng.randrange(256)
        out.append(bytes(data))
    return out


def fuzz_cases(quick: bool, seed: int = 21) -> dict[str, list[bytes]]:
    """The malformed requests, by group."""
    rng = random.Random(seed)
    return {
        "broken request lines": _request_lines(),
        "bad headers": _bad_headers(),
        HEADER_FLOODS: _header_floods(quick),
        "bad JSON": _bad_json(),
        "wrong types": _wrong_types(),
        "bad Content-Length / chunking": _content_lengths(),
        "TLS and other protocols": _other_protocols(rng),
        "byte mutations": _mutations(rng, 150 if quick else 2500),
    }


@dataclass
class FuzzCount:
    """What one group of malformed requests got back."""

    sent: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    leaks: int = 0  # answers that show a traceback or a server path
    slowest: float = 0.0


_LEAKS = (b"Traceback (most recent call last)", b'File "/', b"site-packages/")


def fuzz(
    host: str, port: int, cases: dict[str, list[bytes]], timeout: float
) -> dict[str, FuzzCount]:
    """Send every case on its own connection, eight at a time; count answers by status class
    (2xx..5xx), or as "closed" (no answer) or "no answer in N s"."""
    out: dict[str, FuzzCount] = {}
    with ThreadPoolExecutor(8) as pool:
        for group, payloads in cases.items():
            count = out[group] = FuzzCount(sent=len(payloads))
            for result in pool.map(lambda p: exchange(host, port, p, timeout), payloads):
                count.by_class[_status_class(result)] += 1
                count.leaks += any(marker in result.body for marker in _LEAKS)
                count.slowest = max(count.slowest, result.seconds)
    return out


def _status_class(result: Exchange) -> str:
    if result.status is not None:
        return f"{result.status // 100}xx"
    return result.outcome


# -- slowloris and stalled bodies ----------------------------------------------------------------


@dataclass
class AttackRow:
    """A normal client's requests while ``attack`` ran with ``connections`` sockets."""

    attack: str
    connections: int
    results: list[ChatResult] = field(default_factory=list)
    opened: int = 0  # attack connections opened (reopened when the server closed them)
    closed_by_server: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def success(self) -> float:
        return sum(r.ok for r in self.results) / max(1, len(self.results))

    @property
    def p95_ms(self) -> float:
        """p95 latency of the requests that were answered (a refusal is no service, however
        fast); nan when none was."""
        return pct([r.seconds * 1000 for r in self.results if r.ok], 0.95)


async def _attacker(
    host: str, port: int, kind: str, row: AttackRow, stop: asyncio.Event, source: str
) -> None:
    """One attack connection from ``source``, reopened whenever the server closes it, until
    ``stop``."""
    body = b'{"question": "What may a bylaw say about fences?"}'
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        except OSError:
            await asyncio.sleep(0.5)
            continue
        row.opened += 1
        try:
            writer.write(f"POST {_CHAT} HTTP/1.1\r\nHost: {host}\r\n".encode())
            if kind == "stalled body":
                writer.write(b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
                writer.write(body[:10])
            answer = asyncio.ensure_future(reader.read(1 << 16))
            sent = 0
            while not stop.is_set() and not answer.done():
                await asyncio.wait([answer], timeout=1.0)
                if kind == "slowloris" and not answer.done():
                    writer.write(f"X-Trickle-{sent}: {sent}\r\n".encode())  # never the blank line
                    sent += 1
            if answer.done():
                row.closed_by_server += 1
                data = answer.result() if not answer.exception() else b""
                row.statuses[
                    data[9:12].decode("latin-1") if data[:5] == b"HTTP/" else "closed"
                ] += 1
            else:
                answer.cancel()
        except (OSError, asyncio.IncompleteReadError):
            row.closed_by_server += 1
            row.statuses["reset"] += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if not stop.is_set():
            await asyncio.sleep(0.5)  # then the next connection, as a patient attacker would


def _questions() -> Iterator[str]:
    topics = ("fences", "parking", "noise after ten", "street trees", "market stalls", "signs")
    i = 0
    while True:
        yield f"What do the rules say about {topics[i % len(topics)]}? ({i})"
        i += 1


async def under_attack(
    url: str, attack: str, connections: int, seconds: float, clients: int = 2
) -> AttackRow:
    """Run ``clients`` normal chat clients back to back for ``seconds`` while ``connections``
    attack sockets of kind ``attack`` ("slowloris", "stalled body", "both" or "none") are held."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    row = AttackRow(attack, connections if attack != "none" else 0)
    stop = asyncio.Event()
    kinds = {"none": [], "both": ["slowloris", "stalled body"]}.get(attack, [attack])
    source = ATTACKER if attacker_address_works() else "127.0.0.1"
    attackers = [
        asyncio.ensure_future(_attacker(host, int(port), kind, row, stop, source))
        for kind in kinds
        for _ in range(connections)
    ]
    if attackers:
        await asyncio.sleep(2.0)  # let them connect and settle first
    questions = _questions()
    deadline = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            result = await chat(url, next(questions), timeout=15)
            row.results.append(result)
            if not result.ok:
                await asyncio.sleep(0.2)  # a client backs off after a failure

    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        stop.set()
        await asyncio.gather(*attackers, return_exceptions=True)
    return row


def attacker_address_works() -> bool:
    """True when this machine lets a socket bind to :data:`ATTACKER` (Linux loopback does)."""
    try:
        with socket.socket() as sock:
            sock.bind((ATTACKER, 0))
        return True
    except OSError:
        return False

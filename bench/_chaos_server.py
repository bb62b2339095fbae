"""What the chaos benchmark runs against, and how it talks to it.

- :class:`Serve`: ``weft serve`` as a subprocess on 127.0.0.1 and a free port, over its own data
  directory, with the environment it is given; its resident memory read from ``/proc``.
- :class:`Children`: every process the benchmark started, killed when it ends or overruns.
- :func:`exchange`: one raw request over a plain socket, and what came back (or did not).
- :func:`chat`: one ``POST /v1/chat`` over asyncio, read to the end, its events parsed.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sse_load import _pct as pct

__all__ = ["ChatResult", "Children", "Exchange", "Serve", "chat", "end", "exchange", "pct"]

ROOT = Path(__file__).resolve().parents[1]


def end(procs: list[subprocess.Popen[Any]], grace_s: float = 15) -> None:
    """Terminate every one of ``procs`` still running; kill those still there after
    ``grace_s``."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Children:
    """The processes the benchmark started; :meth:`kill_all` ends every one still running.

    A watchdog thread kills them all, and then this process, once ``limit_s`` has passed, so a
    stuck part can never leave the benchmark (or a server) running.
    """

    def __init__(self, limit_s: float) -> None:
        self.procs: list[subprocess.Popen[Any]] = []
        self.deadline = time.monotonic() + limit_s
        threading.Thread(target=self._watch, daemon=True).start()

    def add(self, proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        self.procs.append(proc)
        return proc

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def kill_all(self) -> None:
        end(self.procs)

    def _watch(self) -> None:
        while self.left() > 0:
            time.sleep(1)
        print("\nchaos: the time limit has passed; stopping every process it started", flush=True)
        self.kill_all()
        _thread.interrupt_main()  # the main thread's finally blocks remove what it wrote
        time.sleep(30)
        os._exit(3)


class Serve:
    """``weft serve --demo --port 0 --data-dir DATA_DIR`` with ``env`` over this environment:
    the bundled handbook is ingested, so chats retrieve and call the model.

    ``url`` is set once ``/readyz`` answers 200. Raises RuntimeError, with the server's last
    lines, when it exits or does not become ready within ``startup_s``.
    """

    def __init__(
        self, children: Children, data_dir: Path, env: dict[str, str], *, startup_s: float = 180
    ) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        command = [sys.executable, "-m", "weft.cli", "serve", "--demo", "--port", "0"]
        self.proc = children.add(
            subprocess.Popen(
                [*command, "--data-dir", str(data_dir)],
                cwd=ROOT,
                env=full_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        self.lines: deque[str] = deque(maxlen=200)
        self.url = ""
        self._found = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + startup_s
        while not self._found.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("weft serve did not start:\n" + self.tail())
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("weft serve never became ready:\n" + self.tail())
            time.sleep(0.2)

    @property
    def host(self) -> str:
        return self.url.split("//", 1)[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            found = re.search(r"open (http://\S+?)/? to chat", line)
            if found and not self.url:
                self.url = found.group(1)
                self._found.set()

    def _ready(self) -> bool:
        result = exchange(self.host, self.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 5)
        return result.status == 200

    def tail(self, n: int = 15) -> str:
        return "\n".join(f"  server: {line}" for line in list(self.lines)[-n:])

    def rss_mb(self) -> float:
        """The server's resident memory (``VmRSS``) in MB; nan once it has exited."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return float("nan")
        found = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
        return int(found.group(1)) / 1024 if found else float("nan")

    def metrics(self) -> str:
        """The ``/metrics`` text, or "" when it does not answer 200."""
        result = exchange(self.host, self.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 10)
        return result.body.decode("utf-8", "replace") if result.status == 200 else ""

    def stop(self) -> None:
        end([self.proc])
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- a raw exchange ---------------------------------------------------------------------------


@dataclass
class Exchange:
    """What one raw request got: ``status`` (None when no status line came), or ``outcome``:
    "answered", "closed" (the server closed without a status line), "timeout" (nothing within
    the time allowed) or "refused" (no connection)."""

    status: int | None = None
    outcome: str = "answered"
    body: bytes = b""
    seconds: float = 0.0


def _final(data: bytes) -> bytes:
    """``data`` without the interim (1xx) responses in front of the final one."""
    while re.match(rb"HTTP/\d\.\d 1\d\d", data) and b"\r\n\r\n" in data:
        data = data.partition(b"\r\n\r\n")[2]
    return data


def _response_done(data: bytes) -> bool:
    """True once ``data`` holds a whole response: head, and the body its framing announces."""
    head, sep, body = _final(data).partition(b"\r\n\r\n")
    if not sep:
        return False
    lowered = head.lower()
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", lowered)
    if length:
        return len(body) >= int(length.group(1))
    if b"transfer-encoding: chunked" in lowered:
        return body.endswith(b"0\r\n\r\n")
    return False


def exchange(
    host: str, port: int, payload: bytes, timeout: float, *, source: str | None = None
) -> Exchange:
    """Send ``payload`` on a new connection and read one response (or until ``timeout``)."""
    started = time.perf_counter()
    result = Exchange()
    try:
        sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        )
    except OSError:
        return Exchange(outcome="refused", seconds=time.perf_counter() - started)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        with contextlib.suppress(OSError):  # the server may close before it has read it all
            sock.sendall(payload)
        while not _response_done(data):
            left = deadline - time.monotonic()
            if left <= 0:
                result.outcome = "timeout"
                break
            sock.settimeout(left)
            try:
                piece = sock.recv(1 << 16)
            except TimeoutError:
                result.outcome = "timeout"
                break
            except OSError:
                piece = b""
            if not piece:
                break
            data += piece
    finally:
        sock.close()
    data = _final(data)
    found = re.match(rb"HTTP/\d\.\d (\d{3})", data)
    if found:
        result.status = int(found.group(1))
        result.outcome = "answered"
        result.body = data.partition(b"\r\n\r\n")[2]
    elif result.outcome != "timeout":
        result.outcome = "closed"
    result.seconds = time.perf_counter() - started
    return result


# -- a chat request ---------------------------------------------------------------------------


@dataclass
class ChatResult:
    """One chat request: ``ok`` when it got 200 and a ``done`` event and no ``error`` event."""

    status: int | None = None
    ok: bool = False
    error: str = ""
    done: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    marked_fallback: bool = False
    """A response header or an event whose name says "fallback" came with it."""


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


def _events(text: str) -> list[tuple[str, str]]:
    events = []
    for block in text.split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events


async def _chat(url: str, body: bytes, result: ChatResult) -> None:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
    try:
        writer.write(
            f"POST /v1/chat HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    found = re.match(rb"HTTP/\d\.\d (\d{3})", head)
    result.status = int(found.group(1)) if found else None
    if result.status != 200:
        result.error = f"HTTP {result.status}: {payload[:160].decode('utf-8', 'replace')}"
        return
    if b"transfer-encoding: chunked" in head.lower():
        payload = _dechunk(payload)
    events = _events(payload.decode("utf-8", "replace"))
    names = [h.partition(b":")[0] for h in head.lower().split(b"\r\n")[1:]]
    result.marked_fallback = any(b"fallback" in n for n in names) or any(
        "fallback" in name.lower() for name, _ in events
    )
    for name, data in events:
        if name == "error":
            result.error = f"error event: {data[:160]}"
        elif name == "done":
            with contextlib.suppress(ValueError):
                result.done = json.loads(data)
            result.ok = True
    if not result.ok and not result.error:
        result.error = "no done event"


async def chat(url: str, question: str, *, timeout: float, **extra: Any) -> ChatResult:
    """``POST /v1/chat`` with ``{"question": question, **extra}``, read to the end."""
    result = ChatResult()
    started = time.perf_counter()
    body = json.dumps({"question": question, **extra}).encode()
    try:
        await asyncio.wait_for(_chat(url, body, result), timeout)
    except asyncio.TimeoutError:
        result.error = f"no whole answer within {timeout:.0f} s"
    except (OSError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    if result.error:
        result.ok = False
    result.seconds = time.perf_counter() - started
    return result

"""Fakes and live servers for the server tests.

- :class:`FakeChat` streams a scripted answer with the real chat streamer's shape, and records
  its calls and whether (and when) it was cancelled.
- :func:`fake_graphs` are small compiled weft graphs: a chat graph, a streaming string graph,
  and one whose node raises.
- :class:`LiveServer` runs an app under real uvicorn on 127.0.0.1 and a free port, in a thread.
- :class:`ServeProcess` runs ``weft serve`` as a subprocess against a data directory.
- :func:`connect` opens a raw connection; :func:`read_response` reads a JSON response from it,
  and :func:`closes` tells whether the server then closed it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from langchain_core.runnables import RunnableConfig
from starlette.applications import Starlette

from weft import END, START, Graph
from weft.core.compiled import CompiledGraph
from weft.core.settings import Settings
from weft.graphs.schema import (
    ChatDone,
    ChatEvent,
    ChatInput,
    ChatOutput,
    ChatSources,
    ChatToken,
    ChatUsage,
    SourceRef,
)
from weft.testing._engines import terminate
from weft.testing._threaded import ThreadedUvicorn

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    SourceRef(index=1, id="compiling", title="Compiling", source="kb/compile.md", snippet="..."),
    SourceRef(index=2, id="streaming", title="Streaming", source="kb/stream.md", snippet="..."),
]
JSON = "application/json"
USAGE = {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17, "estimated": True}


class FakeChat:
    """A chat streamer: sources, then ``tokens`` (``delay`` apart), usage, done.

    ``hang`` waits forever after the first token (until cancelled); ``fail`` raises after the
    tokens.
    """

    def __init__(
        self,
        tokens: tuple[str, ...] = ("Weft ", "checks ", "every ", "edge ", "[1]."),
        *,
        delay: float = 0.0,
        hang: bool = False,
        fail: BaseException | None = None,
    ) -> None:
        self.tokens = tokens
        self.delay = delay
        self.hang = hang
        self.fail = fail
        self.calls: list[ChatInput] = []
        self.first_token = threading.Event()
        self.cancelled = threading.Event()
        self.cancelled_at: float | None = None
        self.finished = threading.Event()

    async def __call__(
        self,
        graph: CompiledGraph[Any, Any],
        chat_input: ChatInput,
        /,
        *,
        settings: Settings,
        config: RunnableConfig | None = None,
    ) -> AsyncIterator[ChatEvent]:
        self.calls.append(chat_input)
        try:
            yield ChatSources(list(SOURCES))
            for i, token in enumerate(self.tokens):
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield ChatToken(token)
                if i == 0:
                    self.first_token.set()
                if self.hang:
                    await asyncio.sleep(3600)
            if self.fail is not None:
                raise self.fail
            yield ChatUsage(dict(USAGE))
            answer = "".join(self.tokens)
            yield ChatDone(ChatOutput(answer=answer, sources=list(SOURCES), usage=dict(USAGE)))
            self.finished.set()
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled_at = time.monotonic()
            self.cancelled.set()
            raise

    @property
    def answer(self) -> str:
        return "".join(self.tokens)


def _answer(question: ChatInput) -> ChatOutput:
    return ChatOutput(answer=f"echo: {question.question}", sources=list(SOURCES))


def _shout(text: str) -> str:
    return text.upper()


def _words(text: str) -> Iterator[str]:
    for word in text.split():
        yield word + " "


def _explode(text: str) -> str:
    raise RuntimeError("secret detail: /srv/private/db.sqlite password=hunter2")


def fake_graphs() -> dict[str, CompiledGraph[Any, Any]]:
    """A ChatInput -> ChatOutput "rag" graph, a streaming "words" graph, and "boom" which
    raises inside a node."""
    rag = Graph[ChatInput, ChatOutput]("rag")
    rag.add_node("answer", _answer).add_edge(START, "answer").add_edge("answer", END)
    words = Graph[str, str]("words")
    words.add_node("shout", _shout).add_node("split", _words)
    words.add_edge(START, "shout").add_edge("shout", "split").add_edge("split", END)
    boom = Graph[str, str]("boom")
    boom.add_node("explode", _explode).add_edge(START, "explode").add_edge("explode", END)
    return {"rag": rag.compile(), "words": words.compile(), "boom": boom.compile()}


class LiveServer:
    """``app`` under real uvicorn on 127.0.0.1 and a free port, in a background thread;
    ``config`` goes to ``uvicorn.Config`` (``**uvicorn_options(settings)`` serves it as
    ``weft serve`` does)."""

    def __init__(self, app: Starlette, **config: Any) -> None:
        self.uvicorn = ThreadedUvicorn(
            app,
            name="test server",
            **{"log_level": "warning", "timeout_graceful_shutdown": 1, **config},
        )

    @property
    def url(self) -> str:
        return self.uvicorn.url

    def __enter__(self) -> LiveServer:
        self.uvicorn.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uvicorn.stop()


def read_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse SSE lines into {"event", "id", "data", "comments"} dicts; comments (heartbeats)
    come as their own records with event None."""
    record: dict[str, Any] = {"event": None, "id": None, "data": []}
    for line in lines:
        if line == "":
            if record["data"]:
                record["data"] = "\n".join(record["data"])
                yield record
            record = {"event": None, "id": None, "data": []}
        elif line.startswith(":"):
            yield {"event": None, "id": None, "data": None, "comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                record["data"].append(value)
            else:
                record[field] = value


class ServeProcess:
    """``weft serve --port 0 --data-dir DIR`` in a subprocess; ``url`` once it is ready.

    ``demo=True`` adds ``--demo``: an empty data dir gets weft's handbook first; ``args`` are
    further flags."""

    def __init__(
        self, data_dir: Path, *, demo: bool = False, args: Sequence[str] = (), **env: str
    ) -> None:
        self.data_dir = data_dir
        self.demo = demo
        self.args = list(args)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.output: list[str] = []
        self._drainer: threading.Thread | None = None

    def __enter__(self) -> ServeProcess:
        cmd = [sys.executable, "-m", "weft.cli", "serve", "--port", "0"]
        cmd += ["--data-dir", str(self.data_dir)] + (["--demo"] if self.demo else []) + self.args
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in self.proc.stdout:
            self.output.append(line)
            found = re.search(r"open (http://\S+?)/? to chat", line)
            if found:
                self.url = found.group(1).rstrip("/")
                break
            if time.monotonic() > deadline:
                break
        if not self.url:
            self.stop()
            raise RuntimeError("weft serve did not start:\n" + "".join(self.output))
        # Drain the rest of its output so the pipe never fills up and blocks the server.
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("weft serve never became ready:\n" + "".join(self.output))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        if self._drainer is not None:
            self._drainer.join(timeout=5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def connect(url: str, timeout: float = 5.0) -> socket.socket:
    """A raw TCP connection to the server at ``url``."""
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_response(sock: socket.socket) -> tuple[int, dict[str, Any], bool]:
    """The status and JSON body of the response on ``sock``, and whether the server then
    closed the connection; ``socket.timeout`` if neither comes within the socket's timeout."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without a response; got {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    assert headers["content-type"] == JSON, data
    closed = closes(sock)
    return int(lines[0].split()[1]), json.loads(body[:length]), closed


def closes(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` (rather than leaving it open until the timeout)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def fake_chat() -> FakeChat:
    return FakeChat()


SEA_DOCS = {
    "otters.md": "# Otters\n\nSea otters hold hands while they sleep so they do not drift apart.\n",
    "sea/kelp.md": "# Kelp\n\nGiant kelp grows up to half a metre a day in cold coastal water.\n",
}


@pytest.fixture(scope="session")
def sea_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with a small knowledge base ingested from ``docs/``: ``otters.md`` and
    ``sea/kelp.md``. Tests share it, so each uses its own session ids."""
    from weft.graphs.knowledge import KnowledgeBase

    base = tmp_path_factory.mktemp("sea")
    for name, text in SEA_DOCS.items():
        (base / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (base / "docs" / name).write_text(text)
    KnowledgeBase(Settings(data_dir=base / "data")).ingest(base / "docs", progress=False)
    return base / "data"

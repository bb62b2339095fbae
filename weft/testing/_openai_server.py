"""A local, scripted, OpenAI-compatible HTTP server for tests.

It speaks real HTTP on ``127.0.0.1`` so the code under test runs its real client stack (the
``openai`` SDK, ``langchain-openai``, retries, timeouts, SSE parsing), yet every answer is scripted
by the test and nothing leaves the machine.

Endpoints::

    POST /v1/chat/completions   scripted replies, JSON or SSE chunks (``stream: true``)
    POST /v1/embeddings         deterministic hashed bag-of-words vectors (float or base64)
    GET  /v1/models             the configured model names
    GET  /v1/models/{model}     one model, or 404 ``model_not_found``
    POST /_weft/script          append replies (JSON form of :class:`Reply`), for subprocess use
    GET  /_weft/requests        the recorded requests, for subprocess use

Each chat request takes the next scripted reply; when the script is empty the server answers
with ``default`` (by default an echo of the last user message). A reply is a :class:`Reply`, a
plain string (its text), a :class:`Fault` (an error answer), or a callable that takes the
:class:`RecordedRequest` and returns one of those.

Run it in-process (uvicorn in a background thread)::

    with OpenAIServer(["Hello!"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")

or as a subprocess, e.g. to point a server under test at it::

    python -m weft.testing._openai_server --port 0   # prints: READY http://127.0.0.1:PORT/v1

and drive that one with :class:`OpenAIServerProcess`.

The script's records live in ``_openai_script`` and the ASGI app in ``_openai_app``; this module
runs them.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType

from weft.testing._openai_app import DEFAULT_MODELS, DROP_FILTER, FEATURE, App, State
from weft.testing._openai_script import (
    Fault,
    RecordedRequest,
    Reply,
    ReplyLike,
    ToolCall,
    as_reply,
    echo,
)
from weft.testing._threaded import ThreadedUvicorn

__all__ = [
    "DEFAULT_MODELS",
    "Fault",
    "OpenAIServer",
    "OpenAIServerProcess",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "ToolCall",
]


class OpenAIServer:
    """A scripted OpenAI-compatible server on ``127.0.0.1``, run in a background thread.

    Args:
        replies: The initial script, consumed one item per chat completion request.
        models: The model names it knows; a request for another gets OpenAI's 404
            ``model_not_found``. None accepts any model and lists :data:`DEFAULT_MODELS`.
        api_key: When set, requests without ``Authorization: Bearer <api_key>`` get a 401.
        default: The answer once the script is empty; an echo of the last user message.
        embedding_dimensions: Vector size when a request does not pass ``dimensions``.
        host: The interface to listen on.
        port: The port; 0 picks a free one.

    Example:
        >>> import openai
        >>> from weft.testing import Fault, OpenAIServer
        >>> with OpenAIServer([Fault.rate_limit(retry_after=0.01), "Hi!"]) as server:
        ...     client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...     reply = client.chat.completions.create(
        ...         model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        ...     )
        ...     attempts = len(server.requests)
        >>> reply.choices[0].message.content, attempts
        ('Hi!', 2)
    """

    def __init__(
        self,
        replies: Iterable[ReplyLike] = (),
        *,
        models: Sequence[str] | None = None,
        api_key: str | None = None,
        default: ReplyLike = echo,
        embedding_dimensions: int = 64,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._state = State(replies, default)
        self.app = App(self._state, models, api_key, embedding_dimensions)
        """The ASGI app, e.g. for ``httpx.ASGITransport`` when no socket is wanted."""
        self._uvicorn = ThreadedUvicorn(
            self.app,
            host,
            port,
            name=FEATURE,
            log_config=None,  # leave logging to the host (pytest captures it)
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        """Bind the port and serve in a daemon thread; returns once the server accepts requests."""
        if not self._uvicorn.running:
            logging.getLogger("uvicorn.error").addFilter(DROP_FILTER)
            self._uvicorn.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port. Safe to call twice."""
        self._uvicorn.stop()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port; before the first :meth:`start`, the requested one."""
        return self._uvicorn.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self._uvicorn.url

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, what OpenAI clients take as ``base_url``."""
        return f"{self.url}/v1"

    # -- script and record -----------------------------------------------------------------

    def script(self, *replies: ReplyLike) -> OpenAIServer:
        """Append replies to the script; returns the server for chaining."""
        with self._state.lock:
            self._state.script.extend(replies)
        return self

    def fail_embeddings(self, *faults: Fault) -> OpenAIServer:
        """Answer the next embedding requests with these status faults, one each."""
        with self._state.lock:
            self._state.embedding_faults.extend(faults)
        return self

    @property
    def pending(self) -> int:
        """How many scripted chat replies are still unused."""
        with self._state.lock:
            return len(self._state.script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._state.lock:
            return list(self._state.requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The requests whose path ends with ``path``, e.g. ``"/chat/completions"``."""
        return [r for r in self.requests if r.path.endswith(path)]

    def reset(self) -> None:
        """Forget the script, the embedding faults and the recorded requests."""
        with self._state.lock:
            self._state.script.clear()
            self._state.embedding_faults.clear()
            self._state.requests.clear()


class OpenAIServerProcess:
    """The same server in a child process, for code that must reach it from another process.

    Callables cannot cross the process boundary, so its script holds :class:`Reply`,
    :class:`Fault` and strings only.

    Example:
        >>> with OpenAIServerProcess(models=["gpt-4o-mini"]) as server:  # doctest: +SKIP
        ...     server.script("Hello from a child process")
        ...     run_my_app(OPENAI_BASE_URL=server.base_url)
        ...     assert server.requests[0].model == "gpt-4o-mini"
    """

    def __init__(
        self,
        *,
        models: Sequence[str] | None = None,
        api_key: str | None = None,
        embedding_dimensions: int = 64,
        port: int = 0,
        startup_timeout: float = 20.0,
    ) -> None:
        self._args = [
            "--port", str(port), "--embedding-dimensions", str(embedding_dimensions)
        ]  # fmt: skip
        if models is not None:
            self._args += ["--models", ",".join(models)]
        if api_key is not None:
            self._args += ["--api-key", api_key]
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        """``http://127.0.0.1:PORT`` once started."""

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` once started."""
        return f"{self.url}/v1"

    def start(self) -> OpenAIServerProcess:
        """Spawn ``python -m weft.testing._openai_server`` and wait for its READY line."""
        command = [sys.executable, "-m", "weft.testing._openai_server", *self._args]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        ready: list[str] = []
        reader = threading.Thread(
            target=lambda: ready.append(self._process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(self._startup_timeout)
        line = ready[0] if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the OpenAI test server process did not start: {line!r}")
        self.url = line.split()[1].removesuffix("/v1")
        return self

    def stop(self) -> None:
        """Terminate the child process. Safe to call twice."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def __enter__(self) -> OpenAIServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def script(self, *replies: Reply | Fault | str) -> OpenAIServerProcess:
        """Append replies to the child's script."""
        import httpx

        items = [as_reply(r).to_dict() for r in replies]
        httpx.post(f"{self.url}/_weft/script", json={"replies": items}).raise_for_status()
        return self

    def fail_embeddings(self, *faults: Fault) -> OpenAIServerProcess:
        """Answer the child's next embedding requests with these status faults."""
        import httpx

        items = [f.to_dict() for f in faults]
        httpx.post(f"{self.url}/_weft/script", json={"embedding_faults": items}).raise_for_status()
        return self

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request the child received so far, oldest first."""
        import httpx

        response = httpx.get(f"{self.url}/_weft/requests")
        response.raise_for_status()
        return [RecordedRequest.from_dict(r) for r in response.json()["requests"]]


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until interrupted; prints ``READY <base_url>`` once it accepts requests."""
    parser = argparse.ArgumentParser(
        prog="python -m weft.testing._openai_server",
        description="A scripted OpenAI-compatible server for tests (weft.testing.OpenAIServer).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--models", default=None, help="comma-separated model names")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--embedding-dimensions", type=int, default=64)
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else None
    server = OpenAIServer(
        models=models,
        api_key=args.api_key,
        embedding_dimensions=args.embedding_dimensions,
        host=args.host,
        port=args.port,
    )
    with server:
        print(f"READY {server.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal

    # terminate() sends SIGTERM; turn it into a clean shutdown that frees the port.
    signal.signal(signal.SIGTERM, _interrupt)
    main()

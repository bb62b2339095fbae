"""An ASGI app under real uvicorn in a background thread, for tests and local fakes."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from weft.core._extras import import_optional

__all__ = ["ThreadedUvicorn"]


class ThreadedUvicorn:
    """``app`` served by uvicorn on ``host:port`` (0 picks a free port) in a daemon thread.

    ``config`` goes to ``uvicorn.Config``. :meth:`start` returns once the server accepts
    requests; :meth:`stop` shuts it down and frees the port, and is safe to call twice.

    Example:
        >>> server = ThreadedUvicorn(app, log_level="warning")  # doctest: +SKIP
        >>> server.start(); server.url  # doctest: +SKIP
        'http://127.0.0.1:38211'
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "server",
        **config: Any,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.config = config
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        uvicorn = import_optional("uvicorn", extra="server", feature=self.name)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.set_inheritable(True)
        self._socket = sock
        # Keep the port after stop() so URLs in assertions and error messages still match.
        self.port = int(sock.getsockname()[1])
        self._server = uvicorn.Server(uvicorn.Config(self.app, **self.config))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start on {self.host}:{self.port}")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

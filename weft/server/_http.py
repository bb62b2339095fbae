"""uvicorn's HTTP/1.1 protocol (h11's) with what ``weft serve`` admits before any app sees a
request.

uvicorn's own protocol reads any number of header bytes, waits forever for a request's headers,
keeps connections that never send one, and answers bytes that are not HTTP with a ``text/plain``
"Invalid HTTP request received.". The protocol :func:`http_protocol` makes from the settings:

- stops reading a request line and headers once they pass ``WEFT_SERVER_MAX_HEADER_BYTES``
  (h11's ``h11_max_incomplete_event_size``): a JSON 431, and the connection closed. Headers
  that arrived whole in one read, over the limit by less than that read, get the same 431 from
  the app's :class:`~weft.server._guards.HeaderLimitGuard`;
- gives a request ``WEFT_SERVER_HEADER_TIMEOUT_SECONDS`` to send its request line and headers,
  from the moment the connection opens or its first byte arrives: then a JSON 408 and the
  connection closed (one that sent nothing is closed without a word);
- closes a connection idle between requests after ``WEFT_SERVER_KEEP_ALIVE_SECONDS``
  (uvicorn's ``timeout_keep_alive``), and one still sending a body that the app answered without
  reading (a 401, a 405) ``WEFT_SERVER_BODY_TIMEOUT_SECONDS`` after the answer;
- accepts at most ``WEFT_SERVER_MAX_CONNECTIONS_PER_CLIENT`` open connections from one address:
  one more gets a JSON 429 and is closed;
- answers every other request it cannot parse with a JSON 400, in OpenAI's error shape
  (:mod:`weft.server._errors`) like every other error the server sends.

h11, not httptools, so that the header size limit holds whichever uvicorn extras are installed
(httptools reads headers of any size). The header count, the body-read timeout and the size of
the body are the app's guards (:mod:`weft.server._guards`), which hold under any ASGI server;
the limits here hold where uvicorn runs with :func:`uvicorn_options`, as ``weft serve`` does.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import Counter
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from weft.core.settings import Settings
from weft.server._errors import error_body

__all__ = ["JsonHTTPProtocol", "http_protocol", "unparsable_request_response", "uvicorn_options"]

# uvicorn's parsers give no detail worth passing on ("Invalid HTTP request received.").
_MESSAGE = (
    "the request could not be read as HTTP/1.1; send a request line, headers and a body as "
    "HTTP/1.1 defines them (an https:// request to this plain http:// server also ends here)"
)
_REASONS = {
    400: (b"Bad Request", None),
    408: (b"Request Timeout", "request_timeout"),
    429: (b"Too Many Requests", "too_many_connections"),
    431: (b"Request Header Fields Too Large", "headers_too_large"),
}

# Open connections by client address, for each running server.
_CLIENTS: weakref.WeakKeyDictionary[Any, Counter[str]] = weakref.WeakKeyDictionary()


def _response(status: int, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    reason, kind = _REASONS[status]
    body = json.dumps(error_body(status, message, type=kind)).encode()
    head = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


def unparsable_request_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole 400 response to a request that could not be parsed, connection closing."""
    return _response(400, _MESSAGE, default_headers)


class JsonHTTPProtocol(H11Protocol):
    """uvicorn's h11 protocol with the limits above; :func:`http_protocol` sets them from the
    settings. Pass it to uvicorn as ``http``."""

    max_header_bytes: int = Settings.model_fields["server_max_header_bytes"].default
    header_timeout: float = Settings.model_fields["server_header_timeout_seconds"].default
    body_timeout: float = Settings.model_fields["server_body_timeout_seconds"].default
    max_connections_per_client: int = 0

    _head_timer: asyncio.TimerHandle | None = None
    _drain_timer: asyncio.TimerHandle | None = None
    _head_started = False
    _counted: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.max_connections_per_client
        if cap and self.client is not None:
            clients = _CLIENTS.setdefault(self.server_state, Counter())
            address = self.client[0]
            if clients[address] >= cap:
                self._refuse(
                    429,
                    f"this address already has {clients[address]} open connections, the most "
                    f"the server accepts from one client "
                    f"(WEFT_SERVER_MAX_CONNECTIONS_PER_CLIENT={cap}); reuse them, or close some",
                )
                return
            clients[address] += 1
            self._counted = address
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        if self._counted is not None:
            clients = _CLIENTS.get(self.server_state)
            if clients is not None:
                clients[self._counted] -= 1
                if clients[self._counted] <= 0:
                    del clients[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._head_timer is None:
            self._await_head()  # the next request on a kept-alive connection
        self._head_started = True
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
            self._stop_head_timer()
            self._head_started = False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered before the body was read: uvicorn reads the rest and drops it, and each
            # byte that comes resets its keep-alive timer, so the body gets a deadline here.
            if self._drain_timer is not None:
                self._drain_timer.cancel()
            self._drain_timer = self.loop.call_later(
                self.body_timeout, self._drain_timed_out, self.cycle
            )

    def _drain_timed_out(self, cycle: object) -> None:
        self._drain_timer = None
        if self.cycle is cycle and self.conn.their_state is h11.SEND_BODY:
            self.transport.close()

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if not self._head_started:  # never sent a byte: nobody to answer
            self.transport.close()
            return
        self._refuse(
            408,
            f"the request line and headers did not arrive within {self.header_timeout:g} s "
            "(WEFT_SERVER_HEADER_TIMEOUT_SECONDS); send them at once",
        )

    def _refuse(self, status: int, message: str) -> None:
        self.transport.write(_response(status, message, self.server_state.default_headers))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        pending, _ = self.conn.trailing_data
        if len(pending) > self.max_header_bytes and b"\r\n\r\n" not in pending:
            # h11 stopped reading a request line and headers over the limit.
            self._refuse(
                431,
                f"the request line and headers are larger than {self.max_header_bytes} bytes "
                "(WEFT_SERVER_MAX_HEADER_BYTES); send fewer or shorter headers",
            )
            return
        self._refuse(400, _MESSAGE)


def http_protocol(settings: Settings) -> type[JsonHTTPProtocol]:
    """:class:`JsonHTTPProtocol` with the limits of ``settings``; one class for each server."""

    class Protocol(JsonHTTPProtocol):
        max_header_bytes = settings.server_max_header_bytes
        header_timeout = settings.server_header_timeout_seconds
        body_timeout = settings.server_body_timeout_seconds
        max_connections_per_client = settings.server_max_connections_per_client

    return Protocol


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that apply the connection limits of ``settings``:
    ``http=``, ``h11_max_incomplete_event_size=`` and ``timeout_keep_alive=``; and ``ws="none"``,
    since the server has no WebSocket routes (an upgraded connection would leave this protocol
    and its count of connections per client)."""
    return {
        "http": http_protocol(settings),
        "ws": "none",
        "h11_max_incomplete_event_size": settings.server_max_header_bytes,
        "timeout_keep_alive": settings.server_keep_alive_seconds,
    }

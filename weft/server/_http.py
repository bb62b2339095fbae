"""uvicorn's HTTP/1.1 protocol with one change: a request it cannot parse gets a JSON error.

uvicorn answers bytes that are not HTTP (a broken request line, a malformed header, a header
block too large) itself, before any app sees them, with a ``text/plain`` "Invalid HTTP request
received.". Every other error the server sends is JSON in OpenAI's shape
(:mod:`weft.server._errors`); with :class:`JsonHTTPProtocol` as uvicorn's ``http``, so is this
one. Everything else is uvicorn's own protocol, httptools' when it is installed (as uvicorn
picks).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from weft.server._errors import error_body

try:  # uvicorn's "auto": httptools when it is installed
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

__all__ = ["JsonHTTPProtocol", "unparsable_request_response"]

# uvicorn's parsers give no detail worth passing on ("Invalid HTTP request received.").
_MESSAGE = (
    "the request could not be read as HTTP/1.1; send a request line, headers and a body as "
    "HTTP/1.1 defines them (an https:// request to this plain http:// server also ends here)"
)


def unparsable_request_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole 400 response to a request that could not be parsed, connection closing."""
    body = json.dumps(error_body(400, _MESSAGE)).encode()
    head = [b"HTTP/1.1 400 Bad Request\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class _JsonBadRequest:
    """Replaces uvicorn's plain-text 400 for unparsable requests; mixed into its protocols."""

    server_state: Any
    transport: asyncio.Transport

    def send_400_response(self, msg: str) -> None:
        self.transport.write(unparsable_request_response(self.server_state.default_headers))
        self.transport.close()


class JsonHTTPProtocol(_JsonBadRequest, _Base):
    """uvicorn's HTTP/1.1 protocol (httptools', else h11's, as its "auto" picks) answering
    unparsable requests with a JSON 400; pass it to uvicorn as ``http``."""

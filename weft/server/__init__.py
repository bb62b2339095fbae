"""The chat server: a Starlette app that streams answers over SSE (needs the "server" extra).

Example:
    >>> from weft.server import create_app
    >>> app = create_app()  # serve with: weft serve, or uvicorn --factory weft.server:create_app

``uvicorn_options(settings)`` are the ``uvicorn.Config`` arguments that admit requests as
``weft serve`` does (header and keep-alive timeouts, header size, connections per client).
"""

from weft.core._extras import import_optional

for _module in ("starlette", "uvicorn"):
    import_optional(_module, extra="server", feature="the weft server")

from weft.server._http import uvicorn_options  # noqa: E402
from weft.server.app import create_app  # noqa: E402

__all__ = ["create_app", "uvicorn_options"]

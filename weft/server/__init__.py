"""The chat server: a Starlette app that streams answers over SSE (needs the "server" extra).

Example:
    >>> from weft.server import create_app
    >>> app = create_app()  # serve with: weft serve, or uvicorn --factory weft.server:create_app
"""

from weft.core._extras import import_optional

for _module in ("starlette", "uvicorn"):
    import_optional(_module, extra="server", feature="the weft server")

from weft.server.app import create_app  # noqa: E402

__all__ = ["create_app"]

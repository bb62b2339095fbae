"""The chat server: a Starlette app that streams answers over SSE (needs the "server" extra).

Example:
    >>> from weft.server import create_app
    >>> app = create_app()  # serve with: weft serve, or uvicorn --factory weft.server:create_app

``uvicorn_options(settings)`` are the ``uvicorn.Config`` arguments that admit requests as
``weft serve`` does (header and keep-alive timeouts, header size, connections per client).

What lives where: ``app`` makes the app (:func:`create_app`, with the table of routes);
``_routes`` the route handlers; ``_server`` the state they share; ``_runs`` what a run sends
back (the SSE streams, OpenAI completions, batches); ``_readiness`` the ``/readyz`` checks;
``_guards`` the admission middleware (API keys, rate limit, headers, body, run cap);
``_sessions`` who owns a conversation; ``_errors`` the JSON error shape; ``_sse`` the event
stream response; ``_openai`` the OpenAI records; ``_metrics`` the server's own metrics;
``_sources`` source paths as clients see them; ``_http`` uvicorn's protocol; ``_cli`` the
``weft serve`` command.
"""

from weft.core._extras import import_optional

for _module in ("starlette", "uvicorn"):
    import_optional(_module, extra="server", feature="the weft server")

from weft.server._http import uvicorn_options  # noqa: E402
from weft.server.app import create_app  # noqa: E402

__all__ = ["create_app", "uvicorn_options"]

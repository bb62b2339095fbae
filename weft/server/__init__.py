"""The chat server: a Starlette app that streams answers over SSE (needs the "server" extra)."""

__all__: list[str] = []

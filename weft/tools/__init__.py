"""Tools: the tool base class, the tool node that runs tool calls, and built-in tools."""

__all__: list[str] = []

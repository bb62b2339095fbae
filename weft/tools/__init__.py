"""Tools: :func:`tool` makes one from a typed function (``base``), :class:`ToolNode` runs a
model's tool calls (``node``), and ready tools: :func:`calculator`, :func:`current_time` and
:func:`knowledge_base_search` (``builtin``)."""

from weft.tools.base import Tool, parse_docstring, tool
from weft.tools.node import ToolNode, ToolNodeInput

__all__ = ["Tool", "ToolNode", "ToolNodeInput", "parse_docstring", "tool"]

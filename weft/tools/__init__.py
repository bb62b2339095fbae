"""Tools: :func:`tool` makes one from a typed function (``base``), :class:`ToolNode` runs a
model's tool calls (``node``), and ready tools: :data:`calculator` (``calculator``),
:data:`current_time` and :func:`knowledge_base_search` (``builtin``)."""

from weft.tools.base import Tool, parse_docstring, tool
from weft.tools.builtin import current_time, format_citations, knowledge_base_search
from weft.tools.calculator import CalculatorError, calculator, evaluate
from weft.tools.node import OnError, ToolNode, ToolNodeInput

__all__ = [
    "CalculatorError",
    "OnError",
    "Tool",
    "ToolNode",
    "ToolNodeInput",
    "calculator",
    "current_time",
    "evaluate",
    "format_citations",
    "knowledge_base_search",
    "parse_docstring",
    "tool",
]

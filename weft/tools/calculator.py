"""Safe arithmetic for models: the expression is parsed into an AST and walked, never ``eval``-ed.

Allowed: numbers, ``+ - * / // % **``, unary ``+``/``-``, parentheses, the constants ``pi``,
``e`` and ``tau``, and the functions in :data:`FUNCTIONS`. Exponents and integer sizes are
bounded, so ``9 ** 9 ** 9`` is refused at once instead of running for minutes.

Example:
    >>> evaluate("2 * (3 + 4) ** 2")
    98
    >>> calculator.invoke({"expression": "sqrt(16) + 10 // 3"})
    7.0
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from weft.tools.base import Tool

__all__ = ["FUNCTIONS", "MAX_EXPONENT", "MAX_INT_BITS", "CalculatorError", "calculator", "evaluate"]

MAX_LENGTH = 500
"""The longest expression accepted, in characters."""
MAX_EXPONENT = 1000
"""The largest exponent ``**`` accepts."""
MAX_INT_BITS = 4096
"""The largest integer a step may produce (about 1,230 decimal digits)."""

Number = int | float

FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
}
"""The functions an expression may call."""

CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_ALLOWED = "numbers, + - * / // % **, parentheses, pi, e, tau and " + ", ".join(FUNCTIONS)


class CalculatorError(ValueError):
    """An expression the calculator refuses or cannot compute; the message says why."""


def evaluate(expression: str) -> Number:
    """Compute an arithmetic expression safely.

    Raises:
        CalculatorError: the expression is empty, too long, not arithmetic, uses a name or
            syntax outside what is allowed, divides by zero, or exceeds the size bounds.
    """
    text = expression.strip()
    if not text:
        raise CalculatorError(f"the expression is empty; write one with {_ALLOWED}")
    if len(text) > MAX_LENGTH:
        raise CalculatorError(
            f"the expression is {len(text)} characters long; the limit is {MAX_LENGTH}"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(
            f"cannot parse {text!r}: {exc.msg}; write an arithmetic expression such as "
            f"'2 * (3 + 4)'"
        ) from None
    return _Walker(text).walk(tree.body)


class _Walker:
    def __init__(self, text: str) -> None:
        self.text = text

    def fail(self, node: ast.AST, why: str) -> CalculatorError:
        col = getattr(node, "col_offset", 0) + 1
        return CalculatorError(f"{self.text!r}, column {col}: {why}")

    def walk(self, node: ast.AST) -> Number:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.fail(node, f"{node.value!r} is not a number; use {_ALLOWED}")
            return self.bounded(node, node.value)
        if isinstance(node, ast.Name):
            if node.id not in CONSTANTS:
                raise self.fail(node, f"unknown name '{node.id}'; known constants: pi, e, tau")
            return CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self.walk(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.walk(node.left), self.walk(node.right)
            if isinstance(node.op, ast.Pow):
                self.check_power(node, left, right)
            try:
                return self.bounded(node, _BINARY[type(node.op)](left, right))
            except ZeroDivisionError:
                raise self.fail(node, "division by zero") from None
            except OverflowError:
                raise self.fail(node, "the result is too large for a float") from None
        if isinstance(node, ast.Call):
            return self.call(node)
        what = type(node).__name__
        raise self.fail(node, f"unsupported syntax ({what}); use {_ALLOWED}")

    def call(self, node: ast.Call) -> Number:
        name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
        if name not in FUNCTIONS:
            raise self.fail(
                node, f"unknown function '{name}'; known functions: {', '.join(FUNCTIONS)}"
            )
        if node.keywords:
            raise self.fail(node, f"{name}() takes positional arguments only")
        args = [self.walk(arg) for arg in node.args]
        try:
            return self.bounded(node, FUNCTIONS[name](*args))
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(node, f"{name}({', '.join(map(str, args))}) failed: {exc}") from None

    def check_power(self, node: ast.AST, base: Number, exponent: Number) -> None:
        if abs(exponent) > MAX_EXPONENT:
            raise self.fail(node, f"the exponent {exponent} is over the limit of {MAX_EXPONENT}")
        exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
        if exact and int(base).bit_length() * int(exponent) > MAX_INT_BITS:
            raise self.fail(
                node, f"{base} ** {exponent} would exceed {MAX_INT_BITS} bits; use floats"
            )

    def bounded(self, node: ast.AST, value: Number) -> Number:
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise self.fail(node, f"an intermediate result exceeds {MAX_INT_BITS} bits")
        return value


def _calculate(expression: str) -> float | int:
    """Compute an arithmetic expression exactly, without guessing.

    Supports + - * / // % ** with parentheses, unary minus, the constants pi, e and tau, and
    abs, round, min, max, sqrt, exp, log, log10, log2, sin, cos, tan, floor and ceil.

    Args:
        expression: The expression, e.g. "2 * (3 + 4) ** 2" or "sqrt(2) / 3".
    """
    return evaluate(expression)


calculator: Tool = Tool.from_function(_calculate, name="calculator")
"""The calculator tool: ``{"expression": "..."}`` in, the number out."""

"""The calculator: arithmetic through the AST, bounded, with errors that say what to change."""

from __future__ import annotations

import math

import pytest

from weft.tools.calculator import MAX_EXPONENT, CalculatorError, calculator, evaluate


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("2 ** -1", 0.5),
        ("-(3 - 5)", 2),
        ("+4", 4),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(2.567, 2)", 2.57),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("floor(2.7) + ceil(2.1)", 5),
        ("log10(1000)", 3.0),
        ("2 * pi", math.tau),
        ("1_000 * 3", 3000),
    ],
)
def test_arithmetic_follows_python_precedence(expression: str, value: float) -> None:
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "the expression is empty"),
        ("2 +", "cannot parse '2 +'"),
        ("1 / 0", "'1 / 0', column 1: division by zero"),
        ("5 % 0", "division by zero"),
        ("x + 1", "unknown name 'x'; known constants: pi, e, tau"),
        ("__import__('os').system('ls')", "unknown function '__import__('os').system'"),
        ("open('f')", "unknown function 'open'"),
        ("(1).real", "unsupported syntax (Attribute)"),
        ("[1, 2]", "unsupported syntax (List)"),
        ("'a' * 3", "'a' is not a number"),
        ("True + 1", "True is not a number"),
        ("1 if 2 else 3", "unsupported syntax (IfExp)"),
        ("1 < 2", "unsupported syntax (Compare)"),
        ("9 ** 9 ** 9", f"the exponent 387420489 is over the limit of {MAX_EXPONENT}"),
        ("10 ** 1000 * 10 ** 1000", "exceeds 4096 bits"),
        ("999 ** 999", "would exceed 4096 bits; use floats"),
        ("10.0 ** 400", "too large for a float"),
        ("sqrt(-1)", "sqrt(-1) failed: math domain error"),
        ("1" * 501, "the limit is 500"),
    ],
)
def test_refused_expressions_say_why(expression: str, message: str) -> None:
    with pytest.raises(CalculatorError) as err:
        evaluate(expression)
    assert message in str(err.value)


def test_keyword_arguments_to_functions_are_refused() -> None:
    with pytest.raises(CalculatorError, match="positional arguments only"):
        evaluate("round(2.5, ndigits=1)")


def test_the_tool_returns_the_number_and_reports_errors_to_the_model() -> None:
    assert calculator.invoke({"expression": "6 * 7"}) == 42
    call = {"name": "calculator", "args": {"expression": "1/0"}, "id": "c1", "type": "tool_call"}
    with pytest.raises(CalculatorError, match="division by zero"):
        calculator.invoke(call)
    assert "e.g." in calculator.args["expression"]["description"]

"""The README's examples run, and print exactly what the README says they print."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PAIR = re.compile(r"```python\n(.*?)```\s*\n+Output:\s*\n+```text\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    return PAIR.findall(README.read_text())


def test_readme_has_examples_with_output() -> None:
    assert len(examples()) >= 2


@pytest.mark.parametrize(("code", "expected"), examples())
def test_readme_example_prints_what_the_readme_shows(code: str, expected: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    assert out.getvalue() == expected


def test_the_architecture_table_names_every_ready_graph_factory() -> None:
    import weft.graphs

    row = next(
        line for line in README.read_text().splitlines() if line.startswith("| `weft/graphs/`")
    )
    factories = [name for name in weft.graphs.__all__ if name.startswith("build_")]
    assert factories and [f for f in factories if f"`{f}`" not in row] == []

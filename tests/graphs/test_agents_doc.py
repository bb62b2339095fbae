"""docs/agents.md's example runs offline and prints exactly what the page shows."""

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "agents.md"
PAIR = re.compile(r"```python\n(.*?)```\s*\n+Output:\s*\n+```text\n(.*?)```", re.DOTALL)


def test_agents_page_example_prints_what_the_page_shows() -> None:
    [(code, expected)] = PAIR.findall(PAGE.read_text())
    assert "approve=" in code and "book_table" in code and "calculator" in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(PAGE), "exec"), {"__name__": "docs"})
    assert out.getvalue() == expected

"""docs/tools.md's example runs offline and prints exactly what the page shows."""

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "tools.md"
PAIR = re.compile(r"```python\n(.*?)```\s*\n+Output:\s*\n+```text\n(.*?)```", re.DOTALL)


def test_tools_page_example_prints_what_the_page_shows() -> None:
    [(code, expected)] = PAIR.findall(PAGE.read_text())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(PAGE), "exec"), {"__name__": "docs"})
    assert out.getvalue() == expected

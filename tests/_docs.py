"""What the tests of the docs' examples share: find each Python example that a page follows
with ``Output:`` and a text block, and run it as the page's reader would."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A ```python block (with no other block inside it), "Output:", then the ```text block it prints.
PAIR = re.compile(r"```python\n((?:(?!```).)*?)```\s*\n+Output:\s*\n+```text\n(.*?)```", re.DOTALL)


def examples(page: Path) -> list[tuple[str, str]]:
    """``(code, output)`` for each example on ``page`` that shows its output."""
    return PAIR.findall(page.read_text(encoding="utf-8"))


def printed(code: str, page: Path) -> str:
    """What ``code`` (an example from ``page``) prints when run."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        # dont_inherit: the example runs without this module's `from __future__` imports.
        exec(compile(code, str(page), "exec", dont_inherit=True), {"__name__": "docs"})
    return out.getvalue()

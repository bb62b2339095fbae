"""docs/health.md's offline runs print what the page shows: the three triage levels, the
consultations (the saga's random id aside) and the saga that fails at step 4 and compensates."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import pytest

from tests._docs import ROOT, examples, printed
from weft.cli import main

PAGE = ROOT / "docs" / "health.md"
TEXT = re.compile(r"```text\n(\$ weft health [^\n]*)\n(.*?)```", re.DOTALL)
SAGA_ID = re.compile(r"^saga [0-9a-f]{16}: ", re.MULTILINE)


def _runs() -> list[tuple[str, str]]:
    return TEXT.findall(PAGE.read_text(encoding="utf-8"))


def test_the_page_shows_every_level_and_both_kinds_of_consultation() -> None:
    shown = "\n".join(out for _, out in _runs())
    for level in ("[EMERGENCY]", '"triage": "non_emergency"', "[居家护理]", "saga "):
        assert level in shown


@pytest.mark.parametrize(
    ("command", "expected"),
    _runs(),
    ids=lambda v: v.split(' "')[0].strip("$ ") if v.startswith("$") else "",
)
def test_a_command_on_the_page_prints_what_the_page_shows(
    command: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = io.StringIO()
    assert main([*shlex.split(command)[2:], "--data-dir", str(tmp_path)], out=out) == 0
    assert SAGA_ID.sub("saga ID: ", out.getvalue()) == SAGA_ID.sub("saga ID: ", expected)


def test_the_saga_that_fails_at_step_4_prints_what_the_page_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [(code, expected)] = [(c, e) for c, e in examples(PAGE) if "notify" in c]
    monkeypatch.chdir(tmp_path)
    assert printed(code, PAGE) == expected

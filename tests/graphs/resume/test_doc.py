"""docs/resume.md's offline run on two bundled resumes prints what the page shows, and its
JSON example is what ``--json --top-k 1`` prints for the second one."""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

import pytest

from weft.cli import main

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "resume.md"
CONSOLE = re.compile(r"```console\n\$ D=(\S+)\n\$ weft ([^\n]*)\n(.*?)```", re.DOTALL)
JSON = re.compile(r"```json\n(.*?)```", re.DOTALL)


def _analyze(argv: list[str]) -> str:
    out = io.StringIO()
    assert main(argv, out=out) == 0
    return out.getvalue()


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The page's command, run from the repository root, with its data dir in ``tmp_path``."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.chdir(ROOT)
    folder, command, _ = CONSOLE.findall(PAGE.read_text(encoding="utf-8"))[0]
    argv = shlex.split(command.replace("$D", folder))
    at = argv.index("--data-dir")
    return [*argv[:at], "--data-dir", str(tmp_path / "resume"), *argv[at + 2 :]]


def test_the_pages_run_prints_what_the_page_shows(offline: list[str]) -> None:
    [(_, _, expected)] = CONSOLE.findall(PAGE.read_text(encoding="utf-8"))
    assert _analyze([*offline, "--no-progress"]) == expected


def test_the_pages_json_is_what_json_prints_for_the_second_resume(offline: list[str]) -> None:
    [shown] = JSON.findall(PAGE.read_text(encoding="utf-8"))
    files = [a for a in offline if a.endswith((".pdf", ".md"))]
    argv = [a for a in offline if a not in files[:1]]
    assert json.loads(_analyze([*argv, "--json", "--top-k", "1"])) == json.loads(shown)

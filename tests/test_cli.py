"""``weft``'s entry point: how it ends when interrupted or when its reader goes away."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import weft.cli
from weft.cli import main


def test_ctrl_c_ends_any_command_with_130_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(weft.cli, "_demo", interrupted)
    assert main(["demo"]) == 130
    assert capsys.readouterr().err == "weft: interrupted\n"


def test_a_reader_that_goes_away_ends_the_output_without_a_traceback() -> None:
    # `weft ... | head -1`: the pipe closes after the first line, with much more to write.
    script = (
        "import weft.cli as cli\n"
        "def lots(args, out):\n"
        "    for _ in range(20000):\n"
        "        out.write('x' * 100 + '\\n')\n"
        "    return 0\n"
        "cli._demo = lots\n"
        "raise SystemExit(cli.main(['demo']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert first == b"x" * 100 + b"\n"
    assert "Traceback" not in err and "BrokenPipeError" not in err

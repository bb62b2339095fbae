"""``weft``'s entry point: how it ends when interrupted or when its reader goes away, and the
settings file every command reads."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import weft.cli
from weft.cli import main
from weft.core.settings import (
    SettingsFileError,
    get_settings,
    settings_file,
    using_settings_file,
)


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


def test_an_empty_demo_question_exits_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "  "]) == 2
    err = capsys.readouterr().err
    assert err.startswith("weft demo: error: the question is empty") and "Traceback" not in err


def _settings_seen(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> Any:
    """Run ``weft demo`` with ``argv`` and return the settings its handler would read."""
    seen = []

    def record(args: Any, out: Any) -> int:
        seen.append(get_settings(data_dir=args.data_dir))
        return 0

    monkeypatch.setattr(weft.cli, "_demo", record)
    assert main(["demo", *argv]) == 0
    return seen[0]


def test_every_command_reads_a_settings_file_below_the_environment_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "weft.env"
    file.write_text(
        "# the team's knowledge base\n"
        f"WEFT_DATA_DIR={tmp_path / 'kb'}\n"
        "export WEFT_TOP_K=9\n"
        "WEFT_PORT=8100\n"
        "OPENAI_BASE_URL=http://elsewhere\n"  # other tools' variables are left alone
    )
    monkeypatch.delenv("WEFT_TOP_K", raising=False)
    monkeypatch.setenv("WEFT_PORT", "8200")
    seen = _settings_seen(monkeypatch, ["--settings", str(file)])
    assert (seen.data_dir, seen.top_k, seen.port) == (tmp_path / "kb", 9, 8200)
    seen = _settings_seen(monkeypatch, ["--settings", str(file), "--data-dir", "other"])
    assert seen.data_dir == Path("other")
    monkeypatch.setenv("WEFT_SETTINGS_FILE", str(file))
    assert _settings_seen(monkeypatch, []).top_k == 9
    assert settings_file() == file  # the variable; --settings applies only inside main


@pytest.mark.parametrize(
    "argv",
    [["graph", "show", "rag"], ["ingest", "docs"], ["chat"], ["serve"], ["trace"], ["demo"]],
)
def test_every_command_takes_settings(argv: list[str]) -> None:
    args = weft.cli.build_parser().parse_args([*argv, "--settings", "team.env"])
    assert args.settings == "team.env"


def test_the_settings_file_is_scoped_to_the_block_that_names_it(tmp_path: Path) -> None:
    file = tmp_path / "weft.env"
    file.write_text("WEFT_TOP_K=7\n")
    with using_settings_file(file):
        assert get_settings().top_k == 7
    assert settings_file() is None and get_settings().top_k == 4


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("WEFT_TOPK=3\n", "sets WEFT_TOPK, which is no weft setting; known settings: "),
        (b"WEFT_TOP_K=\xff\xfe\n", "cannot read settings file"),
    ],
)
def test_a_bad_settings_file_exits_2_before_the_command_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | bytes | None,
    expected: str,
) -> None:
    file = tmp_path / "weft.env"
    if isinstance(content, str):
        file.write_text(content)
    elif isinstance(content, bytes):
        file.write_bytes(content)
    ran = []
    monkeypatch.setattr(weft.cli, "_demo", lambda args, out: ran.append(args) or 0)
    assert main(["demo", "--settings", str(file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"weft demo: error: settings file '{file}'") or (
        err.startswith(f"weft demo: error: cannot read settings file '{file}'")
    )
    assert expected in err and "Traceback" not in err and ran == []
    with using_settings_file(file), pytest.raises(SettingsFileError) as raised:
        get_settings()
    assert expected in str(raised.value)


def test_an_invalid_value_in_the_settings_file_names_the_variable_and_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "weft.env"
    file.write_text("WEFT_TOP_K=lots\n")
    assert main(["graph", "show", "rag", "--settings", str(file)]) == 2
    err = capsys.readouterr().err
    assert "WEFT_TOP_K='lots'" in err and str(file) in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv", [["ingest", "docs"], ["chat", "hi"], ["serve"], ["graph", "show", "rag"]]
)
def test_a_data_dir_that_is_a_file_exits_2_and_keeps_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    data = tmp_path / "notes.txt"
    data.write_text("keep me")
    assert main([*argv, "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"weft {argv[0]}: error: invalid settings: --data-dir='{data}': ")
    assert f"'{data}' is a file, not a folder; pass a folder with --data-dir" in err
    assert err.count("\n") == 1 and data.read_text() == "keep me"


def test_a_bad_flag_is_named_as_the_flag_and_a_bad_variable_with_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "weft.env"
    file.write_text("WEFT_TOP_K=9\n")
    assert main(["serve", "--port", "70000", "--settings", str(file)]) == 2
    err = capsys.readouterr().err
    assert "invalid settings: --port=70000: " in err and "settings file" not in err
    monkeypatch.setenv("WEFT_HEARTBEAT_SECONDS", "-1")
    assert main(["serve", "--port", "70000", "--settings", str(file)]) == 2
    err = capsys.readouterr().err
    assert "--port=70000" in err and "WEFT_HEARTBEAT_SECONDS='-1'" in err
    assert f"(in the environment or settings file '{file}')" in err


def test_trace_reads_its_file_even_when_other_settings_are_invalid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEFT_TOP_K", "lots")
    monkeypatch.setenv("WEFT_DATA_DIR", str(tmp_path))
    assert main(["trace"]) == 1
    assert f"no trace file at {tmp_path / 'traces.jsonl'}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["chat", "hi", "--data-dir", ""], "--data-dir='': is empty"),
        (["ingest", ""], "a path is empty"),
        (["serve", "--host", ""], "--host='': is empty"),
        (["trace", "--data-dir", ""], "--data-dir is empty"),
    ],
)
def test_an_empty_path_or_host_is_refused_not_taken_for_the_current_folder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"weft {argv[0]}: error: ") and expected in err
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


def test_a_data_dir_inside_a_file_is_an_invalid_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["chat", "hi", "--data-dir", str(tmp_path / "notes.txt" / "kb")]) == 2
    assert f"'{tmp_path / 'notes.txt'}' is a file, not a folder" in capsys.readouterr().err


def test_errors_no_command_handles_end_in_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def too_long(args: Any, out: Any) -> int:
        raise OSError(36, "File name too long", "/tmp/" + "a" * 300)

    def surprise(args: Any, out: Any) -> int:
        raise LookupError("no such thing\nat all")

    monkeypatch.setattr(weft.cli, "_demo", too_long)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("weft demo: error: File name too long: '/tmp/aaa") and err.count("\n") == 1
    )
    monkeypatch.setattr(weft.cli, "_demo", surprise)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "weft demo: error: LookupError: no such thing at all (set WEFT_DEBUG=1 to see where)\n"
    )
    monkeypatch.setenv("WEFT_DEBUG", "1")
    with pytest.raises(LookupError):
        main(["demo"])


# -- ingest: one writer at a time ----------------------------------------------------------------

_INGEST = "import sys, weft.cli; sys.exit(weft.cli.main())"
_PAUSED_INGEST = """
import sys, time
from pathlib import Path
from weft.components.stores import ChromaStore
import weft.cli

go, real_upsert = Path(sys.argv[1]), ChromaStore.upsert

def paused_upsert(self, documents, **kwargs):
    (go.parent / "paused").touch()
    while not go.exists():  # the test says when to go on
        time.sleep(0.05)
    return real_upsert(self, documents, **kwargs)

ChromaStore.upsert = paused_upsert
sys.exit(weft.cli.main(sys.argv[2:]))
"""


def _folder(root: Path, name: str, facts: list[str]) -> Path:
    folder = root / name
    folder.mkdir()
    for number, fact in enumerate(facts):
        (folder / f"{name}-{number}.txt").write_text(fact + "\n")
    return folder


def test_two_ingests_of_different_folders_at_once_lose_no_chunk(tmp_path: Path) -> None:
    from weft.core.settings import Settings
    from weft.graphs.knowledge import KnowledgeBase

    rivers = _folder(tmp_path, "rivers", ["The Danube flows east.", "The Rhine meets the sea."])
    birds = _folder(tmp_path, "birds", ["Swifts sleep on the wing.", "Owls hunt at night."])
    kb, go = tmp_path / "kb", tmp_path / "go"
    ingest = ["ingest", "--data-dir", str(kb), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WEFT_"))}
    first = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_INGEST, str(go), *ingest, str(rivers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    second = None
    try:
        # The first has read both stores and is writing to Chroma when the second starts.
        while not (tmp_path / "paused").exists():
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        second = subprocess.Popen(
            [sys.executable, "-c", _INGEST, *ingest, str(birds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert second.stderr is not None
        said = second.stderr.readline()  # it waits and says so, or ends (and says nothing)
    finally:
        go.touch()
        err = first.communicate(timeout=120)[1]
    assert first.returncode == 0, err
    err = second.communicate(timeout=120)[1]
    assert second.returncode == 0, err
    reopened = KnowledgeBase(Settings(data_dir=kb))
    assert reopened.count() == reopened.bm25.count() == 4
    found = {
        Path(d.metadata["source"]).name
        for d in reopened.bm25.invoke("Danube Rhine owls swifts", k=4)
    }
    assert found == {"rivers-0.txt", "rivers-1.txt", "birds-0.txt", "birds-1.txt"}
    assert said == f"waiting for another ingest of {kb} to finish...\n"


def test_ingest_no_wait_exits_2_in_one_line_while_another_ingest_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from filelock import FileLock

    rivers = _folder(tmp_path, "rivers", ["The Danube flows east."])
    kb = tmp_path / "kb"
    kb.mkdir()
    with FileLock(kb / "ingest.lock"):  # what a running ingest holds
        code = main(["ingest", str(rivers), "--data-dir", str(kb), "--no-wait", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"weft ingest: error: another ingest of {kb} is running; ")
    assert not (kb / "chroma").exists() and not (kb / "bm25").exists()  # nothing written


def test_demo_trace_writes_the_trace_that_weft_trace_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert main(["demo", "What does compile check?", "--trace", *data], out=io.StringIO()) == 0
    assert "read it with weft trace" in capsys.readouterr().err
    assert (tmp_path / "traces.jsonl").is_file()
    shown = io.StringIO()
    assert main(["trace", *data], out=shown) == 0
    assert "demo" in shown.getvalue() and "retrieve" in shown.getvalue()

"""weft resume analyze and weft resume index."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.graphs.resume._files import write_docx, write_pdf
from tests.graphs.resume.conftest import JONAS, LI, MARIA
from weft.cli import main
from weft.testing import OpenAIServer


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def resumes(tmp_path: Path) -> list[Path]:
    li = tmp_path / "li.txt"
    li.write_text(LI, encoding="utf-8")
    jonas = tmp_path / "jonas.md"
    jonas.write_text(JONAS, encoding="utf-8")
    return [
        write_pdf(tmp_path / "maria.pdf", MARIA),
        write_docx(tmp_path / "m.docx", MARIA),
        li,
        jonas,
    ]


def test_analyze_json_prints_one_object_per_file(
    resumes: list[Path], jobs_dir: Path, tmp_path: Path
) -> None:
    code, out = _run(
        "resume",
        "analyze",
        *map(str, resumes),
        "--jobs",
        str(jobs_dir),
        "--json",
        "--as-of",
        "2025-01-01",
        "--data-dir",
        str(tmp_path / "d"),
        "--no-progress",
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [Path(x["file"]).name for x in lines] == ["maria.pdf", "m.docx", "li.txt", "jonas.md"]
    assert lines[0]["profile"]["email"] == "maria.schneider@example.de"
    assert lines[0]["profile"]["years_experience"] == 9.1
    assert lines[0]["matches"][0]["job"] == "data-engineer.md"
    assert lines[2]["matches"][0]["title"] == "ICU Nurse"
    assert lines[3]["profile"]["gaps"] == [{"start": "2017-07", "end": "2019-12", "months": 30}]


def test_analyze_prints_a_readable_summary(jobs_dir: Path, tmp_path: Path) -> None:
    resume = tmp_path / "li.txt"
    resume.write_text(LI, encoding="utf-8")
    code, out = _run(
        "resume",
        "analyze",
        str(resume),
        "--jobs",
        str(jobs_dir),
        "--as-of",
        "2025-01-01",
        "--top-k",
        "1",
        "--data-dir",
        str(tmp_path / "d"),
    )
    assert code == 0
    assert "李明, 9.6 years, 上海" in out
    assert "1. ICU Nurse (icu-nurse.json), score" in out
    assert "  2. " not in out


def test_a_bad_file_is_named_and_the_others_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "jonas.md"
    good.write_text(JONAS, encoding="utf-8")
    scan = tmp_path / "photo.png"
    scan.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    code, out = _run("resume", "analyze", str(scan), str(good), "--json", "--no-progress")
    assert code == 1
    assert [json.loads(line)["profile"]["name"] for line in out.splitlines()] == ["Jonas Weber"]
    err = capsys.readouterr().err
    assert "photo.png" in err and "not a resume format" in err
    assert "Traceback" not in err


def test_index_builds_then_is_up_to_date(jobs_dir: Path, tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    assert _run("resume", "index", str(jobs_dir), "--data-dir", data) == (
        0,
        f"job index of {jobs_dir.resolve()}: built, 4 ads\n",
    )
    code, out = _run("resume", "index", str(jobs_dir), "--data-dir", data)
    assert (code, out.split(":")[-1]) == (0, " up to date, 4 ads\n")


def test_a_missing_jobs_folder_and_a_bad_date_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _run("resume", "index", str(tmp_path / "nope"), "--data-dir", str(tmp_path))
    assert code == 2
    assert "does not exist or is not a folder" in capsys.readouterr().err
    for flags, message in [
        (["--as-of", "01.02.2025"], "not a date; write YYYY-MM-DD"),
        (["--top-k", "0"], "not a whole number from 1 to 50"),
        (["--min-score", "1.5"], "not a number from 0 to 1"),
        (["--concurrency", "two"], "not a whole number from 1 to 64"),
    ]:
        with pytest.raises(SystemExit) as info:
            _run("resume", "analyze", "x.md", *flags)
        assert info.value.code == 2
        assert message in capsys.readouterr().err


def test_analyze_shows_a_progress_bar_over_several_files_unless_told_not_to(
    jobs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # stderr as a terminal, so the bar is drawn
    files = []
    for name, text in [("li.txt", LI), ("jonas.md", JONAS)]:
        (tmp_path / name).write_text(text, encoding="utf-8")
        files.append(str(tmp_path / name))
    data = ["--jobs", str(jobs_dir), "--data-dir", str(tmp_path / "d")]
    assert _run("resume", "analyze", *files, *data)[0] == 0
    err = capsys.readouterr().err
    assert "analysing resumes" in err and "2/2" in err
    assert _run("resume", "analyze", *files, *data, "--no-progress")[0] == 0
    assert "analysing resumes" not in capsys.readouterr().err


def test_analyze_uses_the_configured_model_and_falls_back_to_the_rules(
    jobs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resume = tmp_path / "li.txt"
    resume.write_text(LI, encoding="utf-8")
    said = "A close fit for the ward, the model finds."
    with OpenAIServer(default=said) as server:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("WEFT_MODEL", "gpt-4o-mini")
        args = ["resume", "analyze", str(resume), "--jobs", str(jobs_dir), "--json"]
        code, out = _run(*args, "--top-k", "1", "--data-dir", str(tmp_path / "d"))
        asked = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert code == 0
    (line,) = [json.loads(text) for text in out.splitlines()]
    # The model's reply is no profile, so the rules read it; the explanation is the model's.
    assert line["profile"]["name"] == "李明"
    assert line["matches"][0]["title"] == "ICU Nurse"
    assert line["matches"][0]["explanation"] == said
    assert len(asked) >= 2


def test_analyze_without_jobs_says_there_was_nothing_to_match(tmp_path: Path) -> None:
    resume = tmp_path / "jonas.md"
    resume.write_text(JONAS, encoding="utf-8")
    code, out = _run("resume", "analyze", str(resume), "--data-dir", str(tmp_path / "d"))
    assert code == 0 and out.startswith(f"{resume}: Jonas Weber")
    assert "no job ads to match it against (pass --jobs DIR)" in out
    assert "no job matches well enough" not in out

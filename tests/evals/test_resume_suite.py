"""The resume-matching suite: its gates hold offline, the held-out part is reported apart, and
contact details stay out of its reports."""

from __future__ import annotations

from pathlib import Path

from tests.evals._resume_fixtures import RESUMES
from weft.evals import assert_suite_passes
from weft.evals._resume import SUITE_DATA
from weft.graphs.resume.loading import read_resume_file


def test_resume_matching_meets_its_gates_and_keeps_contacts_out_of_reports(
    tmp_path: Path,
) -> None:
    result = assert_suite_passes(
        "resume-matching", data_dir=tmp_path / "data", out=tmp_path / "out", cache=False
    )
    m = result.metrics()
    assert m["skill_f1"] >= 0.85 and m["top1"] >= 0.8 and m["years_within_half"] >= 0.9
    held = [c for c in result.cases if "holdout" in c.tags]
    assert len(held) == 4
    assert all("holdout_skill_f1" in c.scores for c in held)
    assert not any("holdout_skill_f1" in c.scores for c in result.cases if c not in held)
    formats = {Path(c.inputs["file"]).suffix for c in result.cases}
    assert formats == {".pdf", ".docx", ".txt", ".md"}
    for name in ("results.json", "report.html", "junit.xml"):
        written = (tmp_path / "out" / name).read_text(encoding="utf-8")
        assert "maria.schneider@example.de" not in written
        assert "+49 170 1234567" not in written


def _words(text: str) -> list[str]:
    # The DOCX writer turns Markdown heading and bullet marks into paragraph styles.
    return [w for w in text.split() if w not in ("#", "##", "###", "-")]


def test_the_committed_resumes_are_the_fixture_texts() -> None:
    for name, text in RESUMES.items():
        assert _words(read_resume_file(SUITE_DATA / "resumes" / name)) == _words(text), name

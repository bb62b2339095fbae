"""The resume graph end to end: formats, matching, no-match, privacy, batch, the model path."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from tests.graphs.resume._files import write_docx, write_resume
from tests.graphs.resume.conftest import JONAS, LI, MARIA
from weft.core.errors import DocumentLoadError, NodeError
from weft.graphs.resume import (
    JobIndex,
    ResumeAnalysis,
    ResumeInput,
    analyze_many,
    build_resume_graph,
    parse_job_ad,
)
from weft.testing import ScriptedChatModel

AS_OF = dt.date(2025, 1, 1)


def _analyze(index: JobIndex, **fields: Any) -> ResumeAnalysis:
    return build_resume_graph(index).invoke(ResumeInput(as_of=AS_OF, **fields))


@pytest.mark.parametrize("suffix", [".pdf", ".docx", ".txt", ".md"])
def test_each_format_gives_the_same_profile_and_match(
    job_index: JobIndex, tmp_path: Path, suffix: str
) -> None:
    path = write_resume(tmp_path / f"maria{suffix}", MARIA)
    result = _analyze(job_index, path=str(path))
    assert result.profile.email == "maria.schneider@example.de"
    assert result.years_experience == 9.1  # 2016-01 .. 2025-01, 109 months
    assert {"Python", "Apache Spark", "Kubernetes", "PostgreSQL", "Tableau"} <= set(
        result.profile.skills
    )
    assert [m.job for m in result.matches][:1] == ["data-engineer.md"]


def test_years_merge_and_gaps_follow_the_as_of_date(job_index: JobIndex) -> None:
    jonas = _analyze(job_index, text=JONAS)
    # 2014-05..2017-06 (38 months) + 2020-01..2025-01 (61 months)
    assert jonas.years_experience == round(99 / 12, 1)
    assert [(g.start, g.end, g.months) for g in jonas.gaps] == [("2017-07", "2019-12", 30)]
    later = build_resume_graph(job_index).invoke(ResumeInput(text=JONAS, as_of=dt.date(2026, 1, 1)))
    assert later.years_experience == round(111 / 12, 1)


def test_matches_carry_skills_fit_and_an_explanation(job_index: JobIndex) -> None:
    li = _analyze(job_index, text=LI)
    top = li.matches[0]
    assert (top.job, top.title) == ("icu-nurse.json", "ICU Nurse")
    assert top.matched_skills == ["Critical Care", "Patient Care", "BLS", "ACLS"]
    assert top.missing_skills == []
    assert top.experience_fit == 1.0
    assert "3 of the 3 required skills for ICU Nurse" in top.explanation
    assert "li.ming@example.cn" not in top.explanation


def test_a_resume_that_fits_nothing_gets_no_matches(job_index: JobIndex) -> None:
    baker = "Tom Baker\ntom@example.org\n\nExperience\nBaker, Rye & Co, 2010 - 2020\n- Sourdough"
    assert _analyze(job_index, text=baker).matches == []


def test_the_threshold_and_the_location_filter_are_per_call(job_index: JobIndex) -> None:
    assert _analyze(job_index, text=MARIA, min_score=0.99).matches == []
    assert _analyze(job_index, text=MARIA, location="Munich").matches == []
    assert [m.job for m in _analyze(job_index, text=JONAS, location="Munich").matches] == [
        "designer.txt"  # remote
    ]


def test_base64_upload_with_a_file_name(job_index: JobIndex, tmp_path: Path) -> None:
    data = write_docx(tmp_path / "m.docx", MARIA).read_bytes()
    result = _analyze(
        job_index, content_base64=base64.b64encode(data).decode(), filename="maria.docx"
    )
    assert result.source == "maria.docx"
    assert result.profile.name == "Maria Schneider"


def test_a_bad_file_fails_the_load_node_with_its_reason(job_index: JobIndex) -> None:
    with pytest.raises(NodeError) as info:
        _analyze(job_index, content_base64=base64.b64encode(b"").decode(), filename="cv.pdf")
    assert isinstance(info.value.__cause__, DocumentLoadError)
    assert "cv.pdf" in str(info.value.__cause__)


def test_the_json_contract(job_index: JobIndex) -> None:
    out = _analyze(job_index, text=MARIA, filename="maria.md").to_json()
    assert set(out) == {"file", "profile", "matches"}
    assert set(out["profile"]) == {
        "name",
        "email",
        "phone",
        "location",
        "skills",
        "years_experience",
        "experience",
        "education",
        "gaps",
    }
    assert set(out["matches"][0]) == {
        "job",
        "title",
        "score",
        "matched_skills",
        "missing_skills",
        "explanation",
    }
    assert out["file"] == "maria.md"
    assert out["profile"]["years_experience"] == 9.1
    json.dumps(out)  # plain JSON all through


def test_contact_details_are_masked_in_repr_and_logs(
    job_index: JobIndex, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="weft.graphs.resume"):
        result = _analyze(job_index, text=MARIA)
    assert result.profile.phone == "+49 170 1234567"
    for shown in (repr(result), str(result.profile), caplog.text):
        assert "maria.schneider@example.de" not in shown
        assert "170 1234567" not in shown
    assert "[EMAIL]" in repr(result.profile)


def test_contact_details_are_masked_in_traces(job_index: JobIndex, tmp_path: Path) -> None:
    from weft.core.tracing import disable_tracing, enable_tracing

    traces = tmp_path / "traces.jsonl"
    model = ScriptedChatModel(replies=["not a profile", "not a profile", "no", "no"])
    handler = enable_tracing("jsonl", path=str(traces), capture_content=True)
    try:  # the model is sent the resume, so its messages are in the trace
        build_resume_graph(job_index, model=model, max_retries=1).invoke(
            ResumeInput(text=MARIA, as_of=AS_OF)
        )
    finally:
        disable_tracing(handler)
    written = traces.read_text(encoding="utf-8")
    assert "Nordlicht" in written  # the content was recorded
    assert "maria.schneider@example.de" not in written
    assert "170 1234567" not in written


def test_the_index_is_rebuilt_when_the_ads_change(job_index: JobIndex, jobs_dir: Path) -> None:
    assert not job_index.is_stale()
    (jobs_dir / "baker.md").write_text("# Baker\n## Requirements\n- Lean, 2 years\n", "utf-8")
    assert job_index.is_stale()
    assert job_index.refresh() is True
    assert "baker.md" in [ad.file for ad in job_index.ads]
    assert job_index.refresh() is False


def test_job_ads_in_each_format_are_parsed(jobs_dir: Path) -> None:
    engineer = parse_job_ad(jobs_dir / "data-engineer.md")
    assert (engineer.title, engineer.location, engineer.min_years) == (
        "Senior Data Engineer",
        "Berlin, Germany",
        5.0,
    )
    assert engineer.required_skills[:4] == ["Python", "SQL", "Apache Spark", "Apache Airflow"]
    assert engineer.nice_to_have == ["Kubernetes", "Terraform"]
    nurse = parse_job_ad(jobs_dir / "icu-nurse.json")
    assert (nurse.required_skills, nurse.nice_to_have) == (
        ["Critical Care", "Patient Care", "BLS"],
        ["ACLS"],
    )
    designer = parse_job_ad(jobs_dir / "designer.txt")
    assert designer.required_skills == ["Figma", "User Research", "Design Systems"]
    assert designer.min_years == 3.0


class _SlowGraph:
    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def invoke(self, request: ResumeInput) -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
        if request.path == "bad":
            raise ValueError("bad file")
        return str(request.path)


def test_batch_runs_at_most_concurrency_resumes_at_once() -> None:
    graph = _SlowGraph()
    done: list[str] = []
    files = [f"r{i}" for i in range(12)] + ["bad"]
    results = analyze_many(
        graph,  # type: ignore[arg-type]
        files,
        concurrency=3,
        on_done=lambda f, _: done.append(f),
    )
    assert graph.most == 3
    assert results[:12] == files[:12]
    assert isinstance(results[12], ValueError)
    assert sorted(done) == sorted(files)


def test_with_a_model_the_profile_comes_from_it(job_index: JobIndex) -> None:
    profile = {
        "name": "Maria S.",
        "email": "m@example.de",
        "experience": [{"title": "Data Engineer", "start": "2020-01", "current": True}],
        "skills": ["Python", "pyspark", "SQL", "Airflow"],
    }
    model = ScriptedChatModel(
        replies=[
            AIMessage("", tool_calls=[{"name": "ResumeProfile", "args": profile, "id": "1"}]),
            "Maria fits the data engineering role well.",
        ]
    )
    result = build_resume_graph(job_index, model=model).invoke(
        ResumeInput(text=MARIA, as_of=AS_OF, top_k=1)
    )
    assert result.profile.name == "Maria S."
    assert result.years_experience == 5.1
    assert result.profile.skills[:4] == ["Python", "Apache Spark", "SQL", "Apache Airflow"]
    assert result.matches[0].explanation == "Maria fits the data engineering role well."


def test_a_failing_model_falls_back_to_the_rules(job_index: JobIndex) -> None:
    model = ScriptedChatModel(replies=["no profile here", "still none", "nor here"])
    result = build_resume_graph(job_index, model=model, max_retries=2).invoke(
        ResumeInput(text=JONAS, as_of=AS_OF, top_k=1)
    )
    assert result.profile.name == "Jonas Weber"
    assert model.remaining == 0
    # the explanation's model call had no reply left: the template stands
    assert result.matches[0].explanation.startswith("Jonas Weber has")


def test_candidates_include_the_ads_that_require_the_profiles_skills(job_index: JobIndex) -> None:
    by_words = [ad.file for ad, _ in job_index.candidates("product designer figma", k=1)]
    assert by_words == ["designer.txt"]
    both = job_index.candidates(
        "product designer figma", k=1, skills=["Critical Care", "Patient Care", "BLS"]
    )
    assert [ad.file for ad, _ in both] == ["designer.txt", "icu-nurse.json"]
    assert all(0.0 <= similarity <= 1.0 for _, similarity in both)


def test_a_bad_ad_is_skipped_with_its_reason_and_a_cut_build_reads_as_stale(
    job_index: JobIndex, jobs_dir: Path
) -> None:
    (jobs_dir / "broken.json").write_text("[1, 2", encoding="utf-8")
    assert job_index.refresh() is True
    assert [name for name, _ in job_index.skipped] == ["broken.json"]
    assert "not a JSON job ad" in job_index.skipped[0][1]
    assert len(job_index.ads) == 4
    (job_index.path / "jobs.json").unlink()  # what a build killed before its end leaves
    assert job_index.is_stale()


def test_model_dates_are_read_and_a_date_that_is_no_month_is_sent_back(
    job_index: JobIndex,
) -> None:
    def reply(start: str) -> AIMessage:
        profile = {"name": "Jonas W.", "experience": [{"start": start, "end": "heute"}]}
        return AIMessage("", tool_calls=[{"name": "ResumeProfile", "args": profile, "id": "1"}])

    model = ScriptedChatModel(replies=[reply("soon"), reply("März 2020"), "fits"])
    result = build_resume_graph(job_index, model=model).invoke(ResumeInput(text=JONAS, as_of=AS_OF))
    entry = result.profile.experience[0]
    assert (entry.start, entry.end, entry.current) == ("2020-03", None, True)
    assert result.years_experience == round(59 / 12, 1)  # 2020-03 .. 2025-01
    assert "'soon' is not a month; write YYYY-MM" in str(model.received[1][-1].content)

# ruff: noqa: RUF001
# Resumes write en dashes and full-width punctuation.
"""The offline rules: headings in three languages, contact details, dates, skills."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.graphs.resume.conftest import JONAS, LI, MARIA
from weft.graphs.resume.dates import experience_months, find_date_range, find_gaps
from weft.graphs.resume.parsing import parse_resume, split_sections
from weft.graphs.resume.skills import SkillTaxonomy


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("Mar 2019 – Present", (2019, 3), None),
        ("03/2017 - 12/2018", (2017, 3), (2018, 12)),
        ("2019.03 - 至今", (2019, 3), None),
        ("2015年7月 - 2018年6月", (2015, 7), (2018, 6)),
        ("Januar 2020 bis heute", (2020, 1), None),
        ("Mai 2014 – Juni 2017", (2014, 5), (2017, 6)),
        ("Sept. 2020 to current", (2020, 9), None),
        ("janvier 2018 à mars 2020", (2018, 1), (2020, 3)),
        ("2019-03 – 2021-11", (2019, 3), (2021, 11)),
        ("2015 - 2018", (2015, 1), (2018, 12)),
        ("since 2021", (2021, 1), None),
        ("Oct 2022 - now", (2022, 10), None),
    ],
)
def test_date_ranges_in_several_languages(
    text: str, start: tuple[int, int], end: tuple[int, int] | None
) -> None:
    found = find_date_range(f"Engineer, {text}  Acme")
    assert found is not None
    assert (found.start, found.end) == (start, end)


@pytest.mark.parametrize("text", ["+49 170 1234567", "Python 3.11", "ISO 9001", "v2.2019"])
def test_numbers_that_are_not_dates_are_not_ranges(text: str) -> None:
    assert find_date_range(text) is None


def test_overlapping_jobs_count_each_month_once() -> None:
    periods = [((2019, 1), (2019, 12)), ((2019, 7), (2020, 6)), ((2021, 1), None)]
    # 2019-01..2020-06 is 18 months; 2021-01..2021-12 is 12
    assert experience_months(periods, dt.date(2021, 12, 15)) == 30


def test_present_is_the_analysis_date() -> None:
    periods = [((2020, 1), None)]
    assert experience_months(periods, dt.date(2020, 12, 1)) == 12
    assert experience_months(periods, dt.date(2022, 12, 1)) == 36


def test_gaps_over_six_months_are_reported() -> None:
    periods = [((2015, 1), (2016, 1)), ((2016, 5), (2016, 12)), ((2018, 1), (2019, 1))]
    gaps = find_gaps(periods, dt.date(2020, 1, 1))
    # Feb-Apr 2016 is 3 months (not a gap); 2017 is 12; Feb 2019 up to as_of's month is 12
    assert gaps == [((2017, 1), (2017, 12), 12), ((2019, 2), (2020, 1), 12)]


def test_headings_in_english_german_and_chinese() -> None:
    assert {"experience", "education", "skills", "languages"} <= set(split_sections(MARIA))
    assert {"experience", "education", "skills"} <= set(split_sections(JONAS))
    assert {"experience", "education", "skills"} <= set(split_sections(LI))


def test_english_resume_fields() -> None:
    p = parse_resume(MARIA)
    assert (p.name, p.email, p.phone) == (
        "Maria Schneider",
        "maria.schneider@example.de",
        "+49 170 1234567",
    )
    assert p.location == "Berlin, Germany"
    assert p.links == ["github.com/maria-s"]
    assert [(e.title, e.organisation, e.start, e.end, e.current) for e in p.experience] == [
        ("Senior Data Engineer", "Nordlicht Logistics GmbH", "2019-03", None, True),
        ("Data Engineer", "Kranich Bank", "2016-01", "2019-02", False),
    ]
    assert "Tableau" in p.experience[1].description
    assert p.education[0].institution == "TU Berlin"
    assert p.languages == ["German", "English"]


def test_german_and_chinese_resume_fields() -> None:
    jonas = parse_resume(JONAS)
    assert (jonas.email, jonas.phone, jonas.location) == (
        "jonas.weber@example.org",
        "+49 40 12345678",
        "Hamburg, Deutschland",
    )
    assert [(e.start, e.end) for e in jonas.experience] == [
        ("2020-01", None),
        ("2014-05", "2017-06"),
    ]
    li = parse_resume(LI)
    assert (li.name, li.email, li.phone, li.location) == (
        "李明",
        "li.ming@example.cn",
        "13812345678",
        "上海",
    )
    assert [(e.start, e.current) for e in li.experience] == [("2018-07", True), ("2015-07", False)]
    assert li.skills[:2] == ["Critical Care", "Patient Care"]
    # the school comes first in the Chinese resume, the degree first in the English one
    assert (li.education[0].degree, li.education[0].institution) == (
        "护理学学士",
        "复旦大学护理学院",
    )


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("JS", "JavaScript"),
        ("k8s", "Kubernetes"),
        ("AWS", "AWS"),
        ("NLP", "Natural Language Processing"),
        ("Postgres", "PostgreSQL"),
        ("sklearn", "scikit-learn"),
        ("Golang", "Go"),
        ("ReactJS", "React"),
        ("node.js", "Node.js"),
        ("C sharp", "C#"),
        ("Python 3", "Python"),
        ("Java 17", "Java"),
        ("Kubernets", "Kubernetes"),
        ("Javascirpt", "JavaScript"),
        ("basket weaving", None),
    ],
)
def test_skills_map_onto_the_taxonomy(written: str, canonical: str | None) -> None:
    assert SkillTaxonomy.bundled().canonical(written) == canonical


def test_the_bundled_taxonomy_covers_seven_fields() -> None:
    taxonomy = SkillTaxonomy.bundled()
    assert len(taxonomy) >= 300
    assert set(taxonomy.category.values()) == {
        "software",
        "data",
        "design",
        "engineering",
        "healthcare",
        "finance",
        "management",
    }


def test_skills_in_running_text_skip_ordinary_words() -> None:
    found = SkillTaxonomy.bundled().find_in_text(
        "Wrote the spring report in Word. Built ML models in PyTorch; led QA for the UX team."
    )
    assert sorted(found) == ["Machine Learning", "PyTorch", "Quality Assurance", "UX Design"]

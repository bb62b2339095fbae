"""The resume graph's records: its input, the typed profile, job ads, matches and the result.

Contact details (``email``, ``phone``) are kept as written in the returned records, but every
``repr``/``str`` of a profile or result masks them with :func:`~weft.core.masking.mask_pii`, so
log lines, console traces and eval reports that print them show ``[EMAIL]`` and ``[PHONE]``.
:meth:`ResumeAnalysis.to_json` is the documented JSON contract of ``weft resume analyze --json``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from weft.core.masking import mask_pii, mask_value
from weft.graphs.resume.dates import OPEN_WORDS, month_text, parse_month

__all__ = [
    "EducationEntry",
    "ExperienceEntry",
    "Gap",
    "JobAd",
    "JobMatch",
    "ResumeAnalysis",
    "ResumeInput",
    "ResumeProfile",
]


class _Masked(BaseModel):
    """A record whose ``repr`` and ``str`` mask personal data."""

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, mask_value(value)

    def __str__(self) -> str:
        return mask_pii(super().__str__())


def _month(value: Any) -> str | None:
    """A date as ``YYYY-MM``: ``2020-03`` as it is, ``March 2020`` or ``03/2020`` read, an
    open end (``present``, ``heute``...) None; anything else is refused with the format."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    if text.lower() in OPEN_WORDS:
        return None
    if re.search(r"(?:19|20)\d{2}", text):
        year, month = parse_month(text)
        if 1 <= month <= 12:
            return month_text((year, month))
    raise ValueError(f"{text!r} is not a month; write YYYY-MM, e.g. 2020-03")


class ExperienceEntry(BaseModel):
    """One job: dates are ``YYYY-MM``; ``end`` is None while ``current``."""

    title: str = ""
    organisation: str = ""
    start: str | None = Field(default=None, description="YYYY-MM")
    end: str | None = Field(default=None, description="YYYY-MM; None while current")
    current: bool = False
    description: str = ""

    _dates = field_validator("start", "end", mode="before")(_month)

    @model_validator(mode="before")
    @classmethod
    def _open_end(cls, data: Any) -> Any:
        end = data.get("end") if isinstance(data, dict) else None
        if isinstance(end, str) and end.strip().lower() in OPEN_WORDS:
            return {**data, "current": True}
        return data


class EducationEntry(BaseModel):
    """One degree or course of study."""

    degree: str = ""
    institution: str = ""
    start: str | None = None
    end: str | None = None

    _dates = field_validator("start", "end", mode="before")(_month)


class Gap(BaseModel):
    """A stretch of over six months with no job: from ``start`` to ``end`` (``YYYY-MM``)."""

    start: str
    end: str
    months: int


class ResumeProfile(_Masked):
    """What a resume says, typed. ``skills`` are canonical names from the skill taxonomy once
    the graph has normalised them (as written, before)."""

    name: str = ""
    email: str | None = None
    phone: str | None = None
    location: str | None = None
    links: list[str] = Field(default_factory=list)
    summary: str = ""
    experience: list[ExperienceEntry] = Field(default_factory=list)
    education: list[EducationEntry] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)


class ResumeInput(BaseModel):
    """The resume graph's input: a file path, its text, or its bytes in base64 with a file name.

    ``location`` keeps only ads in that place (or remote); ``min_score`` overrides the graph's
    no-match threshold; ``as_of`` is the date "present" stands for (today by default).
    """

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    text: str | None = None
    content_base64: str | None = None
    filename: str | None = None
    location: str | None = None
    min_score: float | None = Field(default=None, ge=0, le=1)
    top_k: int = Field(default=3, ge=1, le=50)
    as_of: dt.date | None = None


class JobAd(BaseModel):
    """One job ad of the index, parsed from its file."""

    id: str
    file: str
    title: str
    location: str = ""
    required_skills: list[str] = Field(default_factory=list)
    nice_to_have: list[str] = Field(default_factory=list)
    min_years: float = 0.0
    text: str = ""


class JobMatch(BaseModel):
    """A job the resume matches, why, and by how much (see :mod:`weft.graphs.resume.matching`)."""

    job: str
    title: str
    location: str = ""
    score: float
    parts: dict[str, float] = Field(default_factory=dict)
    matched_skills: list[str] = Field(default_factory=list)
    missing_skills: list[str] = Field(default_factory=list)
    experience_fit: float = 0.0
    explanation: str = ""


class ResumeAnalysis(_Masked):
    """The resume graph's output."""

    source: str
    profile: ResumeProfile
    years_experience: float
    gaps: list[Gap] = Field(default_factory=list)
    matches: list[JobMatch] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON contract (``weft resume analyze --json``, one object per file)."""
        p = self.profile
        return {
            "file": self.source,
            "profile": {
                "name": p.name,
                "email": p.email,
                "phone": p.phone,
                "location": p.location,
                "skills": list(p.skills),
                "years_experience": self.years_experience,
                "experience": [e.model_dump() for e in p.experience],
                "education": [e.model_dump() for e in p.education],
                "gaps": [g.model_dump() for g in self.gaps],
            },
            "matches": [
                {
                    "job": m.job,
                    "title": m.title,
                    "score": m.score,
                    "matched_skills": list(m.matched_skills),
                    "missing_skills": list(m.missing_skills),
                    "explanation": m.explanation,
                }
                for m in self.matches
            ],
        }

"""Resume analysis: a resume file in, a typed profile and its matching job ads out.

What lives where:

- ``graph.py``: :func:`build_resume_graph` (load -> extract -> skills -> experience -> match ->
  explain) and :func:`analyze_many`, many resumes with bounded concurrency;
- ``profile.py``: the records (:class:`ResumeInput`, :class:`ResumeProfile`,
  :class:`ResumeAnalysis` with its JSON contract, :class:`JobAd`, :class:`JobMatch`);
- ``loading.py``: reading PDF, DOCX, TXT and MD, and refusing bad files;
- ``parsing.py``: the offline rules (section headings in several languages, contact details,
  dated entries); ``dates.py``: date ranges, years of experience and gaps;
- ``skills.py``: the bundled skill taxonomy (``data/skills.yaml``) and fuzzy matching;
- ``jobs.py``: job ads and the :class:`JobIndex`; ``matching.py``: the weighted score, the
  no-match threshold and the template explanations.
"""

from weft.graphs.resume.graph import analyze_many, build_resume_graph
from weft.graphs.resume.jobs import JobIndex, parse_job_ad
from weft.graphs.resume.matching import MIN_SCORE, WEIGHTS
from weft.graphs.resume.parsing import parse_resume
from weft.graphs.resume.profile import (
    EducationEntry,
    ExperienceEntry,
    Gap,
    JobAd,
    JobMatch,
    ResumeAnalysis,
    ResumeInput,
    ResumeProfile,
)
from weft.graphs.resume.skills import SkillTaxonomy

__all__ = [
    "MIN_SCORE",
    "WEIGHTS",
    "EducationEntry",
    "ExperienceEntry",
    "Gap",
    "JobAd",
    "JobIndex",
    "JobMatch",
    "ResumeAnalysis",
    "ResumeInput",
    "ResumeProfile",
    "SkillTaxonomy",
    "analyze_many",
    "build_resume_graph",
    "parse_job_ad",
    "parse_resume",
]

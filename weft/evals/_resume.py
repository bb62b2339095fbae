"""The ``resume-matching`` suite's graph and evaluator.

:func:`resume_matching_graph` runs the resume graph over the suite's job ads
(``suites/data/resume-matching/jobs``) on a case's resume file (``{"file": name}``, in
``.../resumes``), with "present" fixed at :data:`AS_OF`. Its output carries the contact details
masked, beside a digest of each, so reports never show them.

:class:`ResumeMatching` scores a case against its gold (``expected_output``: ``skills``,
``years``, ``job``, None for a resume that should match nothing; ``metadata``: ``email`` and
``phone``):

- ``skill_precision``, ``skill_recall``, ``skill_f1``: canonical skills against the gold ones;
- ``years_abs_error`` and ``years_within_half`` (within 0.5 years);
- ``contact_match``: the share of e-mail and phone read exactly;
- ``top1``, ``top3``: the gold job first, or among the first three (cases with a job);
- ``no_match``: no match at all (cases without one);
- for cases tagged ``holdout``, the same under a ``holdout_`` prefix, so the held-out resumes
  are reported apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weft.core.component import TypedLambda, lambda_
from weft.core.masking import mask_pii
from weft.core.settings import Settings
from weft.evals._evaluator import Evaluator, EvaluatorContext, EvaluatorOutput

__all__ = ["AS_OF", "SUITE_DATA", "ResumeMatching", "contact_digest", "resume_matching_graph"]

SUITE_DATA = Path(__file__).resolve().parent / "suites" / "data" / "resume-matching"
"""The suite's resumes (``resumes/``) and job ads (``jobs/``)."""

AS_OF = dt.date(2025, 6, 1)
"""The date "present" stands for in the suite's resumes."""


def contact_digest(value: str | None) -> str | None:
    """A short digest of a contact detail, compared instead of the detail itself."""
    if not value:
        return None
    return hashlib.sha256(value.strip().encode("utf-8")).hexdigest()[:16]


def resume_matching_graph(settings: Settings) -> TypedLambda:
    """The resume graph over the suite's job ads, as ``{"file": name} -> dict``."""
    from weft.graphs.resume import JobIndex, ResumeInput, build_resume_graph

    index = JobIndex(SUITE_DATA / "jobs", data_dir=settings.data_dir)
    index.refresh()
    graph = build_resume_graph(index)

    def analyse(case: dict[str, Any]) -> dict[str, Any]:
        path = SUITE_DATA / "resumes" / str(case["file"])
        result = graph.invoke(ResumeInput(path=str(path), as_of=AS_OF))
        profile = result.profile
        return {
            "file": path.name,
            "name": profile.name,
            "email": mask_pii(profile.email or ""),
            "phone": mask_pii(profile.phone or ""),
            "contact_digest": {
                "email": contact_digest(profile.email),
                "phone": contact_digest(profile.phone),
            },
            "skills": profile.skills,
            "years_experience": result.years_experience,
            "matches": [m.job for m in result.matches],
            "scores": [m.score for m in result.matches],
        }

    return lambda_(analyse, input_type=dict, output_type=dict, name="resume-matching")


def _prf(found: set[str], gold: set[str]) -> tuple[float, float, float]:
    if not found and not gold:
        return 1.0, 1.0, 1.0
    hit = len(found & gold)
    precision = hit / len(found) if found else 0.0
    recall = hit / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass
class ResumeMatching(Evaluator):
    """Skills, years, contact details and job matches against a resume's gold."""

    years_tolerance: float = 0.5

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        out: dict[str, Any] = ctx.output
        gold: dict[str, Any] = ctx.expected_output
        precision, recall, f1 = _prf(set(out["skills"]), set(gold.get("skills", [])))
        error = abs(float(out["years_experience"]) - float(gold["years"]))
        fields = ("email", "phone")
        digests = out["contact_digest"]
        contact = sum(digests[f] == contact_digest(ctx.metadata.get(f)) for f in fields) / len(
            fields
        )
        job = gold.get("job")
        matches: list[str] = out["matches"]
        metrics: dict[str, Any] = {
            "skill_precision": round(precision, 4),
            "skill_recall": round(recall, 4),
            "skill_f1": round(f1, 4),
            "years_abs_error": round(error, 2),
            "years_within_half": error <= self.years_tolerance,
            "contact_match": contact,
            "top1": (matches[:1] == [job]) if job else None,
            "top3": (job in matches[:3]) if job else None,
            "no_match": (not matches) if not job else None,
        }
        if "holdout" in ctx.tags:
            for name in ("skill_f1", "years_within_half", "contact_match", "top1", "no_match"):
                value = metrics[name]
                metrics[f"holdout_{name}"] = None if value is None else float(value)
        return metrics

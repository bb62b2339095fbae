"""How a profile is scored against a job ad, and the explanation of each match.

The score is a weighted sum of five parts, each from 0 to 1 (:data:`WEIGHTS`):

==============  ======  ===============================================================
part            weight  what it measures
==============  ======  ===============================================================
``required``    0.45    share of the ad's required skills the profile has (1 if none)
``nice``        0.10    share of its nice-to-have skills (the ``required`` share if none)
``semantic``    0.20    cosine similarity of the profile's text and the ad's (embedder)
``experience``  0.15    years of experience / the ad's minimum years, at most 1
``location``    0.10    1 if the ad is remote, has no location or shares the profile's;
                        0.5 if the profile has no location; else 0
==============  ======  ===============================================================

A match is kept only when its score reaches the threshold (:data:`MIN_SCORE`, tunable per call
with ``min_score``) and the profile has at least one of the ad's required skills; a resume that
matches nothing well gets no matches, not the least-bad job.

Example:
    >>> parts = score_parts(profile, 6.0, ad, semantic=0.7)  # doctest: +SKIP
    >>> total(parts)  # doctest: +SKIP
    0.83
"""

from __future__ import annotations

from collections.abc import Sequence

from weft.graphs.resume.profile import JobAd, JobMatch, ResumeProfile

__all__ = ["MIN_SCORE", "WEIGHTS", "explain", "match", "score_parts", "total"]

WEIGHTS: dict[str, float] = {
    "required": 0.45,
    "nice": 0.10,
    "semantic": 0.20,
    "experience": 0.15,
    "location": 0.10,
}
"""The weight of each part of the score; they sum to 1."""

MIN_SCORE = 0.6
"""The least score a job needs to be a match."""

_ANYWHERE = ("remote", "anywhere", "homeoffice", "home office", "远程", "fernarbeit")


def _location_fit(profile_location: str | None, ad_location: str) -> float:
    where = ad_location.strip().lower()
    if not where or any(word in where for word in _ANYWHERE):
        return 1.0
    if not profile_location:
        return 0.5
    home = [p.strip().lower() for p in profile_location.split(",") if p.strip()]
    return 1.0 if any(p in where or where in p for p in home) else 0.0


def score_parts(
    profile: ResumeProfile, years: float, ad: JobAd, *, semantic: float
) -> dict[str, float]:
    """Each part of the score of ``profile`` (with ``years`` of experience) for ``ad``."""
    have = set(profile.skills)
    required = (
        len(have & set(ad.required_skills)) / len(ad.required_skills) if ad.required_skills else 1.0
    )
    nice = len(have & set(ad.nice_to_have)) / len(ad.nice_to_have) if ad.nice_to_have else required
    experience = min(1.0, years / ad.min_years) if ad.min_years > 0 else 1.0
    return {
        "required": round(required, 4),
        "nice": round(nice, 4),
        "semantic": round(max(0.0, min(1.0, semantic)), 4),
        "experience": round(experience, 4),
        "location": _location_fit(profile.location, ad.location),
    }


def total(parts: dict[str, float]) -> float:
    """The weighted sum of the parts, rounded to 3 places."""
    return round(sum(WEIGHTS[name] * value for name, value in parts.items()), 3)


def explain(profile: ResumeProfile, years: float, ad: JobAd, m: JobMatch) -> str:
    """The offline, template explanation of one match."""
    who = profile.name or "The candidate"
    required = len(ad.required_skills)
    matched = [s for s in ad.required_skills if s in m.matched_skills]
    text = f"{who} has {len(matched)} of the {required} required skills for {ad.title}"
    text += f" ({', '.join(matched)})" if matched else ""
    text += f"; missing: {', '.join(m.missing_skills)}." if m.missing_skills else "."
    if ad.min_years > 0:
        verdict = "meets" if years >= ad.min_years else "falls short of"
        text += f" {years:g} years of experience {verdict} the {ad.min_years:g} asked for."
    else:
        text += f" The ad asks for no minimum experience ({years:g} years here)."
    extras = [s for s in ad.nice_to_have if s in m.matched_skills]
    if extras:
        text += f" Also brings nice-to-have {', '.join(extras)}."
    if ad.location:
        fit = m.parts.get("location", 0.0)
        where = "fits" if fit == 1.0 else ("is unknown for" if fit == 0.5 else "does not fit")
        text += f" The location {where} {ad.location}."
    return text + f" Score {m.score:.2f}."


def match(
    profile: ResumeProfile,
    years: float,
    candidates: Sequence[tuple[JobAd, float]],
    *,
    min_score: float = MIN_SCORE,
    top_k: int = 3,
    location: str | None = None,
) -> list[JobMatch]:
    """The best ``top_k`` matches among the candidates (ad, semantic similarity), best first;
    only ads in ``location`` (or remote) when it is given."""
    out = []
    for ad, semantic in candidates:
        if location and _location_fit(location, ad.location) < 1.0:
            continue
        parts = score_parts(profile, years, ad, semantic=semantic)
        matched = [s for s in [*ad.required_skills, *ad.nice_to_have] if s in profile.skills]
        if ad.required_skills and not set(matched) & set(ad.required_skills):
            continue
        score = total(parts)
        if score < min_score:
            continue
        m = JobMatch(
            job=ad.file,
            title=ad.title,
            location=ad.location,
            score=score,
            parts=parts,
            matched_skills=matched,
            missing_skills=[s for s in ad.required_skills if s not in profile.skills],
            experience_fit=parts["experience"],
        )
        m.explanation = explain(profile, years, ad, m)
        out.append(m)
    out.sort(key=lambda m: (-m.score, m.job))
    return out[:top_k]

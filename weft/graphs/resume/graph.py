"""The resume graph: a resume file in, a typed profile and its job matches out.

::

    START -> load -> extract -> skills -> experience -> match -> explain -> END

- ``load`` reads the file, the base64 bytes or the text (:mod:`.loading`, which refuses bad
  files with a :class:`~weft.core.errors.DocumentLoadError`);
- ``extract`` fills a :class:`ResumeProfile` with :func:`~weft.chains.extract_structured`: the
  model when one is given (retried on validation errors), the offline rules
  (:func:`~weft.graphs.resume.parsing.parse_resume`) otherwise or when it fails;
- ``skills`` maps the skills onto the taxonomy and adds those the summary and experience
  entries mention;
- ``experience`` counts the years (overlaps once, "present" is ``as_of``) and the gaps;
- ``match`` asks the job index for candidates (by hybrid retrieval, and by the skills the ads
  require) and scores them
  (:mod:`.matching`); ``explain`` writes each match's paragraph: a template offline, the model's
  words when there is one (the template if it fails).

The profile's contact details are in the output, but log lines print the profile masked and
traces mask them (:mod:`weft.core.masking`). :func:`analyze_many` runs many resumes with
bounded concurrency.

Example:
    >>> graph = build_resume_graph(JobIndex("jobs/"))  # doctest: +SKIP
    >>> graph.invoke(ResumeInput(path="ada.pdf")).matches[0].title  # doctest: +SKIP
    'Data Engineer'
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from weft.chains.structured import extract_structured
from weft.core.chain import Chain
from weft.core.compiled import CompiledGraph
from weft.core.errors import ConfigurationError, DocumentLoadError
from weft.core.masking import mask_pii
from weft.graphs.resume.dates import (
    experience_months,
    find_gaps,
    month_text,
)
from weft.graphs.resume.jobs import JobIndex
from weft.graphs.resume.loading import (
    MAX_RESUME_BYTES,
    decode_base64,
    read_resume_bytes,
    read_resume_file,
    read_resume_text,
)
from weft.graphs.resume.matching import MIN_SCORE, match
from weft.graphs.resume.parsing import parse_resume, split_sections
from weft.graphs.resume.profile import Gap, JobMatch, ResumeAnalysis, ResumeInput, ResumeProfile
from weft.graphs.resume.skills import SkillTaxonomy

__all__ = ["analyze_many", "build_resume_graph", "profile_years"]

_log = logging.getLogger(__name__)
_EXPLAIN = (
    "Explain in one short paragraph why the candidate fits the job, from these facts only: "
    "the matched skills, the missing required skills and the experience fit. No contact details."
)


@dataclass(frozen=True)
class _Work:
    """What the steps pass along: the input, then the text, profile, years and matches."""

    request: ResumeInput
    source: str = ""
    text: str = ""
    profile: ResumeProfile | None = None
    years: float = 0.0
    gaps: tuple[Gap, ...] = ()
    matches: tuple[JobMatch, ...] = ()


def _load(max_bytes: int, allow_paths: bool) -> Callable[[ResumeInput], _Work]:
    def load(request: ResumeInput) -> _Work:
        if request.path and not allow_paths:
            raise DocumentLoadError(
                request.filename or "<input>",
                "this graph does not read files by path; send the file's bytes as "
                "content_base64 with its filename, or its text",
            )
        given = [n for n in ("path", "text", "content_base64") if getattr(request, n)]
        if len(given) != 1:
            raise DocumentLoadError(
                request.filename or "<input>",
                "give exactly one of path, text or content_base64 (with filename), got "
                f"{', '.join(given) or 'none'}",
            )
        if request.path:
            return _Work(request, request.path, read_resume_file(request.path, max_bytes=max_bytes))
        if request.content_base64:
            name = request.filename or "upload"
            data = decode_base64(request.content_base64, name)
            return _Work(request, name, read_resume_bytes(data, name, max_bytes=max_bytes))
        name = request.filename or "<text>"
        return _Work(request, name, read_resume_text(request.text or "", name, max_bytes=max_bytes))

    return load


def profile_years(profile: ResumeProfile, as_of: dt.date) -> tuple[float, list[Gap]]:
    """Years of experience (distinct months / 12, one decimal) and the gaps of a profile."""
    periods = []
    for entry in profile.experience:
        if entry.start is None:
            continue
        start = (int(entry.start[:4]), int(entry.start[5:7]))
        end = None if entry.end is None else (int(entry.end[:4]), int(entry.end[5:7]))
        periods.append((start, end))
    months = experience_months(periods, as_of)
    gaps = [
        Gap(start=month_text(s), end=month_text(e), months=n)
        for s, e, n in find_gaps(periods, as_of)
    ]
    return round(months / 12, 1), gaps


def _query(profile: ResumeProfile) -> str:
    titles = " ".join(e.title for e in profile.experience[:3])
    return " ".join([titles, " ".join(profile.skills), profile.summary]).strip()


def build_resume_graph(
    jobs: JobIndex | None = None,
    *,
    model: BaseChatModel | None = None,
    taxonomy: SkillTaxonomy | None = None,
    min_score: float = MIN_SCORE,
    candidates: int = 20,
    max_bytes: int = MAX_RESUME_BYTES,
    max_retries: int = 2,
    allow_paths: bool = True,
    name: str = "resume",
) -> CompiledGraph[ResumeInput, ResumeAnalysis]:
    """Compile the resume graph.

    Args:
        jobs: the job index to match against; None analyses the resume only (no matches).
        model: a chat model for extraction and explanations; None runs offline on rules.
        taxonomy: the skill taxonomy; the bundled one if None.
        min_score: the no-match threshold (see :mod:`.matching`); an input's ``min_score``
            overrides it.
        candidates: how many ads hybrid retrieval hands to scoring.
        max_bytes: the largest resume file read.
        max_retries: the model's retries on an invalid profile.
        allow_paths: whether an input may name a file by ``path``; a server turns this off so
            that clients send the file itself.
        name: the compiled graph's name.
    """
    if not 0 <= min_score <= 1:
        raise ConfigurationError(f"min_score is {min_score}; it must be between 0 and 1")
    skills_of = taxonomy or SkillTaxonomy.bundled()
    extractor = extract_structured(
        ResumeProfile, model=model, rules=parse_resume, max_retries=max_retries
    )

    def extract(work: _Work, config: RunnableConfig) -> _Work:
        profile: ResumeProfile = extractor.invoke(work.text, config)
        return replace(work, profile=profile)

    def skills(work: _Work) -> _Work:
        assert work.profile is not None
        profile = work.profile
        written = skills_of.normalise(profile.skills)
        prose = [profile.summary, *(f"{e.title}\n{e.description}" for e in profile.experience)]
        if not profile.skills:  # no skills section: the whole text speaks for itself
            prose.append(work.text)
        else:  # projects, certifications and the like name skills too
            sections = split_sections(work.text)
            prose += [line for name in ("projects", "other") for line in sections.get(name, [])]
        found = dict.fromkeys([*written, *skills_of.find_in_text("\n".join(prose))])
        return replace(work, profile=profile.model_copy(update={"skills": list(found)}))

    def experience(work: _Work) -> _Work:
        assert work.profile is not None
        as_of = work.request.as_of or dt.date.today()
        years, gaps = profile_years(work.profile, as_of)
        return replace(work, years=years, gaps=tuple(gaps))

    def match_jobs(work: _Work) -> _Work:
        assert work.profile is not None
        if jobs is None:
            return work
        request = work.request
        found = jobs.candidates(
            _query(work.profile), k=max(candidates, request.top_k), skills=work.profile.skills
        )
        threshold = request.min_score if request.min_score is not None else min_score
        matches = match(
            work.profile,
            work.years,
            found,
            min_score=threshold,
            top_k=request.top_k,
            location=request.location,
        )
        _log.info(
            "resume %s: %d matches for %s",
            mask_pii(work.source),
            len(matches),
            mask_pii(work.profile.name or "<no name>"),
        )
        return replace(work, matches=tuple(matches))

    def explain(work: _Work, config: RunnableConfig) -> ResumeAnalysis:
        assert work.profile is not None
        matches = list(work.matches)
        if model is not None:
            matches = [_model_explanation(model, m, work.years, config) for m in matches]
        return ResumeAnalysis(
            source=work.source,
            profile=work.profile,
            years_experience=work.years,
            gaps=list(work.gaps),
            matches=matches,
        )

    chain = Chain[ResumeInput, ResumeAnalysis](name)
    chain.then(
        _load(max_bytes, allow_paths), name="load", input_type=ResumeInput, output_type=_Work
    )
    chain.then(extract, name="extract", input_type=_Work, output_type=_Work)
    chain.then(skills, name="skills", input_type=_Work, output_type=_Work)
    chain.then(experience, name="experience", input_type=_Work, output_type=_Work)
    chain.then(match_jobs, name="match", input_type=_Work, output_type=_Work)
    chain.then(explain, name="explain", input_type=_Work, output_type=ResumeAnalysis)
    return chain.compile()


def _model_explanation(
    model: BaseChatModel, m: JobMatch, years: float, config: RunnableConfig
) -> JobMatch:
    facts = (
        f"Job: {m.title}. Matched skills: {', '.join(m.matched_skills) or 'none'}. Missing "
        f"required skills: {', '.join(m.missing_skills) or 'none'}. Years of experience: "
        f"{years:g} (fit {m.experience_fit:.2f}). Score {m.score:.2f}."
    )
    try:
        reply = model.invoke([SystemMessage(_EXPLAIN), HumanMessage(facts)], config)
        text = reply.content if isinstance(reply.content, str) else ""
    except Exception as exc:  # the template explanation stands
        _log.warning("resume graph: the model's explanation failed (%s); using the template", exc)
        return m
    return m.model_copy(update={"explanation": text.strip()}) if text.strip() else m


def analyze_many(
    graph: CompiledGraph[ResumeInput, ResumeAnalysis],
    files: Sequence[str | Path],
    *,
    concurrency: int = 4,
    on_done: Callable[[str, ResumeAnalysis | Exception], None] | None = None,
    **options: Any,
) -> list[ResumeAnalysis | Exception]:
    """Run the graph over many resume files, at most ``concurrency`` at once.

    A file that fails gives its exception in its place; the others go on. ``on_done`` is
    called as each file finishes (for a progress bar). ``options`` are further
    :class:`ResumeInput` fields (``as_of``, ``top_k``, ``location``, ``min_score``).
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency is {concurrency}; it must be 1 or more")

    def one(file: str | Path) -> ResumeAnalysis | Exception:
        try:
            result: ResumeAnalysis | Exception = graph.invoke(
                ResumeInput(path=str(file), **options)
            )
        except Exception as exc:
            result = exc
        if on_done is not None:
            on_done(str(file), result)
        return result

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="resume") as pool:
        return list(pool.map(one, files))

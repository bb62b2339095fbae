"""Resume analysis: throughput and matching latency at 10k job ads, against keyword overlap.

The job ads are the resume-matching suite's twelve plus generated ones (seeded): a title and
four required and two nice-to-have skills drawn from one category of the skill taxonomy, a
city, and a minimum of years. The resumes are the suite's sixteen (PDF, DOCX, TXT, MD), each
analysed with "present" fixed at the suite's date.

Sections:

1. Building the job index (ads/s: parse, embed, Chroma, then BM25 on open).
2. weft: resumes/s, parse + extract + match, one at a time and with ``analyze_many`` at
   concurrency 4; matching latency (hybrid retrieval + scoring, p50/p95 per resume).
3. The peer, measured in the same run: keyword overlap (Jaccard of the resume's and each ad's
   word sets, no taxonomy, no retrieval; the best ad is the match). No maintained resume parser
   on PyPI runs offline without downloading models, so this plain baseline stands in.
4. Quality on the suite's resumes among all the ads: top-1 and top-3 against the gold ad, and
   "no match" for the two resumes that fit nothing (the baseline always names an ad).

Run: ``python -m bench.resume [--quick] [--ads 10000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from weft.evals._resume import AS_OF, SUITE_DATA
from weft.graphs.resume import JobIndex, ResumeInput, analyze_many, build_resume_graph
from weft.graphs.resume.graph import profile_years
from weft.graphs.resume.loading import read_resume_file
from weft.graphs.resume.matching import match
from weft.graphs.resume.skills import SKILLS_FILE

_CITIES = ["Berlin", "Hamburg", "Munich", "Vienna", "Zurich", "London", "Amsterdam", "Paris",
           "Madrid", "Milan", "Warsaw", "Prague", "Remote"]  # fmt: skip
_LEVELS = ["Junior", "", "Senior", "Lead", "Principal"]
_ROLES = {
    "software": ["Software Engineer", "Backend Developer", "Platform Engineer"],
    "data": ["Data Scientist", "Data Analyst", "Analytics Engineer"],
    "design": ["UX Designer", "Visual Designer", "Design Researcher"],
    "engineering": ["Mechanical Engineer", "Process Engineer", "Test Engineer"],
    "healthcare": ["Nurse", "Clinical Specialist", "Therapist"],
    "finance": ["Accountant", "Risk Analyst", "Controller"],
    "management": ["Project Manager", "Operations Manager", "Product Owner"],
}
_WORD = re.compile(r"\w+")
_STOP = frozenset(
    ["and", "or", "the", "a", "an", "of", "in", "for", "with", "to", "on", "at", "as", "by", "is"]
)


def _generate_ads(folder: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    taxonomy: dict[str, dict[str, Any]] = yaml.safe_load(SKILLS_FILE.read_text("utf-8"))
    for src in (SUITE_DATA / "jobs").iterdir():
        shutil.copy(src, folder / src.name)
    for i in range(max(0, n - 12)):
        category = rng.choice(list(_ROLES))
        skills = rng.sample(list(taxonomy[category]), 6)
        title = f"{rng.choice(_LEVELS)} {rng.choice(_ROLES[category])}".strip()
        ad = {
            "title": title,
            "location": rng.choice(_CITIES),
            "required_skills": skills[:4],
            "nice_to_have": skills[4:],
            "min_years": rng.randint(0, 8),
            "description": f"{title} for a {category} team; {', '.join(skills)}.",
        }
        (folder / f"gen-{i:05d}.json").write_text(json.dumps(ad), encoding="utf-8")


def _cases() -> list[dict[str, Any]]:
    data = yaml.safe_load((SUITE_DATA.parent / "resume-matching.yaml").read_text("utf-8"))
    return list(data["cases"])


def _words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in _STOP)


def _keyword_top(resume: str, ads: list[tuple[str, frozenset[str]]]) -> list[str]:
    words = _words(resume)
    scored = sorted(
        ((len(words & ad) / (len(words | ad) or 1), name) for name, ad in ads), reverse=True
    )
    return [name for _, name in scored[:3]]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.resume")
    parser.add_argument("--quick", action="store_true", help="500 ads, one round")
    parser.add_argument("--ads", type=int, default=10_000, help="job ads in the index")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the 16 resumes")
    args = parser.parse_args()
    n_ads, rounds = (500, 1) if args.quick else (args.ads, args.rounds)
    cases = _cases()
    files = [SUITE_DATA / "resumes" / c["inputs"]["file"] for c in cases]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "jobs"
        folder.mkdir()
        _generate_ads(folder, n_ads)
        started = time.perf_counter()
        index = JobIndex(folder, data_dir=Path(tmp) / "data")
        index.refresh()
        ads = index.ads
        built = time.perf_counter() - started
        graph = build_resume_graph(index)
        graph.invoke(ResumeInput(path=str(files[0]), as_of=AS_OF))  # warm: models, caches

        started = time.perf_counter()
        results = []
        for _ in range(rounds):
            results = [graph.invoke(ResumeInput(path=str(f), as_of=AS_OF)) for f in files]
        serial = len(files) * rounds / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(rounds):
            analyze_many(graph, files, concurrency=4, as_of=AS_OF)
        parallel = len(files) * rounds / (time.perf_counter() - started)

        latencies = []
        for _ in range(rounds):
            for r in results:
                years, _gaps = profile_years(r.profile, AS_OF)
                t0 = time.perf_counter()
                query = " ".join([*(e.title for e in r.profile.experience[:3]), *r.profile.skills])
                match(r.profile, years, index.candidates(query, k=20, skills=r.profile.skills))
                latencies.append((time.perf_counter() - t0) * 1000)

        ad_words = [(ad.file, _words(ad.text)) for ad in ads]
        started = time.perf_counter()
        baseline = []
        for _ in range(rounds):
            baseline = [_keyword_top(read_resume_file(f), ad_words) for f in files]
        keyword_rate = len(files) * rounds / (time.perf_counter() - started)

    def quality(tops: list[list[str]]) -> tuple[str, str, str]:
        jobs = [(c["expected_output"]["job"], t) for c, t in zip(cases, tops, strict=True)]
        fit = [(j, t) for j, t in jobs if j]
        none = [t for j, t in jobs if not j]
        top1 = sum(t[:1] == [j] for j, t in fit)
        top3 = sum(j in t[:3] for j, t in fit)
        empty = sum(not t for t in none)
        return f"{top1}/{len(fit)}", f"{top3}/{len(fit)}", f"{empty}/{len(none)}"

    weft_q = quality([[m.job for m in r.matches] for r in results])
    base_q = quality(baseline)
    print(f"{len(ads)} job ads indexed in {built:.1f} s ({len(ads) / built:.0f} ads/s)\n")
    print("| pipeline | resumes/s | matching p50 ms | matching p95 ms | top-1 | top-3 | no match |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| weft, one at a time | {serial:.1f} | {statistics.median(latencies):.1f} | "
        f"{_pct(latencies, 0.95):.1f} | {weft_q[0]} | {weft_q[1]} | {weft_q[2]} |"
    )
    print(f"| weft, analyze_many x4 | {parallel:.1f} | | | | | |")
    print(
        f"| keyword overlap (baseline) | {keyword_rate:.1f} | | | {base_q[0]} | {base_q[1]} | "
        f"{base_q[2]} |"
    )


if __name__ == "__main__":
    main()

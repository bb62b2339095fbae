# ruff: noqa: RUF001
# Dashes, full-width punctuation and typographic quotes are what resumes in these languages write.
"""Job ads: parsed from a folder of MD, TXT and JSON files into an index with hybrid search.

**An ad.** A JSON ad gives its fields by name: ``title``, ``location``, ``required_skills``
(or ``required``), ``nice_to_have`` (or ``preferred``), ``min_years`` and ``description``. A
Markdown or text ad is read by rules: the title is its first heading or line; the location a
``Location:``/``Standort:``/``地点:`` line; the required skills are the skills named under a
``Requirements``/``Must have``/``Anforderungen``/``要求`` heading (the whole ad when it has
none), the nice-to-have ones under ``Nice to have``/``Bonus``/``Wünschenswert``/``加分``; the
minimum years the first ``N+ years``/``N Jahre``/``N年``. Skills are mapped onto the taxonomy.

**The index.** :class:`JobIndex` keeps the parsed ads (``jobs.json``) and a Chroma collection of
their text (``resume-jobs``) in its own folder of the data dir, one per ads folder; a BM25 index
and an index of the skills each ad requires are built from the ads when the index is opened.
:meth:`JobIndex.refresh` rebuilds it when the ads folder changed (a file added, removed or
edited); ``jobs.json`` is written last and atomically, so an index whose build was cut short is
rebuilt on the next open.

Example:
    >>> index = JobIndex("jobs/", data_dir=".weft")  # doctest: +SKIP
    >>> index.refresh()  # doctest: +SKIP
    >>> [ad.title for ad, _ in index.candidates("Python Spark pipelines")]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from weft.components.bm25 import BM25Retriever
from weft.components.embeddings import default_embeddings
from weft.components.hybrid import HybridRetriever
from weft.components.stores import ChromaStore
from weft.core.errors import ConfigurationError, DocumentLoadError
from weft.graphs.resume.parsing import split_items
from weft.graphs.resume.profile import JobAd
from weft.graphs.resume.skills import SkillTaxonomy

__all__ = ["JOB_EXTENSIONS", "JobIndex", "parse_job_ad"]

JOB_EXTENSIONS = (".md", ".txt", ".json")
"""The file types a job ad may come in."""

_COLLECTION = "resume-jobs"
_FORMAT = 1
_REQUIRED = re.compile(
    r"^(?:requirements|required|required skills|must have|must-haves?|what you bring|"
    r"you have|qualifications|anforderungen|voraussetzungen|das bringst du mit|profil|"
    r"exigences|requisitos|任职要求|岗位要求|要求)$",
    re.IGNORECASE,
)
_NICE = re.compile(
    r"^(?:nice to have|nice-to-have|bonus|preferred|plus|good to have|wünschenswert|"
    r"von vorteil|idealerweise|souhaité|deseable|加分项?|优先)$",
    re.IGNORECASE,
)
_YEARS = re.compile(r"(\d+(?:[.,]\d)?)\s*\+?\s*(?:years?|yrs|jahre|ans|años|年)", re.IGNORECASE)
_LOCATION = re.compile(
    r"^(?:location|standort|arbeitsort|lieu|ubicación|地点|工作地点)\s*[:：]\s*(.+)$",
    re.IGNORECASE,
)


def _ad_id(file: Path) -> str:
    return hashlib.sha1(file.name.encode("utf-8")).hexdigest()[:16]


def _text_sections(text: str) -> tuple[str, list[str], list[str], list[str]]:
    """``(title, required lines, nice lines, all lines)`` of a Markdown or text ad."""
    title = ""
    required: list[str] = []
    nice: list[str] = []
    lines: list[str] = []
    target: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        bare = line.lstrip("#").strip().rstrip(":：").strip("*_ ")
        if not title:
            title = bare
            continue
        if _REQUIRED.match(bare):
            target = required
            continue
        if _NICE.match(bare):
            target = nice
            continue
        if line.startswith("#"):
            target = None
            continue
        lines.append(line)
        if target is not None:
            target.append(line)
    return title, required, nice, lines


def _skills(lines: Sequence[str], taxonomy: SkillTaxonomy) -> list[str]:
    found = dict.fromkeys(taxonomy.normalise(split_items(lines)))
    found.update(dict.fromkeys(taxonomy.find_in_text("\n".join(lines))))
    return list(found)


def parse_job_ad(file: str | Path, taxonomy: SkillTaxonomy | None = None) -> JobAd:
    """One ad file as a :class:`JobAd` (see the module docstring for what is read)."""
    path = Path(file)
    skills = taxonomy or SkillTaxonomy.bundled()
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentLoadError(str(path), f"cannot read the job ad ({exc})") from exc
    if path.suffix.lower() == ".json":
        try:
            data: dict[str, Any] = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("the top level is not an object")
        except ValueError as exc:
            raise DocumentLoadError(
                str(path), f"not a JSON job ad ({exc}); write one object with a title"
            ) from exc
        required = [str(s) for s in data.get("required_skills") or data.get("required") or []]
        nice = [str(s) for s in data.get("nice_to_have") or data.get("preferred") or []]
        description = str(data.get("description", ""))
        return JobAd(
            id=_ad_id(path),
            file=path.name,
            title=str(data.get("title") or path.stem),
            location=str(data.get("location") or ""),
            required_skills=skills.normalise(required),
            nice_to_have=[s for s in skills.normalise(nice) if s not in required],
            min_years=float(data.get("min_years") or 0),
            text="\n".join([str(data.get("title", "")), description, *required, *nice]),
        )
    title, required_lines, nice_lines, lines = _text_sections(raw)
    location = next((m.group(1).strip() for ln in lines if (m := _LOCATION.match(ln))), "")
    required = _skills(required_lines or lines, skills)
    nice = [s for s in _skills(nice_lines, skills) if s not in required]
    years = _YEARS.search("\n".join(required_lines or lines))
    return JobAd(
        id=_ad_id(path),
        file=path.name,
        title=title or path.stem,
        location=location,
        required_skills=required,
        nice_to_have=nice,
        min_years=float(years.group(1).replace(",", ".")) if years else 0.0,
        text=raw,
    )


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return max(0.0, dot / norm) if norm else 0.0


class JobIndex:
    """The job ads of one folder, parsed and indexed for hybrid retrieval.

    Args:
        folder: the ads (``.md``, ``.txt``, ``.json``; hidden files ignored).
        data_dir: where indexes live (``<data_dir>/resume-jobs/<folder hash>/``).
        embedding: the embedder; :func:`~weft.components.embeddings.default_embeddings` if None.
        taxonomy: the skill taxonomy; the bundled one if None.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        data_dir: str | Path = ".weft",
        embedding: Embeddings | None = None,
        taxonomy: SkillTaxonomy | None = None,
    ) -> None:
        self.folder = Path(folder).expanduser().resolve()
        if not self.folder.is_dir():
            raise ConfigurationError(
                f"job ads folder '{folder}' does not exist or is not a folder; pass a folder of "
                ".md, .txt or .json job ads"
            )
        digest = hashlib.sha1(str(self.folder).encode("utf-8")).hexdigest()[:12]
        self.path = Path(data_dir) / "resume-jobs" / digest
        self.embedding = embedding if embedding is not None else default_embeddings()
        self.taxonomy = taxonomy or SkillTaxonomy.bundled()
        self._lock = threading.Lock()
        self._ads: list[JobAd] | None = None
        self._retriever: HybridRetriever | None = None
        self._skill_index: dict[str, list[JobAd]] | None = None
        self.skipped: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"JobIndex('{self.folder}')"

    def _files(self) -> list[Path]:
        return sorted(
            p
            for p in self.folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in JOB_EXTENSIONS
        )

    def _fingerprint(self) -> list[list[Any]]:
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in self._files()]

    def _saved(self) -> dict[str, Any] | None:
        try:
            saved: dict[str, Any] = json.loads((self.path / "jobs.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if saved.get("format") != _FORMAT or saved.get("embedder") != self._embedder_name():
            return None
        return saved

    def _embedder_name(self) -> str:
        return str(getattr(self.embedding, "name", type(self.embedding).__name__))

    def is_stale(self) -> bool:
        """True when the index is missing or the ads folder changed since it was built."""
        saved = self._saved()
        return saved is None or saved.get("files") != self._fingerprint()

    def refresh(self, *, force: bool = False) -> bool:
        """Build the index if it is stale (or ``force``); True when it was built."""
        with self._lock:
            if not force and not self.is_stale():
                return False
            fingerprint = self._fingerprint()
            ads: list[JobAd] = []
            skipped: list[tuple[str, str]] = []
            for file in self._files():
                try:
                    ads.append(parse_job_ad(file, self.taxonomy))
                except DocumentLoadError as exc:
                    skipped.append((file.name, exc.reason))
            self.path.mkdir(parents=True, exist_ok=True)
            with FileLock(self.path / "build.lock"):
                # Until the new jobs.json is in place the index reads as stale, so a build cut
                # short is built again rather than trusted.
                (self.path / "jobs.json").unlink(missing_ok=True)
                store = ChromaStore(
                    _COLLECTION, self.embedding, data_dir=self.path / "chroma", reset=True
                )
                if ads:
                    store.upsert(_documents(ads))
                self._save(fingerprint, skipped, ads)
            self._ads, self.skipped = ads, skipped
            self._retriever = None
            self._skill_index = None
            return True

    def _save(
        self, fingerprint: list[list[Any]], skipped: list[tuple[str, str]], ads: list[JobAd]
    ) -> None:
        saved = {
            "format": _FORMAT,
            "folder": str(self.folder),
            "embedder": self._embedder_name(),
            "files": fingerprint,
            "skipped": skipped,
            "ads": [ad.model_dump() for ad in ads],
        }
        _write_atomic(self.path / "jobs.json", json.dumps(saved, ensure_ascii=False))

    def _open(self) -> tuple[list[JobAd], HybridRetriever | None]:
        with self._lock:
            if self._ads is None:
                saved = self._saved()
                if saved is None:
                    raise ConfigurationError(
                        f"the job index of '{self.folder}' is not built; run weft resume index "
                        f"{self.folder}"
                    )
                self._ads = [JobAd.model_validate(a) for a in saved["ads"]]
                self.skipped = [(str(f), str(r)) for f, r in saved.get("skipped", [])]
            if self._retriever is None and self._ads:
                store = ChromaStore(_COLLECTION, self.embedding, data_dir=self.path / "chroma")
                bm25 = BM25Retriever(_documents(self._ads))
                self._retriever = HybridRetriever(vector=store.as_retriever(), bm25=bm25)
            return self._ads, self._retriever

    @property
    def ads(self) -> list[JobAd]:
        """Every parsed ad (building the index first if it is stale)."""
        if self._ads is None:
            self.refresh()
        return self._open()[0]

    def candidates(
        self, query: str, k: int = 20, *, skills: Sequence[str] = ()
    ) -> list[tuple[JobAd, float]]:
        """The ads to score for a profile, each with its cosine similarity to ``query`` (0-1)
        by the index's embedder: the ``k`` that hybrid retrieval ranks first for ``query``,
        and the ``k`` that require the largest share of ``skills`` (a taxonomy name finds an
        ad that words alone rank low among many similar ones)."""
        if self._ads is None:
            self.refresh()
        ads, retriever = self._open()
        if retriever is None or not query.strip():
            return []
        by_id = {ad.id: ad for ad in ads}
        docs = retriever.invoke(query, k=k)
        found = {d.id: by_id[d.id] for d in docs if d.id in by_id}
        for ad in self._by_skills(skills, k):
            found.setdefault(ad.id, ad)
        if not found:
            return []
        chosen = list(found.values())
        vectors = self.embedding.embed_documents([ad.text for ad in chosen])
        target = self.embedding.embed_query(query)
        return [(ad, _cosine(target, v)) for ad, v in zip(chosen, vectors, strict=True)]

    def _by_skills(self, skills: Sequence[str], k: int) -> list[JobAd]:
        if not skills:
            return []
        with self._lock:
            if self._skill_index is None:
                index: dict[str, list[JobAd]] = {}
                for ad in self._ads or []:
                    for skill in ad.required_skills:
                        index.setdefault(skill, []).append(ad)
                self._skill_index = index
        shared: dict[str, int] = {}
        ads: dict[str, JobAd] = {}
        for skill in set(skills):
            for ad in self._skill_index.get(skill, []):
                shared[ad.id] = shared.get(ad.id, 0) + 1
                ads[ad.id] = ad
        ranked = sorted(
            shared, key=lambda i: (-shared[i] / len(ads[i].required_skills), -shared[i], i)
        )
        return [ads[i] for i in ranked[:k]]


def _documents(ads: Sequence[JobAd]) -> list[Document]:
    return [
        Document(page_content=ad.text, id=ad.id, metadata={"file": ad.file, "title": ad.title})
        for ad in ads
    ]


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jobs-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

# ruff: noqa: RUF001
# Dashes, full-width punctuation and typographic quotes are what resumes in these languages write.
"""The offline rules that read a :class:`ResumeProfile` out of a resume's text.

- **Sections** start at a heading line: a short line (Markdown ``#`` and a trailing ``:`` are
  allowed) that names a section in English, German, French, Spanish or Chinese (see
  :data:`HEADINGS`; ``Berufserfahrung``, ``工作经历``, ``Compétences``...).
- **Contact.** The first e-mail address and phone number anywhere, links (``http(s)://``,
  ``linkedin.com/...``, ``github.com/...``); the name is the first line of the text that is
  not contact details or a heading; the location is a ``Location:``/``Standort:``/``地址:``
  line, or the header line that reads like ``City, Country``.
- **Experience and education entries** are anchored on lines with a date range
  (:func:`~weft.graphs.resume.dates.find_date_range`): the range's line and up to two short
  lines before it give the title and organisation (split on ``|``, ``,``, ``at``, ``bei``,
  ``@``, dashes); the lines after it, up to the next entry, are its description.
- **Skills** are the items of the skills section (split on commas, semicolons, bullets, ``|``,
  ``、``), category prefixes (``Languages: ...``) dropped; **languages** likewise.

Example:
    >>> profile = parse_resume("Ada Lovelace\\nada@example.org\\n\\nSkills\\nPython, SQL")
    >>> profile.name, profile.email, profile.skills
    ('Ada Lovelace', 'ada@example.org', ['Python', 'SQL'])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from weft.graphs.resume.dates import find_date_range, month_text
from weft.graphs.resume.profile import EducationEntry, ExperienceEntry, ResumeProfile

__all__ = ["HEADINGS", "parse_resume", "split_items", "split_sections"]

HEADINGS: dict[str, tuple[str, ...]] = {
    "summary": (
        "summary",
        "profile",
        "professional summary",
        "about me",
        "about",
        "objective",
        "career objective",
        "personal profile",
        "zusammenfassung",
        "profil",
        "kurzprofil",
        "über mich",
        "ueber mich",
        "résumé",
        "profil professionnel",
        "perfil",
        "resumen",
        "个人简介",
        "简介",
        "自我评价",
        "个人总结",
        "个人概述",
    ),
    "experience": (
        "experience",
        "work experience",
        "professional experience",
        "employment",
        "employment history",
        "work history",
        "career history",
        "career",
        "relevant experience",
        "berufserfahrung",
        "berufliche erfahrung",
        "beruflicher werdegang",
        "werdegang",
        "erfahrung",
        "praxiserfahrung",
        "expérience",
        "expérience professionnelle",
        "experiencia",
        "experiencia profesional",
        "experiencia laboral",
        "工作经历",
        "工作经验",
        "职业经历",
        "实习经历",
    ),
    "education": (
        "education",
        "academic background",
        "qualifications",
        "education and training",
        "ausbildung",
        "bildung",
        "bildungsweg",
        "studium",
        "schulbildung",
        "formation",
        "éducation",
        "educación",
        "formación",
        "formación académica",
        "教育背景",
        "教育经历",
        "学历",
        "教育",
    ),
    "skills": (
        "skills",
        "technical skills",
        "core skills",
        "key skills",
        "core competencies",
        "competencies",
        "technologies",
        "tools",
        "tech stack",
        "skills and tools",
        "kenntnisse",
        "fähigkeiten",
        "fachkenntnisse",
        "it-kenntnisse",
        "kompetenzen",
        "compétences",
        "competences",
        "habilidades",
        "competencias",
        "conocimientos",
        "技能",
        "专业技能",
        "技能特长",
        "技术栈",
        "技能清单",
    ),
    "languages": (
        "languages",
        "language skills",
        "sprachen",
        "sprachkenntnisse",
        "langues",
        "idiomas",
        "语言",
        "语言能力",
    ),
    "projects": ("projects", "projekte", "projets", "proyectos", "项目经历", "项目经验"),
    "other": (
        "certifications",
        "certificates",
        "awards",
        "interests",
        "hobbies",
        "references",
        "publications",
        "volunteering",
        "zertifikate",
        "zertifizierungen",
        "interessen",
        "certificats",
        "certificaciones",
        "证书",
        "获奖",
        "兴趣爱好",
    ),
}
"""Section name -> the headings that start it (compared in lower case)."""

_HEADING_OF = {h: section for section, names in HEADINGS.items() for h in names}
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w+(])(?:\+|00|\()?\d[\d ()./-]{6,}\d(?![\w])")
_LINK = re.compile(
    r"(?:https?://|www\.)\S+|(?:linkedin\.com|github\.com|gitlab\.com)/\S+", re.IGNORECASE
)
_LOCATION_LABEL = re.compile(
    r"^(?:location|address|based in|city|standort|wohnort|adresse|ort|ubicación|地址|所在地|"
    r"城市|现居)\s*[:：]\s*(?P<value>.+)$",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"^(?:name|e-?mail|email|phone|tel(?:efon)?|mobile|handy|mobil|姓名|电话|手机|邮箱)\s*[:：]\s*",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•·▪●◦–]|\d+[.)])\s+")
_ITEM_SPLIT = re.compile(r"\s*(?:[,;•·|、，；▪●]|\s-\s|\n)\s*")
_PARTS_SPLIT = re.compile(
    r"\s*(?:\||,|，|\s@\s|\s[–—-]\s|\s(?:at|bei|chez|en)\s|\t|\s{2,})\s*", re.IGNORECASE
)
_TITLE_WORDS = re.compile(
    r"engineer|developer|manager|analyst|designer|scientist|consultant|lead|director|"
    r"architect|administrator|specialist|nurse|physician|doctor|accountant|auditor|controller|"
    r"intern|assistant|officer|head|technician|therapist|researcher|teacher|owner|coordinator|"
    r"entwickler|ingenieur|leiter|berater|pfleger|pflegerin|fachkraft|werkstudent|praktikant|"
    r"工程师|经理|分析师|设计师|主管|总监|实习生|护士|会计|开发",
    re.IGNORECASE,
)
_DEGREE_WORDS = re.compile(
    r"\b(?:B\.?Sc|M\.?Sc|B\.?A|M\.?A|B\.?Eng|M\.?Eng|MBA|Ph\.?D|Bachelor|Master|Diplom|"
    r"Dipl\.-Ing|Licenciatura|Abitur)\b|学士|硕士|博士|本科",
    re.IGNORECASE,
)
_CITY_COUNTRY = re.compile(r"^[A-ZÀ-Ý][\w .'-]+,\s*[A-ZÀ-Ý][\w .'-]+$")


def _heading(line: str) -> str | None:
    text = line.strip().lstrip("#").strip().rstrip(":：").strip().strip("*_").strip()
    if not text or len(text) > 40:
        return None
    return _HEADING_OF.get(text.lower())


def split_sections(text: str) -> dict[str, list[str]]:
    """The text's lines by section; the lines before the first heading are ``"header"``."""
    sections: dict[str, list[str]] = {"header": []}
    current = "header"
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        section = _heading(line)
        if section is not None:
            current = section
            sections.setdefault(current, [])
            continue
        sections.setdefault(current, []).append(line)
    return sections


def split_items(lines: Sequence[str]) -> list[str]:
    """The items of a list section: one per bullet, comma, semicolon, ``|`` or ``、``; a
    ``Category:`` prefix is dropped and a ``(note)`` after an item too."""
    items: list[str] = []
    for line in lines:
        line = _BULLET.sub("", line)
        if re.match(r"^[^:：]{1,30}[:：]\s*\S", line):
            line = re.split(r"[:：]", line, maxsplit=1)[1]
        for item in _ITEM_SPLIT.split(line):
            item = re.sub(r"\s*[(（][^)）]*[)）]\s*$", "", item).strip(" .*_")
            if item and len(item) <= 60:
                items.append(item)
    return items


def _phone(text: str) -> str | None:
    for match in _PHONE.finditer(text):
        candidate = match.group(0).strip()
        digits = re.sub(r"\D", "", candidate)
        if 8 <= len(digits) <= 15 and find_date_range(candidate) is None:
            return candidate
    return None


def _name(header: Sequence[str]) -> str:
    for line in header:
        line = _LABEL.sub("", line.lstrip("#").strip()).strip("*_ ")
        if not line or _EMAIL.search(line) or _LINK.search(line) or _phone(line):
            continue
        if _LOCATION_LABEL.match(line) or find_date_range(line):
            continue
        return re.split(r"\s+[|–—]\s+|\s{2,}", line)[0].strip()
    return ""


def _location(lines: Sequence[str], header: Sequence[str], name: str) -> str | None:
    for line in lines:
        match = _LOCATION_LABEL.match(_BULLET.sub("", line).strip("*_ "))
        if match:
            return match.group("value").strip()
    for line in header:
        for part in re.split(r"\s*[|·•—–]\s*", line):
            part = part.strip()
            if part != name and _CITY_COUNTRY.match(part) and not _EMAIL.search(part):
                return part
    return None


def _parts(head: Sequence[str]) -> list[str]:
    parts = [p for line in head for p in _PARTS_SPLIT.split(line.strip(" ()[]–—-:"))]
    return [p.strip(" *_#") for p in parts if p.strip(" *_#")]


def _title_and_org(parts: list[str]) -> tuple[str, str]:
    parts = [p.strip(" *_#") for p in parts if p.strip(" *_#")]
    if not parts:
        return "", ""
    if len(parts) == 1:
        return parts[0], ""
    first, second = parts[0], parts[1]
    if not _TITLE_WORDS.search(first) and _TITLE_WORDS.search(second):
        first, second = second, first
    return first, second


_Entry = tuple[str, str, str | None, str | None, bool, str]


def _degree_first(first: str, second: str) -> tuple[str, str]:
    """``(degree, institution)`` of an education entry's two parts, in either order."""
    if not _DEGREE_WORDS.search(first) and _DEGREE_WORDS.search(second):
        return second, first
    return first, second


def _entries(lines: Sequence[str]) -> list[_Entry]:
    """``(title, organisation, start, end, current, description)`` per dated entry."""
    dated = [i for i, line in enumerate(lines) if find_date_range(line) is not None]
    out: list[_Entry] = []
    for n, i in enumerate(dated):
        found = find_date_range(lines[i])
        assert found is not None
        floor = dated[n - 1] + 1 if n else 0
        head = [lines[i].replace(found.text, " ")]
        start = i
        # Lines above the dates belong to the entry's head until it has a title and an
        # organisation; a bullet, a sentence or a list is the previous entry's description.
        while start - 1 >= floor and len(_parts(head)) < 2:
            previous = lines[start - 1]
            if (
                _BULLET.match(previous)
                or len(previous) > 60
                or previous.endswith(".")
                or previous.count(",") >= 2
            ):
                break
            head.insert(0, previous)
            start -= 1
        if n:  # the previous entry's description ends where this entry's head starts
            out[-1] = (*out[-1][:5], "\n".join(lines[dated[n - 1] + 1 : start]))
        title, org = _title_and_org(_parts(head))
        end = None if found.end is None else month_text(found.end)
        description = "\n".join(lines[i + 1 :])
        out.append((title, org, month_text(found.start), end, found.end is None, description))
    return out


def parse_resume(text: str) -> ResumeProfile:
    """A :class:`ResumeProfile` read from a resume's text by rules (see the module docstring).

    Skills are as written here; the graph maps them onto the taxonomy afterwards.
    """
    sections = split_sections(text)
    lines = [line for section in sections.values() for line in section]
    header = sections.get("header", [])
    email = _EMAIL.search(text)
    name = _name(header)
    links = list(dict.fromkeys(m.group(0).rstrip(").,") for m in _LINK.finditer(text)))
    experience = [
        ExperienceEntry(title=t, organisation=o, start=s, end=e, current=c, description=d.strip())
        for t, o, s, e, c, d in _entries(sections.get("experience", []))
    ]
    education = [
        EducationEntry(degree=d, institution=i, start=s, end=e)
        for t, o, s, e, _, _ in _entries(sections.get("education", []))
        for d, i in [_degree_first(t, o)]
    ]
    if not education:
        education = [EducationEntry(degree=line) for line in sections.get("education", [])[:3]]
    return ResumeProfile(
        name=name,
        email=email.group(0) if email else None,
        phone=_phone("\n".join(header))
        or _phone(text.replace(email.group(0), "") if email else text),
        location=_location(lines, header, name),
        links=links,
        summary=" ".join(sections.get("summary", [])),
        experience=experience,
        education=education,
        skills=split_items(sections.get("skills", [])),
        languages=split_items(sections.get("languages", [])),
    )

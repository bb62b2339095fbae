"""The bundled skill taxonomy and how written skills map onto its canonical names.

``data/skills.yaml`` holds a few hundred canonical skills in seven categories (software, data,
design, engineering, healthcare, finance, management), each with the aliases people write:
abbreviations (``JS``, ``k8s``, ``NLP``), nicknames (``Postgres``, ``sklearn``, ``Golang``) and
spellings (``ReactJS``, ``node.js``, ``C sharp``).

:meth:`SkillTaxonomy.canonical` maps one written skill: first exactly, comparing a key that
ignores case, spaces, dots, dashes and underscores; then without a trailing version
(``Python 3``, ``Java 17``, ``Angular 15``); then, for words of five letters or more, by fuzzy
match (rapidfuzz's ``ratio`` >= :data:`FUZZY_CUTOFF`) to catch misspellings (``Kubernets``).
:meth:`SkillTaxonomy.find_in_text` finds skills mentioned in running text (experience bullets,
a summary): exact matches only, skipping aliases that are ordinary words (``word``, ``spring``,
``next``) and two-letter ones other than a few written in capitals (``ML``, ``UX``, ``QA``).

Example:
    >>> taxonomy = SkillTaxonomy.bundled()
    >>> [taxonomy.canonical(s) for s in ["k8s", "ReactJS", "Python 3", "Postgress", "C sharp"]]
    ['Kubernetes', 'React', 'Python', 'PostgreSQL', 'C#']
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml
from rapidfuzz import fuzz, process

__all__ = ["FUZZY_CUTOFF", "SKILLS_FILE", "SkillTaxonomy", "skill_key"]

SKILLS_FILE = Path(__file__).resolve().parent / "data" / "skills.yaml"
"""The bundled taxonomy."""

FUZZY_CUTOFF = 88.0
"""The least rapidfuzz ``ratio`` (0-100) at which a misspelt skill maps to a canonical one."""

_STRIP = re.compile(r"[\s._\-]+")
_VERSION = re.compile(r"(?:[\s\-_]*v?\d+(?:\.\d+)*[a-z]?|\s+(?:se|ee|lts))$", re.IGNORECASE)
# Aliases that are also ordinary words: found in a skills list, never in running text.
_ORDINARY_WORDS = (
    "word next node spring options strategy research leadership bonds oracle swift rust sketch "
    "unity flask express operations lean spark transformers futures swaps premiere illustrator "
    "quant documentation monitoring containers embedded analytics audit tax security "
    "communication collaboration presentations coaching mentoring instruction sales "
    "insurance banking payments automotive aerospace forecasting animation recruiting "
    "onboarding logistics purchasing sourcing dispensing surgery unreal rest "
    "experimentation lecturing tutoring teaching visualization treasury bloomberg"
)
_NOT_IN_TEXT = frozenset(_ORDINARY_WORDS.split())
_SHORT_IN_TEXT = frozenset({"ML", "JS", "TS", "UX", "UI", "QA", "HR", "DL", "C#", "C++", "R&D"})
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9+#&]*(?:[./\-][A-Za-z0-9+#]+)*[+#]*")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def skill_key(text: str) -> str:
    """The key skills are compared by: lower case, without spaces, dots, dashes, underscores."""
    return _STRIP.sub("", text.strip().lower())


class SkillTaxonomy:
    """Canonical skills, their categories and aliases; maps what people write onto them."""

    def __init__(self, skills: Mapping[str, Mapping[str, Iterable[str]]]) -> None:
        self.category: dict[str, str] = {}
        self._by_key: dict[str, str] = {}
        self._cjk: dict[str, str] = {}
        for category, entries in skills.items():
            for name, aliases in entries.items():
                self.category[name] = category
                for alias in [name, *(aliases or [])]:
                    if _CJK.search(alias):
                        self._cjk[alias] = name
                    self._by_key.setdefault(skill_key(str(alias)), name)
        self._keys = list(self._by_key)

    @classmethod
    @functools.cache
    def bundled(cls) -> SkillTaxonomy:
        """The taxonomy in ``data/skills.yaml`` (read once)."""
        return cls.from_file(SKILLS_FILE)

    @classmethod
    def from_file(cls, path: str | Path) -> SkillTaxonomy:
        """A taxonomy from a YAML file shaped like the bundled one."""
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return cls(data)

    def __len__(self) -> int:
        return len(self.category)

    def canonical(self, written: str) -> str | None:
        """The canonical name of a written skill, or None when the taxonomy lacks it."""
        key = skill_key(written)
        if not key:
            return None
        found = self._by_key.get(key)
        if found is None:
            unversioned = skill_key(_VERSION.sub("", written.strip()))
            found = self._by_key.get(unversioned) if unversioned else None
        if found is None and len(key) >= 5:
            best = process.extractOne(key, self._keys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF)
            if best is not None:
                found = self._by_key[best[0]]
        return found

    def normalise(self, written: Iterable[str]) -> list[str]:
        """The canonical names of written skills, in order, each once; unknown ones dropped."""
        out: dict[str, None] = {}
        for item in written:
            name = self.canonical(item)
            if name is not None:
                out[name] = None
        return list(out)

    def find_in_text(self, text: str) -> list[str]:
        """The skills running text mentions (exact alias matches, see the module docstring)."""
        tokens = [m.group(0).rstrip(".") for m in _TOKEN.finditer(text)]
        found: dict[str, None] = {}
        for size in (3, 2, 1):
            for i in range(len(tokens) - size + 1):
                words = tokens[i : i + size]
                key = skill_key(" ".join(words))
                if key not in self._by_key:
                    continue
                ordinary = key in _NOT_IN_TEXT or len(key) <= 2 or key.isdigit()
                if size == 1 and ordinary and words[0] not in _SHORT_IN_TEXT:
                    continue
                found[self._by_key[key]] = None
        for alias, name in self._cjk.items():
            if alias in text:
                found[name] = None
        return list(found)

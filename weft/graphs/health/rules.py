"""The red-flag rules: a reviewed data file (``data/red_flags.yaml``) and what reads it.

The file names *terms* (findings: phrases in English and Chinese, or a limit on a parsed value)
and *flags* (a level, reached when every group of terms has one found). :func:`load_rules`
checks the file when it loads: a flag naming an unknown term, a bad level or a phrase that is not
a valid regular expression is an error that names the flag or term and the file.

Example:
    >>> rules = load_rules()
    >>> [f.id for f in rules.match("crushing chest pain and sweating").flags]
    ['chest_pain_breathless_or_sweating', 'chest_pain_alone']
    >>> rules.match("no chest pain, no fever").flags
    []
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from weft.core.errors import ConfigurationError
from weft.graphs.health._parse import negated, read_values

__all__ = [
    "LEVELS",
    "RULES_FILE",
    "Flag",
    "FlagHit",
    "Level",
    "Match",
    "RuleSet",
    "Term",
    "load_rules",
    "more_urgent",
]

Level = Literal["emergency", "non_emergency", "self_care"]
LEVELS: tuple[Level, ...] = ("emergency", "non_emergency", "self_care")
"""The triage levels, most urgent first."""

RULES_FILE = Path(__file__).parent / "data" / "red_flags.yaml"
"""The bundled, reviewed red-flag rules."""

_RANK = {level: i for i, level in enumerate(LEVELS)}


def more_urgent(a: Level, b: Level) -> Level:
    """The more urgent of two levels."""
    return a if _RANK[a] <= _RANK[b] else b


class Vital(BaseModel):
    """A limit on a parsed value: ``temp_c``, ``hr``, ``spo2``, ``age_days``, ``duration_days``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["temp_c", "hr", "spo2", "age_days", "duration_days"]
    below: float | None = None
    at_least: float | None = None

    @model_validator(mode="after")
    def _one_limit(self) -> Vital:
        if (self.below is None) == (self.at_least is None):
            raise ValueError("give exactly one of below: or at_least:")
        return self

    def holds(self, values: Mapping[str, float]) -> str | None:
        value = values.get(self.name)
        if value is None:
            return None
        ok = value < self.below if self.below is not None else value >= (self.at_least or 0)
        return f"{self.name}={value:g}" if ok else None


class Term(BaseModel):
    """A finding: one of its phrases, not negated, or its vital condition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phrases: list[str] = Field(default_factory=list)
    vital: Vital | None = None


class Flag(BaseModel):
    """A rule: ``level`` when every group of ``all`` has one of its terms found."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    level: Literal["emergency", "non_emergency"]
    label: dict[str, str]
    all: list[list[str]] = Field(min_length=1)

    def text(self, language: str) -> str:
        return self.label.get(language) or self.label["en"]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    reviewed: str
    review: str
    terms: dict[str, Term]
    flags: list[Flag]
    emergency_instruction: dict[str, str]
    crisis_instruction: dict[str, str]
    advice: dict[str, dict[str, str]]
    disclaimer: dict[str, str]


@dataclass(frozen=True)
class FlagHit:
    """A flag that fired, and the words or values that fired it."""

    flag: Flag
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Match:
    """What the rules found in one text."""

    level: Level
    flags: list[FlagHit]
    values: dict[str, float] = field(default_factory=dict)


def _compile(phrase: str) -> re.Pattern[str]:
    # English phrases match whole words; Chinese ones anywhere.
    left = r"(?<![A-Za-z])" if phrase[:1].isascii() else ""
    right = r"(?![A-Za-z])" if phrase[-1:].isascii() else ""
    return re.compile(f"{left}(?:{phrase}){right}", re.IGNORECASE)


class RuleSet:
    """The loaded rules; :meth:`match` reads a text against them."""

    def __init__(self, data: _File, source: str) -> None:
        self.data = data
        self.source = source
        self._patterns: dict[str, list[re.Pattern[str]]] = {}
        problems = []
        for name, term in data.terms.items():
            try:
                self._patterns[name] = [_compile(p) for p in term.phrases]
            except re.error as exc:
                problems.append(f"term {name!r}: a phrase is not a valid pattern ({exc})")
        for flag in data.flags:
            unknown = sorted({t for group in flag.all for t in group} - set(data.terms))
            if unknown:
                problems.append(f"flag {flag.id!r} names unknown terms {unknown}")
        if problems:
            raise ConfigurationError(
                f"red-flag rules in {source} are invalid: {'; '.join(problems)}; fix the file"
            )

    def _find(self, name: str, text: str, values: Mapping[str, float]) -> str | None:
        term = self.data.terms[name]
        for pattern in self._patterns[name]:
            for m in pattern.finditer(text):
                if not negated(text, m.start()):
                    return m.group(0)
        return term.vital.holds(values) if term.vital is not None else None

    def match(self, text: str, values: Mapping[str, float] | None = None) -> Match:
        """The flags ``text`` fires, most urgent first, and the level they give."""
        found_values = read_values(text)
        found_values.update(values or {})
        cache: dict[str, str | None] = {}
        hits = []
        for flag in self.data.flags:
            evidence = []
            for group in flag.all:
                seen = None
                for name in group:
                    if name not in cache:
                        cache[name] = self._find(name, text, found_values)
                    seen = cache[name]
                    if seen is not None:
                        break
                if seen is None:
                    break
                evidence.append(seen)
            else:
                hits.append(FlagHit(flag, tuple(dict.fromkeys(evidence))))
        hits.sort(key=lambda h: _RANK[h.flag.level])
        level: Level = hits[0].flag.level if hits else "self_care"
        return Match(level, hits, found_values)

    def say(self, key: str, language: str, level: str | None = None) -> str:
        """A message of the file (``disclaimer``, ``emergency_instruction``...) in a language."""
        table: Any = getattr(self.data, key)
        if level is not None:
            table = table[level]
        return str(table.get(language) or table["en"])


@functools.lru_cache(maxsize=8)
def _load(path: str) -> RuleSet:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return RuleSet(_File.model_validate(raw), path)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read the red-flag rules {path}: {exc}") from exc
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ConfigurationError(f"red-flag rules in {path} are invalid: {where}") from exc


def load_rules(path: str | Path | None = None) -> RuleSet:
    """The red-flag rules in ``path`` (the bundled file by default), checked and cached."""
    return _load(str(path or RULES_FILE))

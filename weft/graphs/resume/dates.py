# ruff: noqa: RUF001, RUF002
# Dashes, full-width punctuation and typographic quotes are what resumes in these languages write.
"""Date ranges as resumes write them, and years of experience with overlaps merged.

:func:`find_date_range` reads, in English, German, French, Spanish and Chinese:

- month names and their abbreviations (``Mar 2019``, ``März 2019``, ``Sept. 2020``,
  ``janvier 2018``), numeric months (``03/2019``, ``03.2019``, ``2019-03``, ``2019.03``,
  ``2019年3月``) and years alone (``2015``);
- a separator between the two ends: a dash (``-``, ``–``, ``—``), ``to``, ``until``, ``bis``,
  ``à``, ``a``, ``hasta``, ``~`` or ``至``;
- an open end: ``present``, ``current``, ``now``, ``today``, ``ongoing``, ``heute``,
  ``aktuell``, ``jetzt``, ``aujourd'hui``, ``actualidad``, ``presente``, ``至今``, ``现在``,
  ``目前``; and ``since 2020`` / ``seit 2020`` / ``depuis 2020`` / ``desde 2020``.

A year alone stands for January when it starts a range and for December when it ends one, so
``2015 - 2018`` is four years. :func:`experience_months` counts every month worked once, however
many jobs overlap in it, with an open end counting up to the analysis date; :func:`find_gaps`
reports the stretches of over six months between jobs (and from the last job to the analysis
date).

Example:
    >>> find_date_range("Data Engineer, Mar 2019 – heute")
    DateRange(start=(2019, 3), end=None, text='Mar 2019 – heute')
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "GAP_MONTHS",
    "OPEN_WORDS",
    "DateRange",
    "experience_months",
    "find_date_range",
    "find_gaps",
    "month_text",
    "parse_month",
]

GAP_MONTHS = 6
"""A gap is reported when it is longer than this many months."""

YearMonth = tuple[int, int]

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    [
        "january jan januar jänner jän janvier janv enero ene",
        "february feb februar février févr fevrier febrero",
        "march mar märz maerz mär mrz mars marzo",
        "april apr avril avr abril abr",
        "may mai mayo",
        "june jun juni juin junio",
        "july jul juli juillet juil julio",
        "august aug août aout agosto ago",
        "september sep sept septembre septiembre",
        "october oct oktober okt octobre octubre",
        "november nov novembre noviembre",
        "december dec dezember dez décembre decembre diciembre dic",
    ],
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number

_MONTH_NAME = "|".join(sorted(map(re.escape, _MONTHS), key=len, reverse=True))
_YEAR = r"(?:19[5-9]\d|20\d{2})"
_DATE = (
    rf"(?:(?:{_MONTH_NAME})\.?\s*,?\s*{_YEAR}"  # Mar 2019, März 2019, Sept. 2020
    rf"|{_YEAR}\s*年\s*(?:1[0-2]|0?[1-9])\s*月?"  # 2019年3月
    rf"|(?:1[0-2]|0?[1-9])\s*[/.]\s*{_YEAR}"  # 03/2019, 3.2019
    rf"|{_YEAR}\s*[-/.]\s*(?:1[0-2]|0[1-9]|[1-9](?!\d))"  # 2019-03, 2019.3
    rf"|{_YEAR}\s*年?)"  # 2019, 2019年
)
_OPEN = (
    r"(?:present|current(?:ly)?|now|today|ongoing|heute|aktuell|jetzt|dato|"
    r"aujourd['’]hui|actualidad|presente|至今|现在|目前|今)"
)
OPEN_WORDS = frozenset([
    "present", "current", "currently", "now", "today", "ongoing", "heute", "aktuell", "jetzt",
    "dato", "aujourd'hui", "actualidad", "presente", "至今", "现在", "目前", "今",
])  # fmt: skip
"""The words that leave a date range open (lower case)."""
_SEP = r"(?:\s*(?:-|–|—|~|～|至|to|until|till|bis(?:\s+zum)?|à|a|hasta)\s*)"
_RANGE = re.compile(
    rf"(?<![\w/.-])(?P<start>{_DATE}){_SEP}(?:(?P<open>{_OPEN})|(?P<end>{_DATE}))(?![\w])"
    rf"|(?<![\w])(?:since|seit|depuis|desde|从)\s+(?P<since>{_DATE})(?![\w])",
    re.IGNORECASE,
)
_NUMBERS = re.compile(r"\d+")


class DateRange(NamedTuple):
    """A date range found in text: ``end`` is None for an open range."""

    start: YearMonth
    end: YearMonth | None
    text: str


def parse_month(text: str, *, end: bool = False) -> YearMonth:
    """The (year, month) of one date as :data:`_DATE` matches it; a year alone is January, or
    December when ``end``."""
    lowered = text.lower()
    word = re.search(r"[^\W\d_]+", lowered.replace("年", " ").replace("月", " "))
    numbers = [int(n) for n in _NUMBERS.findall(lowered)]
    year = next(n for n in numbers if n >= 1900)
    if word is not None and word.group(0).rstrip(".") in _MONTHS:
        return year, _MONTHS[word.group(0).rstrip(".")]
    months = [n for n in numbers if n != year and 1 <= n <= 12]
    if months:
        return year, months[0]
    return year, 12 if end else 1


def find_date_range(text: str) -> DateRange | None:
    """The first date range in ``text``, or None."""
    match = _RANGE.search(text)
    if match is None:
        return None
    if match.group("since"):
        return DateRange(parse_month(match.group("since")), None, match.group(0).strip())
    start = parse_month(match.group("start"))
    end = None if match.group("open") else parse_month(match.group("end"), end=True)
    return DateRange(start, end, match.group(0).strip())


def month_text(ym: YearMonth) -> str:
    """``(2019, 3)`` as ``'2019-03'``."""
    return f"{ym[0]:04d}-{ym[1]:02d}"


def _index(ym: YearMonth) -> int:
    return ym[0] * 12 + ym[1] - 1


def _from_index(i: int) -> YearMonth:
    return i // 12, i % 12 + 1


def _months(periods: Iterable[tuple[YearMonth, YearMonth | None]], as_of: dt.date) -> set[int]:
    now = _index((as_of.year, as_of.month))
    worked: set[int] = set()
    for start, end in periods:
        last = min(now, _index(end) if end is not None else now)
        worked.update(range(_index(start), last + 1))
    return worked


def experience_months(periods: Iterable[tuple[YearMonth, YearMonth | None]], as_of: dt.date) -> int:
    """How many distinct months the periods cover (inclusive; an open end runs to ``as_of``;
    nothing after ``as_of`` counts)."""
    return len(_months(periods, as_of))


def find_gaps(
    periods: Iterable[tuple[YearMonth, YearMonth | None]], as_of: dt.date
) -> list[tuple[YearMonth, YearMonth, int]]:
    """The runs of over :data:`GAP_MONTHS` months with no job, between the first job and
    ``as_of``: ``(first month idle, last month idle, months)``."""
    worked = sorted(_months(periods, as_of))
    if not worked:
        return []
    now = _index((as_of.year, as_of.month))
    gaps = []
    for before, after in zip(worked, [*worked[1:], now + 1], strict=True):
        idle = after - before - 1
        if idle > GAP_MONTHS:
            gaps.append((_from_index(before + 1), _from_index(after - 1), idle))
    return gaps

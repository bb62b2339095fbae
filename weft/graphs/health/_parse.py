"""Read numbers out of free text: age, how long, temperature, heart rate and oxygen saturation.

English and Chinese. Every value comes back in one unit: age and duration in days, temperature
in °C (a value in °F, or above 45 with no unit, is converted), heart rate in beats per minute,
SpO2 in percent. Where a text gives a value twice, the most alarming one is kept.

Example:
    >>> read_values("6-week-old, temp 100.8F, pulse 170, sats 93% for 2 days")
    {'age_days': 42.0, 'duration_days': 2.0, 'temp_c': 38.2, 'hr': 170.0, 'spo2': 93.0}
"""

# ruff: noqa: RUF001

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

__all__ = ["CJK", "language_of", "negated", "read_values", "without_durations"]

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")

_WORD_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "a few": 3, "few": 3, "several": 4, "a couple of": 2, "couple of": 2,
}  # fmt: skip
_ZH_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9, "半": 0.5}  # fmt: skip
_DAYS = {"hour": 1 / 24, "day": 1, "week": 7, "month": 30.4, "year": 365,
         "小时": 1 / 24, "天": 1, "日": 1, "周": 7, "星期": 7, "个月": 30.4, "月": 30.4,
         "年": 365, "岁": 365}  # fmt: skip

_NUM = r"\d+(?:\.\d+)?"
_WORDS = "|".join(sorted((re.escape(w) for w in _WORD_NUMBERS), key=len, reverse=True))
_ZH_NUM = r"\d+(?:\.\d+)?|[一二两三四五六七八九十半]+"

_AGE = [
    re.compile(rf"\b({_NUM})[\s-]*(year|yr|month|week|day)s?[\s-]*old\b", re.I),
    re.compile(rf"\b({_NUM})\s*(?:yo|y/o|y\.o\.)(?![a-z])", re.I),
    re.compile(rf"\b(?:aged?|age:)\s*({_NUM})\b", re.I),
    re.compile(rf"({_ZH_NUM})\s*(岁|个月|周|天)(?:大|的(?:宝宝|婴儿|孩子))"),
    re.compile(rf"({_ZH_NUM})\s*(岁)"),
]
_DURATION = [
    re.compile(
        rf"\b({_NUM}|{_WORDS})[\s-]*(hour|day|week|month|year)s?\b(?![\s-]*(?:old|pregnant))",
        re.I,
    ),
    re.compile(
        rf"(?<![孕\d.一二两三四五六七八九十])({_ZH_NUM})\s*(?:个)?(小时|天|日|周|星期|个月|月|年)(?!大)"
    ),
]
_TIME_WORDS = re.compile(r"\b(?:hours?|days?|weeks?|months?|nights?|mornings?|today)\b", re.I)
_SINCE = re.compile(r"\bsince (yesterday|last night|this morning)\b|昨天|昨晚", re.I)
_TEMP = [
    re.compile(
        rf"(?:temp(?:erature)?|fever|febrile|体温|发烧|发热|高烧|烧到)[^\d.;。,，]{{0,12}}({_NUM})"
        r"\s*(?:°|º|˚|degrees?|deg|度)?\s*(c\b|f\b|℃|℉|celsius|fahrenheit)?",
        re.I,
    ),
    re.compile(rf"({_NUM})\s*(?:°|º|˚|degrees?)\s*(c|f|celsius|fahrenheit)\b", re.I),
    re.compile(rf"({_NUM})\s*(℃|℉)"),
    re.compile(r"\b((?:3\d|4[0-4]|9\d|1[01]\d)(?:\.\d+)?) ?([CF])\b"),  # 38.2 C, 101 F
]
# "39度" alone: a body temperature only in a body's range (not the weather's 30度)
_ZH_DEGREES = re.compile(r"(?<![\d.])(3[5-9]|4[0-3])(\.\d+)?\s*度")
_HR = [
    re.compile(r"(?:heart ?rate|\bhr\b|pulse(?: rate)?|心率|脉搏)[^\d;。]{0,10}(\d{2,3})", re.I),
    re.compile(r"(\d{2,3})\s*(?:bpm|beats (?:per|a) min(?:ute)?|次/分)", re.I),
]
_SPO2 = [
    re.compile(
        r"(?:spo2|sp02|o2 sats?|o2 saturation|oxygen (?:saturation|level|sat)s?|\bsats?\b|"
        r"saturation|血氧(?:饱和度)?)[^\d;。]{0,10}(\d{2,3})",
        re.I,
    ),
    re.compile(r"(\d{2,3})\s*%\s*(?:on room air|oxygen|o2|sat)", re.I),
]


def _number(text: str) -> float | None:
    text = text.strip().lower()
    if text in _WORD_NUMBERS:
        return float(_WORD_NUMBERS[text])
    try:
        return float(text)
    except ValueError:
        pass
    if not text or any(c not in _ZH_DIGITS and c != "十" for c in text):
        return None
    if "十" in text:  # 十, 十五, 二十, 二十五
        tens, _, ones = text.partition("十")
        return float((_ZH_DIGITS.get(tens, 1) if tens else 1) * 10 + _ZH_DIGITS.get(ones, 0))
    return float(_ZH_DIGITS[text]) if len(text) == 1 else None


def _unit_days(unit: str) -> float:
    unit = unit.lower()
    return _DAYS.get(unit, _DAYS.get(unit.rstrip("s"), 1.0))


def _spans(patterns: list[re.Pattern[str]], text: str) -> Iterator[re.Match[str]]:
    for pattern in patterns:
        yield from pattern.finditer(text)


def _age_days(text: str) -> float | None:
    for m in _spans(_AGE, text):
        value = _number(m.group(1))
        if value is None:
            continue
        unit = m.group(2) if m.lastindex and m.lastindex >= 2 else "year"
        return round(value * _unit_days(unit), 1)
    return None


def _duration_days(text: str) -> float | None:
    found = [
        value * _unit_days(m.group(2))
        for m in _spans(_DURATION, text)
        if (value := _number(m.group(1))) is not None
    ]
    if _SINCE.search(text):
        found.append(1.0)
    return round(max(found), 2) if found else None


def _temp_c(text: str) -> float | None:
    found = []
    for m in _spans(_TEMP, text):
        value = float(m.group(1))
        unit = (m.group(2) or "").lower()
        if unit.startswith(("f", "℉")) or (not unit and value > 45):
            value = (value - 32) * 5 / 9
        if 25 <= value <= 45:
            found.append(round(value, 1))
    found += [float(m.group(0).rstrip("度 ")) for m in _ZH_DEGREES.finditer(text)]
    # A fever is the alarm, unless a value is dangerously low.
    return min(found) if found and min(found) < 35 else (max(found) if found else None)


def _first(patterns: list[re.Pattern[str]], text: str, pick: Callable[..., float]) -> float | None:
    values = [float(m.group(1)) for m in _spans(patterns, text)]
    return pick(values) if values else None


def read_values(text: str) -> dict[str, float]:
    """The values found in ``text``: ``age_days``, ``duration_days``, ``temp_c``, ``hr``,
    ``spo2`` (only those present)."""
    spo2 = _first(_SPO2, text, min)
    values = {
        "age_days": _age_days(text),
        "duration_days": _duration_days(text),
        "temp_c": _temp_c(text),
        "hr": _first(_HR, text, lambda vs: max(vs, key=lambda v: abs(v - 75))),
        "spo2": spo2 if spo2 is not None and 50 <= spo2 <= 100 else None,
    }
    return {k: v for k, v in values.items() if v is not None}


def without_durations(text: str) -> str:
    """The text without its durations ("for two days", "三天"), which say nothing about what
    the condition is and would match any text that mentions days."""
    for pattern in (*_DURATION, _TIME_WORDS):
        text = pattern.sub(" ", text)
    return text


def language_of(text: str) -> str:
    """``"zh"`` when the text has Chinese characters, else ``"en"``."""
    return "zh" if CJK.search(text) else "en"


# -- negation


_EN_NEGATION = re.compile(
    r"\b(?:no|not|denies|denied|deny|without|never|negative for|free of|absence of|"
    r"(?:does|do|did|has|have)(?: not|n't|nt) (?:have|had|got)|no signs? of|ruled out)\b",
    re.I,
)
_EN_PSEUDO = re.compile(
    r"\b(?:no (?:longer|improvement|change|better|relief)|not (?:only|improving|better|getting|"
    r"helping|sure|stop|stopping))\b",
    re.I,
)
_EN_SCOPE_END = re.compile(
    r"[.;!?:\n]|\b(?:but|however|although|though|yet|except|now|apart from|and has|and is)\b",
    re.I,
)
_ZH_NEGATION = re.compile(r"没有|没|否认|未见|未|并无|不伴|无(?![法力])")
_ZH_SCOPE_END = re.compile(r"[，,。；;！!？?\n]|但|可是|不过|现在")
_EN_SCOPE_WORDS = 5
_ZH_SCOPE_CHARS = 6


def negated(text: str, start: int) -> bool:
    """Whether the finding that starts at ``text[start]`` is negated by what comes before it.

    A negation ("no", "denies", "without", "没有", "否认", "无"...) reaches over at most five
    words (six Chinese characters) and stops at the end of the clause ("but", a full stop, ","
    in Chinese), so "no fever, cough or rash" negates all three and "no fever but a stiff neck"
    keeps the stiff neck.
    """
    before = text[max(0, start - 80) : start]
    if CJK.search(text[start : start + 1]):
        zh = list(_ZH_NEGATION.finditer(before))
        if zh:
            gap = before[zh[-1].end() :]
            if not _ZH_SCOPE_END.search(gap) and len(gap) <= _ZH_SCOPE_CHARS:
                return True
    en = [m for m in _EN_NEGATION.finditer(before) if not _EN_PSEUDO.match(before, m.start())]
    if not en:
        return False
    gap = before[en[-1].end() :]
    return not _EN_SCOPE_END.search(gap) and len(gap.split()) <= _EN_SCOPE_WORDS

"""Mask personal data in text before it leaves the process: emails, phones, ID and bank cards.

Tracing records message content only when asked to (``capture_content=True``), and then masks it
with :func:`mask_pii` unless told not to. What is found, and what replaces it:

- ``email``: ``name@domain.tld``, replaced by ``[EMAIL]``;
- ``id_card``: a Chinese resident ID number (18 characters, a valid birth date, the last one a
  digit or ``X``), replaced by ``[ID_CARD]``;
- ``bank_card``: 13 to 19 digits, optionally grouped by spaces or dashes, that pass the Luhn
  check, replaced by ``[BANK_CARD]``;
- ``phone``: Chinese mobile numbers (``13812345678``, ``+86 138 1234 5678``), international
  ``+`` numbers, and ``(555) 123-4567`` / ``555-123-4567``, replaced by ``[PHONE]``.

ID cards are checked before bank cards, and both before phones, so an 18-digit ID number is never
half-masked as a phone number. Digit runs that fail the checks (order numbers, timestamps) stay.

Example:
    >>> mask_pii("Call 13812345678 or mail li.lei@example.com")
    'Call [PHONE] or mail [EMAIL]'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DEFAULT_KINDS", "Masker", "PiiKind", "luhn_valid", "mask_pii", "mask_value"]

PiiKind = Literal["email", "id_card", "bank_card", "phone"]

DEFAULT_KINDS: tuple[PiiKind, ...] = ("email", "id_card", "bank_card", "phone")
"""Every kind :func:`mask_pii` masks, in the order it looks for them."""

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# region (6) + birth date yyyymmdd + sequence (3) + check (digit or X)
_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"\d{3}[0-9Xx](?![0-9A-Za-z])"
)
_CARD = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"(?<![0-9A-Za-z_+])(?:"
    r"(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}"  # Chinese mobile
    r"|\+\d{1,3}[ -]?(?:\(\d{1,4}\)[ -]?)?\d{2,4}(?:[ -]?\d{2,4}){1,3}"  # international
    r"|\(\d{3}\)[ -]?\d{3}-\d{4}"  # (555) 123-4567
    r"|\d{3}-\d{3}-\d{4}"  # 555-123-4567
    r")(?!\d)"
)


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check, as every payment card number does.

    Example:
        >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
        (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group())
    return "[BANK_CARD]" if luhn_valid(digits) else match.group()


@dataclass(frozen=True)
class Masker:
    """Replaces chosen kinds of personal data in text; add your own patterns with ``extra``.

    Args:
        kinds: which built-in kinds to mask (see the module docs).
        extra: more ``(pattern, replacement)`` pairs, applied after the built-in ones.

    Example:
        >>> Masker(kinds=("email",), extra=((r"EMP-\\d+", "[EMPLOYEE]"),))("EMP-42 a@b.io")
        '[EMPLOYEE] [EMAIL]'
    """

    kinds: tuple[PiiKind, ...] = DEFAULT_KINDS
    extra: tuple[tuple[str, str], ...] = ()
    _steps: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        builtin: dict[str, tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = {
            "email": (_EMAIL, "[EMAIL]"),
            "id_card": (_ID_CARD, "[ID_CARD]"),
            "bank_card": (_CARD, _card),
            "phone": (_PHONE, "[PHONE]"),
        }
        unknown = [k for k in self.kinds if k not in builtin]
        if unknown:
            raise ValueError(f"unknown PII kinds {unknown}; valid kinds: {', '.join(builtin)}")
        # Built-in order matters (ID cards before bank cards before phones), whatever the caller's.
        steps = [builtin[k] for k in DEFAULT_KINDS if k in self.kinds]
        steps += [(re.compile(p), r) for p, r in self.extra]
        object.__setattr__(self, "_steps", tuple(steps))

    def __call__(self, text: str) -> str:
        for pattern, replacement in self._steps:
            text = pattern.sub(replacement, text)
        return text


_DEFAULT = Masker()


def mask_pii(text: str) -> str:
    """Mask emails, phone numbers, Chinese ID-card numbers and bank-card numbers in ``text``.

    Example:
        >>> mask_pii("身份证 11010519491231002X; 卡号 6222 0200 0000 0000 000")
        '身份证 [ID_CARD]; 卡号 [BANK_CARD]'
    """
    return _DEFAULT(text)


def mask_value(value: Any, masker: Callable[[str], str] = mask_pii) -> Any:
    """Mask every string inside ``value`` (dicts, lists and tuples are walked; keys are kept).

    Example:
        >>> mask_value({"to": ["a@b.io"], "n": 3})
        {'to': ['[EMAIL]'], 'n': 3}
    """
    if isinstance(value, str):
        return masker(value)
    if isinstance(value, Mapping):
        return {k: mask_value(v, masker) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items: Iterable[Any] = (mask_value(v, masker) for v in value)
        return list(items) if isinstance(value, list) else tuple(items)
    return value

"""Mask personal data in text before it leaves the process: emails, phones, ID and bank cards.

Tracing records message content only when asked to (``capture_content=True``), and then masks it
with :func:`mask_pii` unless told not to. What is found, and what replaces it:

- ``email``: ``name@domain.tld``, replaced by ``[EMAIL]``;
- ``id_card``: a Chinese resident ID number, replaced by ``[ID_CARD]``: 18 characters (a region
  other than a whole province, a valid birth date, a sequence number and a check character, a
  digit or ``X``), written unbroken or grouped 6-8-4 by spaces or dashes
  (``110105 19491231 002X``), whose check character is right under ISO 7064 MOD 11-2;
- ``bank_card``: a payment card number, replaced by ``[BANK_CARD]``: it passes the Luhn check, its
  first digits and length fit a card network (see below), and it is written unbroken
  (``4111111111111111``) or in groups of 3 to 6 digits split by spaces or by dashes
  (``4111 1111 1111 1111``). When a card runs into more digits (``4111 1111 1111 1111 12/26``),
  only the card is masked;
- ``phone``: Chinese mobile numbers (``13812345678``, ``+86 138 1234 5678``), Chinese landlines
  with their area code (``010-62345678``, ``0755-12345678``), international ``+`` numbers, and
  North American numbers (``(555) 123-4567``, ``555-123-4567``, ``415.555.0123``,
  ``415 555 0123``, ``+1 415.555.0123``), replaced by ``[PHONE]``.

Card networks, by first digits and lengths: Visa 4 (13, 16 or 19 digits); Mastercard 51-55 and
2221-2720 (16); American Express 34 and 37 (15); Discover 6011, 644-649 and 65 (16-19); UnionPay
62 (16-19); JCB 3528-3589 (16-19); Diners Club 300-305, 36, 38 and 39 (14-19).

What stays: digits next to a decimal point (the fraction in ``0.8340...``, the whole part of
``1234.56``) or glued to letters (hex ids, UUIDs), and numbers that fail the checks above, such
as order numbers, 13-digit millisecond timestamps and ids that start with ``1``; dates, times,
versions, IP addresses and prices. The checks cannot tell a card from any other number that
happens to pass them: about one in ten numbers that start like a card and are as long as one
pass Luhn, and are masked; so is about one in eleven 18-digit numbers shaped like an ID (a
region, then a birth date), which has the right check character by chance, and so is any number
grouped like a North American phone number (``300 400 5000``).

ID cards are checked before bank cards, and both before phones, so an 18-digit ID number is never
half-masked as a phone number.

Example:
    >>> mask_pii("Call 13812345678 or mail li.lei@example.com")
    'Call [PHONE] or mail [EMAIL]'
    >>> mask_pii("Card 4111 1111 1111 1111 12/26, score 0.8340123456789012")
    'Card [BANK_CARD] 12/26, score 0.8340123456789012'
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DEFAULT_KINDS", "Masker", "PiiKind", "luhn_valid", "mask_pii", "mask_value"]

PiiKind = Literal["email", "id_card", "bank_card", "phone"]

DEFAULT_KINDS: tuple[PiiKind, ...] = ("email", "id_card", "bank_card", "phone")
"""Every kind :func:`mask_pii` masks, in the order it looks for them."""

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# region (6), birth date yyyymmdd, sequence (3) + check (digit or X); groups split the same way
_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?P<sep>[ -]?)"
    r"(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"(?P=sep)\d{3}[0-9Xx](?![0-9A-Za-z])"
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
_PERMIT_REGIONS = ("810000", "820000", "830000")
# Groups of digits split by single spaces or dashes; _card finds the cards inside.
_DIGIT_RUN = re.compile(r"(?<![\d+-])\d+(?:[ -]\d+)*")
_SEPARATOR = re.compile(r"([ -])")
_WORD_CHARS = frozenset(string.ascii_letters + string.digits + "_")
_PHONE = re.compile(
    r"(?<![0-9A-Za-z_+])(?<!\d\.)(?:"
    r"(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}"  # Chinese mobile
    r"|\+\d{1,3}[ -]?(?:\(\d{1,4}\)[ -]?)?\d{2,4}(?:[ -]?\d{2,4}){1,3}"  # international
    # 415.555.0123, 415 555 0123: area and exchange codes never start with 0 or 1, unlike dates,
    # versions and addresses written with dots
    r"|(?:\+1[ .-]?)?[2-9]\d{2}(?P<sep>[ .])[2-9]\d{2}(?P=sep)\d{4}"
    r"|\(\d{3}\)[ -]?\d{3}-\d{4}"  # (555) 123-4567
    r"|\d{3}-\d{3}-\d{4}"  # 555-123-4567
    r"|0[1-9]\d{1,2}-\d{7,8}"  # Chinese landline: 010-62345678, 0755-12345678
    r")(?![0-9A-Za-z_]|\.\d)"
)


@dataclass(frozen=True)
class _Network:
    """A card network: the leading digits its numbers start with, and how long they are."""

    name: str
    prefixes: tuple[tuple[int, int], ...]
    """Inclusive ranges, each compared with as many leading digits as its bounds have."""
    lengths: tuple[int, ...]


_NETWORKS = (
    _Network("Visa", ((4, 4),), (13, 16, 19)),
    _Network("Mastercard", ((51, 55), (2221, 2720)), (16,)),
    _Network("American Express", ((34, 34), (37, 37)), (15,)),
    _Network("Discover", ((6011, 6011), (644, 649), (65, 65)), tuple(range(16, 20))),
    _Network("UnionPay", ((62, 62),), tuple(range(16, 20))),
    _Network("JCB", ((3528, 3589),), tuple(range(16, 20))),
    _Network("Diners Club", ((300, 305), (36, 36), (38, 39)), tuple(range(14, 20))),
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


def _card_network(digits: str) -> str | None:
    """The network whose first digits and length ``digits`` has, or None.

    Example:
        >>> _card_network("4111111111111111"), _card_network("1700000000123")
        ('Visa', None)
    """
    for network in _NETWORKS:
        if len(digits) in network.lengths and any(
            low <= int(digits[: len(str(low))]) <= high for low, high in network.prefixes
        ):
            return network.name
    return None


def _is_card(groups: Sequence[str], separators: Sequence[str]) -> bool:
    """Whether these digit groups, joined by these separators, are written like a card number.

    A card is one unbroken run, or groups of 3 to 6 digits split by one kind of separator, and
    its digits fit a network and pass Luhn.

    Example:
        >>> _is_card(["4111", "1111", "1111", "1111"], [" ", " ", " "])
        True
        >>> _is_card(["4111111111111111", "123"], [" "])
        False
    """
    if len(groups) > 1 and (len(set(separators)) > 1 or any(not 3 <= len(g) <= 6 for g in groups)):
        return False
    digits = "".join(groups)
    return _card_network(digits) is not None and luhn_valid(digits)


def _card_spans(groups: Sequence[str], separators: Sequence[str]) -> list[tuple[int, int]]:
    """The ``[start, stop)`` ranges of ``groups`` that are cards, none overlapping.

    The longest card wins (the leftmost of equals), then the groups on either side are searched
    the same way, so extra digits before or after a card, or two cards in a row, are kept apart.

    Example:
        >>> _card_spans(["4111", "1111", "1111", "1111", "12"], [" "] * 4)
        [(0, 4)]
    """
    best: tuple[int, int] | None = None
    best_length = 0
    for start in range(len(groups)):
        length = 0
        for stop in range(start + 1, len(groups) + 1):
            length += len(groups[stop - 1])
            if length > 19:
                break
            if length > best_length and _is_card(groups[start:stop], separators[start : stop - 1]):
                best, best_length = (start, stop), length
    if best is None:
        return []
    start, stop = best
    before = _card_spans(groups[:start], separators[: max(start - 1, 0)])
    after = _card_spans(groups[stop:], separators[stop:])
    return [*before, best, *[(a + stop, b + stop) for a, b in after]]


def _attached_before(text: str, start: int) -> bool:
    """Whether the digits from ``text[start]`` go on a word or a decimal (``a3f41``, ``0.834``).

    A dot after a letter ends an abbreviation (``No.4111``); it is not a decimal point.

    Example:
        >>> _attached_before("0.8340", 2), _attached_before("No.4111", 3)
        (True, False)
    """
    before = text[start - 1 : start]
    if before == ".":
        return not text[start - 2 : start - 1].isalpha()
    return before in _WORD_CHARS


def _attached_after(text: str, end: int) -> bool:
    """Whether the digits up to ``text[end]`` run on into a word or a decimal (``41b``, ``12.5``).

    Example:
        >>> _attached_after("12.5", 2), _attached_after("card 4111.", 9)
        (True, False)
    """
    after = text[end : end + 1]
    if after == ".":
        return text[end + 1 : end + 2].isdigit()
    return after in _WORD_CHARS


def _card(match: re.Match[str]) -> str:
    parts = _SEPARATOR.split(match.group())
    groups, separators = parts[::2], parts[1::2]
    # A group glued to a word or a decimal point (only the first or last can be) is no card's.
    first = 1 if _attached_before(match.string, match.start()) else 0
    last = len(groups) - (1 if _attached_after(match.string, match.end()) else 0)
    spans = _card_spans(groups[first:last], separators[first : max(last - 1, first)])
    card_stop = {start + first: stop + first for start, stop in spans}
    out: list[str] = []
    i = 0
    while i < len(groups):
        if i in card_stop:
            out.append("[BANK_CARD]")
            i = card_stop[i]
        else:
            out.append(groups[i])
            i += 1
        if i < len(groups):
            out.append(separators[i - 1])
    return "".join(out)


def _id_number_valid(chars: str) -> bool:
    """Whether 18 ID-card characters name a place of residence and end in their check character.

    The region must not be a whole province (``420000``), which is never a place of household
    registration; only the residence permits of Hong Kong, Macao and Taiwan residents use one
    (``810000``, ``820000``, ``830000``). The check character follows ISO 7064 MOD 11-2.

    Example:
        >>> _id_number_valid("11010519491231002X"), _id_number_valid("110105194912310021")
        (True, False)
        >>> _id_number_valid("420000202401150012"), _id_number_valid("810000199408230021")
        (False, True)
    """
    region = chars[:6]
    if region.endswith("0000") and region not in _PERMIT_REGIONS:
        return False
    total = sum(int(d) * w for d, w in zip(chars[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11] == chars[17].upper()


def _id_card(match: re.Match[str]) -> str:
    chars = _SEPARATOR.sub("", match.group())
    text, start, end = match.string, match.start(), match.end()
    if _attached_before(text, start) or _attached_after(text, end):
        return match.group()
    return "[ID_CARD]" if _id_number_valid(chars) else match.group()


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
            "id_card": (_ID_CARD, _id_card),
            "bank_card": (_DIGIT_RUN, _card),
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

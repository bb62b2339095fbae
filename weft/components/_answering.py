"""What the extractive chat model knows about words and questions, apart from quoting.

* :func:`stem` folds English words onto their Snowball stem ("warranties", "warranty" ->
  "warranti"), so a question and a sentence meet on inflected forms.
* :func:`focus_of` reads what kind of answer a question asks for (a person, a time, a date, a
  number, a price, a duration, a place, a phone number, an email address, a colour), and
  :func:`fits_focus` says whether a sentence holds that kind of answer. "Who is the CEO?" is not
  answered by a sentence that names no one new, nor "What is her phone number?" by one without
  a number to call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

import Stemmer

__all__ = [
    "QUESTION_FORM",
    "Focus",
    "asked_about",
    "cosine",
    "fits_focus",
    "focus_of",
    "names_of",
    "question_form",
    "stem",
]

Focus = Literal[
    "person", "time", "date", "duration", "number", "price", "place", "phone", "email", "colour"
]
"""The kinds of answer a question can ask for; other questions (what, which, how do I) ask for
no particular kind."""

_stemmer = Stemmer.Stemmer("english")
# No cache of stems: PyStemmer's own would keep every distinct word a question brings, and a
# knowledge base's sentences are stemmed once, inside the extractive model's bounded memo.
_stemmer.maxCacheSize = 0


def stem(word: str) -> str:
    """The Snowball (Porter 2) stem of an English word; other scripts come back unchanged.

    Example:
        >>> [stem(w) for w in ["warranties", "delivered", "returns", "Orbit's"]]
        ['warranti', 'deliv', 'return', 'orbit']
    """
    word = word.lower()
    if word.endswith(("'s", "\u2019s")):
        word = word[:-2]
    return str(_stemmer.stemWord(word)) if word.isascii() else word


_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|"
    "fifty|sixty|hundred|thousand|million|dozen|half|once|twice|single|double"
)
# A number standing alone: "1.4 kg", "ten-year", not the "3" of "A3".
_NUMBER = re.compile(rf"(?<![\w.,])\d+(?:[.,:]\d+)*|\b(?:{_NUMBER_WORDS})\b", re.IGNORECASE)
_TIME_UNITS = (
    r"seconds?|minutes?|hours?|days?|weeks?|months?|years?|nights?|mornings?|evenings?|"
    r"decades?|working\s+days?"
)
_DURATION = re.compile(
    rf"(?:\d|\b(?:{_NUMBER_WORDS}|a|an|few|several))[\s-]*(?:{_TIME_UNITS})\b"
    r"|\d+(?:[.,]\d+)?\s*(?:cm|mm|m|km|in|ft|metres?|meters?)\b"
    r"|\b(?:lifetime|forever|permanent(?:ly)?)\b",
    re.IGNORECASE,
)
_MONTH_NAMES = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
)
_MONTHS = (
    rf"{_MONTH_NAMES}|monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekends?|weekdays?"
)
_TIME = re.compile(
    rf"\b\d{{1,2}}[:.]\d{{2}}\b|\b(?:1[89]|20)\d{{2}}\b|\b(?:{_MONTHS})\b|\b\d{{1,2}}(?:[:.]\d{{2}})?\s*[ap]\.?m\b"
    rf"|\b(?:before|after|until|within|during|daily|weekly|monthly|yearly|night|morning|"
    rf"evening|today|tomorrow|immediately|automatically|same\s+day|on\s+working\s+days|"
    rf"when|whenever|once|if)\b"
    rf"|{_DURATION.pattern}",
    re.IGNORECASE,
)
_PERSON_WORDS = re.compile(
    r"\b(?:we|our|customers?|owners?|users?|buyers?|founders?|engineers?|staff|team|"
    r"support|employees?|manager|director|chief|ceo|people|person|everyone|nobody|"
    r"company|companies|shop|seller|courier|retailer|you)\b",
    re.IGNORECASE,
)
# Words that place something: "under the desk", "next to the pool", "on Mill Lane"; "in", "at",
# "on" and "from" only when no time follows ("on Saturdays", "at 9:00", "in advance").
_PLACE_WORDS = re.compile(
    r"\b(?:under|behind|inside|outside|above|below|beside|near|next\s+to|opposite|through|via|"
    r"online|country|countries|city|town|office|warehouse|street|road|lane|avenue|square|floor|"
    r"building|address|located|situated|store|shop|app|menu|page|folder|directory|settings|"
    r"website)\b|"
    r"\b(?:in|at|on|from)\s+(?!(?:the\s+|a\s+|an\s+|each\s+|every\s+)?(?:\d|"
    rf"(?:{_MONTHS})s?\b|(?:morning|afternoon|evening|night|noon|midnight|holiday|"
    r"public\s+holiday|working\s+day|weekday|weekend|time|first|last|next|least|most|"
    r"advance|request|once|latest|earliest|same\s+day|end|start|beginning)s?\b))",
    re.IGNORECASE,
)
# Names that are no place: days and months, and people with a title ("Dr. Anna Keller").
_NOT_PLACES = re.compile(
    rf"\b(?:{_MONTHS})s?\b|\b(?:Dr|Mr|Mrs|Ms|Prof)\.?(?:\s+[A-Z][\w'-]+){{1,3}}", re.IGNORECASE
)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w-]+")

_YEAR = r"\b(?:1[5-9]|20)\d{2}\b"
_DATE = re.compile(
    rf"{_YEAR}|\b(?:{_MONTH_NAMES})\b|\b\d{{1,2}}(?:st|nd|rd|th)\b|\bago\b|"
    r"\b(?:last|this|next)\s+(?:year|month|week)\b",
    re.IGNORECASE,
)
_PRICE = re.compile(
    r"[€$£¥₹]|\b\d+(?:[.,]\d+)?\s*(?:p|c|ct|pence|cents?|euros?|eur|dollars?|usd|"
    r"pounds?|gbp|kr|sek|nok|dkk|chf|francs?|yen)\b|\b(?:eur|usd|gbp|chf)\s*\d|"
    r"\b(?:free|nothing|included|no\s+(?:extra\s+)?(?:charge|cost|fee)s?|(?:not|never)\s+charged|"
    r"at\s+no\s+(?:extra\s+)?cost)\b",
    re.IGNORECASE,
)
# Three or more digits to call ("112", "+372 600 1234"), not a year.
_PHONE = re.compile(rf"(?<![\w.,])(?!{_YEAR})\+?\d(?:[\s()/-]?\d){{2,}}(?![\w.,])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_COLOURS = re.compile(
    r"\b(?:black|white|grey|gray|silver|gold|golden|red|blue|green|yellow|orange|purple|pink|"
    r"brown|beige|navy|bronze|copper|cream|ivory|charcoal|graphite|teal|turquoise|violet|"
    r"anthracite|colou?rless|transparent)\b",
    re.IGNORECASE,
)

_HOW_NUMBER = re.compile(
    r"\bhow\s+(?:much|many|heavy|big|large|small|tall|wide|high|deep|bright|loud|fast|far|"
    r"old|hot|cold|warm|strong|powerful|expensive|cheap)\b|\bwhat\s+(?:is\s+the\s+)?"
    r"(?:price|cost|weight|size|number|percentage|rate|amount|fee)\b",
    re.IGNORECASE,
)
_AUXILIARY = r"(?:is|are|was|were|does|do|did|can|could|will|would|should|must|may|has|have|had)"
_HOW_MUCH_MONEY = re.compile(
    r"\bhow\s+much\b(?:\s+[\w'-]+){0,10}?\s+(?:cost|costs|pay|paid|charge|charged|owe|worth)\b|"
    r"\bhow\s+much\s+(?:is|are|for)\b(?:\s+[\w'-]+){0,5}?\s+(?:fee|fine|price|membership|"
    r"subscription|pass|ticket|plan|deposit|rent)s?\b|\bhow\s+much\s+for\b|\bhow\s+expensive\b|"
    r"\bwhat\s+(?:[\w'-]+\s+){0,4}?(?:price|cost|fee|fine|charge|deposit|rent)s?\b|"
    rf"\bwhat\s+{_AUXILIARY}\s+(?:[\w'-]+\s+){{0,8}}?(?:cost|pay)\b",
    re.IGNORECASE,
)
_HOW_LONG = re.compile(r"\bhow\s+(?:long|soon|often|quickly)\b|\bfor\s+how\s+long\b", re.I)
_OPENS = r"^\W*(?:(?:and|so|but|then|ok|okay)\W+)?"
_WHEN = re.compile(
    _OPENS + r"when\b|\bwhat\s+(?:time|year|day|date|month|hours?)\b|\bby\s+what\s+time\b|"
    r"\bat\s+what\s+time\b|\bwhich\s+(?:year|day|date|month|hours?)\b|"
    r"\b(?:opening|business|office)\s+(?:hours|times)\b|\bhow\s+(?:late|early)\b",
    re.IGNORECASE,
)
_WHEN_PAST = re.compile(
    _OPENS + r"when\s+(?:was|were|did)\b|\b(?:in\s+)?(?:what|which)\s+year\b|\bsince\s+when\b",
    re.IGNORECASE,
)
_ASKS_PHONE = re.compile(
    r"\b(?:phone|telephone|mobile|fax|hotline|helpline)\s+(?:number|no\.?)s?\b|"
    r"\b(?:what|which)\s+number\s+(?:[\w'-]+\s+){0,3}?(?:call|dial|ring|phone|text)\b",
    re.IGNORECASE,
)
_ASKS_EMAIL = re.compile(r"\be-?mail\s+address(?:es)?\b|\b(?:what|which)\s+e-?mail\b", re.I)
_ASKS_COLOUR = re.compile(
    r"\b(?:what|which)\s+colou?rs?\b(?!\s+(?:rendering|temperature|printing|mode|index))", re.I
)
_WHO = re.compile(_OPENS + r"who(?:m|se)?\b", re.IGNORECASE)
_WHERE = re.compile(
    _OPENS + r"where\b|\bwhich\s+(?:country|city|place|address)\b|"
    r"\bwhat\s+(?:is|are)\s+(?:the\s+|its\s+|their\s+)?(?:[\w'-]+\s+){0,2}?address(?:es)?\b",
    re.I,
)

#: A question's words that name what is asked, not what it is about ("how long", "when").
QUESTION_FORM = frozenset(
    ["long", "soon", "often", "quickly", "late", "early", "time", "date", "year"]
)
# ... and those that do for one kind of answer only ("What is the email address?").
_FORM_OF: dict[str, frozenset[str]] = {
    "email": frozenset(["address", "email", "e-mail"]),
    "phone": frozenset(["number", "phone", "telephone"]),
    "place": frozenset(["address"]),
}


def question_form(focus: Focus | None) -> frozenset[str]:
    """The words of a question with ``focus`` that say what kind of answer it asks for, not
    what it is about: a sentence that answers it need not hold them ("What is the email
    address?" and "Write to desk@museum.example"); none for a question with no focus.

    Example:
        >>> sorted(question_form("phone") - QUESTION_FORM)
        ['number', 'phone', 'telephone']
    """
    if focus is None:
        return frozenset()
    return QUESTION_FORM | _FORM_OF.get(focus, frozenset())


_ASKS: tuple[tuple[Focus, re.Pattern[str]], ...] = (
    ("phone", _ASKS_PHONE),
    ("email", _ASKS_EMAIL),
    ("colour", _ASKS_COLOUR),
)


def focus_of(question: str) -> Focus | None:
    """The kind of answer ``question`` asks for, or None when it asks for none in particular.

    Example:
        >>> [focus_of(q) for q in ["Who founded it?", "How long is the warranty?",
        ...                        "How much does it cost?", "How heavy is it?", "What is BM25?"]]
        ['person', 'duration', 'price', 'number', None]
    """
    if _WHO.search(question):
        return "person"
    if _HOW_LONG.search(question):
        return "duration"
    if _WHEN_PAST.search(question):
        return "date"
    if _WHEN.search(question):
        return "time"
    for focus, asks in _ASKS:
        if asks.search(question):
            return focus
    if _HOW_MUCH_MONEY.search(question):
        return "price"
    if _HOW_NUMBER.search(question):
        return "number"
    if _WHERE.search(question):
        return "place"
    return None


_NOUN_PHRASE = r"((?:[\w'-]+\s+){0,3}?[\w'-]+)"
_ASKED_ABOUT = (
    # "How many lumens does it give?", "At how many watts can it charge?"
    re.compile(rf"\bhow\s+many\s+{_NOUN_PHRASE}\s+{_AUXILIARY}\b", re.IGNORECASE),
    # "How much does a spare panel cost?"
    re.compile(rf"\bhow\s+much\s+{_AUXILIARY}\s+{_NOUN_PHRASE}\s+cost\b", re.IGNORECASE),
)


def asked_about(question: str) -> tuple[str, ...]:
    """The words of the thing a question asks the number or the price of, or ().

    "How many lamps can one account control?" is answered by a number of lamps, and "How much
    does a spare panel cost?" by the price of a spare panel: a sentence that counts or prices
    something else does not answer it. ("Which colours...?" is not among these: its answer
    names colours without the word "colour".)

    Example:
        >>> asked_about("How many lamps can one account control?")
        ('lamps',)
        >>> asked_about("How much does a spare panel cost?")
        ('a', 'spare', 'panel')
        >>> asked_about("What is the warranty?")
        ()
    """
    for pattern in _ASKED_ABOUT:
        match = pattern.search(question)
        if match:
            words = tuple(match.group(1).lower().split())
            if not _AUXILIARY_WORD.fullmatch(words[0]):
                return words
    return ()


_AUXILIARY_WORD = re.compile(_AUXILIARY)


def names_of(text: str) -> set[str]:
    """The capitalised words of ``text`` that do not open a sentence, lower-cased: its names.

    Example:
        >>> sorted(names_of("The Central Library opened in 1887 on Quay Street."))
        ['central', 'library', 'quay', 'street']
    """
    return {m.lower() for m in _CAPITALISED.findall(text)}


def _new(pattern: re.Pattern[str], sentence: str, question: str) -> bool:
    """Whether ``sentence`` holds a match of ``pattern`` that ``question`` does not: "How much
    did the 1974 building cost?" is not answered by the year it already gives."""
    asked = {m.group().lower() for m in pattern.finditer(question)}
    return any(m.group().lower() not in asked for m in pattern.finditer(sentence))


# The kinds of answer that are a match of one pattern, new to the question.
_NEW_ANSWERS: dict[str, re.Pattern[str]] = {
    "number": _NUMBER,
    "date": _DATE,
    "phone": _PHONE,
    "price": _PRICE,
    "email": _EMAIL,
    "colour": _COLOURS,
}


def fits_focus(focus: Focus | None, sentence: str, question: str) -> bool:
    """Whether ``sentence`` holds the kind of answer ``focus`` asks for.

    A person is a name the question does not already hold, or a word for people ("the
    customer", "we"); a time is a clock time, a date, a year or a duration; a place is a name
    the question does not hold (not a day, a month or a titled person) or a word of place. A
    number, a date (a year, a month, a day), a price (an amount of money, or "free"), a phone
    number (three or more digits), an email address and a colour must each be one the question
    does not already give.

    Example:
        >>> fits_focus("person", "Lumo Labs makes the lamp.", "Who is the CEO of Lumo Labs?")
        False
        >>> fits_focus("duration", "It has a two-year warranty.", "How long is the warranty?")
        True
        >>> fits_focus("price", "A3 printing is offered.", "How much does A3 printing cost?")
        False
    """
    if focus is None:
        return True
    pattern = _NEW_ANSWERS.get(focus)
    if pattern is not None:
        return _new(pattern, sentence, question)
    if focus == "duration":
        return _DURATION.search(sentence) is not None
    if focus == "time":
        return _TIME.search(sentence) is not None
    asked = names_of(question)
    if focus == "person":
        return bool(names_of(sentence) - asked) or _PERSON_WORDS.search(sentence) is not None
    places = names_of(_NOT_PLACES.sub(" ", sentence)) - asked
    return bool(places) or _PLACE_WORDS.search(sentence) is not None


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two vectors (0.0 when either is all zeros)."""
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0

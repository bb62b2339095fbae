"""Evaluators: small classes that judge one case's run, in the style of pydantic-evals.

An evaluator's :meth:`Evaluator.evaluate` (sync or ``async``) gets an
:class:`EvaluatorContext` and returns:

* a ``bool``: an assertion; a case passes only if all of its assertions hold;
* an ``int`` or ``float``: a score (retrieval metrics are in [0, 1]);
* a ``str``: a label, counted per value in the summary;
* :class:`EvaluationReason` to attach an explanation to any of those;
* ``None`` when it does not apply to the case (``Contains`` on a case with no expected output);
* a mapping of names to any of those, to report several metrics at once.

Built in: :class:`ExactMatch`, :class:`Contains`, :class:`Regex`, :class:`JsonSchemaValid`,
:class:`FieldMatch`; retrieval metrics over document ids :class:`RecallAtK`,
:class:`PrecisionAtK`, :class:`MRR`, :class:`NDCGAtK`, :class:`HitAtK`; and grounding checks
:class:`CitationsGrounded`, :class:`AnswerSupported` and :class:`Refusal`. Latency, tokens and
cost are measured by the runner for every case.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class ShortAnswer(Evaluator):
    ...     max_words: int = 50
    ...     def evaluate(self, ctx: EvaluatorContext) -> bool:
    ...         return len(ctx.text.split()) <= self.max_words
    >>> ShortAnswer().metric_name()
    'short_answer'
"""

from __future__ import annotations

import json
import math
import re
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weft.evals._evaluator import (
    EvaluationReason,
    EvaluationScalar,
    Evaluator,
    EvaluatorContext,
    EvaluatorOutput,
    _as_data,
    _short,
    answer_text,
    output_sources,
)
from weft.evals._grounding import REFUSAL_PHRASES as REFUSAL_PHRASES
from weft.evals._grounding import AnswerSupported, CitationsGrounded, Refusal
from weft.evals._grounding import citations as citations
from weft.evals._grounding import content_words as content_words
from weft.evals._grounding import is_refusal as is_refusal
from weft.evals._grounding import sentences as sentences
from weft.evals.results import SourceInfo

__all__ = [
    "MRR",
    "AnswerSupported",
    "CitationsGrounded",
    "Contains",
    "EvaluationReason",
    "EvaluationScalar",
    "Evaluator",
    "EvaluatorContext",
    "EvaluatorOutput",
    "ExactMatch",
    "FieldMatch",
    "HitAtK",
    "JsonSchemaValid",
    "NDCGAtK",
    "PrecisionAtK",
    "RecallAtK",
    "Refusal",
    "Regex",
    "answer_text",
    "output_sources",
]


# -- output checks ------------------------------------------------------------------------------


def _norm(text: str, case_sensitive: bool) -> str:
    text = " ".join(text.split())
    return text if case_sensitive else text.lower()


@dataclass
class ExactMatch(Evaluator):
    """The output equals ``value`` (default: the case's expected output).

    Strings are compared with whitespace collapsed (and case folded unless
    ``case_sensitive``); other values by equality of their plain data.
    """

    value: Any = None
    case_sensitive: bool = True

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        want = ctx.expected_output if self.value is None else self.value
        if want is None:
            return None
        if isinstance(want, str):
            got = ctx.text
            ok = _norm(got, self.case_sensitive) == _norm(want, self.case_sensitive)
        else:
            got = _as_data(ctx.output)
            ok = got == want
        return EvaluationReason(ok, None if ok else f"got {_short(got)!s}")


@dataclass
class Contains(Evaluator):
    """The output text contains ``value`` (default: the expected output); a list means all.

    Case-insensitive unless ``case_sensitive``; whitespace is collapsed on both sides.
    """

    value: str | list[str] | None = None
    case_sensitive: bool = False

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        want = ctx.expected_output if self.value is None else self.value
        if want is None:
            return None
        wanted = [want] if isinstance(want, str) else [str(w) for w in want]
        text = _norm(ctx.text, self.case_sensitive)
        missing = [w for w in wanted if _norm(w, self.case_sensitive) not in text]
        if missing:
            return EvaluationReason(False, f"missing {', '.join(map(repr, missing))}")
        return True


@dataclass
class Regex(Evaluator):
    """The output text matches ``pattern`` (``re.search``); ``ignore_case`` for re.I."""

    pattern: str
    ignore_case: bool = False

    def __post_init__(self) -> None:
        self._re = re.compile(self.pattern, re.IGNORECASE if self.ignore_case else 0)

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        ok = self._re.search(ctx.text) is not None
        return EvaluationReason(ok, None if ok else f"no match for /{self.pattern}/")


@dataclass
class JsonSchemaValid(Evaluator):
    """The output (a model, a dict, or a JSON string) validates against a JSON Schema.

    ``schema`` is the schema itself, or the path of a ``.json`` file holding it.
    """

    schema: dict[str, Any] | str

    def __post_init__(self) -> None:
        import jsonschema  # type: ignore[import-untyped]  # a chromadb dependency

        schema = self.schema
        if isinstance(schema, str):
            schema = json.loads(Path(schema).read_text(encoding="utf-8"))
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        self._validator = cls(schema)

    def default_name(self) -> str:
        return "json_schema"

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        data = _as_data(ctx.output)
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
        if not errors:
            return True
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        return EvaluationReason(False, f"{where}: {errors[0].message}")


def _get(data: Any, path: str) -> tuple[bool, Any]:
    for part in path.split("."):
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False, None
    return True, data


@dataclass
class FieldMatch(Evaluator):
    """Share of fields of a structured output equal to the expected output's.

    ``fields`` are dotted paths (``"address.city"``, ``"items.0"``); by default every top-level
    key of the expected output. Strings compare case-insensitively with whitespace collapsed.
    """

    fields: list[str] | None = None

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        want = _as_data(ctx.expected_output)
        if not isinstance(want, Mapping):
            return None
        got = _as_data(ctx.output)
        paths = self.fields or list(want)
        wrong = []
        for path in paths:
            _, expected = _get(want, path)
            found, actual = _get(got, path)
            same = found and (
                _norm(actual, False) == _norm(expected, False)
                if isinstance(actual, str) and isinstance(expected, str)
                else actual == expected
            )
            if not same:
                wrong.append(f"{path}: got {_short(actual) if found else 'nothing'}")
        score = 1.0 - len(wrong) / len(paths) if paths else 1.0
        return EvaluationReason(score, "; ".join(wrong) or None)


# -- retrieval ----------------------------------------------------------------------------------


_BY = ("id", "source", "title")
_BY_ERROR = "by={!r}: compare sources by 'id', 'source' (file name) or 'title'"


def _key(source: SourceInfo, by: str) -> str | None:
    if by == "id":
        return source.id
    if by == "source":
        return Path(source.source).name if source.source else None
    if by == "title":
        return source.title
    raise ValueError(_BY_ERROR.format(by))


@dataclass
class _Retrieval(Evaluator):
    k: int = 5
    by: str = "id"
    """Compare by document ``id``, by ``source`` (the file name of ``metadata["source"]``, so
    several chunks of one file count once) or by ``title``."""

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k={self.k!r}: k is how many top sources count, a whole number >= 1")
        if self.by not in _BY:  # fail now, not on the first case
            raise ValueError(_BY_ERROR.format(self.by))

    def ranked(self, ctx: EvaluatorContext) -> list[str]:
        seen: dict[str, None] = {}
        for s in ctx.sources:
            key = _key(s, self.by)
            if key is not None:
                seen.setdefault(key)
        return list(seen)

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        relevance = ctx.case.relevance
        if not relevance:
            return None
        return self.score(self.ranked(ctx), relevance)

    @abstractmethod
    def score(self, ranked: list[str], relevance: dict[str, float]) -> float: ...


@dataclass
class RecallAtK(_Retrieval):
    """Share of the relevant documents found in the top ``k``."""

    def default_name(self) -> str:
        return f"recall@{self.k}"

    def score(self, ranked: list[str], relevance: dict[str, float]) -> float:
        return len(set(ranked[: self.k]) & set(relevance)) / len(relevance)


@dataclass
class PrecisionAtK(_Retrieval):
    """Share of the top ``k`` slots holding a relevant document."""

    def default_name(self) -> str:
        return f"precision@{self.k}"

    def score(self, ranked: list[str], relevance: dict[str, float]) -> float:
        return len(set(ranked[: self.k]) & set(relevance)) / self.k


@dataclass
class HitAtK(_Retrieval):
    """1.0 when any relevant document is in the top ``k``, else 0.0."""

    def default_name(self) -> str:
        return f"hit@{self.k}"

    def score(self, ranked: list[str], relevance: dict[str, float]) -> float:
        return 1.0 if set(ranked[: self.k]) & set(relevance) else 0.0


@dataclass
class MRR(_Retrieval):
    """Reciprocal rank of the first relevant document in the top ``k`` (0 if none)."""

    k: int = 10

    def default_name(self) -> str:
        return "mrr"

    def score(self, ranked: list[str], relevance: dict[str, float]) -> float:
        for rank, key in enumerate(ranked[: self.k], start=1):
            if key in relevance:
                return 1.0 / rank
        return 0.0


@dataclass
class NDCGAtK(_Retrieval):
    """Normalised discounted cumulative gain at ``k``, with graded relevance as the gain."""

    k: int = 10

    def default_name(self) -> str:
        return f"ndcg@{self.k}"

    def score(self, ranked: list[str], relevance: dict[str, float]) -> float:
        dcg = sum(
            relevance.get(key, 0.0) / math.log2(rank + 1)
            for rank, key in enumerate(ranked[: self.k], start=1)
        )
        ideal = sorted(relevance.values(), reverse=True)[: self.k]
        idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
        return dcg / idcg if idcg else 0.0


BUILTIN: dict[str, type[Evaluator]] = {
    cls.__name__: cls
    for cls in (
        ExactMatch,
        Contains,
        Regex,
        JsonSchemaValid,
        FieldMatch,
        RecallAtK,
        PrecisionAtK,
        HitAtK,
        MRR,
        NDCGAtK,
        CitationsGrounded,
        AnswerSupported,
        Refusal,
    )
}
"""The built-in evaluators by class name, as suite YAML files name them."""

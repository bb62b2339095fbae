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

import dataclasses
import json
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from weft.evals.dataset import Case
from weft.evals.results import SourceInfo, Usage

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

EvaluationScalar = Union[bool, int, float, str]  # noqa: UP007


@dataclass(frozen=True)
class EvaluationReason:
    """A result with an explanation, shown in the report next to the case."""

    value: EvaluationScalar
    reason: str | None = None


EvaluatorOutput = Union[  # noqa: UP007
    EvaluationScalar,
    EvaluationReason,
    None,
    Mapping[str, Union[EvaluationScalar, EvaluationReason, None]],  # noqa: UP007
]


@dataclass
class EvaluatorContext:
    """What an evaluator sees: the case, the graph's output, and what the run measured."""

    case: Case
    output: Any
    duration_ms: float = 0.0
    usage: Usage = field(default_factory=Usage)
    sources: list[SourceInfo] = field(default_factory=list)
    """Retrieved sources in rank order: the output's own (``ChatOutput.sources``, a list of
    documents), else what the last retriever in the run returned."""

    @property
    def name(self) -> str:
        return self.case.name

    @property
    def inputs(self) -> Any:
        return self.case.inputs

    @property
    def expected_output(self) -> Any:
        return self.case.expected_output

    @property
    def metadata(self) -> dict[str, Any]:
        return self.case.metadata

    @property
    def tags(self) -> list[str]:
        return self.case.tags

    @property
    def text(self) -> str:
        """The output as text: a string, a message's content, or an ``answer`` field."""
        return answer_text(self.output)


class Evaluator(ABC):
    """Judges one case's run. Subclass it as a dataclass; ``evaluate`` may be ``async``.

    The metric is named by a ``name`` attribute when set, else by :meth:`default_name`
    (the class name in snake case; ``recall@5`` for ``RecallAtK(k=5)``).
    """

    @abstractmethod
    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput | Awaitable[EvaluatorOutput]:
        """Judge ``ctx``; see the module docs for what to return."""

    def default_name(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def metric_name(self) -> str:
        name = getattr(self, "name", None)
        return name if isinstance(name, str) and name else self.default_name()


# -- reading outputs ----------------------------------------------------------------------------


def answer_text(output: Any) -> str:
    """The text of an output: a ``str``, a message's content, an ``answer`` attribute or key."""
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if isinstance(output, BaseMessage):
        return output.text if isinstance(output.text, str) else str(output.content)
    answer = getattr(output, "answer", None)
    if isinstance(answer, str):
        return answer
    if isinstance(output, Mapping):
        for key in ("answer", "output", "text", "content"):
            if isinstance(output.get(key), str):
                return str(output[key])
    if isinstance(output, BaseModel):
        return output.model_dump_json()
    try:
        return json.dumps(output, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(output)


def _source(item: Any, rank: int) -> SourceInfo | None:
    if isinstance(item, Document):
        meta = item.metadata
        return SourceInfo(
            id=str(item.id or meta.get("id") or f"#{rank}"),
            index=rank,
            title=meta.get("title"),
            source=meta.get("source"),
            text=item.page_content,
            score=meta.get("score") if isinstance(meta.get("score"), int | float) else None,
        )
    data = item.model_dump() if isinstance(item, BaseModel) else item
    if isinstance(data, Mapping) and "id" in data:
        return SourceInfo(
            id=str(data["id"]),
            index=data.get("index", rank),
            title=data.get("title"),
            source=data.get("source"),
            text=str(data.get("snippet") or data.get("text") or data.get("page_content") or ""),
            score=data.get("score"),
        )
    return None


def output_sources(output: Any) -> list[SourceInfo] | None:
    """The sources an output carries (``.sources``, ``["sources"]``, or a list of documents),
    in rank order; None when it carries none."""
    items: Any = getattr(output, "sources", None)
    if items is None and isinstance(output, Mapping):
        items = output.get("sources")
    if items is None and isinstance(output, list) and all(isinstance(d, Document) for d in output):
        items = output
    if not isinstance(items, Sequence) or isinstance(items, str):
        return None
    found = [_source(item, rank) for rank, item in enumerate(items, start=1)]
    return [s for s in found if s is not None]


def _as_data(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, BaseMessage):
        value = value.content
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# -- grounding ----------------------------------------------------------------------------------

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_CITED_END = re.compile(r"([.!?。])((?:\s*\[\d+(?:\s*,\s*\d+)*\])+)")
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")
_WORD = re.compile(r"[a-z0-9]+(?:['._-][a-z0-9]+)*|[\u3040-\u30ff\u3400-\u9fff]")
_STOP_WORDS = (
    "a an and are as at be but by can do does for from has have how i if in into is it its "
    "may of on or so than that the their then there these they this to was were what when "
    "where which who why will with you your"
)
_STOP = frozenset(_STOP_WORDS.split())

REFUSAL_PHRASES = (
    "has no answer to this question",
    "i don't know",
    "i do not know",
    "cannot answer",
    "can't answer",
    "no information",
    "not in the knowledge base",
)
"""Phrases that mark an answer as a refusal (matched case-insensitively)."""


def citations(text: str) -> list[int]:
    """Every ``[n]`` (or ``[n, m]``) cited in ``text``, in order."""
    return [int(n) for m in _CITATION.finditer(text) for n in m.group(1).split(",")]


def sentences(text: str) -> list[tuple[str, list[int]]]:
    """The answer's sentences, each without its citations, with the source numbers it cites.

    A citation after the full stop (``Paris is in France. [1]``) belongs to that sentence.
    """
    moved = _CITED_END.sub(lambda m: m.group(2) + m.group(1), text.strip())
    out = []
    for part in _SENTENCE_END.split(moved):
        clean = re.sub(r"\s+([.!?。])", r"\1", " ".join(_CITATION.sub(" ", part).split()))
        if clean:
            out.append((clean, citations(part)))
    return out


def content_words(text: str) -> set[str]:
    """Lower-cased words minus stop words and single Latin letters (CJK characters stay)."""
    return {
        w for w in _WORD.findall(text.lower()) if w not in _STOP and (len(w) > 1 or not w.isascii())
    }


def is_refusal(text: str, phrases: Sequence[str] = REFUSAL_PHRASES) -> bool:
    low = " ".join(text.lower().split()).replace("\u2019", "'")
    return not low or any(p in low for p in phrases)


def _expects_refusal(ctx: EvaluatorContext) -> bool:
    return ctx.metadata.get("answerable") is False or "unanswerable" in ctx.tags


@dataclass
class Refusal(Evaluator):
    """The answer refuses exactly when the case is not answerable from the knowledge base.

    A case is unanswerable when its metadata has ``answerable: false`` or it is tagged
    ``unanswerable``; an answer is a refusal when it contains one of ``phrases``.
    """

    phrases: list[str] = field(default_factory=lambda: list(REFUSAL_PHRASES))

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        refused = is_refusal(ctx.text, self.phrases)
        expected = _expects_refusal(ctx)
        if refused == expected:
            return True
        why = "answered a question the knowledge base cannot answer" if expected else "refused"
        return EvaluationReason(False, f"{why}: {_short(ctx.text)}")


@dataclass
class CitationsGrounded(Evaluator):
    """Every citation ``[n]`` points to a source the run retrieved.

    With ``require_citation`` an answer that is not a refusal must cite at least one source.
    Refusals without citations do not apply.
    """

    require_citation: bool = True

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        text = ctx.text
        cited = citations(text)
        if not cited:
            if is_refusal(text):
                return None
            return EvaluationReason(not self.require_citation, "cites no source")
        valid = {s.index for s in ctx.sources if s.index is not None}
        bad = sorted({n for n in cited if n not in valid})
        if bad:
            known = sorted(valid) or "none"
            return EvaluationReason(False, f"cites {bad}, retrieved sources are {known}")
        return True


_JUDGE_SYSTEM = (
    "You check whether a sentence is supported by a context. Answer with one word: yes if "
    "every claim in the sentence is stated in or follows from the context, otherwise no."
)


@dataclass
class AnswerSupported(Evaluator):
    """Share of the answer's sentences that the sources they cite support.

    Offline, a sentence is supported when at least ``min_overlap`` of its content words occur
    in its cited sources (all sources when it cites none). With a ``judge`` chat model an LLM
    decides per sentence instead. ``judge="auto"`` uses the configured OpenAI model when
    ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, token overlap otherwise; ``None`` always
    uses token overlap. Refusals do not apply.
    """

    min_overlap: float = 0.6
    judge: BaseChatModel | str | None = "auto"

    def default_name(self) -> str:
        return "supported"

    def _judge_model(self) -> BaseChatModel | None:
        if isinstance(self.judge, BaseChatModel):
            return self.judge
        if self.judge is None or self.judge == "none":
            return None
        if self.judge == "auto" and not (
            os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")
        ):
            return None
        from weft.components.models import openai_chat_model

        return openai_chat_model(None if self.judge == "auto" else self.judge)

    async def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        text = ctx.text
        if is_refusal(text):
            return None
        parts = sentences(text)
        if not parts:
            return None
        by_index = {s.index: s.text for s in ctx.sources}
        judge = self._judge_model()
        unsupported = []
        for sentence, cited in parts:
            context = [by_index[n] for n in cited if n in by_index] or list(by_index.values())
            if judge is not None:
                ok = await self._ask(judge, sentence, "\n\n".join(context))
            else:
                words = content_words(sentence)
                found = content_words(" ".join(context))
                ok = not words or len(words & found) / len(words) >= self.min_overlap
            if not ok:
                unsupported.append(sentence)
        score = 1.0 - len(unsupported) / len(parts)
        how = "judge" if judge is not None else "overlap"
        reason = f"{how}; unsupported: {_short(unsupported[0])}" if unsupported else None
        return EvaluationReason(score, reason)

    @staticmethod
    async def _ask(judge: BaseChatModel, sentence: str, context: str) -> bool:
        reply = await judge.ainvoke(
            [
                SystemMessage(_JUDGE_SYSTEM),
                HumanMessage(f"Context:\n{context}\n\nSentence: {sentence}\n\nSupported?"),
            ]
        )
        return answer_text(reply).strip().lower().startswith("yes")


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

"""What every evaluator shares: the context it judges, what it returns, and how it reads outputs."""

from __future__ import annotations

import dataclasses
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from weft.evals.dataset import Case
from weft.evals.results import SourceInfo, Usage

__all__ = [
    "EvaluationReason",
    "EvaluationScalar",
    "Evaluator",
    "EvaluatorContext",
    "EvaluatorOutput",
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

"""The three specialists (symptoms, risk factors, care) and the health knowledge base they cite.

The knowledge base (``data/conditions.yaml``) holds about 60 common conditions, each with its
symptoms, red flags, self-care, when to see a doctor and who is more at risk. The conditions
that match a description are retrieved once with BM25 and numbered; each specialist answers
from those same numbered sources and cites them as ``[n]``:

- ``symptoms``: possible conditions and why (the extractive model quotes the symptom lines that
  fit the description; a chat model, when given, answers from the same sources);
- ``risk_factors``: age, known conditions and medications against each condition's risk line;
- ``care``: self-care steps, what to watch for, and when to see a doctor.

A specialist is any async callable ``(SpecialistInput) -> Analysis``; pass your own in
``specialists=`` to replace one. :func:`run_specialists` runs them in parallel, each under a
timeout; one that fails or times out is reported in ``missing`` and the others still count.

Example:
    >>> kb = HealthKnowledgeBase()
    >>> [d.metadata["title"] for d in kb.search("sneezing and a runny nose", 2)]
    ['Common cold', 'Hay fever (allergic rhinitis)']
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from weft.components.bm25 import BM25Retriever
from weft.components.models import ExtractiveChatModel, format_sources
from weft.core.errors import ConfigurationError
from weft.graphs.health._parse import without_durations

__all__ = [
    "KB_FILE",
    "SPECIALIST_NAMES",
    "Analysis",
    "HealthKnowledgeBase",
    "Specialist",
    "SpecialistInput",
    "default_specialists",
    "run_specialists",
]

KB_FILE = Path(__file__).parent / "data" / "conditions.yaml"
SPECIALIST_NAMES = ("symptoms", "risk_factors", "care")
_FIELDS = ("symptoms", "red_flags", "self_care", "see_doctor", "risk")
_CITE = re.compile(r"\[(\d+)\]")


class SpecialistInput(BaseModel):
    """What every specialist gets: the (masked) description and the numbered sources."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str
    age: float | None = None
    conditions: list[str] = Field(default_factory=list)
    medications: list[str] = Field(default_factory=list)
    level: str = "self_care"
    sources: list[Document] = Field(default_factory=list)


class Analysis(BaseModel):
    """One specialist's answer, citing sources by their numbers."""

    text: str
    citations: list[int] = Field(default_factory=list)


Specialist = Callable[[SpecialistInput], Awaitable[Analysis]]


class HealthKnowledgeBase:
    """The bundled conditions, searchable with BM25 (English and Chinese)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path or KB_FILE)
        try:
            entries = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(
                f"cannot read the health knowledge base {self.path}: {exc}"
            ) from exc
        bad = [e.get("id", i) for i, e in enumerate(entries) if set(_FIELDS) - set(e)]
        if bad:
            raise ConfigurationError(
                f"health knowledge base {self.path}: entries {bad} lack one of {list(_FIELDS)}"
            )
        self.documents = [
            Document(
                " ".join([f"{e['name']} ({e['zh']}).", e["symptoms"], e.get("keywords", "")]),
                id=e["id"],
                metadata={"title": e["name"], **{f: e[f] for f in (*_FIELDS, "zh")}},
            )
            for e in entries
        ]
        self._retriever = BM25Retriever(self.documents, k=4)

    def search(self, text: str, k: int = 3) -> list[Document]:
        """The ``k`` conditions that best match the text."""
        return [doc for doc, _ in self._retriever.search(text, k)]


def _cited(text: str, n: int) -> list[int]:
    return sorted({int(m) for m in _CITE.findall(text) if 1 <= int(m) <= n})


def _lines(data: SpecialistInput, field: str, prefix: str = "") -> list[str]:
    return [
        f"{prefix}{doc.metadata['title']}: {doc.metadata[field]} [{i}]"
        for i, doc in enumerate(data.sources, start=1)
    ]


class KnowledgeBaseSpecialist:
    """A specialist that answers from the numbered sources; with a model, the model writes it.

    Args:
        name: ``symptoms``, ``risk_factors`` or ``care``.
        model: A chat model; None answers offline (extractive quotes and the KB's own lines).
    """

    _TASKS: ClassVar[dict[str, str]] = {
        "symptoms": "Which of these conditions could explain the symptoms, and why?",
        "risk_factors": "Which risk factors (age, known conditions, medicines) matter here?",
        "care": "What self-care helps, what should be watched for, and when to see a doctor?",
    }

    def __init__(self, name: str, model: BaseChatModel | None = None) -> None:
        if name not in self._TASKS:
            raise ConfigurationError(f"no specialist {name!r}; choose {', '.join(self._TASKS)}")
        self.name = name
        self.model = model
        self._extractive = ExtractiveChatModel()

    async def __call__(self, data: SpecialistInput) -> Analysis:
        if not data.sources:
            return Analysis(text="No condition in the knowledge base matches the description.")
        if self.model is not None:
            return await self._ask(self.model, data)
        return await self._offline(data)

    async def _offline(self, data: SpecialistInput) -> Analysis:
        if self.name == "symptoms":
            return await self._symptoms(data)
        if self.name == "risk_factors":
            return await self._risk_factors(data)
        return await self._care(data)

    async def _ask(self, model: Any, data: SpecialistInput) -> Analysis:
        question = (
            f"{self._TASKS[self.name]}\nDescription: {data.text}\nAge: {data.age}\n"
            f"Known conditions: {', '.join(data.conditions) or 'none'}\n"
            f"Medicines: {', '.join(data.medications) or 'none'}"
        )
        system = SystemMessage(
            "Answer only from the numbered sources and cite them as [n]. Never state a "
            "diagnosis as certain; say what is possible."
        )
        human = HumanMessage(f"{format_sources(data.sources)}\n\nQuestion: {question}")
        answer = await model.ainvoke([system, human])
        text = str(answer.content).strip()
        return Analysis(text=text, citations=_cited(text, len(data.sources)))

    async def _symptoms(self, data: SpecialistInput) -> Analysis:
        quoted = await self._ask(self._extractive, data)
        names = ", ".join(
            f"{d.metadata['title']} [{i}]" for i, d in enumerate(data.sources, start=1)
        )
        text = f"Possible conditions (not a diagnosis): {names}."
        if quoted.citations:
            text += f" Why: {quoted.text}"
        cited = sorted({*quoted.citations, *range(1, len(data.sources) + 1)})
        return Analysis(text=text, citations=cited)

    async def _risk_factors(self, data: SpecialistInput) -> Analysis:
        known = []
        if data.age is not None:
            group = "a child" if data.age < 16 else ("an older adult" if data.age >= 65 else "")
            known.append(f"age {data.age:g}" + (f" ({group})" if group else ""))
        known += [f"known condition: {c}" for c in data.conditions]
        known += [f"medicine: {m}" for m in data.medications]
        head = "Known: " + "; ".join(known) + "." if known else "No risk factors were given."
        lines = _lines(data, "risk", "More at risk for ")
        return Analysis(
            text=" ".join([head, *lines]), citations=list(range(1, len(data.sources) + 1))
        )

    async def _care(self, data: SpecialistInput) -> Analysis:
        first = data.sources[0].metadata
        lines = [
            f"Self-care: {first['self_care']} [1]",
            f"Watch for: {first['red_flags']} [1]",
            f"When to see a doctor: {first['see_doctor']} [1]",
        ]
        lines += _lines(data, "see_doctor")[1:]
        return Analysis(text=" ".join(lines), citations=list(range(1, len(data.sources) + 1)))


@functools.lru_cache(maxsize=4)
def _kb(path: str) -> HealthKnowledgeBase:
    return HealthKnowledgeBase(path)


def default_specialists(model: BaseChatModel | None = None) -> dict[str, Specialist]:
    """The three knowledge-base specialists, by name."""
    return {name: KnowledgeBaseSpecialist(name, model) for name in SPECIALIST_NAMES}


def run_specialists(
    specialists: Mapping[str, Specialist] | None = None,
    *,
    kb: HealthKnowledgeBase | None = None,
    timeout: float = 20.0,
    k: int = 3,
) -> Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]:
    """The saga's specialists step: retrieve once, run every specialist in parallel.

    The step returns ``{"analyses": {name: {"text", "citations"}}, "missing": {name: why},
    "sources": [{"index", "id", "title"}]}``.
    """
    chosen = dict(specialists if specialists is not None else default_specialists())

    async def run(data: Mapping[str, Any]) -> dict[str, Any]:
        base = kb or _kb(str(KB_FILE))
        given = data["input"]
        sources = base.search(without_durations(given["text"]), k)
        shared = SpecialistInput(
            text=given["text"],
            age=given.get("age"),
            conditions=given.get("conditions", []),
            medications=given.get("medications", []),
            level=data["triage"]["triage"],
            sources=sources,
        )
        names = list(chosen)
        results = await asyncio.gather(
            *(asyncio.wait_for(chosen[n](shared), timeout) for n in names),
            return_exceptions=True,
        )
        analyses, missing = {}, {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Analysis):
                analyses[name] = result.model_dump()
            elif isinstance(result, TimeoutError):
                missing[name] = f"timed out after {timeout:g} s"
            else:
                missing[name] = f"{type(result).__name__}: {result}"
        return {
            "analyses": analyses,
            "missing": missing,
            "sources": [
                {"index": i, "id": d.id, "title": d.metadata["title"]}
                for i, d in enumerate(sources, start=1)
            ],
        }

    return run

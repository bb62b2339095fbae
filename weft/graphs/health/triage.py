"""Triage: free text (English or Chinese) -> ``emergency``, ``non_emergency`` or ``self_care``.

The red-flag rules (:mod:`weft.graphs.health.rules`) decide first. With a chat model, the model
classifies too (through :func:`weft.chains.classify`) and may raise the level, never lower it:
a red flag always wins. Every result carries the flags found, the reasons, what to do now in
the user's language, and a disclaimer that it is not a diagnosis.

Example:
    >>> t = Triager().assess(HealthInput(text="Sudden worst headache of my life"))
    >>> t.triage, t.red_flags
    ('emergency', ['sudden_worst_headache'])
    >>> Triager().assess(HealthInput(text="流鼻涕两天，没有发烧")).triage
    'self_care'
"""

# ruff: noqa: RUF002

from __future__ import annotations

from typing import Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ConfigDict, Field, field_validator

from weft.chains.classify import Classification, classify
from weft.core.compiled import CompiledGraph
from weft.core.graph import END, START, Graph
from weft.graphs.health._parse import language_of
from weft.graphs.health.rules import LEVELS, Level, Match, RuleSet, load_rules, more_urgent

__all__ = ["MAX_TEXT", "HealthInput", "Triage", "Triager", "build_triage_graph"]

MAX_TEXT = 4000
"""The longest description taken, in characters."""


class HealthInput(BaseModel):
    """What the person says, and what is known about them."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="the symptoms in the person's own words, English or Chinese")
    age: float | None = Field(default=None, ge=0, le=130, description="age in years")
    sex: Literal["F", "M"] | None = None
    conditions: list[str] = Field(default_factory=list, description="known chronic conditions")
    medications: list[str] = Field(default_factory=list)

    @field_validator("text")
    @classmethod
    def _described(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the text is empty; describe the symptoms")
        if len(value) > MAX_TEXT:
            raise ValueError(f"the text has {len(value)} characters; shorten it to {MAX_TEXT}")
        return value


class Triage(BaseModel):
    """The triage result; its JSON is the contract ``weft health triage --json`` prints."""

    triage: Level
    red_flags: list[str] = Field(description="ids of the rules that fired, most urgent first")
    reasons: list[str]
    instruction: str = Field(description="what to do now, in the user's language")
    language: Literal["en", "zh"]
    values: dict[str, float] = Field(
        default_factory=dict, description="age_days, duration_days, temp_c, hr, spo2 as read"
    )
    disclaimer: str


def _reasons(match: Match, language: str) -> list[str]:
    return [
        f"{hit.flag.text(language)} ({', '.join(hit.evidence)})" if hit.evidence else
        hit.flag.text(language)
        for hit in match.flags
    ]  # fmt: skip


class Triager:
    """Triage by the red-flag rules, and by a model when one is given (which may only raise).

    Args:
        model: A chat model with structured output, or None to triage by the rules alone.
        rules: The red-flag rules (the bundled, reviewed file by default).
    """

    def __init__(self, *, model: BaseChatModel | None = None, rules: RuleSet | None = None):
        self.rules = rules or load_rules()
        self.model = model
        self._classify: CompiledGraph[str, Classification] | None = None
        if model is not None:
            self._classify = classify(
                LEVELS, model=model, rules=self.classification, name="triage_model"
            )

    def _read(self, data: HealthInput) -> Match:
        text = data.text
        if data.conditions:
            text += "\n" + "; ".join(data.conditions)
        values = {"age_days": data.age * 365.0} if data.age is not None else None
        return self.rules.match(text, values)

    def classification(self, text: str) -> Classification:
        """The rules' answer as a :class:`~weft.chains.Classification` (``classify``'s rules)."""
        match = self.rules.match(text)
        return Classification(
            label=match.level,
            score=1.0 if match.flags else 0.6,
            reasons=_reasons(match, language_of(text)),
        )

    def _result(self, data: HealthInput, match: Match, model: Classification | None) -> Triage:
        language = language_of(data.text)
        level: Level = match.level
        reasons = _reasons(match, language)
        if model is not None and model.label in LEVELS:
            asked = model.label
            level = more_urgent(match.level, asked)
            if asked != match.level:
                kept = "raised the level to" if level == asked else "suggested"
                reasons.append(f"the model {kept} {asked}; " + "; ".join(model.reasons[:2]))
        if not reasons:
            reasons.append(
                "没有发现危险征象" if language == "zh" else "no red flags found in the description"
            )
        if level == "emergency":
            instruction = self.rules.say("emergency_instruction", language)
            if any(h.flag.id == "suicidal_thoughts" for h in match.flags):
                instruction += " " + self.rules.say("crisis_instruction", language)
        else:
            instruction = self.rules.say("advice", language, level)
        return Triage(
            triage=level,
            red_flags=[hit.flag.id for hit in match.flags],
            reasons=reasons,
            instruction=instruction,
            language="zh" if language == "zh" else "en",
            values=match.values,
            disclaimer=self.rules.say("disclaimer", language),
        )

    def assess(self, data: HealthInput) -> Triage:
        """Triage one description."""
        match = self._read(data)
        model = self._classify.invoke(data.text) if self._classify is not None else None
        return self._result(data, match, model)

    async def aassess(self, data: HealthInput) -> Triage:
        """Triage one description, without blocking the event loop on the model."""
        match = self._read(data)
        model = await self._classify.ainvoke(data.text) if self._classify is not None else None
        return self._result(data, match, model)


def build_triage_graph(model: BaseChatModel | None = None) -> CompiledGraph[HealthInput, Triage]:
    """A one-node graph: :class:`HealthInput` -> :class:`Triage` (what the eval suite runs)."""
    triager = Triager(model=model)
    g = Graph[HealthInput, Triage]("health_triage")
    g.add_node("triage", triager.aassess, input_type=HealthInput, output_type=Triage)
    g.add_edge(START, "triage").add_edge("triage", END)
    return g.compile()

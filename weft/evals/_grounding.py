"""Grounding checks: refusals, citations that point at retrieved sources, supported answers."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from weft.evals._evaluator import (
    EvaluationReason,
    Evaluator,
    EvaluatorContext,
    EvaluatorOutput,
    _short,
    answer_text,
)

__all__ = [
    "REFUSAL_PHRASES",
    "AnswerSupported",
    "CitationsGrounded",
    "Refusal",
    "citations",
    "content_words",
    "is_refusal",
    "sentences",
]

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

"""Triage metrics: accuracy, emergencies caught, under- and over-triage, and a confusion label.

:class:`TriageLevel` compares a case's triage level (the output's ``triage`` field, or the output
itself when it is a string) with the expected one. Levels rank ``emergency`` > ``non_emergency``
> ``self_care``; under-triage is a level below the expected one, over-triage one above. Cases
tagged ``holdout`` also report ``holdout_*`` metrics, so a held-out split is read on its own.

Metrics (means over the cases they apply to):

- ``accuracy``: the level is the expected one;
- ``emergency_recall``: over expected emergencies, the share called ``emergency``;
- ``under_triage`` and ``over_triage``: the share of cases triaged below or above;
- ``confusion``: a label ``expected->got``, counted per value; the HTML report draws the counts
  as a confusion matrix.

Example:
    >>> from weft.evals import Case
    >>> case = Case(inputs="x", expected_output="emergency")
    >>> ctx = EvaluatorContext(case, {"triage": "self_care"})
    >>> TriageLevel().evaluate(ctx)["under_triage"]
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from weft.evals._evaluator import Evaluator, EvaluatorContext, EvaluatorOutput

__all__ = ["TRIAGE_LEVELS", "TriageLevel"]

TRIAGE_LEVELS = ("emergency", "non_emergency", "self_care")
"""The levels, most urgent first."""


def _level(output: Any) -> str | None:
    if isinstance(output, str):
        return output
    value = output.get("triage") if isinstance(output, Mapping) else getattr(output, "triage", None)
    return value if isinstance(value, str) else None


@dataclass
class TriageLevel(Evaluator):
    """Scores a triage level against the expected one (see the module docs)."""

    def evaluate(self, ctx: EvaluatorContext) -> EvaluatorOutput:
        expected = ctx.expected_output
        if expected not in TRIAGE_LEVELS:
            return None
        got = _level(ctx.output)
        rank = {level: i for i, level in enumerate(TRIAGE_LEVELS)}
        got_rank = rank.get(got or "", len(TRIAGE_LEVELS))  # no level at all counts as under
        metrics: dict[str, float | str] = {
            "accuracy": float(got == expected),
            "under_triage": float(got_rank > rank[expected]),
            "over_triage": float(got_rank < rank[expected]),
        }
        if expected == "emergency":
            metrics["emergency_recall"] = float(got == "emergency")
        if "holdout" in ctx.tags:
            metrics.update({f"holdout_{k}": v for k, v in metrics.items()})
        metrics["confusion"] = f"{expected}->{got}"
        return metrics

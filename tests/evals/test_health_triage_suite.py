"""The shipped ``health-triage`` suite and its :class:`TriageLevel` metrics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from weft.evals import Case
from weft.evals._evaluator import EvaluatorContext
from weft.evals.suite import find_suite
from weft.evals.testing import assert_suite_passes
from weft.evals.triage import TriageLevel


def _judge(expected: str, got: str, tags: list[str] | None = None) -> dict[str, object]:
    ctx = EvaluatorContext(
        Case(inputs="x", expected_output=expected, tags=tags or []), {"triage": got}
    )
    result = TriageLevel().evaluate(ctx)
    assert isinstance(result, dict)
    return result


def test_under_and_over_triage_follow_the_order_of_the_levels() -> None:
    assert _judge("emergency", "non_emergency")["under_triage"] == 1.0
    assert _judge("non_emergency", "self_care")["under_triage"] == 1.0
    assert _judge("self_care", "non_emergency")["over_triage"] == 1.0
    right = _judge("emergency", "emergency", ["holdout"])
    assert right["accuracy"] == right["emergency_recall"] == right["holdout_accuracy"] == 1.0
    assert right["confusion"] == "emergency->emergency"
    assert "emergency_recall" not in _judge("self_care", "self_care")


def test_health_triage_dataset_is_balanced_bilingual_with_a_holdout() -> None:
    cases = find_suite("health-triage").load_dataset().cases
    levels = Counter(str(c.expected_output) for c in cases)
    assert len(cases) >= 60 and set(levels) == {"emergency", "non_emergency", "self_care"}
    assert max(levels.values()) - min(levels.values()) <= 3
    assert sum("zh" in c.tags for c in cases) >= 10
    assert sum("holdout" in c.tags for c in cases) >= 20


def test_health_triage_suite_meets_its_gates(tmp_path: Path) -> None:
    result = assert_suite_passes("health-triage", data_dir=tmp_path, out=tmp_path, cache=False)
    m = result.metrics()
    assert m["emergency_recall"] == 1.0
    assert m["under_triage"] <= 0.05 and m["accuracy"] >= 0.8
    assert m["holdout_emergency_recall"] == 1.0
    assert "holdout_accuracy" in m and "over_triage" in m
    confusion = result.summary[result.variants[0]].labels["confusion"]
    assert sum(confusion.values()) == len(result.cases)
    assert "confusion matrix" in (tmp_path / "report.html").read_text(encoding="utf-8")

"""The records a suite run produces, as written to ``results.json`` and read back by the gate.

An :class:`EvalResult` holds one :class:`CaseResult` per (variant, case, repeat), a
:class:`VariantSummary` per variant (metric means, latency percentiles, tokens and cost), the
threshold checks, and, when run against a baseline, the :class:`Comparison`.

Flat metric names: in a suite with one variant a metric is named as its evaluator names it
(``recall@5``); with several variants it is ``variant/metric`` (``hybrid/recall@5``).

Example:
    >>> result = EvalResult.load("results.json")  # doctest: +SKIP
    >>> result.metrics()["recall@5"]  # doctest: +SKIP
    0.9
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from weft.evals.dataset import DatasetError

__all__ = [
    "LOWER_IS_BETTER",
    "CaseResult",
    "Comparison",
    "EvalResult",
    "MetricDelta",
    "ResultFileError",
    "SourceInfo",
    "ThresholdCheck",
    "Usage",
    "VariantSummary",
    "compare",
    "lower_is_better",
]

LOWER_IS_BETTER = ("error_rate", "latency_p50_ms", "latency_p95_ms", "tokens_per_case", "cost_usd")
"""Built-in metrics where a smaller value is better; every other metric is better higher."""

INFORMATIONAL = ("latency_p50_ms", "latency_p95_ms", "tokens_per_case", "cost_usd")
"""Metrics shown and thresholdable but never counted as regressions against a baseline: they
vary from run to run for reasons that are not the graph's quality."""


def lower_is_better(metric: str) -> bool:
    """Whether smaller is better for ``metric`` (a flat name, ``variant/`` prefix allowed)."""
    return metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER


class ResultFileError(DatasetError):
    """A results file is missing or is not a weft eval result."""


class Usage(BaseModel):
    """Tokens and cost of one case's run, from the usage callbacks."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    estimated: bool = False


class SourceInfo(BaseModel):
    """A retrieved source, in the order the graph ranked it."""

    id: str
    index: int | None = None
    title: str | None = None
    source: str | None = None
    text: str = ""
    score: float | None = None


class CaseResult(BaseModel):
    """One run of one case: what went in and out, and what each evaluator made of it."""

    case: str
    variant: str
    repeat: int = 0
    inputs: Any = None
    expected_output: Any = None
    expected_sources: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    output: Any = None
    answer: str = ""
    sources: list[SourceInfo] = Field(default_factory=list)
    error: str | None = None
    latency_ms: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    scores: dict[str, float] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    assertions: dict[str, bool] = Field(default_factory=dict)
    reasons: dict[str, str] = Field(default_factory=dict)
    cached: bool = False

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.variant, self.case, self.repeat)

    def value(self, metric: str) -> float | None:
        """The case's number for ``metric``: its score, 1.0 or 0.0 for an assertion, 0.0 when
        the case errored; None when the metric did not judge this case."""
        if self.error is not None:
            return 0.0
        if metric in self.scores:
            return self.scores[metric]
        if metric in self.assertions:
            return 1.0 if self.assertions[metric] else 0.0
        return None

    @property
    def passed(self) -> bool:
        """No error, and every assertion held."""
        return self.error is None and all(self.assertions.values())

    @property
    def failures(self) -> list[str]:
        """One line per failed assertion (with its reason), or the error."""
        if self.error is not None:
            return [f"error: {self.error}"]
        out = []
        for name, ok in self.assertions.items():
            if not ok:
                reason = self.reasons.get(name)
                out.append(f"{name}: {reason}" if reason else name)
        return out


class VariantSummary(BaseModel):
    """Aggregates over one variant's case results."""

    variant: str
    graph: str
    cases: int
    errors: int
    passed: int
    metrics: dict[str, float] = Field(default_factory=dict)
    labels: dict[str, dict[str, int]] = Field(default_factory=dict)


class ThresholdCheck(BaseModel):
    """A pass threshold on a flat metric and whether the run met it."""

    metric: str
    op: Literal[">=", "<="]
    value: float
    actual: float | None
    passed: bool

    def describe(self) -> str:
        got = "missing" if self.actual is None else f"{self.actual:.4g}"
        return f"{self.metric} {self.op} {self.value:g} (got {got})"


class MetricDelta(BaseModel):
    """A metric in a baseline run and in this one."""

    metric: str
    baseline: float | None
    current: float | None
    regressed: bool = False

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


class Comparison(BaseModel):
    """This run against a baseline: metric deltas, and cases whose pass/fail flipped."""

    baseline_suite: str
    baseline_started_at: str
    metrics: list[MetricDelta]
    newly_failing: list[str] = Field(default_factory=list)
    newly_passing: list[str] = Field(default_factory=list)
    tolerance: float = 0.0

    @property
    def regressions(self) -> list[str]:
        """Human-readable lines, one per regressed metric or newly failing case."""
        out = [
            f"{d.metric} fell from {d.baseline:.4g} to {d.current:.4g}"
            if d.current is not None and d.baseline is not None
            else f"{d.metric} is missing from this run"
            for d in self.metrics
            if d.regressed
        ]
        out += [f"case {c} passed in the baseline and fails now" for c in self.newly_failing]
        return out


class EvalResult(BaseModel):
    """Everything one suite run produced; ``results.json`` is this model as JSON."""

    suite: str
    description: str = ""
    dataset: str = ""
    graphs: dict[str, str] = Field(default_factory=dict, description="variant -> graph ref")
    versions: dict[str, str] = Field(default_factory=dict, description="variant -> version")
    started_at: str = ""
    duration_s: float = 0.0
    weft_version: str = ""
    cases: list[CaseResult] = Field(default_factory=list)
    summary: dict[str, VariantSummary] = Field(default_factory=dict)
    thresholds: list[ThresholdCheck] = Field(default_factory=list)
    comparison: Comparison | None = None

    @property
    def variants(self) -> list[str]:
        return list(self.summary)

    def metrics(self) -> dict[str, float]:
        """Every metric under its flat name (``metric``, or ``variant/metric`` for several)."""
        several = len(self.summary) > 1
        return {
            (f"{v}/{m}" if several else m): value
            for v, s in self.summary.items()
            for m, value in s.metrics.items()
        }

    @property
    def failed_thresholds(self) -> list[ThresholdCheck]:
        return [t for t in self.thresholds if not t.passed]

    @property
    def regressions(self) -> list[str]:
        return self.comparison.regressions if self.comparison else []

    @property
    def passed(self) -> bool:
        """Every threshold met and no regression against the baseline."""
        return not self.failed_thresholds and not self.regressions

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        """Read a ``results.json``.

        Raises:
            ResultFileError: the file is missing, not JSON, or not an eval result.
        """
        p = Path(path)
        if not p.is_file():
            raise ResultFileError(f"result file {p} does not exist")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            return cls.model_validate(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ResultFileError(
                f"{p} is not JSON; pass a results.json from weft eval run"
            ) from None
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ResultFileError(
                f"{p} is not a weft eval result ({loc}: {err['msg']}); pass a results.json "
                f"written by weft eval run"
            ) from None


def compare(current: EvalResult, baseline: EvalResult, *, tolerance: float = 0.0) -> Comparison:
    """Compare two runs: every flat metric's change, and cases whose pass/fail flipped.

    A metric regresses when it got worse by more than ``tolerance`` (smaller, or larger for
    error rates), or is missing from ``current``. Latency, tokens and cost are shown but never
    regress: see :data:`INFORMATIONAL`.

    Example:
        >>> compare(EvalResult.load("new.json"), EvalResult.load("old.json"))  # doctest: +SKIP
    """
    now, before = current.metrics(), baseline.metrics()
    deltas = []
    for metric in sorted(set(now) | set(before)):
        base, cur = before.get(metric), now.get(metric)
        regressed = False
        if base is not None and metric.rsplit("/", 1)[-1] not in INFORMATIONAL:
            if cur is None:
                regressed = True
            else:
                change = base - cur if not lower_is_better(metric) else cur - base
                regressed = change > tolerance
        deltas.append(MetricDelta(metric=metric, baseline=base, current=cur, regressed=regressed))
    old = {c.key: c.passed for c in baseline.cases}
    failing, passing = [], []
    for case in current.cases:
        was = old.get(case.key)
        label = _case_label(case, current)
        if was is True and not case.passed:
            failing.append(label)
        elif was is False and case.passed:
            passing.append(label)
    return Comparison(
        baseline_suite=baseline.suite,
        baseline_started_at=baseline.started_at,
        metrics=deltas,
        newly_failing=failing,
        newly_passing=passing,
        tolerance=tolerance,
    )


def _case_label(case: CaseResult, result: EvalResult) -> str:
    label = f"{case.variant}/{case.case}" if len(result.summary) > 1 else case.case
    return f"{label}#{case.repeat + 1}" if case.repeat else label

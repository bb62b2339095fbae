"""Evals: datasets, evaluators (metrics), the suite runner, reports and the regression gate.

Build a :class:`Suite` in Python or load one from YAML, run it with :func:`run_suite`, write
``results.json``, ``report.html`` and ``junit.xml`` with :func:`write_reports`, and compare two
runs with :func:`compare`. ``weft eval run|list|compare`` does the same from the command line;
:func:`assert_suite_passes` runs a suite inside a pytest test. See ``docs/evals.md``.

Example:
    >>> from weft.evals import Case, Contains, Dataset, Suite, run_suite
    >>> suite = Suite(
    ...     name="demo",
    ...     graph="weft.graphs.demo:build_demo_graph",
    ...     dataset=Dataset(cases=[Case(inputs="What does compile check?",
    ...                                 expected_output="every edge")]),
    ...     evaluators=[Contains()],
    ...     thresholds={"contains": 1.0},
    ... )
    >>> run_suite(suite, cache=False).passed  # doctest: +SKIP
    True
"""

from weft.evals.dataset import Case, Dataset, DatasetError, load_beir, load_dataset
from weft.evals.evaluators import (
    MRR,
    AnswerSupported,
    CitationsGrounded,
    Contains,
    EvaluationReason,
    Evaluator,
    EvaluatorContext,
    ExactMatch,
    FieldMatch,
    HitAtK,
    JsonSchemaValid,
    NDCGAtK,
    PrecisionAtK,
    RecallAtK,
    Refusal,
    Regex,
)
from weft.evals.report import html_report, junit_xml, write_reports
from weft.evals.results import CaseResult, EvalResult, compare
from weft.evals.runner import arun_suite, run_suite
from weft.evals.suite import Suite, SuiteError, find_suite, load_suite, shipped_suites
from weft.evals.testing import assert_suite_passes

__all__ = [
    "MRR",
    "AnswerSupported",
    "Case",
    "CaseResult",
    "CitationsGrounded",
    "Contains",
    "Dataset",
    "DatasetError",
    "EvalResult",
    "EvaluationReason",
    "Evaluator",
    "EvaluatorContext",
    "ExactMatch",
    "FieldMatch",
    "HitAtK",
    "JsonSchemaValid",
    "NDCGAtK",
    "PrecisionAtK",
    "RecallAtK",
    "Refusal",
    "Regex",
    "Suite",
    "SuiteError",
    "arun_suite",
    "assert_suite_passes",
    "compare",
    "find_suite",
    "html_report",
    "junit_xml",
    "load_beir",
    "load_dataset",
    "load_suite",
    "run_suite",
    "shipped_suites",
    "write_reports",
]

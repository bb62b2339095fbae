"""Run an eval suite as a pytest test.

:func:`assert_suite_passes` runs a suite (a path, a shipped suite's name, or a :class:`Suite`)
and raises ``AssertionError`` with the summary table, the failing cases and the missed
thresholds when it does not pass. Pass ``out=`` to keep the reports (``report.html`` is the
place to look when it fails in CI).

Example:
    >>> def test_rag_chat_suite(tmp_path):  # in your tests
    ...     assert_suite_passes("rag-chat", data_dir=tmp_path)
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from weft.core.settings import Settings, get_settings
from weft.evals.report import print_summary, write_reports
from weft.evals.results import EvalResult
from weft.evals.runner import run_suite
from weft.evals.suite import Suite, find_suite

__all__ = ["assert_suite_passes"]


def assert_suite_passes(
    suite: Suite | str | Path,
    *,
    data_dir: str | Path | None = None,
    settings: Settings | None = None,
    baseline: str | Path | EvalResult | None = None,
    out: str | Path | None = None,
    **run_kwargs: Any,
) -> EvalResult:
    """Run ``suite`` and fail the test unless every threshold holds and nothing regressed.

    Args:
        suite: a :class:`Suite`, a suite file, or a shipped suite's name.
        data_dir: the data dir to run against (e.g. pytest's ``tmp_path``); overrides
            ``settings.data_dir``.
        baseline: a previous ``results.json`` (or result) to compare with.
        out: write ``results.json``, ``report.html`` and ``junit.xml`` here.
        run_kwargs: passed to :func:`~weft.evals.runner.run_suite` (``cache``, ``concurrency``...).

    Returns:
        The result, for further assertions.
    """
    s = suite if isinstance(suite, Suite) else find_suite(suite)
    if settings is None:
        settings = get_settings(data_dir=data_dir)
    elif data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(data_dir)})
    if baseline is not None and not isinstance(baseline, EvalResult):
        baseline = EvalResult.load(baseline)
    result = run_suite(s, settings=settings, baseline=baseline, **run_kwargs)
    if out is not None:
        write_reports(result, out)
    if not result.passed:
        text = io.StringIO()
        print_summary(result, text)
        raise AssertionError(f"eval suite {s.name!r} did not pass\n{text.getvalue()}")
    return result

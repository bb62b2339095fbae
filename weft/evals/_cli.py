"""The `weft` commands of this package; `weft/cli.py` calls :func:`add_commands`.

``weft eval run SUITE``, ``weft eval list`` and ``weft eval compare A.json B.json``. Exit codes:
0 passed, 1 a threshold missed or a regression against the baseline, 2 bad input (a missing
or unreadable suite, dataset or result file, a malformed option, an ``--out`` that cannot be a
folder, a ``--fail-under`` metric the suite does not report), reported in one line without a
traceback. Options are checked before the suite runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from weft.evals.suite import Suite

__all__ = ["add_commands"]

_RUN_EPILOG = """\
exit status: 0 when every threshold holds and nothing regressed, 1 otherwise, 2 on bad input.

examples:
  weft eval run rag-chat
  weft eval run hybrid-retrieval --out eval-out --fail-under hybrid/recall@5=0.9
  weft eval run my_suite.yaml --baseline eval-out/results.json
"""


class _BadInput(Exception):
    pass


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"want a whole number of at least 1, got {text!r}")
    return value


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"want a number of at least 0, got {text!r}")
    return value


def _fail_under(items: list[str], suite: Suite) -> dict[str, str]:
    """Thresholds from ``--fail-under`` options, each checked against what ``suite`` reports."""
    out = {}
    for item in items:
        metric, sep, value = item.partition("=")
        try:
            float(value)
        except ValueError:
            sep = ""
        if not sep or not metric.strip():
            raise _BadInput(
                f"--fail-under {item!r}: want METRIC=VALUE, e.g. --fail-under recall@5=0.8"
            )
        suite.check_metric(metric.strip(), where=f"--fail-under {item!r}")
        out[metric.strip()] = f">= {value.strip()}"
    return out


def _check_out_dir(out_dir: Path, label: str) -> None:
    """Fail before the run when the reports could not be written into ``out_dir``."""
    what = f"{label} {out_dir}"
    fix = "pass --out with a folder for results.json, report.html and junit.xml"
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir():
            raise _BadInput(f"{what} is a file, not a folder; {fix}")
        existing = out_dir
    else:
        existing = next(p for p in out_dir.absolute().parents if p.exists())
        if not existing.is_dir():
            raise _BadInput(f"{what} cannot be created: {existing} is a file; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _BadInput(f"{what} cannot be written: {existing} is not writable; {fix}")


def _write_reports(result: Any, out_dir: Path) -> dict[str, Path]:
    """Write the reports into a scratch folder first, so a failed write replaces none of the
    previous ones."""
    from weft.evals.report import write_reports

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".reports-") as scratch:
            paths = {k: out_dir / p.name for k, p in write_reports(result, scratch).items()}
            for path in paths.values():
                os.replace(Path(scratch) / path.name, path)
    except OSError as exc:
        raise _BadInput(
            f"cannot write the reports into {out_dir} ({exc.strerror or exc})"
        ) from None
    return paths


def _settings(args: argparse.Namespace) -> Any:
    from weft.core.settings import get_settings

    return get_settings(data_dir=args.data_dir)


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from weft.evals.report import print_summary
    from weft.evals.results import EvalResult
    from weft.evals.runner import run_suite
    from weft.evals.suite import find_suite

    suite = find_suite(args.suite)
    suite.thresholds = {**suite.thresholds, **_fail_under(args.fail_under, suite)}
    suite.dataset = suite.load_dataset()  # read now: a bad dataset stops before anything runs
    if not suite.dataset.cases:
        raise _BadInput(f"suite {suite.name!r}: its dataset has no cases; add some to it")
    baseline = EvalResult.load(args.baseline) if args.baseline else None
    settings = _settings(args)
    out_dir = Path(args.out) if args.out else settings.data_dir / "evals" / suite.name
    _check_out_dir(out_dir, "--out" if args.out else "the report folder")
    progress = sys.stderr.isatty() and not args.no_progress
    result = run_suite(
        suite,
        settings=settings,
        cache=not args.no_cache,
        concurrency=args.concurrency,
        repeats=args.repeats,
        progress=progress,
        baseline=baseline,
        tolerance=args.tolerance,
    )
    paths = _write_reports(result, out_dir)
    print_summary(result, out)
    out.write(f"wrote {paths['json']}, {paths['html'].name} and {paths['junit'].name}\n")
    return 0 if result.passed else 1


def _list(args: argparse.Namespace, out: TextIO) -> int:
    from weft.evals.suite import load_suite, shipped_suites

    for name, path in shipped_suites().items():
        suite = load_suite(path)
        graphs = ", ".join(str(v) for v in suite.variants())
        out.write(f"{name:<18} {suite.description}\n{'':<18} graphs: {graphs}\n")
    return 0


def _compare(args: argparse.Namespace, out: TextIO) -> int:
    from weft.evals.report import print_comparison
    from weft.evals.results import EvalResult, compare

    a, b = EvalResult.load(args.a), EvalResult.load(args.b)
    if a.suite != b.suite and not args.force:
        raise _BadInput(
            f"{args.a} is a run of suite {a.suite!r} and {args.b} of suite {b.suite!r}; their "
            "metrics do not compare. Compare runs of one suite, or pass --force to compare anyway"
        )
    out.write(
        f"A = {args.a} ({a.suite}, {a.started_at})\nB = {args.b} ({b.suite}, {b.started_at})\n"
    )
    comparison = compare(b, a, tolerance=args.tolerance)
    print_comparison(comparison, out)
    return 1 if comparison.regressions else 0


def _guarded(handler: Any) -> Any:
    def run(args: argparse.Namespace, out: TextIO) -> int:
        from weft.core.errors import WeftError

        try:
            code: int = handler(args, out)
        except (_BadInput, WeftError) as exc:
            sys.stderr.write(f"weft eval: error: {exc}\n")
            return 2
        return code

    return run


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the knowledge base, the output cache and default reports live "
        "(default: WEFT_DATA_DIR or .weft)",
    )


def add_commands(subparsers: Any) -> None:
    """Add this package's commands to the CLI's subparsers."""
    ev = subparsers.add_parser(
        "eval",
        help="run eval suites, list the shipped ones, compare two runs",
        description="Run eval suites over graphs, list the shipped suites, compare two runs.",
    )
    sub = ev.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    ev.set_defaults(handler=lambda args, out: (ev.print_help(out), 2)[1])

    run = sub.add_parser(
        "run",
        help="run a suite; write results.json, report.html and junit.xml",
        description=(
            "Run an eval suite: every case through the suite's graph(s), scored by its "
            "evaluators. Writes results.json, report.html and junit.xml into --out, prints a "
            "summary, and exits non-zero when a threshold is missed or a metric regressed "
            "against --baseline. Graph outputs are cached in the data dir, so a re-run is "
            "cheap and an interrupted run resumes where it stopped."
        ),
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("suite", metavar="SUITE", help="a suite YAML file, or a shipped suite's name")
    run.add_argument("--out", metavar="DIR", help="default: DATA_DIR/evals/SUITE")
    run.add_argument(
        "--baseline", metavar="RESULT.json", help="a previous results.json; fail on regressions"
    )
    run.add_argument(
        "--fail-under",
        metavar="METRIC=VALUE",
        action="append",
        default=[],
        help="fail when METRIC is below VALUE (repeatable; 'variant/metric' for one variant)",
    )
    run.add_argument(
        "--tolerance",
        type=_tolerance,
        default=0.0,
        help="how much a metric may fall below the baseline before it counts (default: 0)",
    )
    run.add_argument("--concurrency", type=_positive, metavar="N", help="cases run at once")
    run.add_argument(
        "--repeats", type=_positive, metavar="N", help="runs per case, for flaky models"
    )
    run.add_argument("--no-cache", action="store_true", help="run every case afresh")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _data_dir(run)
    run.set_defaults(handler=_guarded(_run))

    ls = sub.add_parser(
        "list",
        help="list the shipped suites",
        description="List the suites that ship with weft; run one with weft eval run NAME.",
    )
    _data_dir(ls)
    ls.set_defaults(handler=_guarded(_list))

    cmp = sub.add_parser(
        "compare",
        help="print per-metric deltas between two results.json files",
        description="Print each metric of A (the baseline) and B, and the change from A to B.",
    )
    cmp.add_argument("a", metavar="A.json", help="the baseline results.json")
    cmp.add_argument("b", metavar="B.json", help="the results.json to compare with it")
    cmp.add_argument("--tolerance", type=_tolerance, default=0.0, help="allowed drop (default: 0)")
    cmp.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="accepted for older scripts: compare always exits 1 when B regressed against A",
    )
    cmp.add_argument(
        "--force", action="store_true", help="compare runs of two different suites anyway"
    )
    _data_dir(cmp)
    cmp.set_defaults(handler=_guarded(_compare))

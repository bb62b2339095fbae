"""``weft resume analyze`` and ``weft resume index``; ``weft/cli.py`` calls :func:`add_commands`.

``analyze --json`` prints one JSON object per file and line, in the order given
(:meth:`~weft.graphs.resume.profile.ResumeAnalysis.to_json`). A file that cannot be read is
named on stderr with the reason and the others go on; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any, TextIO

from weft.core.errors import WeftError
from weft.graphs._cli import number_within as _within

__all__ = ["add_commands"]

_DATA_DIR_HELP = "where the job index is kept (default: $WEFT_DATA_DIR or ./.weft)"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write YYYY-MM-DD") from exc


def _index(args: argparse.Namespace) -> Any:
    from weft.core.settings import get_settings
    from weft.graphs.resume.jobs import JobIndex

    return JobIndex(args.jobs, data_dir=get_settings(data_dir=args.data_dir).data_dir)


def _index_command(args: argparse.Namespace, out: TextIO) -> int:
    index = _index(args)
    built = index.refresh(force=args.force)
    ads = index.ads
    verb = "built" if built else "up to date"
    out.write(f"job index of {index.folder}: {verb}, {len(ads)} ads\n")
    for name, reason in index.skipped:
        print(f"  skipped {name}: {reason}", file=sys.stderr)
    return 0


def _summary(result: Any, *, jobs: bool) -> str:
    p = result.profile
    lines = [f"{result.source}: {p.name or '(no name)'}, {result.years_experience:g} years"]
    if p.location:
        lines[0] += f", {p.location}"
    lines.append(f"  skills: {', '.join(p.skills) or '(none found)'}")
    for gap in result.gaps:
        lines.append(f"  gap: {gap.start} to {gap.end} ({gap.months} months)")
    if not jobs:
        lines.append("  no job ads to match it against (pass --jobs DIR)")
    elif not result.matches:
        lines.append("  no job matches well enough")
    for n, m in enumerate(result.matches, start=1):
        lines.append(f"  {n}. {m.title} ({m.job}), score {m.score:.2f}")
        lines.append(f"     {m.explanation}")
    return "\n".join(lines) + "\n"


def _analyze(args: argparse.Namespace, out: TextIO) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from weft.core.settings import get_settings
    from weft.graphs._model import configured_model
    from weft.graphs.resume.graph import analyze_many, build_resume_graph

    index = _index(args) if args.jobs else None
    if index is not None:
        index.refresh()
    graph = build_resume_graph(index, model=configured_model(get_settings(data_dir=args.data_dir)))
    options: dict[str, Any] = {"top_k": args.top_k, "as_of": args.as_of}
    if args.location:
        options["location"] = args.location
    if args.min_score is not None:
        options["min_score"] = args.min_score
    show = len(args.files) > 1 and not args.no_progress
    progress = Progress(
        TextColumn("analysing resumes"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        disable=not show,
        transient=True,
    )
    with progress:
        task = progress.add_task("resumes", total=len(args.files))
        results = analyze_many(
            graph,
            args.files,
            concurrency=args.concurrency,
            on_done=lambda _file, _result: progress.advance(task),
            **options,
        )
    failed = 0
    for result in results:
        if isinstance(result, Exception):
            failed += 1
            cause = result.__cause__ if isinstance(result.__cause__, WeftError) else result
            print(f"weft resume analyze: error: {' '.join(str(cause).split())}", file=sys.stderr)
        elif args.json:
            out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        else:
            out.write(_summary(result, jobs=index is not None))
    return 1 if failed else 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``weft resume analyze`` and ``weft resume index``."""
    resume = sub.add_parser(
        "resume",
        help="analyse resumes and match them to job ads",
        description="Read resumes into typed profiles and match them against a folder of job ads.",
    )
    commands = resume.add_subparsers(dest="resume_command", metavar="COMMAND", required=True)
    analyze = commands.add_parser(
        "analyze",
        help="analyse resume files (PDF, DOCX, TXT, MD) and match them to job ads",
        description=(
            "Analyse resumes offline: contact details, experience, education, skills mapped "
            "onto the bundled taxonomy, years of experience and gaps; with --jobs, the best "
            "matching ads, each explained. The job index is built or refreshed as needed. "
            "With OPENAI_API_KEY or OPENAI_BASE_URL set, the model (WEFT_MODEL) reads the "
            "profile and writes the explanations; when it fails, the rules and templates do."
        ),
    )
    analyze.add_argument("files", nargs="+", metavar="FILE", help="resume files")
    analyze.add_argument("--jobs", metavar="DIR", help="folder of job ads (.md, .txt, .json)")
    analyze.add_argument(
        "--top-k", type=_within(1, 50, whole=True), default=3, help="matches per resume (default 3)"
    )
    analyze.add_argument("--json", action="store_true", help="one JSON object per file and line")
    analyze.add_argument(
        "--as-of",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="the date 'present' stands for (default: today)",
    )
    analyze.add_argument("--location", help="only ads in this place (or remote)")
    analyze.add_argument(
        "--min-score", type=_within(0, 1), default=None, help="the no-match threshold, 0 to 1"
    )
    analyze.add_argument(
        "--concurrency",
        type=_within(1, 64, whole=True),
        default=4,
        help="resumes analysed at once (default 4)",
    )
    analyze.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    analyze.add_argument("--data-dir", help=_DATA_DIR_HELP)
    analyze.set_defaults(handler=_analyze)
    index = commands.add_parser(
        "index",
        help="build the job index of a folder of job ads",
        description="Parse a folder of job ads (.md, .txt, .json) and index them for matching.",
    )
    index.add_argument("jobs", metavar="DIR", help="folder of job ads")
    index.add_argument("--force", action="store_true", help="rebuild even if up to date")
    index.add_argument("--data-dir", help=_DATA_DIR_HELP)
    index.set_defaults(handler=_index_command)

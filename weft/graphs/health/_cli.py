"""``weft health triage|consult`` and ``weft saga list|show|recover``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

import pydantic

from weft.graphs._cli import number_within

__all__ = ["add_commands"]

_DATA_DIR_HELP = "where consultations and sagas are kept (default: $WEFT_DATA_DIR or ./.weft)"
_LEVEL_TEXT = {
    "en": {"emergency": "EMERGENCY", "non_emergency": "SEE A DOCTOR", "self_care": "SELF-CARE"},
    "zh": {"emergency": "紧急", "non_emergency": "需要就医", "self_care": "居家护理"},
}


def _input(args: argparse.Namespace, command: str) -> Any:
    from weft.graphs.health.triage import HealthInput

    try:
        return HealthInput(text=args.text, age=args.age, sex=getattr(args, "sex", None))
    except pydantic.ValidationError as exc:
        reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        print(f"weft health {command}: error: {reason}", file=sys.stderr)
        return None


def print_triage(triage: Any, out: TextIO) -> None:
    """The triage as a person reads it: the level first, then what to do, then why."""
    level = _LEVEL_TEXT[triage.language][triage.triage]
    out.write(f"[{level}] {triage.instruction}\n")
    for reason in triage.reasons:
        out.write(f"  - {reason}\n")
    out.write(f"{triage.disclaimer}\n")


def _triage(args: argparse.Namespace, out: TextIO) -> int:
    from weft.graphs.health.graph import health_model
    from weft.graphs.health.triage import Triager

    data = _input(args, "triage")
    if data is None:
        return 2
    result = Triager(model=health_model()).assess(data)
    if args.json:
        keys = ("triage", "red_flags", "reasons", "instruction", "language", "values")
        body = {k: getattr(result, k) for k in keys} | {"disclaimer": result.disclaimer}
        out.write(json.dumps(body, ensure_ascii=False) + "\n")
    else:
        print_triage(result, out)
    return 0


def _add_input(parser: argparse.ArgumentParser, *, sex: bool) -> None:
    parser.add_argument("text", help="the symptoms in your own words (English or Chinese)")
    parser.add_argument("--age", type=number_within(0, 130), help="age in years, 0 to 130")
    if sex:
        parser.add_argument("--sex", choices=("F", "M"), help="sex: F or M")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--data-dir", help=_DATA_DIR_HELP)


def add_commands(subparsers: Any) -> None:
    """Add ``health`` (``triage``, ``consult``) and ``saga`` to the CLI's subparsers."""
    health = subparsers.add_parser(
        "health",
        help="health triage and consultation, offline by default",
        description=(
            "Triage symptoms into emergency, non_emergency or self_care by reviewed red-flag "
            "rules, and run a consultation. Not a diagnosis."
        ),
    )
    sub = health.add_subparsers(dest="health_command", metavar="SUBCOMMAND", required=True)
    triage = sub.add_parser(
        "triage",
        help="triage a description of symptoms",
        description=(
            "Print the triage level (emergency, non_emergency, self_care), what to do now in "
            "the language of the text, the red flags found and the reasons. With --json, one "
            'object: {"triage", "red_flags", "reasons", "instruction", "language", "values", '
            '"disclaimer"}.'
        ),
    )
    _add_input(triage, sex=True)
    triage.set_defaults(handler=_triage)
    consult = sub.add_parser(
        "consult",
        help="run a consultation: triage, then specialists and a report in a saga",
        description=(
            "Triage first and print the level and what to do now; an emergency stops there. "
            "Otherwise run the consultation saga (record, specialists, report, notification, "
            "health record) and print the report and the saga's steps. With --json, the whole "
            'result as one object, with "saga": {"id", "status", "steps", "error"}.'
        ),
    )
    _add_input(consult, sex=True)
    consult.set_defaults(handler=_consult)
    add_saga_commands(subparsers)


def _parts(args: argparse.Namespace) -> Any:
    from weft.core.settings import get_settings
    from weft.graphs.health._postgres import configured_parts
    from weft.graphs.health.graph import HealthConsultation

    settings = get_settings(data_dir=args.data_dir)
    return HealthConsultation(settings.data_dir, **configured_parts(settings))


def _consult(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio

    from weft.core.settings import get_settings
    from weft.graphs.health._postgres import configured_parts
    from weft.graphs.health.graph import build_health_graph

    data = _input(args, "consult")
    if data is None:
        return 2
    settings = get_settings(data_dir=args.data_dir)
    graph = build_health_graph(settings.data_dir, **configured_parts(settings))
    return asyncio.run(_stream_consult(graph, data, args.json, out))


async def _stream_consult(graph: Any, data: Any, as_json: bool, out: TextIO) -> int:
    from weft.core.stream import FinalOutput, NodeFinished

    result = None
    async for event in graph.aevents(data):
        if isinstance(event, NodeFinished) and event.path == ("triage",) and not as_json:
            print_triage(event.output.triage, out)  # the level and what to do, first
            out.flush()
        elif isinstance(event, FinalOutput):
            result = event.output
    if result is None:  # the stream always ends with the output; this keeps that explicit
        raise RuntimeError("the health graph ended without an output")
    if as_json:
        out.write(result.model_dump_json() + "\n")
        return 0
    if result.saga is not None:
        out.write(f"\n{result.report or ''}\n" if result.report else "\n")
        for name, why in result.missing.items():
            out.write(f"missing analysis: {name} ({why})\n")
        saga = result.saga
        steps = ", ".join(f"{s['name']}={s['status']}" for s in saga["steps"])
        out.write(f"saga {saga['id']}: {saga['status']} ({steps})\n")
    return 0


def _saga_log(args: argparse.Namespace) -> Any:
    from weft.core.settings import get_settings
    from weft.graphs._saga_postgres import open_saga_log

    return open_saga_log(get_settings(data_dir=args.data_dir))


def _saga_list(args: argparse.Namespace, out: TextIO) -> int:
    log = _saga_log(args)
    records = log.list(tuple(args.status or ()))
    if args.json:
        out.write(json.dumps([r.to_dict() for r in records], ensure_ascii=False) + "\n")
        return 0
    if not records:
        out.write("no sagas\n")
    for r in records:
        current = r.steps[r.step].name if r.steps else "-"
        out.write(f"{r.id}  {r.name}  {r.status}  step {r.step + 1} {current}\n")
        if r.status == "failed" and r.error:
            out.write(f"    {r.error}\n")
    return 0


def _saga_show(args: argparse.Namespace, out: TextIO) -> int:
    from weft.graphs.saga import SagaError

    log = _saga_log(args)
    try:
        record = log.get(args.id)
    except SagaError as exc:
        print(f"weft saga show: error: {exc}", file=sys.stderr)
        return 2
    out.write(json.dumps(record.to_dict(), ensure_ascii=False, indent=2) + "\n")
    return 0


def _saga_recover(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio

    from weft.graphs.saga import arecover

    parts = _parts(args)
    done = asyncio.run(arecover(parts.log, parts.sagas(), force=args.force))
    if not done:
        out.write("no saga to recover\n")
    for record in done:
        out.write(f"{record.id} {record.status}\n")
    return 0


def add_saga_commands(subparsers: Any) -> None:
    saga = subparsers.add_parser(
        "saga",
        help="list, show and recover consultation sagas",
        description=(
            "The saga log (DATA_DIR/sagas.sqlite, or PostgreSQL when WEFT_DATABASE_URL is "
            "set): list the sagas (failed ones name the "
            "compensations an operator must finish), show one as JSON, or recover those a "
            "crash left running or compensating."
        ),
    )
    sub = saga.add_subparsers(dest="saga_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="list the sagas, newest first")
    listing.add_argument(
        "--status",
        action="append",
        choices=("running", "completed", "compensating", "compensated", "failed"),
        help="only sagas with this status (repeatable)",
    )
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=_saga_list)
    show = sub.add_parser("show", help="print one saga as JSON")
    show.add_argument("id", help="the saga's id (from weft saga list)")
    show.set_defaults(handler=_saga_show)
    recover = sub.add_parser(
        "recover", help="finish or compensate every saga a crash left running or compensating"
    )
    recover.add_argument(
        "--force",
        action="store_true",
        help="also take sagas whose process still looks alive, or ran on another host",
    )
    recover.set_defaults(handler=_saga_recover)
    for command in (listing, show, recover):
        command.add_argument("--data-dir", help=_DATA_DIR_HELP)

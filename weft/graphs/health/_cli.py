"""``weft health triage|consult`` and ``weft saga list|show|recover``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

import pydantic

__all__ = ["add_commands", "health_model"]

_DATA_DIR_HELP = "where consultations and sagas are kept (default: $WEFT_DATA_DIR or ./.weft)"
_LEVEL_TEXT = {
    "en": {"emergency": "EMERGENCY", "non_emergency": "SEE A DOCTOR", "self_care": "SELF-CARE"},
    "zh": {"emergency": "紧急", "non_emergency": "需要就医", "self_care": "居家护理"},
}


def health_model(settings: Any = None) -> Any:
    """The chat model triage and the specialists use: a remote one when ``OPENAI_API_KEY`` or
    ``OPENAI_BASE_URL`` is set, else None (offline)."""
    if not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")):
        return None
    from weft.components.models import openai_chat_model
    from weft.core.settings import get_settings

    cfg = settings if settings is not None else get_settings()
    return openai_chat_model(cfg.model, timeout=cfg.model_attempt_timeout)


def _age(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of years") from None
    if not 0 <= value <= 130:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age in years (0 to 130)")
    return value


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
    parser.add_argument("--age", type=_age, help="age in years")
    if sex:
        parser.add_argument("--sex", choices=("F", "M"), help="sex: F or M")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


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

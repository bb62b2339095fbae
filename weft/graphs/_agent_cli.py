"""``weft agent``: ask a ReAct agent a question, with ready tools and optional approval."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from weft.core.errors import ConfigurationError
from weft.graphs._agent_setup import TOOL_NAMES, agent_model, agent_tools, parse_tool_names

__all__ = ["SESSIONS_FILE", "add_commands"]

_DEFAULT_TOOLS = "kb,calculator,time"
SESSIONS_FILE = "agent_sessions.sqlite"


def add_commands(subparsers: Any) -> None:
    """Add ``agent`` to the CLI's subparsers."""
    agent = subparsers.add_parser(
        "agent",
        help="ask a tool-calling agent; streams its tool calls and answer",
        description=(
            "Answer a question with a ReAct agent that calls ready tools: kb (search the "
            "knowledge base), calculator and time. Tool calls and their results go to stderr, "
            "the answer to stdout. Needs a tool-calling model: set OPENAI_API_KEY, or "
            "OPENAI_BASE_URL for an OpenAI-compatible server (and WEFT_MODEL to pick a model)."
        ),
    )
    agent.add_argument("question", help="the question, quoted")
    agent.add_argument(
        "--tools",
        default=_DEFAULT_TOOLS,
        help=f"comma-separated tools from {', '.join(TOOL_NAMES)} (default: {_DEFAULT_TOOLS})",
    )
    agent.add_argument(
        "--approve",
        action="append",
        default=[],
        metavar="NAME",
        help="ask before running this tool (a short or full name; repeat for several); answer "
        "y to run it, n and a reason to refuse, or a JSON object of arguments to run it with",
    )
    agent.add_argument(
        "--session",
        help=f"keep the conversation under this id in DATA_DIR/{SESSIONS_FILE}, so a later "
        "question with the same id continues it",
    )
    agent.add_argument(
        "--json", action="store_true", help="print one JSON object: answer and tool calls"
    )
    agent.add_argument("--data-dir", help="where the knowledge base and sessions live")
    agent.set_defaults(handler=_agent)


def _agent(args: argparse.Namespace, out: TextIO) -> int:
    from langgraph.types import Command

    from weft.core.compiled import Interrupted, thread
    from weft.core.settings import get_settings
    from weft.graphs.agent import build_react_agent

    if not args.question.strip():
        raise ConfigurationError(
            "the question is empty; ask something, e.g. weft agent 'What is 2**10?'"
        )
    model = agent_model()  # first: with no model, nothing else is opened
    names = parse_tool_names(args.tools)
    settings = get_settings(data_dir=args.data_dir)
    tools = agent_tools(names, settings)
    full = {TOOL_NAMES[n] for n in names}
    approve = [TOOL_NAMES.get(n, n) for n in args.approve]
    unknown = [n for n in approve if n not in full]
    if unknown:
        raise ConfigurationError(
            f"--approve names {', '.join(map(repr, unknown))}, which the agent does not have; "
            f"its tools: {', '.join(sorted(full))}"
        )
    checkpointer: Any = None
    if args.session is not None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Apart from the chat's checkpoints: one session id names a thread of either graph.
        checkpointer = str(settings.data_dir / SESSIONS_FILE)
    agent = build_react_agent(model, tools, approve=approve or None, checkpointer=checkpointer)
    config = thread(args.session or "cli-agent")
    report = _Report(out, args.json)
    value: Any = {"messages": [("user", args.question)]}
    while True:
        result = report.run(agent.events(value, config))
        if not isinstance(result, Interrupted):
            break
        value = Command(resume=_ask_reviewer(result.interrupts[0].value))
    report.finish(result, args.session)
    return 0


class _Report:
    """Shows a run: tool calls on stderr and the answer streamed on stdout, or one JSON
    object at the end."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.calls: dict[str, dict[str, Any]] = {}
        self.streamed = False

    def run(self, events: Any) -> Any:
        from weft.core.stream import Chunk, FinalOutput, ToolFinished, ToolStarted

        result = None
        for event in events:
            if isinstance(event, ToolStarted):
                self.calls[event.id] = {"name": event.name, "args": event.args, "id": event.id}
                if not self.as_json:
                    print(f"[tool] {event.name} {json.dumps(event.args)}", file=sys.stderr)
            elif isinstance(event, ToolFinished):
                call = self.calls.setdefault(event.id, {"name": event.name, "id": event.id})
                call.update(output=str(event.output.content), error=event.error)
                if not self.as_json:
                    print(f"[tool] {event.name} -> {_short(event.output.content)}", file=sys.stderr)
            elif isinstance(event, Chunk) and event.final and not self.as_json:
                self.out.write(str(getattr(event.chunk, "content", event.chunk)))
                self.out.flush()
                self.streamed = True
            elif isinstance(event, FinalOutput):
                result = event.output
        return result

    def finish(self, result: Any, session: str | None) -> None:
        answer = str(result["messages"][-1].content)
        if self.as_json:
            body = {"answer": answer, "tool_calls": list(self.calls.values()), "session": session}
            self.out.write(json.dumps(body) + "\n")
            return
        if not self.streamed:
            self.out.write(answer)
        self.out.write("\n")


def _short(content: Any, limit: int = 200) -> str:
    text = " ".join(str(content).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ask_reviewer(request: Any) -> dict[str, Any]:
    """Ask on stderr, read stdin: y runs the calls, n [reason] refuses them, a JSON object runs
    the (one) call with those arguments."""
    from weft.graphs.agent import approved, edited, rejected

    if request.get("error"):
        print(f"[approve] {request['error']}", file=sys.stderr)
    decisions: dict[str, Any] = {}
    for call in request["tool_calls"]:
        print(
            f"[approve] run {call['name']} {json.dumps(call['args'])}? "
            "y / n [reason] / {json arguments}: ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        line = sys.stdin.readline().strip()
        if line.lower() in ("y", "yes"):
            decisions[call["id"]] = approved()
        elif line.startswith("{"):
            try:
                decisions[call["id"]] = edited(json.loads(line))
            except json.JSONDecodeError as exc:
                decisions[call["id"]] = {"action": "edit", "error": str(exc)}
        else:
            word, _, rest = line.partition(" ")
            reason = rest.strip() if word.lower() in ("n", "no") else line
            decisions[call["id"]] = rejected(reason or "the user did not approve it")
    return decisions

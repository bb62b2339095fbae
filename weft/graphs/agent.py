"""A ReAct agent made of weft graph primitives: a model node, a tool node, a branch on tool calls.

:func:`build_react_agent` compiles a graph whose shared state is the conversation. The model
node answers or calls tools; a branch sends tool calls to a :class:`~weft.tools.ToolNode` (or,
for the tools that need a person's approval, to an ``approve`` node first) and loops back to the
model, or ends the run with the answer.

Its input and output follow LangGraph's prebuilt agent: ``{"messages": [...]}`` in, where each
item is a message, a ``(role, text)`` pair or a string (a user message), and the whole
conversation out as ``{"messages": [...]}``.

The graph's nodes::

    START -> model -> END                  the model answered
             model -> tools -> model       the model called tools
             model -> approve -> tools     a call needs approval (or -> model: all rejected)

Example:
    >>> from langchain_core.messages import AIMessage
    >>> from weft.testing import ScriptedChatModel
    >>> from weft.tools import calculator
    >>> model = ScriptedChatModel(replies=[
    ...     AIMessage("", tool_calls=[
    ...         {"name": "calculator", "args": {"expression": "6 * 7"}, "id": "c1"}]),
    ...     "6 times 7 is 42.",
    ... ])
    >>> agent = build_react_agent(model, [calculator])
    >>> agent.invoke({"messages": [("user", "What is 6 times 7?")]})["messages"][-1].content
    '6 times 7 is 42.'
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.message import add_messages
from langgraph.types import interrupt
from typing_extensions import NotRequired, TypedDict

from weft.core.compiled import CompiledGraph
from weft.core.errors import ComponentTypeError
from weft.core.graph import END, START, Graph
from weft.tools.node import ToolNode

__all__ = [
    "AgentInput",
    "AgentOutput",
    "AgentState",
    "ApprovalRequest",
    "Decision",
    "approved",
    "build_react_agent",
    "edited",
    "input_messages",
    "rejected",
]

DEFAULT_MAX_STEPS = 25
"""LangGraph's default recursion limit: a run of up to 12 tool rounds."""


class AgentInput(TypedDict):
    """What an agent takes: new messages, ``(role, text)`` pairs or strings (user messages)."""

    messages: list[Any]


class AgentOutput(TypedDict):
    """What an agent returns: the whole conversation, its answer last."""

    messages: list[BaseMessage]


class AgentState(TypedDict):
    """The agent's shared state: the conversation, kept per thread with a checkpointer."""

    messages: Annotated[list[BaseMessage], add_messages]


class Decision(TypedDict, total=False):
    """A person's answer to a tool call that needs approval; make one with :func:`approved`,
    :func:`rejected` or :func:`edited`."""

    action: Literal["approve", "reject", "edit"]
    reason: str
    args: dict[str, Any]


class ApprovalRequest(TypedDict):
    """What the run pauses with (the value of its interrupt): the calls awaiting a decision,
    each ``{"name", "args", "id"}``. After a decision that is not understood the run pauses
    again, and ``error`` says what was wrong with it."""

    tool_calls: list[dict[str, Any]]
    error: NotRequired[str]


def approved() -> Decision:
    """Run the call as the model made it."""
    return {"action": "approve"}


def rejected(reason: str) -> Decision:
    """Do not run the call; the model reads ``reason`` as the call's result."""
    return {"action": "reject", "reason": reason}


def edited(args: Mapping[str, Any]) -> Decision:
    """Run the call with ``args`` instead of the model's; the conversation keeps the edit."""
    return {"action": "edit", "args": dict(args)}


Approval = Sequence[str] | Callable[[ToolCall], bool]

# -- the model node ------------------------------------------------------------------------------


class _ModelStep(Runnable[Any, AgentOutput]):
    """Calls the model on the conversation (with the run's new input messages, if any) and
    returns the conversation with its reply."""

    def __init__(self, model: Runnable[Any, Any], system_prompt: str | None) -> None:
        self.model = model
        self.system = [SystemMessage(system_prompt)] if system_prompt else []
        self.name = "model"

    @property
    def InputType(self) -> Any:
        return Any

    @property
    def OutputType(self) -> Any:
        return AgentOutput

    def _prompt(self, turn: Mapping[str, Any]) -> tuple[list[BaseMessage], list[BaseMessage]]:
        history: list[BaseMessage] = list(turn["history"])
        given = turn["input"]
        # From START the input holds the run's new messages; what the tools or approval node
        # hand on is in the history already.
        from_start = isinstance(given, Mapping) and "messages" in given
        new = input_messages(given["messages"]) if from_start else []
        conversation = [*history, *new]
        return conversation, [*self.system, *conversation]

    @staticmethod
    def _out(conversation: list[BaseMessage], reply: Any) -> AgentOutput:
        if not isinstance(reply, AIMessage):
            raise ComponentTypeError(
                f"the agent's model returned {type(reply).__name__}, not an AIMessage; give "
                f"build_react_agent a chat model"
            )
        if not reply.id:  # the state replaces a message by id: an edited call needs one
            reply = reply.model_copy(update={"id": f"run-{uuid.uuid4()}"})
        return {"messages": [*conversation, reply]}

    def invoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AgentOutput:
        conversation, prompt = self._prompt(input)
        return self._out(conversation, self.model.invoke(prompt, config))

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AgentOutput:
        conversation, prompt = self._prompt(input)
        return self._out(conversation, await self.model.ainvoke(prompt, config))


def input_messages(items: Any) -> list[BaseMessage]:
    """The messages of an agent's input: messages, ``(role, text)`` pairs, role/content
    dicts or strings (user messages).

    Raises:
        ValueError: an item is none of these; the message shows the expected form.
    """
    if isinstance(items, (str, BaseMessage)) or not isinstance(items, Sequence):
        items = [items]
    try:
        return list(convert_to_messages(items))
    except (ValueError, NotImplementedError, TypeError) as exc:
        raise ValueError(
            f"the agent's input messages are not understood ({exc}); pass "
            f'{{"messages": [...]}} with messages, (role, text) pairs or strings, e.g. '
            f'{{"messages": [("user", "What is 6 times 7?")]}}'
        ) from None


def _turn(x: Any, state: Any) -> dict[str, Any]:
    return {"input": x, "history": state["messages"]}


def _new_messages(out: Any, state: Any) -> dict[str, Any]:
    return {"messages": out["messages"][len(state["messages"]) :]}


def _calls(out: Any, state: Any) -> AIMessage:
    # From the model: its reply; from the approval node: the calls it let through.
    message: AIMessage = out["run"] if "run" in out else out["messages"][-1]
    return message


# -- the approval node ---------------------------------------------------------------------------


class _ApproveStep(Runnable[Any, dict[str, Any]]):
    """Pauses the run before the calls that need approval, then applies the decisions: it
    outputs the calls to run (``"run"``) and what the conversation records (``"record"``: the
    model's message with any edits, and a result for each rejected call)."""

    def __init__(self, needs: Callable[[ToolCall], bool]) -> None:
        self.needs = needs
        self.name = "approve"

    @property
    def InputType(self) -> Any:
        return Any

    @property
    def OutputType(self) -> Any:
        return dict[str, Any]

    def invoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        message: AIMessage = input["history"][-1]
        pending = [c for c in message.tool_calls if self.needs(c)]
        request: ApprovalRequest = {
            "tool_calls": [{"name": c["name"], "args": c["args"], "id": c["id"]} for c in pending]
        }
        value = interrupt(request)
        while True:
            try:
                decisions = _decisions(value, pending)
                break
            except ValueError as exc:
                # Raising would keep the bad value as this interrupt's answer for good; asking
                # again keeps the run resumable.
                value = interrupt({**request, "error": str(exc)})
        calls: list[ToolCall] = []
        run: list[ToolCall] = []
        record: list[BaseMessage] = []
        for call in message.tool_calls:
            decision = decisions.get(call.get("id") or "", {"action": "approve"})
            if decision["action"] == "edit":
                call = {**call, "args": dict(decision["args"])}
            calls.append(call)
            if decision["action"] == "reject":
                record.append(
                    ToolMessage(
                        f"the user rejected this call to '{call['name']}': {decision['reason']}",
                        tool_call_id=call.get("id") or "",
                        name=call["name"],
                        status="error",
                    )
                )
            else:
                run.append(call)
        kept = message.model_copy(update={"tool_calls": calls})
        return {"run": message.model_copy(update={"tool_calls": run}), "record": [kept, *record]}

    async def ainvoke(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return self.invoke(input, config)


_ACTIONS = ("approve", "reject", "edit")


def _decisions(value: Any, pending: list[ToolCall]) -> dict[str, Decision]:
    """Each pending call's decision from a resume value: one decision for every call, or a
    mapping from call id to decision."""
    if isinstance(value, str) or (isinstance(value, Mapping) and "action" in value):
        one = _decision(value, "every pending call")
        return {c.get("id") or "": one for c in pending}
    if not isinstance(value, Mapping):
        raise ValueError(
            f"resume value {value!r} is not a decision; resume with Command(resume=approved()), "
            f"rejected('reason'), edited({{...}}), or a mapping from tool call id to one of those"
        )
    ids = [c.get("id") or "" for c in pending]
    missing = [i for i in ids if i not in value]
    if missing:
        raise ValueError(
            f"no decision for tool calls {', '.join(map(repr, missing))}; pending calls: "
            f"{', '.join(map(repr, ids))}; give each id a decision, or one decision for all"
        )
    return {i: _decision(value[i], f"tool call {i!r}") for i in ids}


def _decision(value: Any, where: str) -> Decision:
    if isinstance(value, str):
        value = {"action": value}
    action = value.get("action") if isinstance(value, Mapping) else None
    if action not in _ACTIONS:
        raise ValueError(
            f"decision for {where} is {value!r}; its action must be one of "
            f"{', '.join(map(repr, _ACTIONS))}: use approved(), rejected('reason') or "
            f"edited({{...}})"
        )
    if action == "reject" and not isinstance(value.get("reason"), str):
        raise ValueError(f"rejection of {where} has no reason; use rejected('why')")
    if action == "edit" and not isinstance(value.get("args"), Mapping):
        raise ValueError(f"edit of {where} has no args mapping; use edited({{'arg': value}})")
    return Decision(**value)  # type: ignore[typeddict-item]


def _record(out: Any, state: Any) -> dict[str, Any]:
    return {"messages": out["record"]}


def _approval_check(approve: Approval | None, tools: Mapping[str, BaseTool]) -> Any:
    if approve is None or callable(approve):
        return approve
    names = [approve] if isinstance(approve, str) else list(approve)
    unknown = [n for n in names if n not in tools]
    if unknown:
        raise ComponentTypeError(
            f"approve names unknown tools {', '.join(map(repr, unknown))}; the agent's tools: "
            f"{', '.join(sorted(tools)) or '(none)'}"
        )
    wanted = frozenset(names)
    return lambda call: call["name"] in wanted


# -- building the agent --------------------------------------------------------------------------


def build_react_agent(
    model: BaseChatModel | Runnable[Any, Any],
    tools: Sequence[BaseTool | Callable[..., Any]],
    *,
    system_prompt: str | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    approve: Approval | None = None,
    checkpointer: BaseCheckpointSaver[Any] | str | None = None,
    name: str = "react_agent",
    tool_timeout: float | None = 60.0,
    max_concurrency: int = 8,
) -> CompiledGraph[AgentInput, AgentOutput]:
    """A compiled ReAct agent: the model answers, or calls tools and reads their results.

    Tool calls run in parallel through a :class:`~weft.tools.ToolNode`; an unknown tool,
    invalid arguments or a tool that raises become an error result the model reads. Streamed
    runs (``events``/``aevents``) report every tool call with
    :class:`~weft.core.stream.ToolStarted` and :class:`~weft.core.stream.ToolFinished`, and
    ``stream``/``astream`` yield the answer's tokens only: a model turn that calls tools never
    reaches them.

    Args:
        model: A chat model with ``bind_tools`` (``openai_chat_model()``, a
            :class:`~weft.testing.ScriptedChatModel`, any LangChain chat model).
        tools: LangChain tools, or typed functions (made tools with :func:`~weft.tools.tool`).
        system_prompt: Sent first on every model call; not stored in the conversation.
        max_steps: Most graph steps one run takes, counted as LangGraph's ``recursion_limit``:
            each model turn, each tool round and each approval is one step, so a question
            answered after one tool round takes 3. A run that needs more raises
            :class:`~weft.core.errors.StepLimitError` naming the steps taken; one run may
            raise its limit with ``config={"recursion_limit": N}``.
        approve: Tool names (or a predicate on the ``ToolCall``) whose calls pause the run for a
            person's decision, with a LangGraph interrupt. The run returns
            :class:`~weft.core.compiled.Interrupted` whose interrupt value is an
            :class:`ApprovalRequest`; resume with
            ``agent.invoke(Command(resume=approved()), config)`` (or :func:`rejected`,
            :func:`edited`, or a mapping from call id to decision) on the same ``thread_id``. A
            decision that is not understood pauses the run again with the request and an
            ``error`` naming the problem.
        checkpointer: Keeps each thread's conversation (and a paused run) across calls; a
            path makes a SQLite checkpointer, which also survives a process restart. With
            ``approve`` and no checkpointer, an in-memory one is used.
        name: The graph's name in traces and errors.
        tool_timeout: Seconds one tool call may take.
        max_concurrency: How many tool calls run at once.

    Raises:
        ComponentTypeError: the model cannot bind tools, ``approve`` names an unknown tool, or
            ``max_steps`` is below 1.
    """
    if max_steps < 1:
        raise ComponentTypeError(
            f"max_steps must be at least 1, got {max_steps}; a question answered after one tool "
            f"round takes 3 steps"
        )
    node = ToolNode(tools, timeout=tool_timeout, max_concurrency=max_concurrency)
    try:
        bound = model.bind_tools(list(node.tools.values()))  # type: ignore[union-attr]
    except (AttributeError, NotImplementedError):
        raise ComponentTypeError(
            f"{type(model).__name__} cannot call tools (it has no bind_tools); give the agent a "
            f"tool-calling chat model, e.g. openai_chat_model() or ScriptedChatModel"
        ) from None
    needs = _approval_check(approve, node.tools)

    def route(out: AgentOutput) -> str:
        last = out["messages"][-1]
        if not isinstance(last, AIMessage) or not (last.tool_calls or last.invalid_tool_calls):
            return END
        if needs is not None and any(needs(c) for c in last.tool_calls):
            return "approve"
        return "tools"

    g = Graph[AgentInput, AgentOutput](name, state=AgentState)
    g.add_node("model", _ModelStep(bound, system_prompt), pre=_turn, post=_new_messages)
    g.add_node("tools", node, pre=_calls, post=lambda out, state: {"messages": out})
    g.add_edge(START, "model").add_edge("tools", "model")
    targets = ["tools", END]
    if needs is not None:
        g.add_node("approve", _ApproveStep(needs), pre=_turn, post=_record)
        g.add_branch(
            "approve", lambda out: "tools" if out["run"].tool_calls else "model", ["tools", "model"]
        )
        targets.append("approve")
        if checkpointer is None:
            checkpointer = "memory"
    g.add_branch("model", route, targets)
    return g.compile(checkpointer=checkpointer, step_limit=max_steps)

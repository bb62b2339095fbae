"""build_react_agent: the tool loop, its errors returned to the model, the step limit,
streaming, and human approval across a process restart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.types import Command

from weft import thread
from weft.components.models import ExtractiveChatModel
from weft.core.compiled import Interrupted
from weft.core.errors import ComponentTypeError, NodeError, StepLimitError
from weft.core.stream import ToolFinished, ToolStarted
from weft.graphs import approved, build_react_agent, edited, rejected
from weft.testing import ScriptedChatModel
from weft.tools import tool

HERE = Path(__file__).parent


@tool
def stock(item: str) -> int:
    """How many of an item the pantry holds.

    Args:
        item: The item's name.
    """
    return {"flour": 3, "eggs": 12}[item]


@tool
def order(item: str, quantity: int) -> str:
    """Order more of an item.

    Args:
        item: The item's name.
        quantity: How many to order.
    """
    return f"ordered {quantity} {item}"


def calls(*specs: tuple[str, dict[str, Any]], start: int = 0) -> AIMessage:
    return AIMessage(
        "",
        tool_calls=[
            {"name": n, "args": a, "id": f"c{start + i}"} for i, (n, a) in enumerate(specs)
        ],
    )


def pantry_model() -> ScriptedChatModel:
    return ScriptedChatModel(
        replies=[
            calls(("stock", {"item": "flour"}), ("stock", {"item": "eggs"})),
            "There are 3 bags of flour and 12 eggs.",
        ]
    )


def tool_results(messages: list[Any]) -> list[tuple[str, str, str]]:
    return [
        (m.tool_call_id, str(m.content), m.status) for m in messages if isinstance(m, ToolMessage)
    ]


def test_parallel_tool_calls_reach_the_model_and_the_answer_ends_the_conversation() -> None:
    model = pantry_model()
    out = build_react_agent(model, [stock]).invoke(
        {"messages": [("user", "What is in the pantry?")]}
    )
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "ToolMessage", "AIMessage"]
    assert out["messages"][-1].content == "There are 3 bags of flour and 12 eggs."
    assert tool_results(model.received[1]) == [("c0", "3", "success"), ("c1", "12", "success")]
    assert model.remaining == 0


def test_system_prompt_goes_first_on_every_call_but_is_not_kept() -> None:
    model = pantry_model()
    out = build_react_agent(model, [stock], system_prompt="You keep a pantry.").invoke(
        {"messages": ["What is in the pantry?"]}
    )
    for received in model.received:
        assert received[0] == SystemMessage("You keep a pantry.")
    assert isinstance(out["messages"][0], HumanMessage)
    assert not any(isinstance(m, SystemMessage) for m in out["messages"])


def test_unknown_tool_failing_tool_and_invalid_arguments_are_returned_to_the_model() -> None:
    model = ScriptedChatModel(
        replies=[
            calls(
                ("weather", {"city": "Lyon"}),
                ("stock", {"item": "sugar"}),
                ("order", {"item": "eggs", "quantity": "a dozen"}),
            ),
            "I could not check everything.",
        ]
    )
    out = build_react_agent(model, [stock, order]).invoke({"messages": ["Stock up"]})
    assert out["messages"][-1].content == "I could not check everything."
    results = tool_results(model.received[1])
    assert results[0] == ("c0", "unknown tool 'weather'; available tools: order, stock", "error")
    assert results[1][0] == "c1" and results[1][2] == "error"
    assert results[1][1] == "tool 'stock' failed: KeyError: 'sugar'"
    assert results[2][0] == "c2" and results[2][2] == "error"
    assert results[2][1].startswith("invalid arguments for tool 'order': quantity:")


def test_a_model_that_never_stops_calling_tools_hits_the_step_limit() -> None:
    model = ScriptedChatModel(replies=[calls(("stock", {"item": "flour"}))] * 10)
    agent = build_react_agent(model, [stock], max_steps=5)
    with pytest.raises(StepLimitError, match="stopped after 5 steps") as info:
        agent.invoke({"messages": ["Count the flour forever"]})
    assert info.value.limit == 5
    # model, tools, model, tools, model: five steps, then the sixth is refused.
    assert model.remaining == 7


def test_a_step_limit_below_one_is_refused() -> None:
    with pytest.raises(ComponentTypeError, match="max_steps must be at least 1, got 0"):
        build_react_agent(pantry_model(), [stock], max_steps=0)


def test_a_conversation_continues_on_its_thread() -> None:
    model = ScriptedChatModel(replies=["Hello.", "You said hello first."])
    agent = build_react_agent(model, [stock], checkpointer="memory")
    agent.invoke({"messages": ["hello"]}, thread("kitchen"))
    out = agent.invoke({"messages": [("human", "what did I say?")]}, thread("kitchen"))
    assert [m.content for m in out["messages"]] == [
        "hello",
        "Hello.",
        "what did I say?",
        "You said hello first.",
    ]


def test_input_that_is_not_messages_fails_naming_the_expected_form() -> None:
    agent = build_react_agent(ScriptedChatModel(replies=["x"]), [stock])
    with pytest.raises(NodeError, match=r"pass \{\"messages\": \[\.\.\.\]\}"):
        agent.invoke({"messages": [("nobody", "hi")]})


def test_a_model_without_tool_calling_is_refused_with_the_fix() -> None:
    with pytest.raises(ComponentTypeError, match="cannot call tools"):
        build_react_agent(ExtractiveChatModel(), [stock])


def test_stream_yields_only_the_answer_and_events_report_each_tool_call() -> None:
    agent = build_react_agent(pantry_model(), [stock])
    text = "".join(str(c.content) for c in agent.stream({"messages": ["pantry?"]}))
    assert text == "There are 3 bags of flour and 12 eggs."

    events = list(build_react_agent(pantry_model(), [stock]).events({"messages": ["pantry?"]}))
    started = sorted((e.name, e.id, str(e.args)) for e in events if isinstance(e, ToolStarted))
    assert started == [("stock", "c0", "{'item': 'flour'}"), ("stock", "c1", "{'item': 'eggs'}")]
    finished = sorted((e.id, e.output.content) for e in events if isinstance(e, ToolFinished))
    assert finished == [("c0", "3"), ("c1", "12")]


async def test_async_runs_stream_and_batch_like_sync_ones() -> None:
    agent = build_react_agent(pantry_model(), [stock])
    pieces = [str(c.content) async for c in agent.astream({"messages": ["pantry?"]})]
    assert "".join(pieces) == "There are 3 bags of flour and 12 eggs."

    events = [
        e async for e in build_react_agent(pantry_model(), [stock]).aevents({"messages": ["?"]})
    ]
    assert sum(isinstance(e, ToolFinished) for e in events) == 2

    out = await build_react_agent(pantry_model(), [stock]).ainvoke({"messages": ["?"]})
    assert out["messages"][-1].content.startswith("There are 3")

    answers = ScriptedChatModel(replies=["one", "two"])
    outs = await build_react_agent(answers, [stock]).abatch(
        [{"messages": ["a"]}, {"messages": ["b"]}], {"max_concurrency": 1}
    )
    assert sorted(o["messages"][-1].content for o in outs) == ["one", "two"]
    outs = build_react_agent(ScriptedChatModel(replies=["three"]), [stock]).batch(
        [{"messages": ["c"]}]
    )
    assert outs[0]["messages"][-1].content == "three"


# -- approval ------------------------------------------------------------------------------------


def ordering_agent(replies: list[Any], **kw: Any) -> tuple[ScriptedChatModel, Any]:
    model = ScriptedChatModel(replies=replies)
    return model, build_react_agent(model, [stock, order], checkpointer="memory", **kw)


def test_approval_pauses_only_before_the_named_tools_and_reject_reaches_the_model() -> None:
    mixed = calls(("stock", {"item": "eggs"}), ("order", {"item": "eggs", "quantity": 6}))
    model, agent = ordering_agent([mixed, "I will not order eggs."], approve=["order"])
    paused = agent.invoke({"messages": ["order eggs if low"]}, thread("t"))
    assert isinstance(paused, Interrupted)
    assert paused.next == ("approve",)
    assert paused.interrupts[0].value == {
        "tool_calls": [{"name": "order", "args": {"item": "eggs", "quantity": 6}, "id": "c1"}]
    }
    out = agent.invoke(Command(resume=rejected("we have 12 already")), thread("t"))
    assert out["messages"][-1].content == "I will not order eggs."
    assert sorted(tool_results(model.received[1])) == [
        ("c0", "12", "success"),
        ("c1", "the user rejected this call to 'order': we have 12 already", "error"),
    ]


def test_each_call_gets_its_own_decision_and_a_predicate_chooses_what_to_approve() -> None:
    two = calls(
        ("order", {"item": "eggs", "quantity": 6}), ("order", {"item": "flour", "quantity": 50})
    )
    model, agent = ordering_agent([two, "Ordered."], approve=lambda call: call["name"] == "order")
    paused = agent.invoke({"messages": ["restock"]}, thread("t"))
    assert isinstance(paused, Interrupted)
    again = agent.invoke(Command(resume={"c0": approved()}), thread("t"))
    assert isinstance(again, Interrupted)
    assert again.interrupts[0].value["error"].startswith("no decision for tool calls 'c1'")
    out = agent.invoke(
        Command(resume={"c0": approved(), "c1": edited({"item": "flour", "quantity": 5})}),
        thread("t"),
    )
    assert out["messages"][-1].content == "Ordered."
    assert tool_results(model.received[1]) == [
        ("c0", "ordered 6 eggs", "success"),
        ("c1", "ordered 5 flour", "success"),
    ]
    # The conversation keeps the edited call, so later turns see what really ran.
    assert out["messages"][1].tool_calls[1]["args"] == {"item": "flour", "quantity": 5}


def test_a_bad_decision_pauses_again_naming_the_valid_ones_and_loses_nothing() -> None:
    model, agent = ordering_agent(
        [calls(("order", {"item": "eggs", "quantity": 6})), "Ordered."], approve=["order"]
    )
    agent.invoke({"messages": ["restock"]}, thread("t"))
    again = agent.invoke(Command(resume={"action": "maybe"}), thread("t"))
    assert isinstance(again, Interrupted)
    request = again.interrupts[0].value
    assert "use approved(), rejected('reason') or edited({...})" in request["error"]
    assert request["tool_calls"][0]["name"] == "order"
    again = agent.invoke(Command(resume={"action": "reject"}), thread("t"))
    assert "has no reason" in again.interrupts[0].value["error"]
    out = agent.invoke(Command(resume="approve"), thread("t"))
    assert out["messages"][-1].content == "Ordered."
    assert tool_results(model.received[1]) == [("c0", "ordered 6 eggs", "success")]


def test_approval_of_an_unknown_tool_is_refused() -> None:
    with pytest.raises(ComponentTypeError, match="approve names unknown tools 'refund'"):
        build_react_agent(pantry_model(), [stock], approve=["refund"])


def test_approve_reject_and_edit_survive_a_process_restart(tmp_path: Path) -> None:
    db = tmp_path / "agent.sqlite"
    cmd = [sys.executable, str(HERE / "_agent_restart.py"), str(db)]
    first = subprocess.run([*cmd, "start"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    paused = json.loads(first.stdout)
    request = {"name": "pay_invoice", "args": {"supplier": "Bakery", "amount": 120}, "id": "p1"}
    for name in ("approve", "reject", "edit"):
        assert paused[name] == [{"tool_calls": [request]}]
    assert paused["paid"] == []

    second = subprocess.run([*cmd, "resume"], capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    done = json.loads(second.stdout)
    assert done["approve"]["model_saw"] == [["ToolMessage", "paid 120 EUR to Bakery", "success"]]
    assert done["reject"]["model_saw"] == [
        [
            "ToolMessage",
            "the user rejected this call to 'pay_invoice': the invoice was paid last week",
            "error",
        ]
    ]
    assert done["edit"]["model_saw"] == [["ToolMessage", "paid 100 EUR to Bakery", "success"]]
    assert done["edit"]["args"] == {"supplier": "Bakery", "amount": 100}
    assert done["paid"] == ["Bakery:120", "Bakery:100"]
    assert all(done[n]["answer"] == "Done." for n in ("approve", "reject", "edit"))


def test_the_words_of_a_tool_calling_turn_never_reach_the_answer_stream() -> None:
    thinking = AIMessage(
        "Let me look in the pantry first.",
        tool_calls=[{"name": "stock", "args": {"item": "eggs"}, "id": "c0"}],
    )
    model = ScriptedChatModel(replies=[thinking, "You have 12 eggs."])
    pieces = list(build_react_agent(model, [stock]).stream({"messages": ["eggs?"]}))
    assert "".join(str(p.content) for p in pieces) == "You have 12 eggs."


async def test_approval_works_in_async_runs_too() -> None:
    _, agent = ordering_agent(
        [calls(("order", {"item": "flour", "quantity": 2})), "Ordered flour."], approve=["order"]
    )
    paused = await agent.ainvoke({"messages": ["get flour"]}, thread("a"))
    assert isinstance(paused, Interrupted)
    events = [e async for e in agent.aevents(Command(resume=approved()), thread("a"))]
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert [(e.name, e.output.content) for e in finished] == [("order", "ordered 2 flour")]
    assert events[-1].output["messages"][-1].content == "Ordered flour."

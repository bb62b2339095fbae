"""An agent with an approval, run by test_agent in two child processes: the first pauses three
threads before a payment, the second resumes them with a decision each."""

import json
import sys

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.types import Command

from weft import thread
from weft.core.compiled import Interrupted
from weft.graphs import approved, build_react_agent, edited, rejected
from weft.testing import ScriptedChatModel
from weft.tools import tool

PAID: list[str] = []


@tool
def pay_invoice(supplier: str, amount: float) -> str:
    """Pay a supplier's invoice.

    Args:
        supplier: Who is paid.
        amount: How much, in euros.
    """
    PAID.append(f"{supplier}:{amount:g}")
    return f"paid {amount:g} EUR to {supplier}"


CALL = AIMessage(
    "",
    tool_calls=[{"name": "pay_invoice", "args": {"supplier": "Bakery", "amount": 120}, "id": "p1"}],
)
DECISIONS = {
    "approve": approved(),
    "reject": rejected("the invoice was paid last week"),
    "edit": edited({"supplier": "Bakery", "amount": 100}),
}


def agent(db: str, replies: list[object]):  # type: ignore[no-untyped-def]
    model = ScriptedChatModel(replies=replies)
    return model, build_react_agent(model, [pay_invoice], approve=["pay_invoice"], checkpointer=db)


def seen(messages: list[BaseMessage]) -> list[list[str]]:
    return [
        [type(m).__name__, str(m.content), getattr(m, "status", "")]
        for m in messages
        if isinstance(m, ToolMessage)
    ]


def main() -> None:
    db, phase = sys.argv[1], sys.argv[2]
    report: dict[str, object] = {}
    for name, decision in DECISIONS.items():
        if phase == "start":
            _, graph = agent(db, [CALL])
            out = graph.invoke({"messages": [("user", "Pay the bakery")]}, thread(name))
            assert isinstance(out, Interrupted)
            report[name] = [i.value for i in out.interrupts]
        else:
            model, graph = agent(db, ["Done."])
            out = graph.invoke(Command(resume=decision), thread(name))
            calls = [m for m in out["messages"] if isinstance(m, AIMessage) and m.tool_calls]
            report[name] = {
                "answer": out["messages"][-1].content,
                "model_saw": seen(model.received[0]),
                "args": calls[0].tool_calls[0]["args"],
            }
    report["paid"] = PAID
    print(json.dumps(report))


if __name__ == "__main__":
    main()

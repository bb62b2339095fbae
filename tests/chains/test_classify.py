from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage

from weft.chains.classify import Classification, ClassificationError, classify
from weft.core.errors import ConfigurationError, NodeError
from weft.testing import ScriptedChatModel

LABELS = ["spam", "ham"]


def _rules(text: str) -> Classification:
    spam = "prize" in text.lower()
    return Classification(label="spam" if spam else "ham", score=0.9, reasons=["rule"])


def _tool_reply(label: str, score: float = 0.8) -> AIMessage:
    args = {"label": label, "score": score, "reasons": ["said so"]}
    return AIMessage("", tool_calls=[{"name": "Classification", "args": args, "id": "c1"}])


def test_rules_classify_offline() -> None:
    chain = classify(LABELS, rules=_rules)
    assert chain.invoke("You won a PRIZE").label == "spam"
    assert chain.invoke("Lunch at noon?") == Classification(
        label="ham", score=0.9, reasons=["rule"]
    )


async def test_rules_classify_async() -> None:
    chain = classify(LABELS, rules=_rules)
    assert (await chain.ainvoke("prize inside")).label == "spam"


def test_model_decides_through_structured_output() -> None:
    model = ScriptedChatModel(replies=[_tool_reply("spam", 0.7)])
    result = classify(LABELS, model=model).invoke("Hello there")
    assert result == Classification(label="spam", score=0.7, reasons=["said so"])
    system = model.received[0][0].content
    assert "spam, ham" in str(system)


def test_model_label_outside_the_set_is_a_clear_error() -> None:
    model = ScriptedChatModel(replies=[_tool_reply("eggs")])
    with pytest.raises(NodeError, match="model failed") as info:
        classify(LABELS, model=model).invoke("Hello")
    assert isinstance(info.value.__cause__, ClassificationError)


def test_rules_answer_when_the_model_fails() -> None:
    model = ScriptedChatModel(replies=[_tool_reply("eggs")])
    result = classify(LABELS, model=model, rules=_rules).invoke("a prize")
    assert result.label == "spam"
    assert result.reasons[0] == "rule" and "rules answered" in result.reasons[1]


def test_rules_answering_outside_the_set_names_the_label() -> None:
    chain = classify(LABELS, rules=lambda t: Classification(label="eggs", score=1.0))
    with pytest.raises(NodeError, match=r"'eggs', which is not one of spam, ham"):
        chain.invoke("x")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("spam", "pass a list"),
        (["spam"], "at least two"),
        (["spam", ""], "non-empty"),
        (["spam", "spam"], "given twice"),
    ],
)
def test_bad_labels_are_refused(labels: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        classify(labels, rules=_rules)  # type: ignore[arg-type]


def test_classify_needs_rules_or_a_model() -> None:
    with pytest.raises(ConfigurationError, match="pass rules="):
        classify(LABELS)

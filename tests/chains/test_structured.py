"""extract_structured: rules offline, the model with validation-error retries, the fallback."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage
from pydantic import BaseModel, Field

from weft.chains.structured import extract_structured
from weft.core.errors import ConfigurationError, ModelError
from weft.testing import ScriptedChatModel


class Dish(BaseModel):
    name: str
    spicy: bool
    price: float = Field(ge=0)


def _rules(text: str) -> Dish:
    return Dish(name=text.split(":")[0].strip(), spicy="chili" in text, price=0)


def _call(args: dict[str, object]) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": "Dish", "args": args, "id": "c1"}])


def test_rules_answer_offline() -> None:
    extract = extract_structured(Dish, rules=_rules)
    assert extract.invoke("Mapo tofu: tofu, chili, pepper") == Dish(
        name="Mapo tofu", spicy=True, price=0
    )


def test_neither_model_nor_rules_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="neither a model nor rules"):
        extract_structured(Dish)


def test_model_answer_is_validated_into_the_schema() -> None:
    model = ScriptedChatModel(replies=[_call({"name": "Pho", "spicy": False, "price": 9.5})])
    assert extract_structured(Dish, model=model).invoke("Pho, 9.50") == Dish(
        name="Pho", spicy=False, price=9.5
    )


def test_invalid_answer_is_retried_with_the_validation_error() -> None:
    model = ScriptedChatModel(
        replies=[
            _call({"name": "Pho", "spicy": False, "price": -1}),
            _call({"name": "Pho", "spicy": False, "price": 9.5}),
        ]
    )
    result = extract_structured(Dish, model=model).invoke("Pho, 9.50")
    assert result.price == 9.5
    second = model.received[1]
    feedback = str(second[-1].content)
    assert "not a valid Dish" in feedback and "price" in feedback
    assert '"price": -1' in str(second[-2].content)


def test_json_in_the_text_of_the_answer_is_accepted() -> None:
    model = ScriptedChatModel(replies=['{"name": "Laksa", "spicy": true, "price": 12}'])
    assert extract_structured(Dish, model=model).invoke("Laksa").name == "Laksa"


def test_after_the_last_retry_the_rules_answer() -> None:
    bad = _call({"name": "Pho"})
    model = ScriptedChatModel(replies=[bad, bad])
    extract = extract_structured(Dish, model=model, rules=_rules, max_retries=1)
    assert extract.invoke("Som tam: papaya, chili") == Dish(name="Som tam", spicy=True, price=0)
    assert model.remaining == 0


def test_without_rules_every_failed_try_is_a_model_error() -> None:
    model = ScriptedChatModel(replies=["not json", "still not json"])
    extract = extract_structured(Dish, model=model, max_retries=1)
    with pytest.raises(ModelError, match=r"failed validation 2 times.*rules function"):
        extract.invoke("Pho")


def test_a_failing_model_call_falls_back_to_the_rules() -> None:
    model = ScriptedChatModel(replies=[])  # raises on its first call
    extract = extract_structured(Dish, model=model, rules=_rules)
    assert extract.invoke("Dal: lentils").name == "Dal"


def test_async_run_gives_the_same_answer() -> None:
    model = ScriptedChatModel(replies=[_call({"name": "Pho", "spicy": False, "price": 3})])
    result = asyncio.run(extract_structured(Dish, model=model).ainvoke("Pho"))
    assert result == Dish(name="Pho", spicy=False, price=3)


def test_rules_must_return_the_schema() -> None:
    extract = extract_structured(Dish, rules=lambda text: {"name": text})  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="must return a Dish"):
        extract.invoke("Pho")

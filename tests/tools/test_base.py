"""@tool and Tool.from_function: the schema from the signature and the docstring, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import MessagesState, StateGraph
from langgraph.prebuilt import ToolNode as LangGraphToolNode
from pydantic import ValidationError
from typing_extensions import TypedDict

from weft import END, START, Graph
from weft.core.component import spec_of
from weft.core.errors import ComponentTypeError, GraphCompileError
from weft.core.types import AIMessage
from weft.tools import Tool, parse_docstring, tool


@tool
def convert(amount: float, unit: str = "km", precise: bool = False) -> float:
    """Convert a distance in miles.

    Use it for road distances only.

    Args:
        amount (float): How many miles, as a
            decimal number.
        unit: The unit to convert to: "km" or "m".
        precise: Whether to keep every decimal.

    Returns:
        The converted distance.
    """
    value = amount * 1.609344 * (1000 if unit == "m" else 1)
    return value if precise else round(value, 2)


def test_docstring_describes_the_tool_and_each_argument() -> None:
    schema = convert_to_openai_tool(convert)["function"]
    assert schema["name"] == "convert"
    assert (
        schema["description"] == "Convert a distance in miles.\n\nUse it for road distances only."
    )
    props = schema["parameters"]["properties"]
    assert props["amount"] == {
        "description": "How many miles, as a decimal number.",
        "type": "number",
    }
    assert props["unit"]["description"] == 'The unit to convert to: "km" or "m".'
    assert props["unit"]["default"] == "km"
    assert props["precise"]["type"] == "boolean"
    assert schema["parameters"]["required"] == ["amount"]


def test_arguments_are_validated_by_the_schema() -> None:
    assert convert.invoke({"amount": "2"}) == 3.22
    with pytest.raises(ValidationError, match="amount"):
        convert.invoke({"amount": "two"})
    with pytest.raises(ValidationError, match="Field required"):
        convert.invoke({"unit": "m"})


def test_parse_docstring_reads_google_style_sections() -> None:
    summary, args = parse_docstring(
        """Find a train.

        Args:
            origin: Where from.
            when (str): The day,
                as an ISO date.

        Raises:
            ValueError: never documented as an argument.
        """
    )
    assert summary == "Find a train."
    assert args == {"origin": "Where from.", "when": "The day, as an ISO date."}


async def test_async_function_runs_sync_and_async() -> None:
    @tool
    async def shout(text: str) -> str:
        """Shout the text."""
        await asyncio.sleep(0)
        return text.upper()

    assert shout.coroutine is not None and shout.func is None
    assert await shout.ainvoke({"text": "hey"}) == "HEY"
    # invoke from a thread with no running loop runs the coroutine there
    assert await asyncio.to_thread(shout.invoke, {"text": "ho"}) == "HO"
    with pytest.raises(ComponentTypeError, match="use the async API"):
        shout.invoke({"text": "inside a loop"})


async def test_sync_function_runs_under_ainvoke() -> None:
    assert await convert.ainvoke({"amount": 1, "unit": "m"}) == 1609.34


def test_config_parameter_is_passed_and_left_out_of_the_schema() -> None:
    seen: list[Any] = []

    @tool(name="tagged", description="Echo the run's tags.")
    def tagged(word: str, config: RunnableConfig) -> str:
        seen.append(config.get("tags"))
        return word

    assert set(tagged.args) == {"word"}
    assert tagged.invoke({"word": "x"}, {"tags": ["t1"]}) == "x"
    assert seen == [["t1"]]


def test_a_parameter_without_annotation_is_refused_with_the_fix() -> None:
    def lookup(city, country: str) -> str:  # type: ignore[no-untyped-def]
        """Look up a city."""
        return str(city)

    with pytest.raises(ComponentTypeError, match="parameter 'city' has no type annotation"):
        Tool.from_function(lookup)


def test_docstring_arguments_the_function_lacks_are_refused() -> None:
    def lookup(city: str) -> str:
        """Look up a city.

        Args:
            city: The city.
            country: Not a parameter.
        """
        return city

    with pytest.raises(ComponentTypeError, match="describes country, which the function"):
        Tool.from_function(lookup)


def test_a_tool_without_description_is_refused() -> None:
    def lookup(city: str) -> str:
        return city

    with pytest.raises(ComponentTypeError, match="has no docstring"):
        Tool.from_function(lookup)
    assert Tool.from_function(lookup, description="Look up.").description == "Look up."


def test_var_args_are_refused() -> None:
    def total(*numbers: int) -> int:
        """Add them."""
        return sum(numbers)

    with pytest.raises(ComponentTypeError, match="takes \\*numbers"):
        Tool.from_function(total)


class Trip(TypedDict):
    amount: float


def test_a_tool_is_a_typed_component_of_kind_tool_in_a_graph() -> None:
    spec = spec_of(convert)
    assert spec.kind == "tool"
    assert spec.output_type is float

    def trip(miles: float) -> Trip:
        return {"amount": miles}

    g = Graph[float, float]("trip").add_node("trip", trip).add_node("convert", convert)
    g.add_edge(START, "trip").add_edge("trip", "convert").add_edge("convert", END)
    assert g.compile().invoke(10.0) == 16.09

    def text(miles: float) -> str:
        return str(miles)

    bad = Graph[float, float]("bad").add_node("text", text).add_node("convert", convert)
    bad.add_edge(START, "text").add_edge("text", "convert").add_edge("convert", END)
    with pytest.raises(GraphCompileError, match="'text' -> 'convert'"):
        bad.compile()


def test_a_weft_tool_runs_in_langgraphs_tool_node() -> None:
    call = {"name": "convert", "args": {"amount": 2}, "id": "c1", "type": "tool_call"}
    lg = StateGraph(MessagesState).add_node("tools", LangGraphToolNode([convert]))
    app = lg.add_edge(START, "tools").add_edge("tools", END).compile()
    out = app.invoke({"messages": [AIMessage("", tool_calls=[call])]})
    assert [(m.content, m.tool_call_id) for m in out["messages"][1:]] == [("3.22", "c1")]

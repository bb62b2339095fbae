from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate

from weft import END, START, Chain, Chunk, Graph, GraphCompileError, lambda_
from weft.core.errors import ComponentTypeError


def strip(s: str) -> str:
    return s.strip()


def length(s: str) -> int:
    return len(s)


def upper(s: str) -> str:
    return s.upper()


def lower(s: str) -> str:
    return s.lower()


def test_chain_runs_steps_in_order() -> None:
    chain = Chain[str, int]("len").then(strip).then(length)
    assert chain.compile().invoke("  abc ") == 3


def test_chain_type_checks_its_steps() -> None:
    chain = Chain[str, str]("bad").then(length).then(upper)
    with pytest.raises(GraphCompileError, match="'length' outputs int but 'upper' takes str"):
        chain.compile()


def test_parallel_step_outputs_a_typed_dict_of_results() -> None:
    def describe(parts: dict[str, Any]) -> str:
        return f"{parts['up']}/{parts['low']}"

    chain = Chain[str, str]("par").then(strip).parallel({"up": upper, "low": lower}).then(describe)
    assert chain.compile().invoke(" MiX ") == "MIX/mix"


def test_parallel_output_type_feeds_a_prompt_with_checked_variables() -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "{up} {missing}")])
    chain = Chain[str, Any]("p").parallel({"up": upper, "low": lower}).then(prompt, name="prompt")
    with pytest.raises(GraphCompileError, match="needs the keys missing"):
        chain.compile()


def test_branch_step_runs_the_chosen_option_then_continues() -> None:
    chain = (
        Chain[str, int]("br")
        .branch(lambda s: "up" if s.isupper() else "low", {"up": lower, "low": upper})
        .then(length)
    )
    compiled = chain.compile()
    assert compiled.invoke("ABC") == 3
    assert compiled.invoke("hello") == 5


def test_branch_as_last_step_ends_with_the_chosen_output() -> None:
    chain = Chain[str, str]("tail").branch(lambda s: "a" if s else "b", {"a": upper, "b": lower})
    assert chain.compile().invoke("x") == "X"


def test_subgraph_step_and_streaming_through_the_chain() -> None:
    inner = Graph[str, str]("inner").add_node("u", upper)
    inner.add_edge(START, "u").add_edge("u", END)
    model = GenericFakeChatModel(messages=iter([AIMessage(content="one two three")]))
    chain = (
        Chain[str, AIMessage]("c")
        .then(inner)
        .then(lambda_(lambda s: [("human", s)], input_type=str, output_type=list[Any]), name="msgs")
        .then(model, name="model")
    )
    compiled = chain.compile()
    events = list(compiled.events("hi"))
    tokens = [e.chunk.content for e in events if isinstance(e, Chunk) and e.final]
    assert "".join(tokens) == "one two three"


def test_auto_names_are_unique() -> None:
    chain = Chain[str, str]("n").then(upper).then(upper).then(upper)
    compiled = chain.compile()
    assert len(compiled.plan.nodes) == 3
    assert compiled.invoke("a") == "A"


def test_a_step_may_take_the_name_the_chain_uses_for_its_last_join() -> None:
    chain = (
        Chain[str, str]("c")
        .then(strip, name="chain_join")
        .branch(lambda s: "a" if s.isupper() else "b", {"a": lower, "b": upper})
    )
    compiled = chain.compile()
    assert (compiled.invoke(" ABC "), compiled.invoke(" abc ")) == ("abc", "ABC")
    assert chain.compile().invoke("x") == "X"  # compiling again finds the chain as it was


def test_steps_added_after_compile_reach_only_later_compiles() -> None:
    chain = Chain[str, Any]("c").then(strip)
    first = chain.compile()
    chain.then(length)
    assert (first.invoke(" ab "), chain.compile().invoke(" ab ")) == ("ab", 2)


def test_a_parallel_step_may_run_graph_builders() -> None:
    up = Graph[str, str]("up").add_node("u", upper)
    up.add_edge(START, "u").add_edge("u", END)
    chain = Chain[str, Any]("p").parallel({"up": up, "low": lower})
    assert chain.compile().invoke("Ab") == {"up": "AB", "low": "ab"}


def test_a_bad_function_step_fails_when_it_is_added() -> None:
    with pytest.raises(ComponentTypeError, match="has no type annotation for its input"):
        Chain[str, str]("c").then(lambda s: s)

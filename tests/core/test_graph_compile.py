"""Every compile-time check, with the message it gives."""

import contextlib
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from typing_extensions import TypedDict

from weft import END, START, Graph, GraphCompileError, lambda_


def to_int(x: str) -> int:
    return len(x)


def to_str(x: int) -> str:
    return str(x)


def same(x: str) -> str:
    return x


def retrieve(q: str) -> list[Document]:
    return [Document(page_content=q)]


def docs_or_none(q: str) -> list[Document] | None:
    return None


def takes_docs(d: list[Document]) -> str:
    return ""


class Question(TypedDict):
    question: str


def ask(q: str) -> Question:
    return {"question": q}


def model() -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content="ok")]))


def linear(*nodes: tuple[str, Any], graph: Graph[Any, Any] | None = None) -> Graph[Any, Any]:
    g = graph if graph is not None else Graph("g")
    prev = START
    for name, comp in nodes:
        g.add_node(name, comp)
        g.add_edge(prev, name)
        prev = name
    g.add_edge(prev, END)
    return g


def _type_mismatch() -> Graph[Any, Any]:
    return linear(("a", to_int), ("b", same))


def _docs_into_model() -> Graph[Any, Any]:
    return linear(("retrieve", retrieve), ("model", model()))


def _optional_into_required() -> Graph[Any, Any]:
    return linear(("retrieve", docs_or_none), ("use", takes_docs))


def _prompt_missing_variable() -> Graph[Any, Any]:
    prompt = ChatPromptTemplate.from_messages([("human", "{context} {question}")])
    return linear(("ask", ask), ("prompt", prompt))


def _unknown_edge_target() -> Graph[Any, Any]:
    g = Graph[str, str]("g").add_node("a", same)
    return g.add_edge(START, "a").add_edge("a", "nope").add_edge("a", END)


def _duplicate_name() -> Graph[Any, Any]:
    g = linear(("a", same))
    return g.add_node("a", same)


def _unreachable() -> Graph[Any, Any]:
    return linear(("a", same)).add_node("orphan", same).add_edge("orphan", END)


def _dead_end() -> Graph[Any, Any]:
    return linear(("a", same)).add_node("stuck", same).add_edge("a", "stuck")


def _bad_branch_target() -> Graph[Any, Any]:
    g = Graph[str, str]("g").add_node("a", same).add_node("b", same)
    g.add_edge(START, "a").add_branch("a", lambda x: "b", ["b", "ghost"])
    return g.add_edge("b", END)


def _fan_in_without_merge() -> Graph[Any, Any]:
    g = Graph[str, str]("g").add_node("a", same).add_node("b", same).add_node("c", same)
    g.add_edge(START, "a").add_edge(START, "b").add_edge("a", "c").add_edge("b", "c")
    return g.add_edge("c", END)


def _cycle_without_limit() -> Graph[Any, Any]:
    g = Graph[str, str]("g").add_node("a", same)
    g.add_edge(START, "a").add_branch("a", lambda x: END, ["a", END])
    return g


def _graph_input_mismatch() -> Graph[Any, Any]:
    return linear(("a", to_str), graph=Graph[str, str]("g"))


def _graph_output_mismatch() -> Graph[Any, Any]:
    return linear(("a", to_int), graph=Graph[str, str]("g"))


def _no_start() -> Graph[Any, Any]:
    return Graph[str, str]("g").add_node("a", same).add_edge("a", END)


CASES: list[tuple[str, Callable[[], Graph[Any, Any]], str]] = [
    (
        "type mismatch",
        _type_mismatch,
        "edge 'a' -> 'b': 'a' outputs int but 'b' takes str; add a lambda that turns int into str",
    ),
    (
        "documents into a chat model",
        _docs_into_model,
        "edge 'retrieve' -> 'model': 'retrieve' outputs list[Document] but 'model' takes "
        "list[BaseMessage]; put a prompt template between them",
    ),
    (
        "optional into required",
        _optional_into_required,
        "edge 'retrieve' -> 'use': 'retrieve' outputs list[Document] | None but 'use' takes "
        "list[Document]",
    ),
    (
        "prompt variable missing",
        _prompt_missing_variable,
        "edge 'ask' -> 'prompt': 'prompt' needs the keys context that 'ask' does not output",
    ),
    ("unknown node", _unknown_edge_target, "edge 'a' -> 'nope': no node named 'nope'; nodes: a"),
    ("duplicate name", _duplicate_name, "duplicate node name 'a'"),
    ("unreachable", _unreachable, "node 'orphan' is unreachable from START"),
    ("cannot reach END", _dead_end, "node 'stuck' cannot reach END; add an edge from it"),
    (
        "branch target missing",
        _bad_branch_target,
        "branch from 'a': target 'ghost' (for 'ghost') is not a node; valid targets: a, b, END",
    ),
    (
        "fan-in without merge",
        _fan_in_without_merge,
        "node 'c' has 2 inputs (a, b) but no merge; pass merge=fn to add_node",
    ),
    (
        "cycle without step limit",
        _cycle_without_limit,
        "the graph has a cycle (a -> a) but no step limit; pass compile(step_limit=N)",
    ),
    (
        "graph input mismatch",
        _graph_input_mismatch,
        "edge '__start__' -> 'a': the graph input outputs str but 'a' takes int",
    ),
    (
        "graph output mismatch",
        _graph_output_mismatch,
        "graph output: node 'a' outputs int but the graph returns str",
    ),
    ("no start edge", _no_start, "no edge from START"),
]


@pytest.mark.parametrize(("case", "build", "message"), CASES, ids=[c[0] for c in CASES])
def test_compile_error_names_the_problem_and_the_fix(
    case: str, build: Callable[[], Graph[Any, Any]], message: str
) -> None:
    with pytest.raises(GraphCompileError) as err:
        build().compile()
    assert message in str(err.value)
    assert any(message in p for p in err.value.problems)


def test_all_problems_are_reported_at_once() -> None:
    g = linear(("a", to_int), ("b", same)).add_node("orphan", same).add_edge("orphan", END)
    with pytest.raises(GraphCompileError) as err:
        g.compile()
    assert len(err.value.problems) == 2
    assert "2 problems" in str(err.value)


def test_fan_in_with_merge_or_mapping_input_compiles() -> None:
    def merged(parts: dict[str, str]) -> str:
        return "+".join(sorted(parts.values()))

    g = Graph[str, str]("g").add_node("a", same).add_node("b", same)
    g.add_node("c", same, merge=merged)
    g.add_edge(START, "a").add_edge(START, "b").add_edge("a", "c").add_edge("b", "c")
    assert g.add_edge("c", END).compile().invoke("x") == "x+x"


def test_merge_output_is_type_checked() -> None:
    def bad_merge(parts: dict[str, str]) -> int:
        return 0

    g = Graph[str, str]("g").add_node("a", same).add_node("b", same)
    g.add_node("c", same, merge=bad_merge)
    g.add_edge(START, "a").add_edge(START, "b").add_edge("a", "c").add_edge("b", "c")
    with pytest.raises(GraphCompileError, match="its merge returns int but the node takes str"):
        g.add_edge("c", END).compile()


def test_compiled_graph_is_immutable() -> None:
    compiled = linear(("a", same), graph=Graph[str, str]("g")).compile()
    with pytest.raises(AttributeError, match="immutable"):
        compiled.name = "other"  # type: ignore[misc]


def test_graph_types_are_inferred_when_not_declared() -> None:
    compiled = linear(("a", to_int), ("b", to_str)).compile()
    assert (compiled.input_type, compiled.output_type) == (str, str)
    assert compiled.langgraph is not None


def test_unknown_interrupt_node_is_a_compile_error() -> None:
    with pytest.raises(GraphCompileError, match="interrupt at unknown node 'zz'"):
        linear(("a", same)).compile(interrupt_before=["zz"])


def test_lambda_helper_types_are_checked_on_edges() -> None:
    g = linear(("len", lambda_(len, input_type=str, output_type=int)), ("b", same))
    with pytest.raises(GraphCompileError, match="'len' outputs int but 'b' takes str"):
        g.compile()


def shout(x: str) -> str:
    return x.upper() + "!"


def test_editing_a_node_on_the_builder_after_compile_changes_nothing_compiled() -> None:
    g = linear(("a", same), graph=Graph[str, str]("g"))
    compiled = g.compile()
    with contextlib.suppress(FrozenInstanceError):
        g.nodes["a"].pre = lambda x, state: "changed"  # type: ignore[misc]
    with contextlib.suppress(FrozenInstanceError):
        g.nodes["a"].post = lambda y, state: {"x": 1}  # type: ignore[misc]
    g.nodes["a"] = g.nodes["a"].__class__("a", None)
    g.add_node("later", shout).add_edge("a", "later").add_edge("later", END)
    assert compiled.invoke("hi") == "hi"
    assert list(compiled.plan.nodes) == ["a"]


def test_editing_a_branch_on_the_builder_after_compile_changes_nothing_compiled() -> None:
    g = Graph[str, str]("g").add_node("a", same).add_node("loud", shout)
    g.add_edge(START, "a").add_branch(
        "a", lambda x: "up" if x else "stop", {"up": "loud", "stop": END}
    )
    g.add_edge("loud", END)
    compiled = g.compile()
    with contextlib.suppress(TypeError):
        g.branches[0].targets["up"] = END  # type: ignore[index]
    with contextlib.suppress(FrozenInstanceError):
        g.branches[0].condition = lambda x: "stop"  # type: ignore[misc]
    assert compiled.invoke("hi") == "HI!"


def test_a_compiled_plan_is_read_only() -> None:
    compiled = linear(("a", same), graph=Graph[str, str]("g")).compile()
    with pytest.raises(TypeError):
        compiled.plan.nodes["b"] = compiled.plan.nodes["a"]  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        compiled.plan.name = "other"  # type: ignore[misc]


class _WatchedGraph(Graph[str, str]):
    """Records every attribute written once ``watching`` is set."""

    watching = False

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.writes: list[str] = []

    def __setattr__(self, key: str, value: Any) -> None:
        if self.watching:
            self.writes.append(key)
        super().__setattr__(key, value)


def test_compile_with_a_name_never_renames_the_builder() -> None:
    g = _WatchedGraph("builder")
    linear(("a", same), graph=g)
    object.__setattr__(g, "watching", True)
    compiled = g.compile(name="renamed")
    assert (compiled.name, g.name, g.writes) == ("renamed", "builder", [])


def test_a_subgraph_builder_is_checked_with_its_parent_and_its_problems_listed_there() -> None:
    inner = Graph[str, str]("inner").add_node("u", shout)  # no edges yet
    outer = Graph[str, int]("outer").add_node("sub", inner).add_node("len", to_int)
    outer.add_edge(START, "sub").add_edge("sub", "len").add_edge("len", END)
    outer.add_node("orphan", to_int).add_edge("orphan", END)
    with pytest.raises(GraphCompileError) as err:
        outer.compile()
    problems = err.value.problems
    assert "node 'sub' (subgraph 'inner'): no edge from START; add one" in problems[0]
    assert any(p.startswith("node 'sub' (subgraph 'inner'): no edge into END") for p in problems)
    assert any("node 'orphan' is unreachable from START" in p for p in problems)
    assert str(err.value).startswith("graph 'outer' cannot compile, 3 problems")


def test_a_subgraph_builder_is_compiled_when_its_parent_compiles() -> None:
    inner = Graph[str, str]("inner").add_node("u", shout)
    outer = linear(("sub", inner), ("len", to_int), graph=Graph[str, int]("outer"))
    inner.add_edge(START, "u").add_edge("u", END)  # finished after it was added
    compiled = outer.compile()
    inner.add_node("more", same)  # after the parent compiled: reaches nothing compiled
    assert compiled.invoke("abc") == 4


def test_a_subgraph_builder_type_mismatch_is_reported_on_the_parent_edge() -> None:
    inner = linear(("u", shout), graph=Graph[str, str]("inner"))
    outer = linear(("sub", inner), ("n", lambda_(abs, input_type=int, output_type=int)))
    with pytest.raises(GraphCompileError, match="'sub' outputs str but 'n' takes int"):
        outer.compile()

import asyncio
import operator
import threading
from typing import Annotated, Any

import pytest
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel
from typing_extensions import TypedDict

from weft import (
    END,
    START,
    Graph,
    GraphCompileError,
    GraphInputError,
    NodeError,
    NodeStarted,
    lambda_,
)
from weft.core.errors import StepLimitError


def inc(x: int) -> int:
    return x + 1


def double(x: int) -> int:
    return x * 2


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def chain_graph(*fns: Any, name: str = "g") -> Any:
    g = Graph[int, int](name)
    prev = START
    for i, fn in enumerate(fns):
        g.add_node(f"n{i}", fn)
        g.add_edge(prev, f"n{i}")
        prev = f"n{i}"
    return g.add_edge(prev, END).compile()


def fan_graph() -> Any:
    def total(parts: dict[str, int]) -> int:
        return parts["inc"] * 100 + parts["double"]

    g = Graph[int, int]("fan")
    g.add_node("inc", inc).add_node("double", double).add_node("sum", total)
    g.add_edge(START, "inc").add_edge(START, "double")
    g.add_edge("inc", "sum").add_edge("double", "sum")
    return g.add_edge("sum", END).compile()


def test_linear_graph_passes_each_output_to_the_next_node() -> None:
    assert chain_graph(inc, double, inc).invoke(1) == 5


def test_fan_in_receives_a_mapping_of_upstream_outputs() -> None:
    assert fan_graph().invoke(3) == 406


def test_fan_out_runs_branches_in_parallel() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def left(x: int) -> int:
        barrier.wait()  # both parallel nodes must be running at once to pass
        return x

    def right(x: int) -> int:
        barrier.wait()
        return -x

    g = Graph[int, dict[str, int]]("par").add_node("left", left).add_node("right", right)
    g.add_passthrough("join")
    g.add_edge(START, "left").add_edge(START, "right")
    g.add_edge("left", "join").add_edge("right", "join").add_edge("join", END)
    assert g.compile().invoke(7) == {"left": 7, "right": -7}


def test_branch_picks_one_target_and_join_runs_once() -> None:
    calls: list[str] = []

    def big(x: int) -> str:
        calls.append("big")
        return f"big {x}"

    def small(x: int) -> str:
        calls.append("small")
        return f"small {x}"

    def shout(s: str) -> str:
        return s.upper()

    g = Graph[int, str]("br").add_passthrough("check")
    g.add_node("big", big).add_node("small", small).add_node("shout", shout)
    g.add_edge(START, "check")
    g.add_branch("check", lambda x: "big" if x > 10 else "small", ["big", "small"])
    g.add_edge("big", "shout").add_edge("small", "shout").add_edge("shout", END)
    compiled = g.compile()
    assert compiled.invoke(50) == "BIG 50"
    assert compiled.invoke(1) == "SMALL 1"
    assert calls == ["big", "small"]


def test_branch_can_fan_out_to_several_targets() -> None:
    g = Graph[int, Any]("multi").add_passthrough("p")
    # A join after a branch runs on any input by default; this branch picks both targets.
    g.add_node("a", inc).add_node("b", double).add_passthrough("join", trigger="all")
    g.add_edge(START, "p").add_branch("p", lambda x: ["a", "b"], {"a": "a", "b": "b"})
    g.add_edge("a", "join").add_edge("b", "join").add_edge("join", END)
    assert g.compile().invoke(5) == {"a": 6, "b": 10}


def test_branch_to_end_finishes_with_the_source_output() -> None:
    g = Graph[int, int]("early").add_node("a", inc).add_node("b", double)
    g.add_edge(START, "a").add_branch("a", lambda x: END if x > 5 else "b", ["b", END])
    g.add_edge("b", END)
    compiled = g.compile()
    assert compiled.invoke(10) == 11
    assert compiled.invoke(1) == 4


def test_branch_returning_an_unknown_label_fails_with_the_choices() -> None:
    g = Graph[int, int]("bad").add_node("a", inc).add_node("b", double)
    g.add_edge(START, "a").add_branch("a", lambda x: "zzz", ["b"]).add_edge("b", END)
    with pytest.raises(NodeError) as err:
        g.compile().invoke(1)
    assert "returned 'zzz'; valid choices: 'b'" in str(err.value)


def test_cycle_runs_until_its_exit_branch() -> None:
    g = Graph[int, int]("loop").add_node("inc", inc)
    g.add_edge(START, "inc").add_branch("inc", lambda x: "inc" if x < 7 else END, ["inc", END])
    assert g.compile(step_limit=50).invoke(0) == 7


def test_cycle_past_its_step_limit_raises_step_limit_error() -> None:
    g = Graph[int, int]("spin").add_node("inc", inc)
    g.add_edge(START, "inc").add_branch("inc", lambda x: "inc", ["inc", END])
    with pytest.raises(StepLimitError, match="graph 'spin' stopped after 10 steps"):
        g.compile(step_limit=10).invoke(0)


def test_loop_head_with_two_inputs_runs_on_either() -> None:
    g = Graph[int, int]("agent").add_node("think", inc).add_node("act", double)
    g.add_edge(START, "think").add_edge("act", "think")
    g.add_branch("think", lambda x: "act" if x < 20 else END, ["act", END])
    # 1 -> think 2 -> act 4 -> think 5 -> act 10 -> think 11 -> act 22 -> think 23
    assert g.compile(step_limit=40).invoke(1) == 23


def test_passthrough_and_subgraph_nodes() -> None:
    inner = chain_graph(inc, inc, name="inner")
    g = Graph[int, int]("outer").add_passthrough("p").add_node("sub", inner)
    g.add_edge(START, "p").add_edge("p", "sub").add_edge("sub", END)
    assert g.compile().invoke(1) == 3


def test_uncompiled_graph_builder_is_compiled_as_a_subgraph() -> None:
    inner = Graph[int, int]("inner").add_node("d", double)
    inner.add_edge(START, "d").add_edge("d", END)
    outer = Graph[int, int]("outer").add_node("sub", inner)
    outer.add_edge(START, "sub").add_edge("sub", END)
    assert outer.compile().invoke(4) == 8


def test_langchain_runnable_works_as_a_node() -> None:
    g = Graph[int, int]("lc").add_node("r", RunnableLambda(inc))
    g.add_edge(START, "r").add_edge("r", END)
    assert g.compile().invoke(1) == 2


class Order(BaseModel):
    item: str
    qty: int


def test_input_is_validated_before_any_node_runs() -> None:
    ran: list[Order] = []

    def take(order: Order) -> str:
        ran.append(order)
        return order.item

    g = Graph[Order, str]("orders").add_node("take", take)
    compiled = g.add_edge(START, "take").add_edge("take", END).compile()
    assert compiled.invoke({"item": "tea", "qty": "2"}) == "tea"  # type: ignore[arg-type]
    assert ran[0].qty == 2
    with pytest.raises(GraphInputError) as err:
        compiled.invoke({"item": "tea"})  # type: ignore[arg-type]
    assert "graph 'orders' got an invalid input: qty: Field required" in str(err.value)
    assert "Order" in str(err.value)
    assert len(ran) == 1


def test_node_failure_names_graph_node_and_component_with_cause() -> None:
    compiled = chain_graph(inc, fail_on_three, name="calc")
    with pytest.raises(NodeError) as err:
        compiled.invoke(2)
    e = err.value
    assert (e.graph, e.node, e.component) == ("calc", "n1", "lambda:TypedLambda")
    assert isinstance(e.__cause__, ValueError)
    assert "graph 'calc', node 'n1' (lambda:TypedLambda) failed: ValueError: three" in str(e)


def test_batch_isolates_failures_when_asked() -> None:
    compiled = chain_graph(fail_on_three, inc)
    out = compiled.batch([1, 3, 5], return_exceptions=True)
    assert out[0] == 2 and out[2] == 6
    assert isinstance(out[1], NodeError)
    with pytest.raises(NodeError):
        compiled.batch([1, 3])


def test_batch_respects_max_concurrency() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow(x: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        threading.Event().wait(0.02)
        with lock:
            active -= 1
        return x

    assert chain_graph(slow).batch(list(range(8)), {"max_concurrency": 2}) == list(range(8))
    assert peak <= 2


async def test_async_parity_with_sync() -> None:
    async def ainc(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    for compiled in (chain_graph(inc, double), fan_graph(), chain_graph(ainc, double)):
        sync_out = await asyncio.to_thread(compiled.invoke, 3)
        assert await compiled.ainvoke(3) == sync_out
        assert await compiled.abatch([1, 2]) == await asyncio.to_thread(compiled.batch, [1, 2])
    out = await chain_graph(fail_on_three).abatch([3, 4], return_exceptions=True)
    assert isinstance(out[0], NodeError) and out[1] == 4


class Chat(TypedDict):
    history: Annotated[list[str], operator.add]


def test_shared_state_with_reducer_and_pre_post_hooks() -> None:
    def answer(q: str, state: Chat) -> str:
        return f"{q}#{len(state.get('history', []))}"

    g = Graph[str, str]("chat", state=Chat)
    g.add_node("answer", answer, post=lambda out, state: {"history": [out]})
    g.add_node(
        "final",
        lambda_(lambda s: s, input_type=str, output_type=str),
        pre=lambda x, state: f"{x}|{','.join(state['history'])}",
    )
    g.add_edge(START, "answer").add_edge("answer", "final").add_edge("final", END)
    assert g.compile().invoke("q") == "q#0|q#0"


def test_post_hook_with_unknown_state_key_fails_clearly() -> None:
    g = Graph[str, str]("chat", state=Chat)
    g.add_node(
        "a", lambda_(str.upper, input_type=str, output_type=str), post=lambda o, s: {"nope": 1}
    )
    g.add_edge(START, "a").add_edge("a", END)
    with pytest.raises(NodeError, match=r"unknown state keys \['nope'\]; state keys: history"):
        g.compile().invoke("x")


class Counter(BaseModel):
    count: int = 0


def test_pydantic_state_model_is_given_to_nodes() -> None:
    def show(x: str, state: Counter) -> str:
        return f"{x}:{state.count}"

    g = Graph[str, str]("pyd", state=Counter).add_node("show", show, post=lambda o, s: {"count": 5})
    g.add_node("again", show)
    g.add_edge(START, "show").add_edge("show", "again").add_edge("again", END)
    assert g.compile().invoke("a") == "a:0:5"


# -- the Runnable contract ------------------------------------------------------------------------


def test_unknown_keyword_arguments_are_an_error_naming_them() -> None:
    compiled = chain_graph(inc)
    with pytest.raises(
        TypeError, match=r"graph 'g': invoke\(\) got unexpected keyword .*'retries'"
    ):
        compiled.invoke(1, retries=3)
    with pytest.raises(TypeError, match=r"stream\(\) got unexpected keyword"):
        list(compiled.stream(1, mode="values"))
    with pytest.raises(TypeError, match=r"invoke\(\) got unexpected keyword"):
        compiled.batch([1, 2], verbose=True)


async def test_unknown_keyword_arguments_are_an_error_in_async_runs_too() -> None:
    compiled = chain_graph(inc)
    with pytest.raises(TypeError, match=r"ainvoke\(\) got unexpected keyword .*'timeout'"):
        await compiled.ainvoke(1, timeout=3)
    with pytest.raises(TypeError, match=r"astream\(\) got unexpected keyword"):
        _ = [c async for c in compiled.astream(1, mode="values")]


def test_stream_yields_output_chunks_like_any_runnable() -> None:
    compiled = chain_graph(inc, double)
    assert list(compiled.stream(1)) == [4]
    # Inside an LCEL sequence the graph streams its output, as a Runnable does.
    assert list((RunnableLambda(lambda x: x + 1) | compiled).stream(1)) == [6]


def test_an_input_type_pydantic_cannot_check_is_a_compile_error() -> None:
    def take(x: Any) -> str:
        return str(x)

    g = Graph[Any, str]("unchecked", input_type="UndefinedRecord")
    g.add_node("take", lambda_(take, input_type=Any, output_type=str))
    g.add_edge(START, "take").add_edge("take", END)
    with pytest.raises(
        GraphCompileError, match=r"input type .*UndefinedRecord.* cannot be validated"
    ):
        g.compile()


def test_a_fan_in_that_waits_for_the_input_and_a_node_runs_once_both_are_there() -> None:
    def double(x: int) -> int:
        return 2 * x

    def both(parts: dict[str, int]) -> int:
        return parts[START] * 100 + parts["double"]

    g = Graph[int, int]("join").add_node("double", double)
    g.add_passthrough("join", merge=both)
    g.add_edge(START, "double").add_edge(START, "join").add_edge("double", "join")
    compiled = g.add_edge("join", END).compile()
    assert compiled.invoke(3) == 306
    events = list(compiled.events(3))
    assert [e.node for e in events if isinstance(e, NodeStarted)] == ["double", "join"]

"""Both executors run a graph alike: random acyclic graphs (fan-out, fan-in, branches, subgraphs,
nodes that stream, shared state) give the same outputs, events and handler reports on each."""

import asyncio
import operator
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from typing_extensions import TypedDict

from weft import (
    END,
    START,
    FinalOutput,
    Graph,
    GraphCompileError,
    MemoryHandler,
    NodeFinished,
    lambda_,
)
from weft.core.stream import StreamEvent


class Log(TypedDict):
    seen: Annotated[list[int], operator.add]


@dataclass(frozen=True)
class NodeSpec:
    preds: tuple[int, ...]  # -1 is START
    factor: int
    kind: str  # "plain", "stream", "sub", "logged"
    branch: tuple[int, ...] = ()  # targets after this node (-2 is END), picked by output


@st.composite
def dags(draw: st.DrawFn) -> list[NodeSpec]:
    size = draw(st.integers(2, 7))
    specs: list[NodeSpec] = []
    for i in range(size):
        choices = list(range(-1, i))
        preds = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3, unique=True))
        kind = draw(st.sampled_from(["plain", "plain", "stream", "sub", "logged"]))
        branch: tuple[int, ...] = ()
        if i < size - 1 and draw(st.booleans()):
            later = [*range(i + 1, size), -2]
            branch = tuple(
                draw(st.lists(st.sampled_from(later), min_size=2, max_size=3, unique=True))
            )
        specs.append(NodeSpec(tuple(sorted(preds)), draw(st.integers(1, 5)), kind, branch))
    return specs


def _plain(factor: int) -> Any:
    return lambda_(lambda x: (x * factor + 1) % 97, input_type=int, output_type=int)


def _stream(factor: int) -> Any:
    def parts(x: int) -> Iterator[int]:
        yield x * factor % 89
        yield 1

    return parts


def _sub(factor: int) -> Any:
    g = Graph[int, int](f"sub{factor}").add_node("a", _plain(factor)).add_node("b", _plain(2))
    return g.add_edge(START, "a").add_edge("a", "b").add_edge("b", END).compile()


def _total(parts: dict[str, Any]) -> int:
    return sum(int(v or 0) for v in parts.values()) % 101


def build(specs: list[NodeSpec], executor: str) -> Any:
    g = Graph[int, int]("random", state=Log)
    names = [f"n{i}" for i in range(len(specs))]

    def name(i: int) -> str:
        return {-1: START, -2: END}.get(i) or names[i]

    has_succ: set[int] = set()
    branch_targets: dict[int, set[int]] = {}
    for i, spec in enumerate(specs):
        for t in spec.branch:
            branch_targets.setdefault(t, set()).add(i)
    for i, spec in enumerate(specs):
        component = {
            "plain": _plain(spec.factor),
            "stream": _stream(spec.factor),
            "sub": _sub(spec.factor),
            "logged": _plain(spec.factor),
        }[spec.kind]
        post = (lambda y, state: {"seen": [y]}) if spec.kind == "logged" else None
        g.add_node(name(i), component, merge=_total, post=post)
        for p in spec.preds:
            # A branch already leads from p into i: a plain edge as well would be declared twice.
            if p >= 0 and i in specs[p].branch:
                continue
            g.add_edge(name(p), name(i))
            if p >= 0:
                has_succ.add(p)
        if spec.branch:
            targets = [name(t) for t in spec.branch]
            g.add_branch(name(i), lambda y, targets=targets: targets[y % len(targets)], targets)
            has_succ.add(i)
    for i in range(len(specs)):
        if i not in has_succ:
            g.add_edge(name(i), END)
    return g.compile(executor=executor)  # type: ignore[arg-type]


def shape(events: list[StreamEvent]) -> tuple[Counter[str], dict[Any, list[str]]]:
    """Events modulo timing: which happened, and the order of each node's own events."""
    seen: Counter[str] = Counter()
    per_node: dict[Any, list[str]] = {}
    for e in events:
        seen[repr(e)] += 1
        per_node.setdefault(getattr(e, "path", None), []).append(repr(e))
    return seen, per_node


def reports(handler: MemoryHandler) -> Counter[tuple[str, str, str, str]]:
    return Counter((e.event, e.info.kind, e.info.name, repr(e.payload)) for e in handler.events)


@settings(
    max_examples=25,
    deadline=None,
    # Explaining a failure traces every line (before Python 3.12), too slow for a test run.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=dags(), value=st.integers(0, 50))
# A fan-in that waits for the input and a node that a branch runs a second time.
@example(
    specs=[
        NodeSpec((-1,), 1, "plain"),
        NodeSpec((-1,), 1, "plain", (-2, 2)),
        NodeSpec((-1,), 1, "plain"),
        NodeSpec((-1, 2), 1, "plain"),
    ],
    value=0,
)
def test_random_acyclic_graphs_run_alike_on_both_executors(
    specs: list[NodeSpec], value: int
) -> None:
    try:
        on_langgraph = build(specs, "langgraph")
    except GraphCompileError:
        # Some random shapes are refused (a fan-in waiting on a branch): by both, alike.
        with pytest.raises(GraphCompileError):
            build(specs, "dag")
        return
    on_dag = build(specs, "dag")
    assert on_dag.executor == "dag" and on_langgraph.executor == "langgraph"
    results = []
    for graph in (on_langgraph, on_dag):
        recorder = MemoryHandler()
        out = graph.invoke(value, {"callbacks": [recorder]})
        events = list(graph.events(value))
        aout = asyncio.run(graph.ainvoke(value))
        aevents = asyncio.run(_collect(graph.aevents(value)))
        assert out == aout and events[-1] == aevents[-1] == FinalOutput(out)
        assert shape(events) == shape(aevents)
        results.append((out, shape(events), reports(recorder)))
    assert results[0] == results[1]


async def _collect(events: Any) -> list[StreamEvent]:
    return [e async for e in events]


def test_auto_picks_the_dag_executor_only_for_what_it_can_run() -> None:
    def inc(x: int) -> int:
        return x + 1

    def line() -> Graph[int, int]:
        return Graph[int, int]("line").add_node("a", inc).add_edge(START, "a").add_edge("a", END)

    assert line().compile(executor="auto").executor == "dag"
    assert line().compile(executor="auto", checkpointer="memory").executor == "langgraph"
    assert line().compile(executor="auto", interrupt_before=["a"]).executor == "langgraph"
    loop = Graph[int, int]("loop").add_node("a", inc).add_edge(START, "a")
    loop.add_branch("a", lambda x: "a" if x < 3 else END, ["a", END])
    assert loop.compile(step_limit=10, executor="auto").executor == "langgraph"
    with pytest.raises(GraphCompileError, match="it has a cycle"):
        loop.compile(step_limit=10, executor="dag")
    with pytest.raises(GraphCompileError, match="valid: 'auto', 'langgraph', 'dag'"):
        line().compile(executor="pregel")  # type: ignore[arg-type]
    # LangGraph's own graph is still there for LangGraph's tools, built when first asked for.
    dag = line().compile(executor="dag")
    assert "langgraph" not in vars(dag)
    assert dag.langgraph.invoke({"__in__": 1}) == {"__out__": 2}


def test_the_nodes_after_a_node_that_runs_twice_get_each_of_its_outputs() -> None:
    # 'join' runs once for each of its two upstream paths, one step apart, so its first output
    # reaches 'double' while it makes its second: the two must not share where they write.
    def inc(x: int) -> int:
        return x + 1

    def double(x: int) -> int:
        return x * 2

    g = Graph[int, int]("twice").add_node("a", inc).add_node("b", inc).add_node("c", inc)
    g.add_node("join", inc, trigger="any").add_node("double", double).add_node("last", inc)
    g.add_edge(START, "a").add_edge("a", "join").add_edge(START, "b").add_edge("b", "c")
    g.add_edge("c", "join").add_edge("join", "double").add_edge("double", "last")
    compiled = g.add_edge("last", END).compile()
    events = list(compiled.events(1))
    doubled = [e.output for e in events if isinstance(e, NodeFinished) and e.node == "double"]
    assert doubled == [6, 8]
    assert events[-1] == FinalOutput(9) and compiled.invoke(1) == 9


class Slot(TypedDict):
    last: int


def test_two_nodes_of_one_step_writing_a_one_value_state_key_fail_the_run() -> None:
    from langgraph.errors import InvalidUpdateError

    def inc(x: int) -> int:
        return x + 1

    g = Graph[int, int]("clash", state=Slot)
    g.add_node("a", inc, post=lambda y, state: {"last": y})
    g.add_node("b", inc, post=lambda y, state: {"last": y})
    g.add_edge(START, "a").add_edge(START, "b").add_edge("a", END).add_edge("b", END)
    with pytest.raises(InvalidUpdateError, match="last"):
        g.compile().invoke(1)


def test_an_acyclic_run_past_its_recursion_limit_stops_with_a_step_limit_error() -> None:
    from weft.core.errors import StepLimitError

    def inc(x: int) -> int:
        return x + 1

    g = Graph[int, int]("line").add_node("a", inc).add_node("b", inc).add_node("c", inc)
    g.add_edge(START, "a").add_edge("a", "b").add_edge("b", "c").add_edge("c", END)
    compiled = g.compile()
    assert compiled.invoke(1, {"recursion_limit": 4}) == 4  # the input is a step too
    with pytest.raises(StepLimitError, match="stopped after 3 steps"):
        compiled.invoke(1, {"recursion_limit": 3})


def _fan_out(branch: Any) -> Any:
    g = Graph[int, int]("fan").add_node("a", branch).add_node("b", branch).add_node("c", branch)
    g.add_node(
        "join",
        lambda_(sum, input_type=list[int], output_type=int),
        merge=lambda parts: list(parts.values()),
    )
    for n in ("a", "b", "c"):
        g.add_edge(START, n).add_edge(n, "join")
    return g.add_edge("join", END).compile(executor="dag")


def test_sync_parallel_nodes_of_the_dag_executor_share_one_pool_with_the_caller() -> None:
    import threading

    names: set[str] = set()
    # All three branches must run at once to pass: one in the caller, two on the pool.
    together = threading.Barrier(3, timeout=10)

    def branch(x: int) -> int:
        names.add(threading.current_thread().name)
        together.wait()
        return x

    graph = _fan_out(branch)
    for _ in range(3):
        assert graph.invoke(2) == 6
    caller = threading.current_thread().name
    pooled = names - {caller}
    assert caller in names and len(pooled) >= 2
    assert all(n.startswith("weft-dag") for n in pooled)


async def test_async_parallel_nodes_of_the_dag_executor_are_tasks_on_the_loop() -> None:
    import threading

    threads: set[int] = set()
    running: list[int] = []
    overlapped: list[bool] = []

    async def branch(x: int) -> int:
        threads.add(threading.get_ident())
        running.append(x)
        await asyncio.sleep(0.01)
        overlapped.append(len(running) > 1)
        running.remove(x)
        return x

    assert await _fan_out(branch).ainvoke(2) == 6
    assert threads == {threading.get_ident()} and any(overlapped)

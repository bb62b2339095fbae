"""The LangGraph backend: a weft plan laid out as a LangGraph ``StateGraph``.

Each weft node becomes one LangGraph node that reads only the channels it needs (its
upstream's output, and the shared state if it asked for it) and writes only what its successors
read, so a weft graph costs about what the same graph hand-written in LangGraph does. A node that
branches returns a ``Command`` naming where to go.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphBubbleUp
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from typing_extensions import is_typeddict

from weft.core.graph import END, START, GraphPlan
from weft.core.runtime.events import answer_nodes, produces
from weft.core.runtime.node import Layout, NodeRunner, Update
from weft.core.types import typed_dict

__all__ = [
    "IN",
    "OUT",
    "Built",
    "build",
    "plan_out_keys",
    "resolve_checkpointer",
    "state_fields",
]

IN = "__in__"
OUT = "__out__"


def _last(_old: Any, new: Any) -> Any:
    return new


def _out_key(n: str) -> str:
    return f"out:{n}"


def _inbox_key(n: str) -> str:
    return f"in:{n}"


def state_fields(state: Any) -> dict[str, Any]:
    """The channels of a plan's shared state, by name."""
    if state is None:
        return {}
    if isinstance(state, type) and issubclass(state, pydantic.BaseModel):
        return {
            name: _annotated(f.annotation, f.metadata) if f.metadata else f.annotation
            for name, f in state.model_fields.items()
        }
    if is_typeddict(state):
        return dict(typing.get_type_hints(state, include_extras=True))
    raise TypeError(
        f"state must be a TypedDict or a pydantic model, got {state!r}; declare e.g. "
        f"class ChatState(TypedDict): history: Annotated[list[BaseMessage], add_messages]"
    )


def _annotated(annotation: Any, metadata: list[Any]) -> Any:
    # The tuple is built apart: mypy reads ``Annotated[(t, *m)]`` as 3.11-only syntax, though
    # Python 3.10 runs it.
    params = (annotation, *metadata)
    return Annotated[params]


def resolve_checkpointer(
    checkpointer: BaseCheckpointSaver[Any] | str | None,
) -> BaseCheckpointSaver[Any] | None:
    if checkpointer is None or isinstance(checkpointer, BaseCheckpointSaver):
        return checkpointer
    if checkpointer == "memory":
        return InMemorySaver()
    from weft.core._checkpoint import open_sqlite_checkpointer

    return open_sqlite_checkpointer(checkpointer)


# -- channel layout -----------------------------------------------------------------------------


def _preds(plan: GraphPlan, n: str) -> list[str]:
    return [*plan.preds[n], *plan.branch_preds[n]]


def _in_key(plan: GraphPlan, n: str) -> str:
    """The channel node ``n`` reads its input from; empty for a fan-in that waits for all."""
    preds = _preds(plan, n)
    if len(preds) > 1:
        return _inbox_key(n) if plan.triggers[n] == "any" else ""
    return IN if preds[0] == START else _out_key(preds[0])


def plan_out_keys(plan: GraphPlan, name: str) -> list[str]:
    """The channels node ``name`` writes: what its successors read, and the graph output."""
    keys: list[str] = []
    succ = list(plan.succs.get(name, ()))
    if name in plan.branches:
        succ += [t for t in plan.branches[name].targets.values() if t not in succ]
    for s in succ:
        if s == END:
            continue
        n_in = len(_preds(plan, s))
        key = _inbox_key(s) if plan.triggers[s] == "any" and n_in > 1 else _out_key(name)
        if key not in keys:
            keys.append(key)
    if name in plan.end_nodes:
        keys.append(OUT)
    return keys


def _layout(plan: GraphPlan, n: str) -> Layout:
    in_key = _in_key(plan, n)
    fan_in = (
        () if in_key else tuple((p, IN if p == START else _out_key(p)) for p in _preds(plan, n))
    )
    return Layout(in_key, fan_in, tuple(plan_out_keys(plan, n)))


class _Step(Runnable[Any, Any]):
    """A weft node as LangGraph runs it: the node runner, its write as a LangGraph write."""

    def __init__(self, runner: NodeRunner) -> None:
        self.runner = runner
        self.name = runner.name

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return _write(self.runner.run(input, config or {}))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return _write(await self.runner.arun(input, config or {}))


def _write(update: Update) -> dict[str, Any] | Command[Any]:
    values, goto = update
    return values if goto is None else Command(update=values, goto=goto)


@dataclass(frozen=True)
class Built:
    """A plan compiled for LangGraph: the graph, the inboxes fed from START, and the nodes."""

    graph: CompiledStateGraph[Any, Any, Any, Any]
    start_inboxes: dict[str, Any]
    nodes: dict[str, NodeRunner]


def build(
    plan: GraphPlan,
    checkpointer: BaseCheckpointSaver[Any] | None,
    interrupt_before: Sequence[str],
    interrupt_after: Sequence[str],
) -> Built:
    """Lay ``plan`` out as a compiled LangGraph graph."""
    fields: dict[str, Any] = state_fields(plan.state)
    state_keys = list(fields)
    fields[IN] = Any
    fields[OUT] = Annotated[Any, _last]
    succs = {
        n: [
            *plan.succs.get(n, ()),
            *(plan.branches[n].targets.values() if n in plan.branches else ()),
        ]
        for n in plan.nodes
    }
    producers = [
        n
        for n, d in plan.nodes.items()
        if d.spec is not None
        and produces(d.spec.kind, d.spec.kind == "lambda" and d.spec.component.streams)
    ]
    answer = answer_nodes(succs, producers, END)
    nodes = {
        n: NodeRunner(
            plan.name,
            d,
            _layout(plan, n),
            plan.branches.get(n),
            state_keys,
            plan.state,
            answer=n in answer,
            passthrough=(GraphBubbleUp,),
        )
        for n, d in plan.nodes.items()
    }
    start_inboxes: dict[str, Any] = {}
    for n, runner in nodes.items():
        fields[_out_key(n)] = Any
        if runner.layout.in_key == _inbox_key(n):
            fields[_inbox_key(n)] = Annotated[Any, _last]
            if START in plan.preds[n]:
                start_inboxes[_inbox_key(n)] = None
    name = _safe(plan.name)
    sg: StateGraph[Any, Any, Any, Any] = StateGraph(
        typed_dict(f"{name}State", fields),
        input_schema=typed_dict(f"{name}Input", {k: fields[k] for k in [IN, OUT, *start_inboxes]}),
        output_schema=typed_dict(f"{name}Output", {OUT: Annotated[Any, _last]}),
    )
    for n, runner in nodes.items():
        reads = (
            [runner.layout.in_key] if runner.layout.in_key else [k for _, k in runner.layout.fan_in]
        )
        if runner.wants_state:
            reads += state_keys
        targets = runner.branch.targets.values() if runner.branch is not None else ()
        sg.add_node(
            n,
            _Step(runner),
            input_schema=typed_dict(
                f"{_safe(n)}Input", {k: fields[k] for k in dict.fromkeys(reads)}
            ),
            metadata=dict(runner.meta),
            destinations=tuple(t for t in targets if t != END) or None,
        )
    for n in plan.nodes:
        preds = plan.preds[n]
        if not preds:
            continue
        if plan.triggers[n] == "all" and len(preds) > 1:
            sg.add_edge(list(preds), n)
        else:
            for p in preds:
                sg.add_edge(p, n)
    for p, after in plan.succs.items():
        if END in after and p != START:
            sg.add_edge(p, END)
    compiled = sg.compile(
        checkpointer=checkpointer,
        interrupt_before=list(interrupt_before) or None,
        interrupt_after=list(interrupt_after) or None,
        name=plan.name,
    )
    return Built(compiled, start_inboxes, nodes)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).title().replace("_", "") or "Graph"

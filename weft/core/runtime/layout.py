"""Where a plan's values live while it runs, whichever executor runs it.

Each node reads its input from one key (its upstream's output, or an inbox that any of several
upstreams writes) or, for a fan-in, from the outputs of all its upstreams, and writes its output
under the keys its successors read. The shared state's fields are keys too, with the reducers
their annotations name. :func:`lay_out` makes the node runners of a plan with this layout;
the LangGraph backend turns the keys into channels, and the DAG executor keeps them in a dict.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

import pydantic
from typing_extensions import is_typeddict

from weft.core.graph import END, START, GraphPlan
from weft.core.runtime.events import answer_nodes, produces
from weft.core.runtime.node import Layout, NodeRunner

__all__ = [
    "IN",
    "OUT",
    "Laid",
    "inbox_key",
    "lay_out",
    "last",
    "out_key",
    "plan_out_keys",
    "reducer_of",
    "state_fields",
]

IN = "__in__"
OUT = "__out__"


def last(_old: Any, new: Any) -> Any:
    """The reducer of keys several nodes may write in one step: the last write wins."""
    return new


def out_key(n: str) -> str:
    return f"out:{n}"


def inbox_key(n: str) -> str:
    return f"in:{n}"


def state_fields(state: Any) -> dict[str, Any]:
    """The keys of a plan's shared state, with their annotations, by name."""
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


def reducer_of(annotation: Any) -> Callable[[Any, Any], Any] | None:
    """The reducer an ``Annotated[T, reducer]`` field names (its last callable), if any."""
    if get_origin(annotation) is not Annotated:
        return None
    for meta in reversed(get_args(annotation)[1:]):
        if callable(meta):
            return meta  # type: ignore[no-any-return]
    return None


# -- the keys of each node ----------------------------------------------------------------------


def _preds(plan: GraphPlan, n: str) -> list[str]:
    return [*plan.preds[n], *plan.branch_preds[n]]


def _succs(plan: GraphPlan, n: str) -> list[str]:
    """The nodes after ``n`` (plain edges and branch targets), END left out."""
    after = list(plan.succs.get(n, ()))
    if n in plan.branches:
        after += plan.branches[n].targets.values()
    return list(dict.fromkeys(s for s in after if s != END))


class _Keys:
    """The key each node's output is read from by the nodes after it.

    A node's own key, but for a node that is the only one after its single upstream node, when
    that node runs at most once in a run: such a chain shares one key (the graph input's, for
    a chain from START), since each of its values is read only by the next node, in the step
    after it is written, before the next is written. Every key is a channel that LangGraph
    visits at each step, so a long chain of keys would cost each step more than the last.
    """

    def __init__(self, plan: GraphPlan) -> None:
        self.plan = plan
        self.keys: dict[str, str] = {START: IN}
        self.once: dict[str, bool] = {START: True}

    def key(self, n: str) -> str:
        found = self.keys.get(n)
        if found is not None:
            return found
        self.keys[n] = out_key(n)  # until known otherwise; a cycle ends here
        preds = _preds(self.plan, n)
        if len(preds) == 1 and _succs(self.plan, preds[0]) == [n] and self.runs_once(preds[0]):
            self.keys[n] = self.key(preds[0])
        return self.keys[n]

    def runs_once(self, n: str) -> bool:
        """Whether node ``n`` runs at most once in a run: it has one upstream node, which does."""
        found = self.once.get(n)
        if found is not None:
            return found
        self.once[n] = False  # a node on a cycle runs more than once
        preds = _preds(self.plan, n)
        self.once[n] = len(preds) == 1 and self.runs_once(preds[0])
        return self.once[n]


def _in_key(plan: GraphPlan, keys: _Keys, n: str) -> str:
    """The key node ``n`` reads its input from; empty for a fan-in that waits for all."""
    preds = _preds(plan, n)
    if len(preds) > 1:
        return inbox_key(n) if plan.triggers[n] == "any" else ""
    return keys.key(preds[0])


def plan_out_keys(plan: GraphPlan, name: str, keys: _Keys | None = None) -> list[str]:
    """The keys node ``name`` writes: what its successors read, and the graph output."""
    keys = keys or _Keys(plan)
    written: list[str] = []
    for s in _succs(plan, name):
        n_in = len(_preds(plan, s))
        key = inbox_key(s) if plan.triggers[s] == "any" and n_in > 1 else keys.key(name)
        if key not in written:
            written.append(key)
    if name in plan.end_nodes:
        written.append(OUT)
    return written


def _layout(plan: GraphPlan, keys: _Keys, n: str) -> Layout:
    in_key = _in_key(plan, keys, n)
    fan_in = () if in_key else tuple((p, keys.key(p)) for p in _preds(plan, n))
    return Layout(in_key, fan_in, tuple(plan_out_keys(plan, n, keys)))


@dataclass(frozen=True)
class Laid:
    """A plan laid out: its node runners, the keys and their annotations (the reducer of a key
    is in its ``Annotated`` metadata), and the inboxes the graph's input fills."""

    nodes: dict[str, NodeRunner]
    fields: dict[str, Any]
    state_keys: list[str]
    start_inboxes: dict[str, Any]


def lay_out(plan: GraphPlan, passthrough: tuple[type[BaseException], ...] = ()) -> Laid:
    """The node runners of ``plan`` and the keys they read and write. ``passthrough`` are the
    executors' own signals, which pass through a node untouched."""
    fields: dict[str, Any] = state_fields(plan.state)
    state_keys = list(fields)
    fields[IN] = Any
    # Several nodes that end the graph may write its output in one step; one node cannot.
    fields[OUT] = Annotated[Any, last] if len(plan.end_nodes) > 1 else Any
    keys = _Keys(plan)
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
            _layout(plan, keys, n),
            plan.branches.get(n),
            state_keys,
            plan.state,
            answer=n in answer,
            passthrough=passthrough,
        )
        for n, d in plan.nodes.items()
    }
    start_inboxes: dict[str, Any] = {}
    for n, runner in nodes.items():
        layout = runner.layout
        for k in (layout.in_key, *(k for _, k in layout.fan_in), *layout.out_keys):
            if k and k not in fields:
                fields[k] = Any
        if layout.in_key == inbox_key(n):
            fields[inbox_key(n)] = Annotated[Any, last]
            if START in plan.preds[n]:
                start_inboxes[inbox_key(n)] = None
    return Laid(nodes, fields, state_keys, start_inboxes)

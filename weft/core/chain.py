"""The chain builder: linear sugar over the same graph engine.

Each step is appended after the previous one: a component, a parallel step (its components
run side by side on the same input and their outputs come out as a dict), a branch (one of
several components, chosen by a condition), or a subgraph.

Example:
    >>> chain = Chain[str, int]("length").then(str.strip, name="strip", output_type=str)
    >>> chain = chain.then(lambda_(len, input_type=str, output_type=int))
    >>> chain.compile().invoke("  hi ")
    2
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, Literal, TypeVar, get_args

from langgraph.checkpoint.base import BaseCheckpointSaver
from typing_extensions import Self

from weft.core.compiled import CompiledGraph
from weft.core.component import as_component
from weft.core.graph import END, START, Graph
from weft.core.types import typed_dict

__all__ = ["Chain"]

_JOIN = "chain_join"

InT = TypeVar("InT")
OutT = TypeVar("OutT")


class Chain(Generic[InT, OutT]):
    """A linear pipeline of steps, compiled onto the same engine as :class:`Graph`.

    Example:
        >>> Chain[str, str]("shout").then(lambda_(str.upper, input_type=str, output_type=str))
        Chain('shout', steps=1)
    """

    def __init__(self, name: str = "chain", *, input_type: Any = None, output_type: Any = None):
        self.name = name
        self._input_type = input_type
        self._output_type = output_type
        self._graph: Graph[Any, Any] = Graph(name)
        self._tail: list[str] = [START]  # nodes the next step follows
        self._tail_any = False  # the next step joins alternatives (after a branch)
        self._count = 0

    def _name(self, name: str | None, component: Any) -> str:
        self._count += 1
        if name:
            return name
        base = getattr(component, "name", None) or getattr(component, "__name__", None)
        if not isinstance(base, str) or base in ("<lambda>", "lambda"):
            base = type(component).__name__
        candidate = base
        while candidate in self._graph.nodes:
            candidate = f"{base}_{self._count}"
        return candidate

    def _link(self, node: str) -> None:
        for t in self._tail:
            self._graph.add_edge(t, node)

    def then(
        self,
        component: Any,
        *,
        name: str | None = None,
        input_type: Any = None,
        output_type: Any = None,
    ) -> Self:
        """Append a component (a Runnable, a function, a compiled graph or a Graph builder)."""
        node = self._name(name, component)
        trigger: Literal["any"] | None = "any" if self._tail_any else None
        self._graph.add_node(
            node, component, input_type=input_type, output_type=output_type, trigger=trigger
        )
        self._link(node)
        self._tail, self._tail_any = [node], False
        return self

    def parallel(self, steps: Mapping[str, Any], *, name: str | None = None) -> Self:
        """Run ``steps`` side by side on the same input; the output is ``{key: output}``."""
        join = name or f"parallel_{self._count + 1}"
        self._count += 1
        if self._tail_any:
            self._graph.add_passthrough(f"{join}_in", trigger="any")
            self._link(f"{join}_in")
            self._tail, self._tail_any = [f"{join}_in"], False
        keys = list(steps)
        out_types: dict[str, Any] = {}
        for key, comp in steps.items():
            node = f"{join}_{key}"
            self._graph.add_node(node, comp)
            out_types[key] = as_component(comp).output_type
            self._link(node)
        out_t = typed_dict(f"{join.title()}Output", out_types)
        prefix = f"{join}_"

        def merge(parts: dict[str, Any]) -> Any:
            return {k[len(prefix) :]: v for k, v in parts.items()}

        merge.__annotations__ = {"parts": dict[str, Any], "return": out_t}
        self._graph.add_passthrough(join)
        self._graph.nodes[join].merge = merge
        for key in keys:
            self._graph.add_edge(f"{join}_{key}", join)
        self._tail, self._tail_any = [join], False
        return self

    def branch(
        self,
        condition: Callable[..., Any],
        options: Mapping[str, Any],
        *,
        name: str | None = None,
    ) -> Self:
        """Run one of ``options``, the one whose key ``condition(input)`` returns."""
        point = name or f"branch_{self._count + 1}"
        self._count += 1
        trigger: Literal["any"] | None = "any" if self._tail_any else None
        self._graph.add_passthrough(point, trigger=trigger)
        self._link(point)
        targets: dict[str, str] = {}
        for key, comp in options.items():
            node = f"{point}_{key}"
            self._graph.add_node(node, comp)
            targets[key] = node
        self._graph.add_branch(point, condition, targets)
        self._tail, self._tail_any = list(targets.values()), len(targets) > 1
        return self

    def compile(
        self,
        *,
        checkpointer: BaseCheckpointSaver[Any] | str | None = None,
        step_limit: int | None = None,
        name: str | None = None,
    ) -> CompiledGraph[InT, OutT]:
        """Check the chain and compile it; see :meth:`Graph.compile`."""
        in_t, out_t = self._input_type, self._output_type
        orig = getattr(self, "__orig_class__", None)
        if orig is not None and len(get_args(orig)) == 2:
            in_t = get_args(orig)[0] if in_t is None else in_t
            out_t = get_args(orig)[1] if out_t is None else out_t
        graph = self._graph
        graph._input_type, graph._output_type = in_t, out_t
        if self._tail_any and len(self._tail) > 1:
            graph.add_passthrough(_JOIN, trigger="any")
            self._link(_JOIN)
            tail = [_JOIN]
        else:
            tail = self._tail
        added = [(t, END) for t in tail if (t, END) not in graph.edges]
        graph.edges.extend(added)
        try:
            return graph.compile(checkpointer=checkpointer, step_limit=step_limit, name=name)
        finally:
            for e in added:
                graph.edges.remove(e)
            if tail == [_JOIN]:
                graph.nodes.pop(_JOIN)
                graph.edges[:] = [e for e in graph.edges if e[1] != _JOIN]

    def __repr__(self) -> str:
        return f"Chain({self.name!r}, steps={self._count})"

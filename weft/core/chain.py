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
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

from langgraph.checkpoint.base import BaseCheckpointSaver
from typing_extensions import Self

from weft.core.compiled import CompiledGraph
from weft.core.component import spec_of
from weft.core.graph import END, START, Graph
from weft.core.types import typed_dict

__all__ = ["Chain"]

InT = TypeVar("InT")
OutT = TypeVar("OutT")


@dataclass(frozen=True)
class _Then:
    node: str
    component: Any
    input_type: Any
    output_type: Any


@dataclass(frozen=True)
class _Parallel:
    join: str
    steps: tuple[tuple[str, Any], ...]  # (key, component)


@dataclass(frozen=True)
class _Branch:
    point: str
    condition: Callable[..., Any]
    options: tuple[tuple[str, Any], ...]  # (key, component)


_Step = _Then | _Parallel | _Branch


class Chain(Generic[InT, OutT]):
    """A linear pipeline of steps, compiled onto the same engine as :class:`Graph`.

    The chain records its steps; each ``compile()`` lays them out in a new graph, so compiling
    changes nothing in the chain and steps added later reach only later compiles.

    Example:
        >>> Chain[str, str]("shout").then(lambda_(str.upper, input_type=str, output_type=str))
        Chain('shout', steps=1)
    """

    def __init__(self, name: str = "chain", *, input_type: Any = None, output_type: Any = None):
        self.name = name
        self._input_type = input_type
        self._output_type = output_type
        self._steps: list[_Step] = []
        self._names: set[str] = set()  # node names taken so far
        self._count = 0

    def _name(self, name: str | None, component: Any) -> str:
        self._count += 1
        if name:
            return name
        base = getattr(component, "name", None) or getattr(component, "__name__", None)
        if not isinstance(base, str) or base in ("<lambda>", "lambda"):
            base = type(component).__name__
        candidate = base
        while candidate in self._names:
            candidate = f"{base}_{self._count}"
        return candidate

    def _take(self, *names: str) -> None:
        self._names.update(names)

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
        if not isinstance(component, Graph):
            # A function is wrapped (and its annotations read) once, here: a bad one fails now.
            spec = spec_of(component, input_type=input_type, output_type=output_type)
            component = spec.component
        self._steps.append(_Then(node, component, input_type, output_type))
        self._take(node)
        return self

    def parallel(self, steps: Mapping[str, Any], *, name: str | None = None) -> Self:
        """Run ``steps`` side by side on the same input; the output is ``{key: output}``."""
        join = name or f"parallel_{self._count + 1}"
        self._count += 1
        self._steps.append(_Parallel(join, tuple(steps.items())))
        self._take(join, f"{join}_in", *(f"{join}_{k}" for k in steps))
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
        self._steps.append(_Branch(point, condition, tuple(options.items())))
        self._take(point, *(f"{point}_{k}" for k in options))
        return self

    def _graph(self) -> Graph[Any, Any]:
        """A new graph with the chain's steps laid out one after another."""
        in_t, out_t = self._input_type, self._output_type
        orig = getattr(self, "__orig_class__", None)
        if orig is not None and len(get_args(orig)) == 2:
            in_t = get_args(orig)[0] if in_t is None else in_t
            out_t = get_args(orig)[1] if out_t is None else out_t
        g: Graph[Any, Any] = Graph(self.name, input_type=in_t, output_type=out_t)
        tail: list[str] = [START]  # nodes the next step follows
        tail_any = False  # the next step joins alternatives (after a branch)

        def link(node: str) -> None:
            for t in tail:
                g.add_edge(t, node)

        for step in self._steps:
            trigger: Literal["any"] | None = "any" if tail_any else None
            if isinstance(step, _Then):
                g.add_node(
                    step.node,
                    step.component,
                    input_type=step.input_type,
                    output_type=step.output_type,
                    trigger=trigger,
                )
                link(step.node)
                tail, tail_any = [step.node], False
            elif isinstance(step, _Parallel):
                if tail_any:
                    g.add_passthrough(f"{step.join}_in", trigger="any")
                    link(f"{step.join}_in")
                    tail = [f"{step.join}_in"]
                for key, comp in step.steps:
                    g.add_node(f"{step.join}_{key}", comp)
                    link(f"{step.join}_{key}")
                g.add_passthrough(step.join, merge=_parallel_merge(step, g))
                for key, _ in step.steps:
                    g.add_edge(f"{step.join}_{key}", step.join)
                tail, tail_any = [step.join], False
            else:
                g.add_passthrough(step.point, trigger=trigger)
                link(step.point)
                targets = {key: f"{step.point}_{key}" for key, _ in step.options}
                for key, comp in step.options:
                    g.add_node(targets[key], comp)
                g.add_branch(step.point, step.condition, targets)
                tail, tail_any = list(targets.values()), len(targets) > 1
        if tail_any and len(tail) > 1:
            join = _unused("chain_join", self._names)
            g.add_passthrough(join, trigger="any")
            link(join)
            tail = [join]
        for t in tail:
            g.add_edge(t, END)
        return g

    def compile(
        self,
        *,
        checkpointer: BaseCheckpointSaver[Any] | str | None = None,
        step_limit: int | None = None,
        name: str | None = None,
        executor: Literal["auto", "langgraph", "dag"] | None = None,
    ) -> CompiledGraph[InT, OutT]:
        """Check the chain and compile it; see :meth:`Graph.compile`."""
        return self._graph().compile(
            checkpointer=checkpointer, step_limit=step_limit, name=name, executor=executor
        )

    def __repr__(self) -> str:
        return f"Chain({self.name!r}, steps={self._count})"


def _parallel_merge(step: _Parallel, g: Graph[Any, Any]) -> Callable[[dict[str, Any]], Any]:
    """The join of a parallel step: ``{key: output}``, typed by what each branch outputs."""
    prefix = f"{step.join}_"
    out_types: dict[str, Any] = {}
    for key, _ in step.steps:
        spec = g.nodes[prefix + key].spec
        out_types[key] = spec.output_type if spec is not None else Any
    out_t = typed_dict(f"{step.join.title()}Output", out_types)

    def merge(parts: dict[str, Any]) -> Any:
        return {k[len(prefix) :]: v for k, v in parts.items()}

    merge.__annotations__ = {"parts": dict[str, Any], "return": out_t}
    return merge


def _unused(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name

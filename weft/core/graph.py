"""The graph builder: typed nodes, edges, branches, fan-out and fan-in, shared state.

A :class:`Graph` is mutable and runs nothing. :meth:`Graph.compile` checks it (types on every
edge, names, reachability, fan-ins, cycles) and returns an immutable
:class:`~weft.core.compiled.CompiledGraph` that runs on weft's DAG executor or on LangGraph,
from a frozen :class:`~weft.core.plan.GraphPlan` (the checks themselves are in ``_checks.py``).

Data flows along edges: a node's input is the output of the node before it. A node with several
incoming edges waits for all of them (fan-in) and receives a mapping ``{upstream: output}``,
or what its ``merge`` function makes of that mapping. ``trigger="any"`` makes a node run as soon
as any one input arrives instead, as for the join after a branch or the head of a loop.

Example:
    >>> g = Graph[str, int]("count")
    >>> g.add_node("strip", lambda_(str.strip, input_type=str, output_type=str))
    >>> g.add_node("length", lambda_(len, input_type=str, output_type=int))
    >>> g.add_edge(START, "strip").add_edge("strip", "length").add_edge("length", END)
    >>> g.compile().invoke("  hi ")
    2
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar, get_args

from langgraph.checkpoint.base import BaseCheckpointSaver
from typing_extensions import Self

from weft.core._checks import (
    check_inputs,
    closure,
    common_type,
    cycle_nodes,
    exclusive,
    find_cycle,
    frozen,
    node_in_type,
    resolve_types,
    topo_order,
    union,
)
from weft.core.component import ComponentSpec, spec_of
from weft.core.errors import GraphCompileError
from weft.core.plan import END, START, BranchDef, GraphPlan, NodeDef, Trigger
from weft.core.types import is_assignable, type_name

if typing.TYPE_CHECKING:
    from weft.core.compiled import CompiledGraph

__all__ = ["END", "START", "BranchDef", "Graph", "GraphPlan", "NodeDef", "Trigger"]

InT = TypeVar("InT")
OutT = TypeVar("OutT")
_RESERVED_CHARS = (":", "|", "\n")


@dataclass(frozen=True)
class _Subgraph:
    """A ``Graph`` builder added as a node: compiled, and checked, with its parent."""

    graph: Graph[Any, Any]
    input_type: Any
    output_type: Any


class Graph(Generic[InT, OutT]):
    """A typed graph builder. Parameterise it with its input and output types.

    Args:
        name: Shown in errors, traces and stream events.
        input_type: The graph's input type; ``Graph[In, Out]`` sets it too. When neither is
            given, it is taken from the nodes after START.
        output_type: The graph's output type; defaults to what the nodes before END output.
        state: Optional shared state, a TypedDict or pydantic model. Use
            ``Annotated[list[X], reducer]`` fields to accumulate (e.g. chat history).

    Example:
        >>> g = Graph[str, str]("echo")
        >>> g.add_node("echo", lambda_(lambda s: s, input_type=str, output_type=str))
        >>> g.add_edge(START, "echo").add_edge("echo", END)
        >>> g.compile().invoke("hi")
        'hi'
    """

    def __init__(
        self,
        name: str = "graph",
        *,
        input_type: Any = None,
        output_type: Any = None,
        state: Any = None,
    ) -> None:
        self.name = name
        self._input_type = input_type
        self._output_type = output_type
        self.state = state
        self.nodes: dict[str, NodeDef] = {}
        self.edges: list[tuple[str, str]] = []
        self.branches: list[BranchDef] = []
        self._subgraphs: dict[str, _Subgraph] = {}
        self._problems: list[str] = []

    # -- building -----------------------------------------------------------------------------

    def add_node(
        self,
        name: str,
        component: Any,
        *,
        input_type: Any = None,
        output_type: Any = None,
        merge: Callable[[dict[str, Any]], Any] | None = None,
        trigger: Trigger | None = None,
        pre: Callable[..., Any] | None = None,
        post: Callable[..., Any] | None = None,
    ) -> Self:
        """Add a node running ``component``.

        Args:
            name: Unique within the graph.
            component: A langchain-core Runnable, a compiled weft graph (a subgraph), a
                ``Graph`` builder (checked and compiled by this graph's ``compile()``, its
                problems listed with this graph's), or a function with annotations.
            input_type: Override the component's declared input type.
            output_type: Override the component's declared output type.
            merge: For a fan-in node: turns ``{upstream: output}`` into the node's input.
            trigger: ``"all"`` (default) waits for every incoming edge; ``"any"`` runs when any
                one arrives (a join after a branch, the head of a loop).
            pre: ``pre(input, state) -> input``, run before the component, with shared state.
            post: ``post(output, state) -> dict``, a partial update of the shared state.
        """
        if name in self.nodes:
            self._problems.append(
                f"duplicate node name '{name}'; every node needs its own name, e.g. '{name}_2'"
            )
            return self
        if isinstance(component, Graph):
            self._subgraphs[name] = _Subgraph(component, input_type, output_type)
            spec = ComponentSpec(component, "graph", component.name, Any, Any)
        else:
            spec = spec_of(component, input_type=input_type, output_type=output_type)
        self.nodes[name] = NodeDef(name, spec, merge, trigger, pre, post)
        return self

    def add_passthrough(
        self,
        name: str,
        *,
        trigger: Trigger | None = None,
        merge: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Self:
        """Add a node that outputs its input unchanged (a fan-out or fan-in point).

        ``merge`` turns a fan-in's ``{upstream: output}`` into what it passes on.
        """
        if name in self.nodes:
            self._problems.append(f"duplicate node name '{name}'")
            return self
        self.nodes[name] = NodeDef(name, None, merge=merge, trigger=trigger)
        return self

    def add_edge(self, source: str, target: str) -> Self:
        """Send ``source``'s output to ``target``. Several edges out of a node run in parallel."""
        self.edges.append((source, target))
        return self

    def add_branch(
        self,
        source: str,
        condition: Callable[..., Any],
        targets: Sequence[str] | Mapping[str, str],
    ) -> Self:
        """After ``source``, go where ``condition(output)`` says: one target name or several.

        Args:
            source: The node whose output the condition sees.
            condition: Returns a target (or a list of targets, run in parallel). A parameter
                named ``state`` receives the shared state.
            targets: The possible targets: node names (``END`` allowed), or a mapping from
                the labels the condition returns to node names.
        """
        mapping = MappingProxyType(
            dict(targets) if isinstance(targets, Mapping) else {t: t for t in targets}
        )
        try:
            wants_state = "state" in inspect.signature(condition).parameters
        except (TypeError, ValueError):
            wants_state = False
        self.branches.append(BranchDef(source, condition, mapping, wants_state))
        return self

    # -- compiling ----------------------------------------------------------------------------

    def _declared_types(self) -> tuple[Any, Any]:
        in_t, out_t = self._input_type, self._output_type
        orig = getattr(self, "__orig_class__", None)
        if orig is not None:
            args = get_args(orig)
            if len(args) == 2:
                in_t = args[0] if in_t is None else in_t
                out_t = args[1] if out_t is None else out_t
        return in_t, out_t

    def _resolved_nodes(self, problems: list[str]) -> dict[str, NodeDef]:
        """The nodes with every subgraph builder compiled now; its problems join ``problems``."""
        nodes = dict(self.nodes)
        for n, sub in self._subgraphs.items():
            try:
                compiled = sub.graph.compile()
            except GraphCompileError as exc:
                problems.extend(f"node '{n}' (subgraph '{exc.graph}'): {p}" for p in exc.problems)
                spec = ComponentSpec(
                    sub.graph,
                    "graph",
                    sub.graph.name,
                    Any if sub.input_type is None else sub.input_type,
                    Any if sub.output_type is None else sub.output_type,
                )
            else:
                spec = spec_of(compiled, input_type=sub.input_type, output_type=sub.output_type)
            nodes[n] = dataclasses.replace(nodes[n], spec=spec)
        return nodes

    def plan(self, *, step_limit: int | None = None, name: str | None = None) -> GraphPlan:
        """Check the graph and resolve what running it needs; raise on any problem.

        The plan is a snapshot: later changes to this builder (or to a subgraph builder added
        as a node) do not reach it. ``name`` names the plan instead of the builder's name.

        Raises:
            GraphCompileError: listing every problem found, each with its fix.
        """
        graph_name = self.name if name is None else name
        sub_problems: list[str] = []
        nodes = self._resolved_nodes(sub_problems)
        problems = list(self._problems)
        names = set(nodes)
        known = ", ".join(sorted(names)) or "(none)"
        for n in names:
            if n in (START, END) or any(c in n for c in _RESERVED_CHARS):
                problems.append(
                    f"node name '{n}' is reserved or contains one of ':', '|'; rename it"
                )
        preds: dict[str, list[str]] = {n: [] for n in names}
        succs: dict[str, list[str]] = {n: [] for n in names}
        succs[START] = []
        end_preds: list[str] = []
        for src, dst in self.edges:
            ok = True
            if src == END:
                problems.append(f"edge '{src}' -> '{dst}': nothing can follow END")
                ok = False
            elif src != START and src not in names:
                problems.append(f"edge '{src}' -> '{dst}': no node named '{src}'; nodes: {known}")
                ok = False
            if dst == START:
                problems.append(f"edge '{src}' -> '{dst}': nothing can lead into START")
                ok = False
            elif dst != END and dst not in names:
                problems.append(f"edge '{src}' -> '{dst}': no node named '{dst}'; nodes: {known}")
                ok = False
            if not ok:
                continue
            if dst in succs[src]:
                problems.append(f"edge '{src}' -> '{dst}' is declared twice; remove one")
                continue
            succs[src].append(dst)
            if dst == END:
                end_preds.append(src)
            else:
                preds[dst].append(src)
        branches: dict[str, BranchDef] = {}
        branch_preds: dict[str, list[str]] = {n: [] for n in names}
        for b in self.branches:
            if b.source not in names:
                problems.append(
                    f"branch from '{b.source}': no node named '{b.source}'; nodes: {known}"
                )
                continue
            if b.source in branches:
                problems.append(
                    f"node '{b.source}' has two branches; merge their conditions into one"
                )
                continue
            branches[b.source] = b
            for label, target in b.targets.items():
                if target == END:
                    end_preds.append(b.source)
                elif target not in names:
                    problems.append(
                        f"branch from '{b.source}': target '{target}' (for {label!r}) is not a "
                        f"node; valid targets: {known}, END"
                    )
                else:
                    branch_preds[target].append(b.source)
        if not succs[START]:
            problems.append("no edge from START; add one: add_edge(START, '<first node>')")
        if not end_preds:
            problems.append("no edge into END; add one: add_edge('<last node>', END)")
        if problems:  # the checks below need a well-formed graph; a subgraph's problems don't
            raise GraphCompileError(graph_name, [*sub_problems, *problems])

        # Reachability, both ways.
        forward: dict[str, set[str]] = {n: set(s) for n, s in succs.items()}
        for src, b in branches.items():
            forward[src].update(b.targets.values())
        reach = closure(START, forward)
        backward: dict[str, set[str]] = {n: set() for n in [*names, START, END]}
        for src, dsts in forward.items():
            for d in dsts:
                backward.setdefault(d, set()).add(src)
        coreach = closure(END, backward)
        for n in sorted(names):
            if n not in reach:
                problems.append(
                    f"node '{n}' is unreachable from START; add an edge into it or remove it"
                )
            elif n not in coreach:
                problems.append(f"node '{n}' cannot reach END; add an edge from it toward END")
        cycle = find_cycle(forward)
        if cycle and step_limit is None:
            problems.append(
                f"the graph has a cycle ({' -> '.join(cycle)}) but no step limit; pass "
                f"compile(step_limit=N) so a loop that never exits stops"
            )

        # Triggers and fan-ins.
        triggers: dict[str, Trigger] = {}
        for n in names:
            node = nodes[n]
            n_in = len(preds[n]) + len(branch_preds[n])
            if node.trigger is not None:
                triggers[n] = node.trigger
            elif n_in > 1 and (
                branch_preds[n]
                or (cycle and n in cycle_nodes(forward, n))
                or exclusive(preds[n], branches, forward)
            ):
                triggers[n] = "any"
            else:
                triggers[n] = "all"
            if triggers[n] == "all" and branch_preds[n] and len(preds[n]) > 0:
                problems.append(
                    f"node '{n}' waits for all of its inputs, but a branch from "
                    f"'{branch_preds[n][0]}' may not run; give it trigger='any'"
                )

        in_types: dict[str, Any] = {}
        out_types: dict[str, Any] = {}
        graph_in, graph_out = self._declared_types()
        first_nodes = succs[START]
        if graph_in is None:
            graph_in = common_type([node_in_type(nodes[n]) for n in first_nodes])
        out_types[START] = graph_in
        for n in topo_order(names, forward):
            resolve_types(nodes[n], preds, branch_preds, triggers, in_types, out_types)
        if graph_out is None:
            graph_out = union([out_types.get(n, Any) for n in dict.fromkeys(end_preds)])

        # Type checks on every edge.
        for n in sorted(names):
            check_inputs(nodes, n, preds[n] + branch_preds[n], triggers[n], out_types, problems)
        for n in dict.fromkeys(end_preds):
            if not is_assignable(out_types.get(n, Any), graph_out):
                problems.append(
                    f"graph output: node '{n}' outputs {type_name(out_types[n])} but the graph "
                    f"returns {type_name(graph_out)}; change the graph's output type or the node"
                )
        if problems or sub_problems:
            raise GraphCompileError(graph_name, [*sub_problems, *problems])
        return GraphPlan(
            name=graph_name,
            input_type=graph_in,
            output_type=graph_out,
            nodes=MappingProxyType(nodes),
            preds=frozen(preds),
            branch_preds=frozen(branch_preds),
            succs=frozen(succs),
            branches=MappingProxyType(branches),
            triggers=MappingProxyType(triggers),
            in_types=MappingProxyType(in_types),
            out_types=MappingProxyType(out_types),
            state=self.state,
            has_cycle=bool(cycle),
            end_nodes=frozenset(end_preds),
        )

    def compile(
        self,
        *,
        checkpointer: BaseCheckpointSaver[Any] | Literal["memory"] | str | None = None,
        interrupt_before: Sequence[str] = (),
        interrupt_after: Sequence[str] = (),
        step_limit: int | None = None,
        name: str | None = None,
        durability: Literal["sync", "async", "exit"] = "sync",
        executor: Literal["auto", "langgraph", "dag"] | None = None,
    ) -> CompiledGraph[InT, OutT]:
        """Check the graph and return an immutable, runnable compiled graph.

        Args:
            checkpointer: A LangGraph checkpointer, ``"memory"``, or a path to a SQLite file.
                With one, runs given a ``thread_id`` keep their state across calls and
                processes, and a crashed run resumes from its last completed step.
            interrupt_before: Nodes to pause before (resume with ``invoke(None, config)``).
            interrupt_after: Nodes to pause after.
            step_limit: Most steps one run may take; required when the graph has a cycle.
            name: Rename the compiled graph (defaults to the builder's name).
            durability: When checkpoints are written: ``"sync"`` (before the next step, so a
                crash loses nothing), ``"async"`` (overlapping the next step) or ``"exit"``.
            executor: What runs the graph. ``"auto"`` (the default) picks the DAG executor when
                the graph has no cycle, no checkpointer and no interrupt, and LangGraph
                otherwise; ``"dag"`` insists on the DAG executor; ``"langgraph"`` on LangGraph.
                Both give the same outputs, events and callbacks.

        Raises:
            GraphCompileError: listing every problem found, each with its fix.
        """
        from weft.core.compiled import CompiledGraph

        plan = self.plan(step_limit=step_limit, name=name)
        unknown = [n for n in [*interrupt_before, *interrupt_after] if n not in plan.nodes]
        if unknown:
            raise GraphCompileError(
                plan.name,
                [
                    f"interrupt at unknown node '{n}'; nodes: {', '.join(sorted(plan.nodes))}"
                    for n in unknown
                ],
            )
        return CompiledGraph(
            plan,
            checkpointer=checkpointer,
            interrupt_before=tuple(interrupt_before),
            interrupt_after=tuple(interrupt_after),
            step_limit=step_limit,
            durability=durability,
            executor=executor,
        )

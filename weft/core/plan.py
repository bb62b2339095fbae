"""The plan ``Graph.compile()`` makes: what a graph runs, checked and resolved once, frozen.

A :class:`GraphPlan` holds read-only copies of what it took from the builder (nodes, edges,
branches, resolved types), so nothing done to the builder afterwards reaches a graph compiled
from it. A runtime reads the plan and nothing else of the builder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from weft.core.component import ComponentSpec

__all__ = ["END", "START", "BranchDef", "GraphPlan", "NodeDef", "Trigger"]

START = "__start__"
"""The virtual node whose output is the graph's input."""
END = "__end__"
"""The virtual node whose input becomes the graph's output."""

Trigger = Literal["all", "any"]


@dataclass(frozen=True)
class NodeDef:
    """A node as declared on the builder; frozen, so a compiled plan can share it safely."""

    name: str
    spec: ComponentSpec | None  # None: a passthrough
    merge: Callable[[dict[str, Any]], Any] | None = None
    trigger: Trigger | None = None
    pre: Callable[..., Any] | None = None
    post: Callable[..., Any] | None = None


@dataclass(frozen=True)
class BranchDef:
    """A conditional edge: ``condition(output)`` names one or several targets."""

    source: str
    condition: Callable[..., Any]
    targets: Mapping[str, str]  # label -> node name, read-only
    wants_state: bool = False


@dataclass(frozen=True)
class GraphPlan:
    """What compile() resolved: everything the runtime needs, fixed once.

    A plan holds its own read-only copies of what it took from the builder, so nothing done
    to the builder afterwards reaches a graph compiled from it.
    """

    name: str
    input_type: Any
    output_type: Any
    nodes: Mapping[str, NodeDef]
    preds: Mapping[str, tuple[str, ...]]  # plain-edge predecessors (START included)
    branch_preds: Mapping[str, tuple[str, ...]]  # predecessors through a branch
    succs: Mapping[str, tuple[str, ...]]  # plain-edge successors (END included)
    branches: Mapping[str, BranchDef]
    triggers: Mapping[str, Trigger]
    in_types: Mapping[str, Any]
    out_types: Mapping[str, Any]
    state: Any
    has_cycle: bool
    end_nodes: frozenset[str] = field(default_factory=frozenset)

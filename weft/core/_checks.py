"""The checks and type resolution behind ``Graph.plan()``: pure functions over the plan's parts."""

from __future__ import annotations

import collections.abc as cabc
import inspect
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, get_origin

from typing_extensions import is_typeddict

from weft.core.component import ComponentSpec
from weft.core.plan import END, START, BranchDef, NodeDef, Trigger
from weft.core.types import (
    BaseMessage,
    Document,
    PromptValue,
    is_assignable,
    missing_typeddict_keys,
    type_name,
)

__all__: list[str] = []

# -- type resolution ------------------------------------------------------------------------------


def node_in_type(node: NodeDef) -> Any:
    if node.pre is not None:
        hint = _param_type(node.pre, 0)
        if hint is not None:
            return hint
    return node.spec.input_type if node.spec is not None else Any


def resolve_types(
    node: NodeDef,
    preds: dict[str, list[str]],
    branch_preds: dict[str, list[str]],
    triggers: dict[str, Trigger],
    in_types: dict[str, Any],
    out_types: dict[str, Any],
) -> None:
    n = node.name
    sources = preds[n] + branch_preds[n]
    if node.spec is not None:
        in_types[n] = node_in_type(node)
        out_types[n] = node.spec.output_type
        return
    # A passthrough outputs what it receives.
    if triggers[n] == "all" and len(sources) > 1:
        t = _return_type(node.merge) if node.merge is not None else dict[str, Any]
    else:
        t = union([out_types.get(s, Any) for s in sources])
    in_types[n] = t
    out_types[n] = t


def check_inputs(
    nodes: dict[str, NodeDef],
    n: str,
    sources: list[str],
    trigger: Trigger,
    out_types: dict[str, Any],
    problems: list[str],
) -> None:
    node = nodes[n]
    if node.spec is None:
        return
    want = node_in_type(node)
    if trigger == "all" and len(sources) > 1:
        if node.merge is None:
            if not _is_mapping_type(want):
                problems.append(
                    f"node '{n}' has {len(sources)} inputs ({', '.join(sources)}) but no "
                    f"merge; pass merge=fn to add_node, give it a Mapping input (it gets "
                    f"{{upstream: output}}), or trigger='any' if only one runs per pass"
                )
            return
        merged = _return_type(node.merge)
        if merged is not None and not is_assignable(merged, want):
            problems.append(
                f"node '{n}': its merge returns {type_name(merged)} but the node takes "
                f"{type_name(want)}"
            )
        return
    for src in sources:
        have = out_types.get(src, Any)
        if not is_assignable(have, want):
            problems.append(_edge_message(src, n, have, want, node.spec))


def frozen(adjacency: dict[str, list[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({k: tuple(v) for k, v in adjacency.items()})


def _edge_message(src: str, dst: str, have: Any, want: Any, spec: ComponentSpec) -> str:
    who = "the graph input" if src == START else f"'{src}'"
    head = f"edge '{src}' -> '{dst}': {who} outputs {type_name(have)} but '{dst}' takes "
    missing = missing_typeddict_keys(have, want)
    if missing:
        return (
            f"edge '{src}' -> '{dst}': '{dst}' needs the keys {', '.join(missing)} that {who} "
            f"does not output ({type_name(have)}); add them upstream or give them defaults"
        )
    shown = "list[BaseMessage]" if spec.kind == "chat_model" else type_name(want)
    head += shown
    if spec.kind == "chat_model" and is_assignable(have, list[Document]):
        return head + "; put a prompt template between them"
    if spec.kind == "prompt":
        return head + "; pass a dict of the prompt's variables, e.g. a lambda returning one"
    if is_assignable(have, BaseMessage) and is_assignable(str, want):
        return head + "; add an output parser (StrOutputParser) or a lambda between them"
    if is_assignable(have, PromptValue):
        return head + "; a prompt's output goes to a chat model"
    return head + f"; add a lambda that turns {type_name(have)} into {type_name(want)} between them"


def closure(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as a list of names (first repeated at the end), or [] if acyclic."""
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str]:
        color[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if color.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if color.get(m) is None:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        color[n] = 2
        return []

    for n in sorted(graph):
        if color.get(n) is None:
            found = visit(n)
            if found:
                return found
    return []


def cycle_nodes(graph: dict[str, set[str]], n: str) -> set[str]:
    """The nodes on some cycle through ``n`` (``n`` itself when it is on one)."""
    back = {m for m in closure(n, graph) if n in graph.get(m, set())}
    return {n} if back or n in graph.get(n, set()) else set()


def exclusive(
    preds: list[str], branches: dict[str, BranchDef], forward: dict[str, set[str]]
) -> bool:
    """Whether the predecessors sit behind different choices of one branch (only one runs)."""
    for b in branches.values():
        targets = set(b.targets.values()) - {END}
        reach = {t: closure(t, forward) for t in targets}
        owners = []
        for p in preds:
            hits = [t for t in targets if p in reach[t]]
            if len(hits) != 1:
                break
            owners.append(hits[0])
        else:
            if len(set(owners)) > 1:
                return True
    return False


def topo_order(names: set[str], graph: dict[str, set[str]]) -> list[str]:
    """Nodes in an order where each comes after its predecessors (cycles broken anywhere)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen or n in (START, END):
            return
        seen.add(n)
        for p in sorted(q for q, dsts in graph.items() if n in dsts):
            visit(p)
        order.append(n)

    for n in sorted(names):
        visit(n)
    return order


def union(types_: list[Any]) -> Any:
    unique = list(dict.fromkeys(types_))
    if not unique:
        return Any
    if Any in unique:
        return Any
    if len(unique) == 1:
        return unique[0]
    return typing.Union[tuple(unique)]  # noqa: UP007


def common_type(types_: list[Any]) -> Any:
    unique = list(dict.fromkeys(types_))
    return unique[0] if len(unique) == 1 else Any


def _is_mapping_type(tp: Any) -> bool:
    if tp is Any or is_typeddict(tp):
        return True
    origin = get_origin(tp) or tp
    return isinstance(origin, type) and issubclass(origin, cabc.Mapping)


def _param_type(fn: Callable[..., Any], index: int) -> Any:
    try:
        params = list(inspect.signature(fn).parameters.values())
        hints = typing.get_type_hints(fn)
    except Exception:
        return None
    return hints.get(params[index].name) if len(params) > index else None


def _return_type(fn: Callable[..., Any]) -> Any:
    try:
        return typing.get_type_hints(fn).get("return")
    except Exception:
        return None

"""The LangGraph backend: a weft plan laid out as a LangGraph ``StateGraph``.

Each weft node becomes one LangGraph node that reads only the channels it needs (its
upstream's output, and the shared state if it asked for it) and writes only what its successors
read, so a weft graph costs about what the same graph hand-written in LangGraph does. A node that
branches returns a ``Command`` naming where to go.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, cast

from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphBubbleUp, GraphRecursionError
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from weft.core.graph import END, START, GraphPlan
from weft.core.runtime.layout import IN, OUT, Laid
from weft.core.runtime.node import NodeRunner, Update
from weft.core.types import typed_dict

__all__ = ["SIGNALS", "LangGraphExecutor", "build", "resolve_checkpointer"]

SIGNALS = (GraphBubbleUp,)
"""LangGraph's signals (an interrupt, a parent command), which pass through a node untouched."""


def resolve_checkpointer(
    checkpointer: BaseCheckpointSaver[Any] | str | None,
) -> BaseCheckpointSaver[Any] | None:
    if checkpointer is None or isinstance(checkpointer, BaseCheckpointSaver):
        return checkpointer
    if checkpointer == "memory":
        return InMemorySaver()
    from weft.core._checkpoint import open_sqlite_checkpointer

    return open_sqlite_checkpointer(checkpointer)


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


def build(
    plan: GraphPlan,
    laid: Laid,
    checkpointer: BaseCheckpointSaver[Any] | None,
    interrupt_before: Sequence[str],
    interrupt_after: Sequence[str],
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Lay ``plan`` out as a compiled LangGraph graph: one channel per key of ``laid``."""
    fields = laid.fields
    name = _safe(plan.name)
    sg: StateGraph[Any, Any, Any, Any] = StateGraph(
        typed_dict(f"{name}State", fields),
        input_schema=typed_dict(
            f"{name}Input", {k: fields[k] for k in [IN, OUT, *laid.start_inboxes]}
        ),
        output_schema=typed_dict(f"{name}Output", {OUT: fields[OUT]}),
    )
    for n, runner in laid.nodes.items():
        reads = (
            [runner.layout.in_key] if runner.layout.in_key else [k for _, k in runner.layout.fan_in]
        )
        if runner.wants_state:
            reads += laid.state_keys
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
        # START has written the input before any node runs, so a fan-in that waits for it
        # waits only for its other upstream nodes (LangGraph's joins do not take START).
        waits = [p for p in preds if p != START] if len(preds) > 1 else list(preds)
        if plan.triggers[n] == "all" and len(waits) > 1:
            sg.add_edge(waits, n)
        else:
            for p in waits if plan.triggers[n] == "all" else preds:
                sg.add_edge(p, n)
    for p, after in plan.succs.items():
        if END in after and p != START:
            sg.add_edge(p, END)
    return sg.compile(
        checkpointer=checkpointer,
        interrupt_before=list(interrupt_before) or None,
        interrupt_after=list(interrupt_after) or None,
        name=plan.name,
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).title().replace("_", "") or "Graph"


# What a streamed run asks LangGraph's stream for: what ``invoke`` gathers its result from (and
# on the graph's output channels only, as ``invoke`` does; by default a stream maps them all).
_MODES: list[Any] = ["updates", "values"]
_INTERRUPT = "__interrupt__"
_OUT_KEYS = [OUT]


class LangGraphExecutor:
    """Runs a plan's compiled LangGraph graph: whole, or a step at a time.

    With ``updates_only``, a run a step at a time takes the graph's output from the updates of
    the nodes, without LangGraph's ``values`` mode: right when one node at most writes the
    output in a step and the run starts from nothing (no checkpointer: nothing was written
    before it, and it never pauses).
    """

    limit_error = GraphRecursionError

    def __init__(
        self,
        graph: CompiledStateGraph[Any, Any, Any, Any],
        run_kw: dict[str, Any],
        updates_only: bool = False,
    ):
        self.graph = graph
        self.run_kw = run_kw
        self.updates_only = updates_only

    def invoke(self, values: Any, cfg: RunnableConfig) -> Any:
        return self.graph.invoke(values, cfg, **self.run_kw)

    async def ainvoke(self, values: Any, cfg: RunnableConfig) -> Any:
        return await self.graph.ainvoke(values, cfg, **self.run_kw)

    def steps(self, values: Any, cfg: RunnableConfig) -> Generator[None, None, Any]:
        """The run a step at a time: yields after each node's step, returns what
        :meth:`invoke` would. Closing it ends the run."""
        modes: Any = "updates" if self.updates_only else _MODES
        # LangGraph's stream is a generator, though typed as an iterator.
        parts = cast(
            "Generator[Any, None, None]",
            self.graph.stream(values, cfg, stream_mode=modes, output_keys=_OUT_KEYS, **self.run_kw),
        )
        latest: Any = None
        interrupts: list[Any] = []
        try:
            if self.updates_only:
                out = None
                for update in parts:
                    for node, written in update.items():
                        if node == _INTERRUPT:
                            interrupts.extend(written)
                        elif written:  # {OUT: value} from the node that wrote the output
                            out = written[OUT]
                    yield
                latest = {OUT: out}
            else:
                for mode, payload in parts:
                    if mode == "values":
                        latest = payload
                    elif isinstance(payload, dict) and (found := payload.get(_INTERRUPT)):
                        interrupts.extend(found)
                    yield
        finally:
            parts.close()
        if not interrupts:
            return latest
        if isinstance(latest, dict):
            return {**latest, _INTERRUPT: interrupts}
        return {_INTERRUPT: interrupts}

"""Stream events while a graph runs: where they go, which chunks are the answer, and the tap that
turns every chat model's tokens into :class:`~weft.core.stream.Chunk` events.

A streamed run has an :class:`Emitter`: where its events go (a queue the caller reads), the path
of graphs and nodes it runs under, and whether its output can be the answer of the outermost run.
Each node of a streamed run gets a :class:`NodeTap`, set in :data:`TAP` while the node works.
The tap is a langchain-core callback handler that every callback manager configured meanwhile
inherits (a model called by the node, by a lambda, a tool, a chain, a nested LangGraph graph), so
every chat model there streams its tokens to it, as LangGraph's ``messages`` stream mode does.
A weft graph run inside the node streams its own events under the tap's path.

Which chunks are the answer is decided per run (see :func:`answer_nodes`): the chunks of nodes
whose output reaches END through nodes that only reshape it. A model turn that ends in tool
calls is never part of the answer; the tokens of a model with tools bound are held until its
turn ends, since until then it is not known whether the turn ends in tool calls.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook

from weft.core.stream import Chunk, FinalOutput, NodeFinished, NodeStarted, StreamEvent

__all__ = [
    "TAP",
    "AnswerChunks",
    "Emitter",
    "NodeTap",
    "Pipe",
    "Sink",
    "StreamClosed",
    "answer_nodes",
]

Put = Callable[[StreamEvent], None]


class StreamClosed(Exception):
    """The caller stopped reading a stream; raised in the run at its next event to end it."""


class Emitter:
    """Where a streamed graph run puts its events, under which path, and whether its output can
    be the answer of the outermost run."""

    __slots__ = ("answer", "path", "put")

    def __init__(self, put: Put, path: tuple[str, ...] = (), answer: bool = True) -> None:
        self.put = put
        self.path = path
        self.answer = answer

    def node(self, name: str, answer: bool, tokens: bool) -> NodeTap:
        """The tap of one run of node ``name``."""
        return NodeTap(self.put, (*self.path, name), self.answer and answer, tokens)


class NodeTap(BaseCallbackHandler):
    """One node's run in a streamed graph: reports its start, chunks and end, and the tokens of
    every chat model called while it works (unless ``tokens`` is false: a node that yields
    chunks of its own reports those instead).

    ``tap_output_iter``/``tap_output_aiter`` make it a streaming handler in langchain-core's
    eyes, so a chat model called with ``invoke`` streams its tokens to it.
    """

    run_inline = True  # keep tokens in order; putting an event is cheap

    def __init__(self, put: Put, path: tuple[str, ...], answer: bool, tokens: bool) -> None:
        self.put = put
        self.path = path
        self.answer = answer
        self.tokens = tokens
        self._held: dict[UUID, list[Any]] = {}  # tokens of models with tools, until they end

    def start(self, input: Any) -> None:
        self.put(NodeStarted(self.path, input))

    def chunk(self, chunk: Any) -> None:
        self.put(Chunk(self.path, chunk, self.answer))

    def end(self, output: Any) -> None:
        self.put(NodeFinished(self.path, output))

    def _mine(self) -> bool:
        # A model inside a nested run reaches the taps of every node it runs under; the
        # innermost, set in the context it runs in, reports it.
        current = TAP.get()
        return self.tokens and (current is None or current is self)

    # -- langchain-core events ---------------------------------------------------------------

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        params = kwargs.get("invocation_params") or {}
        if params.get("tools") or params.get("functions"):
            self._held[run_id] = []

    def on_llm_new_token(
        self, token: Any, *, chunk: Any = None, run_id: UUID, **kwargs: Any
    ) -> None:
        if not self._mine():
            return
        # A chat model's chunk carries its message chunk; a completion model's, only text.
        piece = chunk.message if hasattr(chunk, "message") else token
        held = self._held.get(run_id)
        if held is not None:
            held.append(piece)
        else:
            self.put(Chunk(self.path, piece, self.answer and not _calls_tools(piece)))

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        held = self._held.pop(run_id, None)
        if held:
            final = self.answer and not _ends_in_tool_calls(response)
            for piece in held:
                self.put(Chunk(self.path, piece, final))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._held.pop(run_id, None)

    def tap_output_iter(self, run_id: UUID, output: Any) -> Any:
        return output

    def tap_output_aiter(self, run_id: UUID, output: Any) -> Any:
        return output


# The tap of the node of a streamed run working now. While it is set, every langchain-core
# callback manager configured in this context gets the tap as an inheritable handler.
TAP: ContextVar[NodeTap | None] = ContextVar("weft_node_tap", default=None)
register_configure_hook(TAP, inheritable=True)


def _calls_tools(piece: Any) -> bool:
    return bool(getattr(piece, "tool_call_chunks", None) or getattr(piece, "tool_calls", None))


def _ends_in_tool_calls(response: Any) -> bool:
    for generations in getattr(response, "generations", None) or ():
        for generation in generations:
            if _calls_tools(getattr(generation, "message", None)):
                return True
    return False


# -- which nodes make the answer ---------------------------------------------------------------

# Nodes that produce new output (a model, a nested graph, any other runnable, a lambda that
# yields chunks); the others (lambdas that return, prompts, retrievers, tools, passthroughs) only
# reshape what they are given.
_PRODUCERS = frozenset({"chat_model", "graph", "runnable"})


def answer_nodes(
    succs: Mapping[str, Iterable[str]], producers: Iterable[str], end: str
) -> frozenset[str]:
    """The nodes whose chunks are the run's answer: those with a successor that is ``end``, or
    that does not produce output of its own and is itself such a node.

    ``succs`` maps each node to its successors (plain and branch targets); ``producers`` names
    the nodes that produce output of their own.

    Example:
        >>> sorted(answer_nodes({"generate": ["format"], "format": ["END"]}, ["generate"], "END"))
        ['format', 'generate']
    """
    makers = frozenset(producers)
    answer: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node, after in succs.items():
            if node in answer:
                continue
            if any(s == end or (s in answer and s not in makers) for s in after):
                answer.add(node)
                changed = True
    return frozenset(answer)


def produces(kind: str, yields_chunks: bool) -> bool:
    """Whether a node of component ``kind`` produces output of its own (:func:`answer_nodes`)."""
    return kind in _PRODUCERS or yields_chunks


class AnswerChunks:
    """Picks the answer's chunks out of a run's events: the final chunks as they come, or the
    whole output once when no chunk of it streamed."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False

    def take(self, event: StreamEvent) -> tuple[bool, Any]:
        """Whether ``event`` carries a piece of the answer, and the piece."""
        if isinstance(event, Chunk) and event.final:
            self.sent = True
            return True, event.chunk
        if isinstance(event, FinalOutput) and not self.sent:
            return True, event.output
        return False, None


# -- where the events of a top-level run go -------------------------------------------------------

_DONE = object()


class Pipe:
    """Events from the threads running a graph's steps (the reader's own, or a worker) to the
    thread reading ``events()``. Once the reader closes it, the next event put raises
    :class:`StreamClosed` in the run, which ends it."""

    __slots__ = ("closed", "items")

    def __init__(self) -> None:
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.closed = False

    def put(self, item: Any) -> None:
        if self.closed:
            raise StreamClosed("the stream's reader stopped reading")
        self.items.put(item)

    def done(self, *_: Any) -> None:
        self.items.put(_DONE)

    def get(self) -> Any:
        """The next event, or :data:`None` once the run is done."""
        item = self.items.get()
        return None if item is _DONE else item


class Sink:
    """Where the nodes of an ``aevents()`` run put their events.

    Puts from the event loop's thread are a deque append (and waking the reader if it waits);
    puts from other threads hop onto the loop.
    """

    __slots__ = ("items", "loop", "thread", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.items: deque[Any] = deque()
        self.loop = loop
        self.thread = threading.get_ident()
        self.waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        if threading.get_ident() != self.thread:
            self.loop.call_soon_threadsafe(self.put, item)
            return
        self.items.append(item)
        self.wake()

    def wake(self, *_: Any) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until something is put or :meth:`wake` is called."""
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

"""Typed stream events, and how a stream of chunks becomes one value.

``CompiledGraph.events`` yields :data:`StreamEvent` records in the order things happen: a node
starts, its chunks arrive as they are produced (the tokens of every chat model the run calls,
wherever it is called, inside a subgraph too), it finishes, and at the end the graph's final
output. A tool node reports each tool call it runs with :class:`ToolStarted` and
:class:`ToolFinished`.

Example:
    >>> concat_chunks(["Hel", "lo"])
    'Hello'
    >>> concat_chunks([[1], [2, 3]])
    [1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from langchain_core.messages import BaseMessageChunk

__all__ = [
    "Chunk",
    "FinalOutput",
    "NodeFinished",
    "NodeStarted",
    "StreamEvent",
    "ToolFinished",
    "ToolStarted",
    "concat_chunks",
]


@dataclass(frozen=True, slots=True)
class NodeStarted:
    """A node began running. ``path`` is the chain of nodes from the outermost graph."""

    path: tuple[str, ...]
    input: Any

    @property
    def node(self) -> str:
        return self.path[-1]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of output produced while a node runs: a chat model's token, or what a
    streaming lambda yields.

    ``final`` is true when the chunk is part of the run's answer: it comes from a node whose
    output reaches END through nodes that only reshape it, and not from a model turn that ends
    in tool calls.
    """

    path: tuple[str, ...]
    chunk: Any
    final: bool = False

    @property
    def node(self) -> str:
        return self.path[-1]


@dataclass(frozen=True, slots=True)
class NodeFinished:
    """A node finished; ``output`` is its whole output (chunks concatenated)."""

    path: tuple[str, ...]
    output: Any

    @property
    def node(self) -> str:
        return self.path[-1]


@dataclass(frozen=True, slots=True)
class FinalOutput:
    """The graph's output; always the last event of a completed run."""

    output: Any


@dataclass(frozen=True, slots=True)
class ToolStarted:
    """A tool call began in the node at ``path``: the tool's ``name``, the ``args`` the model
    gave it and the call's ``id``."""

    path: tuple[str, ...]
    name: str
    args: dict[str, Any]
    id: str

    @property
    def node(self) -> str:
        return self.path[-1]


@dataclass(frozen=True, slots=True)
class ToolFinished:
    """A tool call ended: ``output`` is the ``ToolMessage`` the model gets; ``error`` is true
    when the call failed (its message then names the problem)."""

    path: tuple[str, ...]
    name: str
    id: str
    output: Any
    error: bool = False

    @property
    def node(self) -> str:
        return self.path[-1]


StreamEvent = Union[  # noqa: UP007
    NodeStarted, Chunk, NodeFinished, ToolStarted, ToolFinished, FinalOutput
]


def concat_chunks(chunks: Sequence[Any]) -> Any:
    """Concatenate chunks: strings joined, lists extended, dicts merged, otherwise ``+``.

    Message chunks (``AIMessageChunk``) add up with ``+`` as langchain-core defines it. A type
    that supports none of these keeps its last chunk.
    """
    if not chunks:
        return None
    first = chunks[0]
    if len(chunks) == 1:
        return first
    if isinstance(first, str):
        return "".join(chunks)
    if isinstance(first, list):
        out: list[Any] = []
        for c in chunks:
            out.extend(c)
        return out
    if isinstance(first, dict):
        merged: dict[Any, Any] = {}
        for c in chunks:
            merged.update(c)
        return merged
    if isinstance(first, BaseMessageChunk):
        # One merge of all chunks; adding them pairwise copies the message each time.
        return first + list(chunks[1:])
    acc = first
    try:
        for c in chunks[1:]:
            acc = acc + c
    except TypeError:
        return chunks[-1]
    return acc

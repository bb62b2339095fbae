"""Typed stream events, and how a stream of chunks becomes one value.

``CompiledGraph.stream`` yields :data:`StreamEvent` records in the order things happen: a node
starts, its chunks arrive as it produces them (tokens of a chat model anywhere in the graph, or
inside a subgraph), it finishes, and at the end the graph's final output.

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
    """A piece of a node's output, produced while the node runs.

    ``final`` is true when the chunk is part of the graph's final output (it comes from a node
    whose output is the graph's, directly or inside a subgraph).
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


StreamEvent = Union[NodeStarted, Chunk, NodeFinished, FinalOutput]  # noqa: UP007


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

"""The core: types, component contract, graph and chain builders, streams, callbacks, errors.

What lives where: ``types.py`` (messages, documents, type checks), ``component.py`` (the
component contract and :func:`lambda_`), ``graph.py`` and ``chain.py`` (the builders and their
compile-time checks), ``plan.py`` (the frozen plan ``compile()`` makes), ``compiled.py`` (the
compiled graph that runs on LangGraph), ``stream.py`` (typed stream events), ``callbacks.py``
(handlers), ``tracing.py`` and ``usage.py`` (OpenTelemetry spans and token usage), ``errors.py``
(the error hierarchy).
"""

from weft.core.callbacks import (
    ConsoleHandler,
    Handler,
    MemoryHandler,
    RunInfo,
    add_handler,
    remove_handler,
)
from weft.core.chain import Chain
from weft.core.compiled import CompiledGraph, Interrupted, thread
from weft.core.component import lambda_
from weft.core.errors import (
    GraphCompileError,
    GraphInputError,
    NodeError,
    StepLimitError,
    WeftError,
)
from weft.core.graph import END, START, Graph
from weft.core.stream import Chunk, FinalOutput, NodeFinished, NodeStarted, StreamEvent
from weft.core.tracing import disable_tracing, enable_tracing
from weft.core.usage import UsageTracker, track_usage

__all__ = [
    "END",
    "START",
    "Chain",
    "Chunk",
    "CompiledGraph",
    "ConsoleHandler",
    "FinalOutput",
    "Graph",
    "GraphCompileError",
    "GraphInputError",
    "Handler",
    "Interrupted",
    "MemoryHandler",
    "NodeError",
    "NodeFinished",
    "NodeStarted",
    "RunInfo",
    "StepLimitError",
    "StreamEvent",
    "UsageTracker",
    "WeftError",
    "add_handler",
    "disable_tracing",
    "enable_tracing",
    "lambda_",
    "remove_handler",
    "thread",
    "track_usage",
]

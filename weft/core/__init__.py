"""The core: types, component contract, graph and chain builders, streams, callbacks, errors."""

from weft.core.callbacks import ConsoleHandler, Handler, MemoryHandler, RunInfo, add_handler
from weft.core.chain import Chain
from weft.core.compiled import CompiledGraph, Interrupted, thread
from weft.core.component import TypedLambda, as_component, lambda_
from weft.core.errors import GraphCompileError, GraphInputError, NodeError, WeftError
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
    "StreamEvent",
    "TypedLambda",
    "UsageTracker",
    "WeftError",
    "add_handler",
    "as_component",
    "disable_tracing",
    "enable_tracing",
    "lambda_",
    "thread",
    "track_usage",
]

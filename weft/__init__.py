"""weft: typed components compiled into LangGraph graphs.

Build a :class:`Graph` or :class:`Chain` of typed components, ``compile()`` it (edges are
type-checked), then ``invoke``, ``stream`` or ``batch`` it, sync or async.
"""

from weft.core import (
    END,
    START,
    Chain,
    Chunk,
    CompiledGraph,
    ConsoleHandler,
    FinalOutput,
    Graph,
    GraphCompileError,
    GraphInputError,
    Handler,
    Interrupted,
    MemoryHandler,
    NodeError,
    NodeFinished,
    NodeStarted,
    RunInfo,
    StreamEvent,
    TypedLambda,
    WeftError,
    add_handler,
    as_component,
    lambda_,
    thread,
)

__version__ = "0.1.0"

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
    "WeftError",
    "__version__",
    "add_handler",
    "as_component",
    "lambda_",
    "thread",
]

"""The runtime: what runs a compiled graph, in parts.

- :mod:`~weft.core.runtime.node`: the node runner, what one node does (input, ``pre``, call or
  stream, ``post``, merge, route), whichever executor runs it; it names no executor's types.
- :mod:`~weft.core.runtime.events`: stream events while a run goes, the tap that turns every
  chat model's tokens into chunks, and which chunks are the answer.
- :mod:`~weft.core.runtime.context`: a run's config keys, nested runs, and the reports of graph
  and node runs to weft handlers.
- :mod:`~weft.core.runtime.layout`: the keys each node reads and writes, the state's reducers,
  and the node runners of a plan.
- :mod:`~weft.core.runtime.dag`: the DAG executor, for graphs with no cycle, checkpointer or
  interrupt.
- :mod:`~weft.core.runtime.langgraph`: the LangGraph backend (channels, ``Command``).
- :mod:`~weft.core.runtime.compiled`: :class:`CompiledGraph`, the Runnable users hold; it picks
  the executor.
"""

from weft.core.runtime.compiled import CompiledGraph, Interrupted, thread

__all__ = ["CompiledGraph", "Interrupted", "thread"]

"""Every test here runs on both executors: LangGraph, and the DAG executor wherever a graph
allows it (``auto``; a graph with a cycle, a checkpointer or interrupts runs on LangGraph)."""

from collections.abc import Iterator

import pytest

from weft.core.runtime import compiled


@pytest.fixture(autouse=True, params=["langgraph", "dag"])
def executor(request: pytest.FixtureRequest) -> Iterator[str]:
    saved = compiled.DEFAULT_EXECUTOR
    compiled.DEFAULT_EXECUTOR = "langgraph" if request.param == "langgraph" else "auto"
    try:
        yield str(request.param)
    finally:
        compiled.DEFAULT_EXECUTOR = saved

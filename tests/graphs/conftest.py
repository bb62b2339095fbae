"""The graph tests run on both executors: LangGraph, and the DAG executor wherever a graph
allows it (``auto``; a chat with a session runs on LangGraph for its checkpointer). The
knowledge-base, CLI, server and page tests, which test storage, processes and HTTP rather than a
run, run once, on the default executor.
``shared`` is a scripted OpenAI-compatible server per module."""

from collections.abc import Iterator

import pytest

from tests._openai import shared
from weft.core.runtime import compiled

__all__ = ["executor", "shared"]

_ONCE = {
    "test_knowledge",
    "test_graphs_cli",
    "test_agent_cli",  # the agent's commands, each in a subprocess
    "test_health_page",  # pages in Chromium, served by a server of their own
    "test_page",
    "test_cli",
    "test_server",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__.rsplit(".", 1)[-1] not in _ONCE:
        metafunc.parametrize("executor", ["langgraph", "dag"], indirect=True)


@pytest.fixture(autouse=True)
def executor(request: pytest.FixtureRequest) -> Iterator[str]:
    chosen = getattr(request, "param", "auto")
    saved = compiled.DEFAULT_EXECUTOR
    compiled.DEFAULT_EXECUTOR = "langgraph" if chosen == "langgraph" else "auto"
    try:
        yield str(chosen)
    finally:
        compiled.DEFAULT_EXECUTOR = saved

"""Resilience wrappers and the output a caller has seen: role-only chunks, fallbacks, types."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig

from weft.components.models import ExtractiveChatModel, openai_chat_model
from weft.components.resilience import (
    CircuitBreaker,
    ComponentTimeoutError,
    RetrySettings,
    has_content,
    is_fallback_answer,
    resilient,
    with_circuit_breaker,
    with_concurrency_limit,
    with_fallback,
    with_rate_limit,
    with_retry,
    with_timeout,
)
from weft.core.component import spec_of
from weft.core.errors import ProviderUnavailableError
from weft.core.settings import Settings
from weft.graphs.knowledge import KnowledgeBase
from weft.graphs.rag import build_rag_graph
from weft.testing import Fault, OpenAIServer, Reply

NO_WAIT = RetrySettings(attempts=3, initial_wait=0.0, jitter=0.0)
QUESTION = [HumanMessage("Where do swifts sleep?")]


class Stutter(Runnable[list[BaseMessage], AIMessage]):
    """Opens every stream with a role-only chunk, as OpenAI does; then, per call, either fails
    (an exception in the script) or streams an answer word by word."""

    def __init__(self, *script: str | Exception, pause: float = 0.0) -> None:
        self.script = list(script)
        self.pause = pause
        self.calls = 0

    def _next(self) -> str | Exception:
        self.calls += 1
        return self.script.pop(0)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> AIMessage:
        outcome = self._next()
        if isinstance(outcome, Exception):
            raise outcome
        return AIMessage(outcome)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AIMessage]:
        outcome = self._next()
        yield AIMessageChunk(content="")
        time.sleep(self.pause)
        if isinstance(outcome, Exception):
            raise outcome
        for word in outcome.split(" "):
            yield AIMessageChunk(content=word + " ")

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessage]:
        outcome = self._next()
        yield AIMessageChunk(content="")
        await asyncio.sleep(self.pause)
        if isinstance(outcome, Exception):
            raise outcome
        for word in outcome.split(" "):
            yield AIMessageChunk(content=word + " ")


def _text(chunks: list[Any]) -> str:
    return "".join(c.text for c in chunks).strip()


def _down() -> ProviderUnavailableError:
    return ProviderUnavailableError("the connection dropped mid-response")


async def _acollect(stream: AsyncIterator[Any]) -> list[Any]:
    return [chunk async for chunk in stream]


# -- before the first content -----------------------------------------------------------------


def test_content_is_text_or_a_tool_call_not_a_role_only_chunk() -> None:
    assert not has_content(AIMessageChunk(content=""))
    assert not has_content("")
    assert has_content(AIMessageChunk(content="", tool_call_chunks=[{"name": "f", "index": 0}]))
    assert has_content(AIMessageChunk(content="Under"))


def test_retry_restarts_a_stream_that_failed_after_only_its_role_chunk() -> None:
    model = Stutter(_down(), "In the air.")
    chunks = list(with_retry(model, attempts=2, initial_wait=0.0, jitter=0.0).stream(QUESTION))
    assert _text(chunks) == "In the air."
    assert model.calls == 2
    assert chunks[0].text == ""  # the one role chunk shown is the answer's own


async def test_async_retry_restarts_a_stream_that_failed_after_only_its_role_chunk() -> None:
    model = Stutter(_down(), _down(), "In the air.")
    chunks = await _acollect(resilient(model, retry=NO_WAIT).astream(QUESTION))
    assert _text(chunks) == "In the air."
    assert model.calls == 3


def test_fallback_takes_over_a_stream_that_failed_after_only_its_role_chunk() -> None:
    model = Stutter(_down())
    backup = Stutter("Swifts sleep on the wing.")
    chunks = list(with_fallback(model, backup).stream(QUESTION))
    assert _text(chunks) == "Swifts sleep on the wing."
    assert all(is_fallback_answer(c) for c in chunks)


async def test_async_fallback_marks_its_answer_and_the_component_s_own_is_unmarked() -> None:
    chain = with_fallback(Stutter(_down(), "On the wing."), Stutter("Backup answer."))
    first = await _acollect(chain.astream(QUESTION))
    second = await _acollect(chain.astream(QUESTION))
    assert _text(first) == "Backup answer." and is_fallback_answer(first[0])
    assert _text(second) == "On the wing." and not any(is_fallback_answer(c) for c in second)
    assert is_fallback_answer(await with_fallback(Stutter(_down()), Stutter("x")).ainvoke(QUESTION))


def test_after_content_a_failure_is_raised_neither_retried_nor_replaced() -> None:
    class Cut(Stutter):
        def stream(self, input: Any, config: Any = None, **kwargs: Any) -> Iterator[AIMessage]:
            self.calls += 1
            yield AIMessageChunk(content="")
            yield AIMessageChunk(content="Swifts ")
            raise _down()

    model, backup = Cut(), Stutter("Backup answer.")
    seen: list[Any] = []
    with pytest.raises(ProviderUnavailableError):
        for chunk in resilient(model, retry=NO_WAIT, fallback=backup).stream(QUESTION):
            seen.append(chunk)
    assert _text(seen) == "Swifts"
    assert model.calls == 1 and backup.calls == 0


def test_first_chunk_timeout_waits_for_content_not_the_role_chunk() -> None:
    slow = Stutter("Late answer.", pause=5.0)
    with pytest.raises(ComponentTimeoutError, match="first chunk"):
        list(with_timeout(slow, 0.2).stream(QUESTION))


def test_a_deadline_bounds_every_attempt_and_falls_back() -> None:
    hung = Stutter(*[_down()] * 3, pause=5.0)
    safe = resilient(hung, retry=NO_WAIT, deadline=0.3, fallback=Stutter("Backup answer."))
    chunks = list(safe.stream(QUESTION))
    assert _text(chunks) == "Backup answer." and is_fallback_answer(chunks[0])
    assert hung.calls == 1


# -- through the openai client ----------------------------------------------------------------

BEFORE_CONTENT = {
    "500": Fault.server_error(500),
    "503": Fault.server_error(503),
    "429": Fault.rate_limit(retry_after=None),
    "dropped": Fault.drop(after_chunks=1),
    "malformed": Fault.malformed(after_chunks=1),
    "slow first byte": Reply("Under bridges.", delay=0.3),
}


@pytest.mark.parametrize("fault", BEFORE_CONTENT.values(), ids=BEFORE_CONTENT.keys())
def test_openai_stream_faults_before_content_are_retried(fault: Fault | Reply) -> None:
    with OpenAIServer([fault, "Under bridges."]) as server:
        model = openai_chat_model(base_url=server.base_url, api_key="t", max_retries=0)
        safe = resilient(model, retry=NO_WAIT, breaker=CircuitBreaker(), timeout=5.0)
        chunks = list(safe.stream(QUESTION))
    assert _text(chunks) == "Under bridges."


def test_openai_stream_dropped_before_content_falls_back() -> None:
    with OpenAIServer([Fault.drop(after_chunks=1)]) as server:
        model = openai_chat_model(base_url=server.base_url, api_key="t", max_retries=0)
        chunks = list(with_fallback(model, Stutter("Backup answer.")).stream(QUESTION))
    assert _text(chunks) == "Backup answer."


# -- types ------------------------------------------------------------------------------------

CHAT_WRAPPERS: dict[str, Callable[[Runnable[Any, Any]], Runnable[Any, Any]]] = {
    "timeout": lambda m: with_timeout(m, 5.0),
    "breaker": lambda m: with_circuit_breaker(m),
    "rate_limit": lambda m: with_rate_limit(m, 100.0),
    "concurrency": lambda m: with_concurrency_limit(m, 2),
    "fallback": lambda m: with_fallback(m, ExtractiveChatModel()),
    "resilient": lambda m: resilient(m, retry=2, timeout=5.0, breaker=True, deadline=9.0),
}


@pytest.mark.parametrize("wrap", CHAT_WRAPPERS.values(), ids=CHAT_WRAPPERS.keys())
def test_a_wrapped_chat_model_is_still_a_chat_model_to_the_compiler(
    wrap: Callable[[Runnable[Any, Any]], Runnable[Any, Any]],
) -> None:
    spec = spec_of(wrap(ExtractiveChatModel()))
    assert (spec.kind, spec.input_type, spec.output_type) == (
        "chat_model",
        spec_of(ExtractiveChatModel()).input_type,
        AIMessage,
    )


def test_the_rag_graph_compiles_with_a_model_under_a_timeout(tmp_path: Path) -> None:
    kb = KnowledgeBase(Settings(data_dir=tmp_path))
    graph = build_rag_graph(kb, model=with_timeout(ExtractiveChatModel(), 5.0))
    assert graph.name == "rag"


@pytest.mark.parametrize("wrap", ["retry", "fallback"])
def test_an_invoked_model_whose_tokens_a_streamed_run_showed_is_not_retried_nor_replaced(
    wrap: str,
) -> None:
    """A chat model invoked inside a graph that is streamed hands its tokens to the stream as
    they come, so once one went out the failure is the caller's, as it is for ``stream``."""
    from weft import END, START, Graph
    from weft.core.errors import NodeError

    with OpenAIServer() as provider:
        model = openai_chat_model(base_url=provider.base_url, api_key="test", max_retries=0)
        if wrap == "retry":
            wrapped = with_retry(model, attempts=3, initial_wait=0.0, jitter=0.0)
        else:
            wrapped = with_fallback(model, ExtractiveChatModel())
        graph = Graph("swifts", input_type=list[BaseMessage], output_type=AIMessage)
        graph.add_node("answer", wrapped)
        graph.add_edge(START, "answer")
        graph.add_edge("answer", END)
        compiled = graph.compile()
        provider.script(Reply("Swifts sleep on the wing.", fault=Fault.drop(3)), "Swifts nap.")
        shown: list[str] = []
        with pytest.raises(NodeError, match="ProviderUnavailableError"):
            for event in compiled.events(QUESTION):
                shown.append(str(getattr(getattr(event, "chunk", None), "content", "")))
        assert "Swifts " in shown and "nap." not in "".join(shown)
        assert len(provider.requests_to("/chat/completions")) == 1

        provider.script(Fault.drop(1), "Swifts nap.")  # dropped before content: retried
        if wrap == "retry":
            assert compiled.invoke(QUESTION).content == "Swifts nap."

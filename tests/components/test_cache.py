from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import (
    ConfigurableField,
    Runnable,
    RunnableConfig,
    RunnableGenerator,
    RunnableLambda,
)

from weft.components.cache import CachedRunnable, CacheStats, cached
from weft.core.errors import ConfigurationError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counter:
    """A component that counts its calls: ``text -> text.upper()``."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str) -> str:
        self.calls += 1
        return text.upper()


def shout(text: str) -> str:
    return text.upper()


def test_memory_hit_skips_the_component() -> None:
    fn = Counter()
    cache = CachedRunnable(RunnableLambda(fn))
    assert cache.invoke("a") == "A"
    assert cache.invoke("a") == "A"
    assert fn.calls == 1
    assert cache.stats == CacheStats(l1_hits=1, l1_misses=1)


def test_memory_entry_expires_after_its_ttl() -> None:
    fn, clock = Counter(), FakeClock()
    cache = CachedRunnable(RunnableLambda(fn), ttl=10, clock=clock)
    cache.invoke("a")
    clock.now += 9.9
    cache.invoke("a")
    assert fn.calls == 1
    clock.now += 0.1
    cache.invoke("a")
    assert fn.calls == 2
    assert cache.stats.l1_misses == 2


def test_lru_evicts_the_least_recently_used_entry() -> None:
    fn = Counter()
    cache = CachedRunnable(RunnableLambda(fn), maxsize=2)
    cache.invoke("a")
    cache.invoke("b")
    cache.invoke("a")  # a is now the most recently used
    cache.invoke("c")  # evicts b
    assert fn.calls == 3
    cache.invoke("a")
    assert fn.calls == 3
    cache.invoke("b")
    assert fn.calls == 4


def test_disk_level_answers_a_new_cache_on_the_same_directory(tmp_path: Path) -> None:
    fn = Counter()
    with CachedRunnable(RunnableLambda(shout), directory=tmp_path) as first:
        assert first.invoke("a") == "A"
    # A new instance around an equal (not identical) component: the key must be stable.
    fresh = CachedRunnable(RunnableLambda(shout), directory=tmp_path)
    assert fresh.invoke("a") == "A"
    assert fresh.stats == CacheStats(l1_misses=1, l2_hits=1)
    assert fresh.invoke("a") == "A"  # promoted to memory
    assert fresh.stats.l1_hits == 1
    fresh.clear(disk=False)
    assert fresh.invoke("a") == "A"
    assert fresh.stats.l2_hits == 2
    fresh.close()
    assert fn.calls == 0


def test_disk_miss_is_counted_at_both_levels(tmp_path: Path) -> None:
    fn = Counter()
    with CachedRunnable(RunnableLambda(fn), directory=tmp_path) as cache:
        cache.invoke("a")
        cache.invoke("b")
        cache.invoke("a")
        assert cache.stats == CacheStats(l1_hits=1, l1_misses=2, l2_misses=2)
        assert cache.stats.misses == 2 == fn.calls
        assert cache.stats.hit_rate == pytest.approx(1 / 3)


def test_errors_are_never_cached(tmp_path: Path) -> None:
    outcomes: list[Any] = [ValueError("flaky"), "ok"]

    def flaky(text: str) -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    with CachedRunnable(RunnableLambda(flaky), directory=tmp_path) as cache:
        with pytest.raises(ValueError, match="flaky"):
            cache.invoke("a")
        assert cache.invoke("a") == "ok"
        assert cache.invoke("a") == "ok"
    assert outcomes == []


def test_unpicklable_output_stays_in_memory_only(tmp_path: Path) -> None:
    lock = threading.Lock()  # locks cannot be pickled

    def make(_: str) -> threading.Lock:
        return lock

    first = CachedRunnable(RunnableLambda(make), directory=tmp_path, copy_values=False)
    assert first.invoke("a") is lock
    assert first.invoke("a") is lock
    assert first.stats.l1_hits == 1
    first.close()
    with CachedRunnable(RunnableLambda(make), directory=tmp_path) as second:
        second.invoke("a")
        assert second.stats.l2_misses == 1


def test_different_components_params_and_inputs_get_different_keys() -> None:
    base = CachedRunnable(RunnableLambda(shout))
    k = base.key_for("a")
    assert k == CachedRunnable(RunnableLambda(shout)).key_for("a")
    assert k != base.key_for("b")
    assert k != base.key_for("a", stream=True)
    assert k != base.key_for("a", stop=["x"])

    def lower(text: str) -> str:
        return text.lower()

    assert k != CachedRunnable(RunnableLambda(lower)).key_for("a")

    def suffixer(suffix: str) -> RunnableLambda[str, str]:
        return RunnableLambda(lambda text: text + suffix)

    # Same code, different closure values: different components.
    assert CachedRunnable(suffixer("!")).key_for("a") != CachedRunnable(suffixer("?")).key_for("a")

    bound_x = CachedRunnable(RunnableLambda(shout).bind(stop=["x"]))
    bound_y = CachedRunnable(RunnableLambda(shout).bind(stop=["y"]))
    assert bound_x.key_for("a") != bound_y.key_for("a")
    assert bound_x.key_for("a") != k

    named = CachedRunnable(RunnableLambda(lower), key="shared")
    assert named.key_for("a") == CachedRunnable(RunnableLambda(shout), key="shared").key_for("a")


def test_input_forms_have_stable_keys() -> None:
    cache = CachedRunnable(RunnableLambda(lambda x: x))
    assert cache.key_for({"a": 1, "b": [1, 2]}) == cache.key_for({"b": [1, 2], "a": 1})
    assert cache.key_for({"a": 1}) != cache.key_for({"a": "1"})
    assert cache.key_for([1, 2]) != cache.key_for((1, 2))
    # Message ids are random per run and must not split the cache...
    history_1 = [HumanMessage("hi"), AIMessage("hello", id="run-1")]
    history_2 = [HumanMessage("hi"), AIMessage("hello", id="run-2")]
    assert cache.key_for(history_1) == cache.key_for(history_2)
    assert cache.key_for(history_1) != cache.key_for([HumanMessage("hi"), AIMessage("bye")])
    # ...but document content and metadata do.
    doc = Document("text", metadata={"source": "a"})
    assert cache.key_for([doc]) != cache.key_for([Document("text", metadata={"source": "b"})])


def test_configurable_fields_of_the_component_change_the_key() -> None:
    model = FakeListChatModel(responses=["x"]).configurable_fields(
        responses=ConfigurableField(id="responses")
    )
    cache = CachedRunnable(model)
    one = cache.key_for("q", {"configurable": {"responses": ["a"]}})
    two = cache.key_for("q", {"configurable": {"responses": ["b"]}})
    assert one != two
    # Keys the component does not declare (a graph's thread id) do not split the cache.
    assert one == cache.key_for("q", {"configurable": {"responses": ["a"], "thread_id": "t9"}})
    assert cache.invoke("q", {"configurable": {"responses": ["b"]}}).content == "b"


def test_uncacheable_input_goes_through_uncached() -> None:
    class Opaque:
        __slots__ = ()

    calls: list[object] = []
    cache = CachedRunnable(RunnableLambda(lambda x: calls.append(x) or "done"))
    value = Opaque()
    assert cache.invoke(value) == "done"
    assert cache.invoke(value) == "done"
    assert len(calls) == 2
    assert cache.stats.uncacheable == 2
    assert cache.stats.hits == 0


def test_hits_are_copies_so_callers_cannot_corrupt_the_cache() -> None:
    cache = CachedRunnable(RunnableLambda(lambda text: [text]))
    first = cache.invoke("a")
    first.append("mutated")
    assert cache.invoke("a") == ["a"]


def test_batch_uses_the_cache() -> None:
    fn = Counter()
    cache = cached(RunnableLambda(fn))
    assert cache.batch(["a", "b"]) == ["A", "B"]
    assert cache.batch(["a", "b", "c"]) == ["A", "B", "C"]
    assert fn.calls == 3


class Length(Runnable[str, int]):
    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> int:
        return len(input)


def test_wrapper_keeps_the_component_types() -> None:
    cache = CachedRunnable(Length())
    assert cache.InputType is str
    assert cache.OutputType is int
    assert cache.invoke("abc") == 3


def test_wrapped_prompt_reports_its_variables() -> None:
    prompt = ChatPromptTemplate.from_messages([("human", "{question} in {language}")])
    cache = CachedRunnable(prompt)
    assert sorted(get_type_hints(cache.InputType)) == ["language", "question"]


def _stream_source(calls: list[str], fail_after: int | None = None) -> RunnableGenerator[Any, Any]:
    def gen(chunks: Iterator[str]) -> Iterator[str]:
        text = "".join(chunks)
        calls.append(text)
        for i, word in enumerate(text.split()):
            if fail_after is not None and i == fail_after:
                raise RuntimeError("stream broke")
            yield word + " "

    async def agen(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
        text = "".join([c async for c in chunks])
        calls.append(text)
        for i, word in enumerate(text.split()):
            if fail_after is not None and i == fail_after:
                raise RuntimeError("stream broke")
            yield word + " "

    return RunnableGenerator(gen, agen)


def test_stream_miss_passes_chunks_through_and_hit_replays_them(tmp_path: Path) -> None:
    calls: list[str] = []
    with CachedRunnable(_stream_source(calls), directory=tmp_path) as cache:
        first = list(cache.stream("one two three"))
        second = list(cache.stream("one two three"))
    assert first == second == ["one ", "two ", "three "]
    assert calls == ["one two three"]
    with CachedRunnable(_stream_source(calls), directory=tmp_path) as fresh:
        assert list(fresh.stream("one two three")) == first
        assert fresh.stats.l2_hits == 1
    assert len(calls) == 1


def test_failed_stream_is_not_cached() -> None:
    calls: list[str] = []
    cache = CachedRunnable(_stream_source(calls, fail_after=2))
    seen: list[str] = []
    with pytest.raises(RuntimeError, match="stream broke"):
        for chunk in cache.stream("one two three"):
            seen.append(chunk)
    assert seen == ["one ", "two "]
    with pytest.raises(RuntimeError):
        list(cache.stream("one two three"))
    assert len(calls) == 2


def test_stream_the_caller_stops_early_is_not_cached() -> None:
    calls: list[str] = []
    cache = CachedRunnable(_stream_source(calls))
    stream = cache.stream("one two three")
    assert next(stream) == "one "
    stream.close()
    assert list(cache.stream("one two three")) == ["one ", "two ", "three "]
    assert len(calls) == 2
    assert list(cache.stream("one two three")) == ["one ", "two ", "three "]
    assert len(calls) == 2


async def test_async_invoke_and_stream_use_both_levels(tmp_path: Path) -> None:
    calls: list[str] = []
    with CachedRunnable(_stream_source(calls), directory=tmp_path) as cache:
        first = [c async for c in cache.astream("a b")]
        second = [c async for c in cache.astream("a b")]
        assert first == second == ["a ", "b "]
        assert await cache.ainvoke("a b") == "a b "
        assert await cache.ainvoke("a b") == "a b "
        assert cache.stats.l1_hits == 2
    with CachedRunnable(_stream_source(calls), directory=tmp_path) as fresh:
        assert await fresh.ainvoke("a b") == "a b "
        assert fresh.stats.l2_hits == 1
    assert len(calls) == 2  # one stream, one invoke


async def test_failed_async_stream_is_not_cached() -> None:
    calls: list[str] = []
    cache = CachedRunnable(_stream_source(calls, fail_after=1))
    for _ in range(2):
        with pytest.raises(RuntimeError):
            _ = [c async for c in cache.astream("a b c")]
    assert len(calls) == 2


def test_concurrent_threads_with_one_key_run_the_component_once() -> None:
    calls = 0
    guard = threading.Lock()

    def slow(text: str) -> str:
        nonlocal calls
        with guard:
            calls += 1
        time.sleep(0.05)
        return text

    cache = CachedRunnable(RunnableLambda(slow))
    barrier = threading.Barrier(10)
    results: list[str] = []

    def call() -> None:
        barrier.wait()
        results.append(cache.invoke("same"))

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["same"] * 10
    assert calls == 1
    assert cache.stats.hits == 9


async def test_concurrent_tasks_with_one_key_run_the_component_once() -> None:
    calls = 0

    async def slow(text: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return text

    cache = CachedRunnable(RunnableLambda(slow))
    results = await asyncio.gather(*(cache.ainvoke("same") for _ in range(10)))
    assert results == ["same"] * 10
    assert calls == 1


async def test_failed_leader_lets_the_next_waiter_try() -> None:
    attempts = 0

    async def first_fails(text: str) -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise ConnectionError("down")
        return text

    cache = CachedRunnable(RunnableLambda(first_fails))
    results = await asyncio.gather(*(cache.ainvoke("k") for _ in range(3)), return_exceptions=True)
    assert sum(isinstance(r, ConnectionError) for r in results) == 1
    assert results.count("k") == 2
    assert attempts == 2


def test_component_without_a_derivable_identity_asks_for_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import weft.components.cache as cache_module

    def broken(value: Any, *, strict: bool = False) -> Any:
        raise RuntimeError("no stable form")

    monkeypatch.setattr(cache_module, "describe", broken)
    with pytest.raises(ConfigurationError, match=r"key='my-component-v1'"):
        CachedRunnable(RunnableLambda(shout))
    named = CachedRunnable(RunnableLambda(shout), key="v1")  # never describes the component
    monkeypatch.undo()
    assert named.invoke("a") == "A"


def test_lookups_are_counted_in_the_tracing_cache_metric(tmp_path: Path) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from weft.core.tracing import disable_tracing, enable_tracing

    reader = InMemoryMetricReader()
    handler = enable_tracing("none", meter_provider=MeterProvider(metric_readers=[reader]))
    try:
        cache = CachedRunnable(RunnableLambda(shout), directory=tmp_path / "c")
        cache.invoke("a")  # memory miss, disk miss
        cache.invoke("a")  # memory hit
    finally:
        disable_tracing(handler)
    points = {
        (p.attributes["weft.cache.level"], p.attributes["weft.cache.result"]): p.value
        for m in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
        if m.name == "weft.cache.requests"
        for p in m.data.data_points
    }
    assert points == {("memory", "miss"): 1, ("disk", "miss"): 1, ("memory", "hit"): 1}

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from weft.components.resilience import (
    CircuitBreaker,
    CircuitBreakerRunnable,
    CircuitState,
    ComponentTimeoutError,
    ConcurrencyLimitedRunnable,
    ConcurrencyLimiter,
    RateLimitedRunnable,
    RetrySettings,
    TimeoutRunnable,
    TokenBucket,
    is_transient,
    resilient,
    with_circuit_breaker,
    with_concurrency_limit,
    with_fallback,
    with_rate_limit,
    with_retry,
    with_timeout,
)
from weft.core.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConcurrencyLimitError,
    RateLimitedError,
    ResilienceError,
)


class FakeClock:
    """A monotonic clock that only moves when told to; its sleeps move it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


class Flaky:
    """Fails with the given exceptions, in order, then returns its input."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, x: str) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return x


class Echo(Runnable[str, str]):
    """A typed component that streams its input word by word."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls = 0

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        self.calls += 1
        if self.fail:
            raise self.fail
        return input

    def stream(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[str]:
        self.calls += 1
        yield from input.split()

    async def astream(
        self, input: str, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[str]:
        self.calls += 1
        for word in input.split():
            yield word


# -- types ------------------------------------------------------------------------------------

WRAPPERS: dict[str, Callable[[Runnable[str, str]], Runnable[str, str]]] = {
    "retry": lambda r: with_retry(r, attempts=2),
    "timeout": lambda r: with_timeout(r, 5.0),
    "breaker": lambda r: with_circuit_breaker(r),
    "fallback": lambda r: with_fallback(r, Echo()),
    "rate_limit": lambda r: with_rate_limit(r, 1000.0),
    "concurrency": lambda r: with_concurrency_limit(r, 2),
    "all": lambda r: resilient(
        r,
        retry=2,
        timeout=5.0,
        breaker=True,
        fallback=Echo(),
        rate_limit=1000.0,
        max_concurrency=2,
    ),
}


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_wrappers_keep_the_component_types_and_stream(
    wrap: Callable[[Runnable[str, str]], Runnable[str, str]],
) -> None:
    wrapped = wrap(Echo())
    assert wrapped.InputType is str
    assert wrapped.OutputType is str
    assert wrapped.invoke("a b") == "a b"
    assert list(wrapped.stream("a b")) == ["a", "b"]


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
async def test_wrappers_async_invoke_and_stream(
    wrap: Callable[[Runnable[str, str]], Runnable[str, str]],
) -> None:
    wrapped = wrap(Echo())
    assert await wrapped.ainvoke("a b") == "a b"
    assert [c async for c in wrapped.astream("a b")] == ["a", "b"]


# -- retry ------------------------------------------------------------------------------------


def test_retry_backs_off_exponentially_then_succeeds() -> None:
    fn, clock = Flaky(ConnectionError("1"), ConnectionError("2"), ConnectionError("3")), FakeClock()
    retried = with_retry(
        RunnableLambda(fn), attempts=4, initial_wait=0.5, jitter=0.0, sleep=clock.sleep
    )
    assert retried.invoke("ok") == "ok"
    assert fn.calls == 4
    assert clock.slept == [0.5, 1.0, 2.0]


def test_retry_gives_up_after_its_attempts_with_the_last_error() -> None:
    fn, clock = Flaky(*(ConnectionError(str(i)) for i in range(5))), FakeClock()
    retried = with_retry(RunnableLambda(fn), attempts=3, jitter=0.0, sleep=clock.sleep)
    with pytest.raises(ConnectionError, match="2"):
        retried.invoke("x")
    assert fn.calls == 3


def test_retry_jitter_and_cap_bound_the_waits() -> None:
    fn, clock = Flaky(*(ConnectionError() for _ in range(5))), FakeClock()
    retried = with_retry(
        RunnableLambda(fn),
        attempts=6,
        initial_wait=1.0,
        max_backoff=3.0,
        jitter=0.5,
        sleep=clock.sleep,
    )
    retried.invoke("x")
    assert 1.0 <= clock.slept[0] <= 1.5
    assert 2.0 <= clock.slept[1] <= 2.5
    assert clock.slept[2:] == [3.0, 3.0, 3.0]


def test_retry_predicate_decides_what_is_retried() -> None:
    fn, clock = Flaky(ValueError("bad input")), FakeClock()
    only_network = with_retry(
        RunnableLambda(fn),
        retry_on=lambda exc: isinstance(exc, ConnectionError),
        sleep=clock.sleep,
    )
    with pytest.raises(ValueError):
        only_network.invoke("x")
    assert fn.calls == 1
    fn2 = Flaky(KeyError("k"))
    by_type = with_retry(RunnableLambda(fn2), retry_on=(KeyError,), jitter=0.0, sleep=clock.sleep)
    assert by_type.invoke("x") == "x"
    assert fn2.calls == 2


def test_default_retry_skips_errors_a_retry_cannot_fix() -> None:
    assert is_transient(ConnectionError())
    assert not is_transient(AuthenticationError("401"))
    assert not is_transient(KeyboardInterrupt())
    fn, clock = Flaky(AuthenticationError("401")), FakeClock()
    with pytest.raises(AuthenticationError):
        with_retry(RunnableLambda(fn), sleep=clock.sleep).invoke("x")
    assert fn.calls == 1


async def test_async_retry_backs_off_with_the_injected_sleep() -> None:
    fn, clock = Flaky(ConnectionError(), ConnectionError()), FakeClock()
    retried = with_retry(
        RunnableLambda(fn), attempts=3, initial_wait=0.25, jitter=0.0, asleep=clock.asleep
    )
    assert await retried.ainvoke("ok") == "ok"
    assert clock.slept == [0.25, 0.5]


class BrokenStream(Runnable[str, str]):
    """Streams ``good`` chunks then raises; the first ``fail_first`` calls raise at once."""

    def __init__(self, fail_first: int, good: int = 2) -> None:
        self.fail_first = fail_first
        self.good = good
        self.calls = 0

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        raise NotImplementedError

    def _chunks(self) -> Iterator[str]:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise ConnectionError("before first chunk")
        for i in range(self.good):
            yield f"c{i}"
        raise ConnectionError("mid-stream")

    def stream(self, input: str, config: RunnableConfig | None = None, **kw: Any) -> Iterator[str]:
        yield from self._chunks()

    async def astream(
        self, input: str, config: RunnableConfig | None = None, **kw: Any
    ) -> AsyncIterator[str]:
        for chunk in self._chunks():
            yield chunk


def test_retry_retries_a_stream_only_before_its_first_chunk() -> None:
    source, clock = BrokenStream(fail_first=2), FakeClock()
    retried = with_retry(source, attempts=5, jitter=0.0, sleep=clock.sleep)
    seen: list[str] = []
    with pytest.raises(ConnectionError, match="mid-stream"):
        for chunk in retried.stream("x"):
            seen.append(chunk)
    assert seen == ["c0", "c1"]
    assert source.calls == 3
    assert clock.slept == [1.0, 2.0]


async def test_async_retry_retries_a_stream_only_before_its_first_chunk() -> None:
    source, clock = BrokenStream(fail_first=1), FakeClock()
    retried = with_retry(source, attempts=5, jitter=0.0, asleep=clock.asleep)
    seen: list[str] = []
    with pytest.raises(ConnectionError, match="mid-stream"):
        async for chunk in retried.astream("x"):
            seen.append(chunk)
    assert seen == ["c0", "c1"]
    assert source.calls == 2


# -- timeout ----------------------------------------------------------------------------------


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event blocked components wait on; set at teardown so no worker thread lingers."""
    event = threading.Event()
    yield event
    event.set()


def test_timeout_fails_a_slow_call_naming_component_and_limit(release: threading.Event) -> None:
    def stuck_model(x: str) -> str:
        release.wait(5)
        return x

    limited = with_timeout(RunnableLambda(stuck_model), 0.05)
    started = time.monotonic()
    with pytest.raises(ComponentTimeoutError) as info:
        limited.invoke("x")
    assert time.monotonic() - started < 1.0
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, ResilienceError)
    assert "stuck_model" in str(info.value)
    assert "0.05s" in str(info.value)


def test_timeout_passes_results_errors_and_context_through() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    def read_var(x: str) -> str:
        return var.get()

    var.set("caller")
    assert with_timeout(RunnableLambda(read_var), 5.0).invoke("x") == "caller"

    def own_timeout(x: str) -> str:
        raise TimeoutError("the component's own")

    with pytest.raises(TimeoutError, match="the component's own") as info:
        with_timeout(RunnableLambda(own_timeout), 5.0).invoke("x")
    assert not isinstance(info.value, ComponentTimeoutError)


async def test_async_timeout_cancels_the_slow_call() -> None:
    cancelled = asyncio.Event()

    async def stuck(x: str) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    with pytest.raises(ComponentTimeoutError, match=r"0\.05s"):
        await with_timeout(RunnableLambda(stuck), 0.05).ainvoke("x")
    await asyncio.wait_for(cancelled.wait(), 1.0)

    async def own_timeout(x: str) -> str:
        raise TimeoutError("mine")

    with pytest.raises(TimeoutError, match="mine"):
        await with_timeout(RunnableLambda(own_timeout), 5.0).ainvoke("x")


class SlowStream(Runnable[str, str]):
    """Yields chunks after the given delays (seconds)."""

    def __init__(self, delays: list[float], release: threading.Event | None = None) -> None:
        self.delays = delays
        self.release = release or threading.Event()

    def invoke(self, input: str, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return "".join(self.stream(input))

    def stream(self, input: str, config: RunnableConfig | None = None, **kw: Any) -> Iterator[str]:
        for i, delay in enumerate(self.delays):
            self.release.wait(delay)
            yield f"c{i}"

    async def astream(
        self, input: str, config: RunnableConfig | None = None, **kw: Any
    ) -> AsyncIterator[str]:
        for i, delay in enumerate(self.delays):
            await asyncio.sleep(delay)
            yield f"c{i}"


def test_stream_timeout_first_chunk(release: threading.Event) -> None:
    slow_start = TimeoutRunnable(SlowStream([5.0], release), 0.05)
    with pytest.raises(ComponentTimeoutError, match="first chunk"):
        list(slow_start.stream("x"))
    # After the first chunk there is no limit.
    slow_later = TimeoutRunnable(SlowStream([0.0, 0.1]), 0.05)
    assert list(slow_later.stream("x")) == ["c0", "c1"]


def test_stream_timeout_each_chunk_and_total(release: threading.Event) -> None:
    each = TimeoutRunnable(SlowStream([0.0, 5.0], release), 0.05, stream_timeout="each_chunk")
    seen: list[str] = []
    with pytest.raises(ComponentTimeoutError, match="next chunk"):
        for chunk in each.stream("x"):
            seen.append(chunk)
    assert seen == ["c0"]
    total = TimeoutRunnable(SlowStream([0.03, 0.03, 0.03]), 0.05, stream_timeout="total")
    with pytest.raises(ComponentTimeoutError, match="finish streaming"):
        list(total.stream("x"))


async def test_async_stream_timeouts() -> None:
    with pytest.raises(ComponentTimeoutError, match="first chunk"):
        _ = [c async for c in TimeoutRunnable(SlowStream([5.0]), 0.05).astream("x")]
    later = TimeoutRunnable(SlowStream([0.0, 0.1]), 0.05)
    assert [c async for c in later.astream("x")] == ["c0", "c1"]
    each = TimeoutRunnable(SlowStream([0.0, 5.0]), 0.05, stream_timeout="each_chunk")
    with pytest.raises(ComponentTimeoutError, match="next chunk"):
        _ = [c async for c in each.astream("x")]


# -- circuit breaker --------------------------------------------------------------------------


def test_breaker_full_cycle_with_a_fake_clock() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=30.0, clock=clock, name="llm")
    model = Echo(fail=ConnectionError("down"))
    guarded = CircuitBreakerRunnable(model, breaker)

    for _ in range(2):
        with pytest.raises(ConnectionError):
            guarded.invoke("x")
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(ConnectionError):
        guarded.invoke("x")
    assert breaker.state is CircuitState.OPEN
    assert breaker.failures == 3

    clock.now += 10
    with pytest.raises(CircuitOpenError) as info:
        guarded.invoke("x")
    assert model.calls == 3  # failed fast, the component was not called
    message = str(info.value)
    assert "'llm'" in message and "'Echo'" in message
    assert "3 consecutive failures" in message and "ConnectionError: down" in message
    assert "in 20.0s" in message

    clock.now += 20
    assert breaker.state is CircuitState.HALF_OPEN
    with pytest.raises(ConnectionError):  # the probe fails: open again, timer restarts
        guarded.invoke("x")
    assert breaker.state is CircuitState.OPEN
    assert model.calls == 4
    clock.now += 29.9
    with pytest.raises(CircuitOpenError):
        guarded.invoke("x")

    clock.now += 0.1
    model.fail = None
    assert guarded.invoke("back") == "back"  # the probe succeeds: closed
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failures == 0


def test_breaker_lets_only_one_probe_through_while_half_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    with pytest.raises(ValueError), breaker.guard("svc"):
        raise ValueError("x")
    clock.now += 5
    with (
        breaker.guard("svc"),
        pytest.raises(CircuitOpenError, match="probe call is still running"),
        breaker.guard("svc"),
    ):
        pass
    assert breaker.state is CircuitState.CLOSED


def test_breaker_success_resets_the_count_and_ignored_errors_do_not_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, failure_on=(ConnectionError,), clock=FakeClock())
    fn = Flaky(ConnectionError(), ValueError(), ValueError(), ConnectionError())
    guarded = with_circuit_breaker(RunnableLambda(fn), breaker)
    for _ in range(4):
        with pytest.raises((ConnectionError, ValueError)):
            guarded.invoke("x")
    assert breaker.failures == 2 and breaker.state is CircuitState.OPEN
    breaker.reset()
    fn.errors = [ConnectionError()]
    with pytest.raises(ConnectionError):
        guarded.invoke("x")
    assert guarded.invoke("x") == "x"
    assert breaker.failures == 0


async def test_async_breaker_opens_and_recovers() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    model = Echo(fail=ConnectionError("down"))
    guarded = CircuitBreakerRunnable(model, breaker)
    with pytest.raises(ConnectionError):
        await guarded.ainvoke("x")
    with pytest.raises(CircuitOpenError):
        await guarded.ainvoke("x")
    clock.now += 1
    model.fail = None
    assert await guarded.ainvoke("x") == "x"
    assert breaker.state is CircuitState.CLOSED


def test_breaker_counts_a_failed_stream_and_ignores_an_abandoned_one() -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=FakeClock())
    guarded = CircuitBreakerRunnable(BrokenStream(fail_first=0, good=3), breaker)
    stream = guarded.stream("x")
    assert next(stream) == "c0"
    stream.close()
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(ConnectionError):
        list(guarded.stream("x"))
    assert breaker.state is CircuitState.OPEN


# -- fallback ---------------------------------------------------------------------------------


async def test_fallback_answers_when_the_component_fails() -> None:
    primary = Echo(fail=ConnectionError("down"))
    backup = RunnableLambda(lambda x: f"backup:{x}")
    safe = with_fallback(primary, backup)
    assert safe.invoke("q") == "backup:q"
    assert await safe.ainvoke("q") == "backup:q"
    assert safe.InputType is str
    only_value_errors = with_fallback(primary, backup, exceptions=(ValueError,))
    with pytest.raises(ConnectionError):
        only_value_errors.invoke("q")


# -- rate limit -------------------------------------------------------------------------------


def test_token_bucket_spaces_calls_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=1, clock=clock, sleep=clock.sleep)
    limited = RateLimitedRunnable(RunnableLambda(lambda x: x), bucket)
    start = clock.now
    for i in range(5):
        assert limited.invoke(i) == i
    assert clock.slept == [0.5, 0.5, 0.5, 0.5]
    assert clock.now - start == pytest.approx(2.0)


def test_token_bucket_burst_then_refill() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=3, clock=clock, sleep=clock.sleep)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.now += 1.0
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    clock.now += 100
    assert bucket.tokens == 3.0  # never more than the burst


def test_rate_limit_max_wait_refuses_without_spending_a_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, clock=clock, sleep=clock.sleep)
    limited = RateLimitedRunnable(Echo(), bucket, max_wait=0.5)
    assert limited.invoke("a") == "a"
    with pytest.raises(RateLimitedError) as info:
        limited.invoke("b")
    assert "'Echo'" in str(info.value) and "max_wait=0.5s" in str(info.value)
    assert bucket.tokens == pytest.approx(0.0)
    clock.now += 0.6
    assert limited.invoke("c") == "c"  # waits the remaining 0.4s
    assert clock.slept == [pytest.approx(0.4)]


async def test_async_token_bucket_spaces_calls() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4.0, clock=clock, asleep=clock.asleep)
    limited = with_rate_limit(RunnableLambda(lambda x: x), bucket)
    assert [await limited.ainvoke(i) for i in range(3)] == [0, 1, 2]
    assert clock.slept == [0.25, 0.25]
    with pytest.raises(RateLimitedError):
        await RateLimitedRunnable(Echo(), bucket, max_wait=0.1).ainvoke("x")


def test_rate_limit_accepts_langchain_rate_limiters() -> None:
    limiter = InMemoryRateLimiter(requests_per_second=1000, check_every_n_seconds=0.001)
    limited = with_rate_limit(Echo(), limiter)
    assert limited.invoke("a") == "a"
    with pytest.raises(Exception, match="TokenBucket"):
        RateLimitedRunnable(Echo(), limiter, max_wait=1.0)


# -- concurrency limit ------------------------------------------------------------------------


class Gauge:
    """Records how many calls run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def exit(self) -> None:
        with self.lock:
            self.current -= 1


def test_concurrency_limit_holds_under_20_threads() -> None:
    gauge = Gauge()

    def work(x: int) -> int:
        gauge.enter()
        time.sleep(0.02)
        gauge.exit()
        return x

    limited = with_concurrency_limit(RunnableLambda(work), 3)
    results = limited.batch(list(range(20)), config={"max_concurrency": 20})
    assert results == list(range(20))
    assert gauge.peak == 3


async def test_concurrency_limit_holds_under_20_tasks() -> None:
    gauge = Gauge()

    async def work(x: int) -> int:
        gauge.enter()
        await asyncio.sleep(0.01)
        gauge.exit()
        return x

    limited = with_concurrency_limit(RunnableLambda(work), 3)
    assert await asyncio.gather(*(limited.ainvoke(i) for i in range(20))) == list(range(20))
    assert gauge.peak == 3


async def test_one_limit_covers_threads_and_tasks_together() -> None:
    gauge = Gauge()
    limiter = ConcurrencyLimiter(2)

    def sync_work(x: int) -> int:
        gauge.enter()
        time.sleep(0.01)
        gauge.exit()
        return x

    async def async_work(x: int) -> int:
        gauge.enter()
        await asyncio.sleep(0.01)
        gauge.exit()
        return x

    sync_limited = ConcurrencyLimitedRunnable(RunnableLambda(sync_work), limiter)
    async_limited = ConcurrencyLimitedRunnable(RunnableLambda(async_work), limiter)
    threads = asyncio.gather(*(asyncio.to_thread(sync_limited.invoke, i) for i in range(10)))
    tasks = asyncio.gather(*(async_limited.ainvoke(i) for i in range(10)))
    assert await threads == list(range(10))
    assert await tasks == list(range(10))
    assert gauge.peak <= 2
    assert limiter.active == 0 and limiter.waiting == 0


def test_concurrency_max_wait_raises_when_no_slot_frees(release: threading.Event) -> None:
    started = threading.Event()

    def hold(x: str) -> str:
        started.set()
        release.wait(5)
        return x

    limited = with_concurrency_limit(RunnableLambda(hold), 1, max_wait=0.02)
    holder = threading.Thread(target=limited.invoke, args=("first",))
    holder.start()
    started.wait(5)
    with pytest.raises(ConcurrencyLimitError) as info:
        limited.invoke("second")
    assert "max_concurrency=1" in str(info.value) and "hold" in str(info.value)
    release.set()
    holder.join()
    assert limited.invoke("third") == "third"


async def test_async_concurrency_max_wait_and_cancellation_free_their_place() -> None:
    limiter = ConcurrencyLimiter(1)
    await limiter.aacquire()
    with pytest.raises(ConcurrencyLimitError):
        await limiter.aacquire(max_wait=0.01)
    waiter = asyncio.create_task(limiter.aacquire())
    await asyncio.sleep(0)
    assert limiter.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.waiting == 0
    limiter.release()
    assert limiter.active == 0
    async with limiter.aslot(max_wait=0):
        assert limiter.active == 1


def test_stream_holds_its_slot_until_closed() -> None:
    limiter = ConcurrencyLimiter(1)
    limited = ConcurrencyLimitedRunnable(Echo(), limiter, max_wait=0)
    stream = limited.stream("a b c")
    assert next(stream) == "a"
    assert limiter.active == 1
    with pytest.raises(ConcurrencyLimitError):
        limited.invoke("x")
    stream.close()
    assert limiter.active == 0


# -- resilient() ------------------------------------------------------------------------------


def test_resilient_retries_inside_the_breaker_and_falls_back_outside_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=60.0, clock=clock)
    model = Echo(fail=ConnectionError("down"))
    safe = resilient(
        model,
        retry=RetrySettings(attempts=3, jitter=0.0, sleep=clock.sleep),
        breaker=breaker,
        fallback=RunnableLambda(lambda x: "fallback"),
        timeout=5.0,
        rate_limit=TokenBucket(1000.0, clock=clock, sleep=clock.sleep),
        max_concurrency=2,
    )
    assert safe.invoke("x") == "fallback"
    assert model.calls == 3  # retried three times...
    assert breaker.failures == 1  # ...which the breaker saw as one failed call
    assert breaker.state is CircuitState.OPEN
    assert safe.invoke("x") == "fallback"  # open: fails fast into the fallback
    assert model.calls == 3


def test_resilient_rate_limits_every_retry_attempt() -> None:
    clock = FakeClock()
    fn = Flaky(ConnectionError(), ConnectionError())
    safe = resilient(
        RunnableLambda(fn),
        retry=RetrySettings(attempts=3, initial_wait=0.0, jitter=0.0, sleep=clock.sleep),
        rate_limit=TokenBucket(1.0, clock=clock, sleep=clock.sleep),
    )
    assert safe.invoke("x") == "x"
    assert fn.calls == 3
    assert clock.now == pytest.approx(102.0)  # three tokens at 1/s: two waits of 1s

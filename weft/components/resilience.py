"""Resilience wrappers: retry, timeout, circuit breaker, fallback, rate limit, concurrency limit.

Each wrapper takes any langchain-core Runnable and is a Runnable with the same input and output
types, so wrappers compose and a graph still checks its edges. :func:`resilient` stacks them in
one documented order::

    fallback( breaker( retry( rate_limit( concurrency( timeout( component ))))))

read from the outside in:

* **fallback** is outermost, so it also catches a refusal from the breaker or a limiter;
* **breaker** sees one outcome per call after retries, so a blip that one retry fixes never
  trips it, and an open circuit fails fast without burning retries;
* **retry** wraps the limits: every attempt takes its own token and slot, so retries cannot
  exceed the rate or the concurrency;
* **rate_limit** is outside the concurrency limit, so a call waiting for a token holds no slot;
* **timeout** is innermost, so it bounds one attempt and waiting for a token or slot does not
  count against it.

langchain-core's own pieces are used where they do the job: :func:`with_retry` builds on
``RunnableRetry`` (tenacity, exponential backoff with jitter) and :func:`with_fallback` is
``Runnable.with_fallbacks``. The rest are written here, each docstring says why.

Streaming passes through every wrapper: limits and the breaker guard a whole stream; retry
retries a stream only until its first chunk (after that the caller has seen output and a
retry would repeat it); timeout applies to the first chunk, each chunk or the whole stream.

Example:
    >>> from langchain_core.runnables import RunnableLambda
    >>> def answer(question: str) -> str:
    ...     return "42"
    >>> safe = resilient(RunnableLambda(answer), retry=3, timeout=10.0, max_concurrency=4)
    >>> safe.invoke("meaning of life?")
    '42'
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import queue
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.retry import RunnableRetry
from langchain_core.runnables.utils import Input, Output
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt

from weft.components._wrapper import RunnableWrapper
from weft.core.errors import (
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ComponentTimeoutError,
    ComponentTypeError,
    ConcurrencyLimitError,
    ConfigurationError,
    RateLimitedError,
)

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerRunnable",
    "CircuitState",
    "ComponentTimeoutError",
    "ConcurrencyLimitedRunnable",
    "ConcurrencyLimiter",
    "RateLimitedRunnable",
    "RetryPolicy",
    "RetryRunnable",
    "TimeoutRunnable",
    "TokenBucket",
    "is_transient",
    "resilient",
    "with_circuit_breaker",
    "with_concurrency_limit",
    "with_fallback",
    "with_rate_limit",
    "with_retry",
    "with_timeout",
]

RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


# -- retry ------------------------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """The default retry predicate: everything except errors a retry cannot fix.

    A rejected API key, a bad request, a misconfiguration, a type error or an open circuit
    fail the same way on every attempt, so retrying them only adds latency.
    """
    permanent = (
        AuthenticationError,
        BadRequestError,
        ConfigurationError,
        ComponentTypeError,
        CircuitOpenError,
    )
    return isinstance(exc, Exception) and not isinstance(exc, permanent)


def _backoff(attempt: int, initial: float, maximum: float, exp_base: float, jitter: float) -> float:
    """tenacity's ``wait_exponential_jitter`` formula."""
    return min(initial * exp_base ** (attempt - 1) + random.uniform(0, jitter), maximum)


class RetryRunnable(RunnableRetry[Input, Output]):  # type: ignore[no-redef]
    """langchain-core's ``RunnableRetry`` with an injectable sleep and retried streams.

    ``invoke``/``batch`` and their async twins are langchain's (tenacity, traced attempts
    tagged ``retry:attempt:N``). Two things are added: ``sleep``/``asleep`` replace the real
    sleep (tests check the waits without waiting), and ``stream``/``astream`` retry too, but
    only before the first chunk, because after it a retry would repeat output the caller has
    already seen. Build it with :func:`with_retry`.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def ok(x: int) -> int:
        ...     return x
        >>> with_retry(RunnableLambda(ok), attempts=2).invoke(1)
        1
    """

    sleep: Callable[[float], None] | None = None
    asleep: Callable[[float], Awaitable[None]] | None = None

    @property
    def _kwargs_retrying(self) -> dict[str, Any]:
        # langchain builds tenacity's wait_exponential_jitter(initial=...), which newer tenacity
        # deprecates; the same formula as a plain wait callable works with every version and
        # is the one the streaming path uses.
        return {
            "stop": stop_after_attempt(self.max_attempt_number),
            "wait": lambda state: self._wait(state.attempt_number),
            "retry": retry_if_exception(lambda exc: self._should_retry(exc, 0)),
        }

    def _sync_retrying(self, **kwargs: Any) -> Retrying:
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep
        return Retrying(**self._kwargs_retrying, **kwargs)

    def _async_retrying(self, **kwargs: Any) -> AsyncRetrying:
        if self.asleep is not None:
            kwargs["sleep"] = self.asleep
        return AsyncRetrying(**self._kwargs_retrying, **kwargs)

    def _should_retry(self, exc: BaseException, attempt: int) -> bool:
        if attempt >= self.max_attempt_number or not isinstance(exc, Exception):
            return False
        rule = self.retry_exception_types
        return bool(rule(exc)) if callable(rule) else isinstance(exc, rule)

    def _wait(self, attempt: int) -> float:
        if not self.wait_exponential_jitter:
            return 0.0
        params: dict[str, float] = {"initial": 1.0, "max": 60.0, "exp_base": 2.0, "jitter": 1.0}
        params.update(cast("dict[str, float]", self.exponential_jitter_params or {}))
        return _backoff(
            attempt, params["initial"], params["max"], params["exp_base"], params["jitter"]
        )

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        attempt = 1
        while True:
            emitted = False
            try:
                for chunk in self.bound.stream(input, config, **{**self.kwargs, **kwargs}):
                    emitted = True
                    yield chunk
                return
            except Exception as exc:
                if emitted or not self._should_retry(exc, attempt):
                    raise
            (self.sleep or time.sleep)(self._wait(attempt))
            attempt += 1

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        attempt = 1
        while True:
            emitted = False
            try:
                async for chunk in self.bound.astream(input, config, **{**self.kwargs, **kwargs}):
                    emitted = True
                    yield chunk
                return
            except Exception as exc:
                if emitted or not self._should_retry(exc, attempt):
                    raise
            await (self.asleep or asyncio.sleep)(self._wait(attempt))
            attempt += 1


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry: attempts, what to retry on, and the exponential backoff with jitter.

    The wait before attempt ``n + 1`` is ``min(initial_wait * exp_base ** (n - 1) +
    uniform(0, jitter), max_backoff)`` seconds.

    Example:
        >>> RetryPolicy(attempts=5, retry_on=(ConnectionError,), initial_wait=0.2).attempts
        5
    """

    attempts: int = 3
    retry_on: RetryOn = is_transient
    """Exception types, or a predicate that gets the exception and says whether to retry."""
    initial_wait: float = 1.0
    max_backoff: float = 60.0
    exp_base: float = 2.0
    jitter: float = 1.0
    sleep: Callable[[float], None] | None = None
    asleep: Callable[[float], Awaitable[None]] | None = None

    def apply(self, component: Runnable[Input, Output]) -> RetryRunnable[Input, Output]:
        """Wrap ``component`` with this policy."""
        if self.attempts < 1:
            raise ConfigurationError(f"retry attempts must be >= 1, got {self.attempts}")
        return RetryRunnable(
            bound=component,
            kwargs={},
            config={},
            retry_exception_types=self.retry_on,
            wait_exponential_jitter=True,
            exponential_jitter_params={
                "initial": self.initial_wait,
                "max": self.max_backoff,
                "exp_base": self.exp_base,
                "jitter": self.jitter,
            },
            max_attempt_number=self.attempts,
            sleep=self.sleep,
            asleep=self.asleep,
        )


def with_retry(
    component: Runnable[Input, Output],
    *,
    attempts: int = 3,
    retry_on: RetryOn = is_transient,
    initial_wait: float = 1.0,
    max_backoff: float = 60.0,
    exp_base: float = 2.0,
    jitter: float = 1.0,
    sleep: Callable[[float], None] | None = None,
    asleep: Callable[[float], Awaitable[None]] | None = None,
) -> RetryRunnable[Input, Output]:
    """Retry ``component`` with exponential backoff and jitter; see :class:`RetryPolicy`.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def ok(x: int) -> int:
        ...     return x
        >>> with_retry(RunnableLambda(ok), attempts=4, retry_on=(ConnectionError,)).invoke(3)
        3
    """
    policy = RetryPolicy(
        attempts, retry_on, initial_wait, max_backoff, exp_base, jitter, sleep, asleep
    )
    return policy.apply(component)


# -- timeout ----------------------------------------------------------------------------------

StreamTimeout = Literal["first_chunk", "each_chunk", "total"]

_CHUNK, _DONE, _ERROR = 0, 1, 2


def _consume_result(task: asyncio.Future[Any]) -> None:
    # Retrieve a cancelled or abandoned task's outcome so asyncio does not log it as lost.
    if not task.cancelled():
        task.exception()


async def _within(awaitable: Awaitable[Any], seconds: float | None, on_timeout: str) -> Any:
    """Await with a limit; unlike ``asyncio.wait_for`` a ``TimeoutError`` raised by the
    component itself is passed on as it is, not mistaken for ours."""
    if seconds is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(seconds, 0.0))
    except BaseException:
        task.cancel()
        task.add_done_callback(_consume_result)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_consume_result)
        raise ComponentTimeoutError(on_timeout)
    return task.result()


class TimeoutRunnable(RunnableWrapper[Input, Output]):
    """Fails a call that takes longer than ``seconds`` with :class:`ComponentTimeoutError`.

    langchain-core has no timeout wrapper, hence this one. ``ainvoke`` cancels the component's
    task. ``invoke`` runs the component in a worker thread (in a copy of the caller's context,
    so callbacks and tracing still nest) and stops waiting for it; Python cannot stop a thread,
    so the worker runs on in the background and its result is dropped.

    ``stream_timeout`` says what the limit bounds when streaming: ``"first_chunk"`` (the
    default: time to first output, then no limit), ``"each_chunk"`` (every chunk, including
    the first, within ``seconds`` of the one before) or ``"total"`` (the whole stream, as the
    caller consumes it).

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def fast(x: int) -> int:
        ...     return x + 1
        >>> TimeoutRunnable(RunnableLambda(fast), 5.0).invoke(1)
        2
    """

    def __init__(
        self,
        bound: Runnable[Input, Output],
        seconds: float,
        *,
        stream_timeout: StreamTimeout = "first_chunk",
        name: str | None = None,
    ) -> None:
        super().__init__(bound, name=name)
        if seconds <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {seconds}")
        if stream_timeout not in ("first_chunk", "each_chunk", "total"):
            raise ConfigurationError(
                f"stream_timeout must be 'first_chunk', 'each_chunk' or 'total', "
                f"got {stream_timeout!r}"
            )
        self.seconds = seconds
        self.stream_timeout: StreamTimeout = stream_timeout

    def _message(self, what: str = "finish") -> str:
        return (
            f"'{self.component}' did not {what} within its {self.seconds:g}s timeout; raise "
            f"the limit (timeout=...) or make the call cheaper"
        )

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
        context = contextvars.copy_context()

        def work() -> None:
            try:
                box.put((True, context.run(self.bound.invoke, input, config, **kwargs)))
            except BaseException as exc:
                box.put((False, exc))

        worker = threading.Thread(target=work, name=f"weft-timeout:{self.component}", daemon=True)
        worker.start()
        try:
            ok, value = box.get(timeout=self.seconds)
        except queue.Empty:
            raise ComponentTimeoutError(self._message()) from None
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        result = await _within(
            self.bound.ainvoke(input, config, **kwargs), self.seconds, self._message()
        )
        return result  # type: ignore[no-any-return]

    def _limit(self, first: bool, deadline: float) -> float | None:
        if self.stream_timeout == "total":
            return deadline - time.monotonic()
        if self.stream_timeout == "first_chunk" and not first:
            return None
        return self.seconds

    def _stream_message(self, first: bool) -> str:
        if self.stream_timeout == "total":
            return self._message("finish streaming")
        return self._message("stream its first chunk" if first else "stream its next chunk")

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        chunks: queue.Queue[tuple[int, Any]] = queue.Queue()
        stop = threading.Event()
        context = contextvars.copy_context()

        def produce() -> None:
            try:
                for chunk in self.bound.stream(input, config, **kwargs):
                    chunks.put((_CHUNK, chunk))
                    if stop.is_set():
                        return
                chunks.put((_DONE, None))
            except BaseException as exc:
                chunks.put((_ERROR, exc))

        deadline = time.monotonic() + self.seconds
        worker = threading.Thread(
            target=context.run, args=(produce,), name=f"weft-timeout:{self.component}", daemon=True
        )
        worker.start()
        first = True
        try:
            while True:
                limit = self._limit(first, deadline)
                try:
                    if limit is not None and limit <= 0:
                        raise queue.Empty
                    kind, value = chunks.get(timeout=limit)
                except queue.Empty:
                    raise ComponentTimeoutError(self._stream_message(first)) from None
                if kind == _DONE:
                    return
                if kind == _ERROR:
                    raise value
                yield value
                first = False
        finally:
            # The producer stops at its next chunk; an abandoned or timed-out stream must not
            # keep pulling from the component.
            stop.set()

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        source = self.bound.astream(input, config, **kwargs)
        deadline = time.monotonic() + self.seconds
        first = True
        try:
            while True:
                limit = self._limit(first, deadline)
                try:
                    chunk = await _within(source.__anext__(), limit, self._stream_message(first))
                except StopAsyncIteration:
                    return
                yield chunk
                first = False
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


def with_timeout(
    component: Runnable[Input, Output],
    seconds: float,
    *,
    stream_timeout: StreamTimeout = "first_chunk",
) -> TimeoutRunnable[Input, Output]:
    """Limit each call of ``component`` to ``seconds``; see :class:`TimeoutRunnable`."""
    return TimeoutRunnable(component, seconds, stream_timeout=stream_timeout)


# -- circuit breaker --------------------------------------------------------------------------


class CircuitState(str, enum.Enum):
    """Where a :class:`CircuitBreaker` is in its cycle."""

    CLOSED = "closed"
    """Calls go through; consecutive failures are counted."""
    OPEN = "open"
    """Calls fail fast with CircuitOpenError until the reset timeout passes."""
    HALF_OPEN = "half_open"
    """One probe call goes through; its outcome closes or reopens the circuit."""


class CircuitBreaker:
    """Stops calling a component that keeps failing, and probes it again later.

    ``closed`` → ``open`` after ``failure_threshold`` consecutive failures → ``half_open``
    once ``reset_timeout`` seconds have passed, letting one probe call through (others still
    fail fast) → ``closed`` if the probe succeeds, ``open`` again if it fails. Exceptions that
    ``failure_on`` rejects (e.g. a bad input) neither count nor reset the count. One breaker
    may guard several components (e.g. everything behind one provider); it is thread-safe and
    works for sync and async calls alike. langchain-core has no circuit breaker.

    Args:
        failure_threshold: Consecutive failures that open the circuit.
        reset_timeout: Seconds the circuit stays open before it lets a probe through.
        failure_on: Exception types, or a predicate, that count as failures.
        clock: Monotonic seconds; tests pass a fake clock.
        name: Shown in error messages.

    Example:
        >>> breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0)
        >>> breaker.state
        <CircuitState.CLOSED: 'closed'>
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        *,
        failure_on: RetryOn = (Exception,),
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigurationError(
                f"circuit breaker failure_threshold must be >= 1, got {failure_threshold}"
            )
        if reset_timeout < 0:
            raise ConfigurationError(
                f"circuit breaker reset_timeout must be >= 0 seconds, got {reset_timeout}"
            )
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.failure_on = failure_on
        self.clock = clock
        self.name = name
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._last_error: BaseException | None = None

    def _advance(self, now: float) -> CircuitState:
        if self._state is CircuitState.OPEN and now >= self._opened_at + self.reset_timeout:
            self._state = CircuitState.HALF_OPEN
            self._probing = False
        return self._state

    @property
    def state(self) -> CircuitState:
        """The current state; ``open`` reads as ``half_open`` once the reset timeout passed."""
        with self._lock:
            return self._advance(self.clock())

    @property
    def failures(self) -> int:
        """Consecutive failures counted since the last success."""
        with self._lock:
            return self._failures

    def reset(self) -> None:
        """Close the circuit and forget the failures."""
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0
            self._probing = False
            self._last_error = None

    def _counts(self, exc: BaseException) -> bool:
        if not isinstance(exc, Exception):
            return False
        rule = self.failure_on
        return bool(rule(exc)) if callable(rule) else isinstance(exc, rule)

    def _refusal(self, component: str, now: float) -> CircuitOpenError:
        label = f"circuit breaker '{self.name}'" if self.name else "the circuit breaker"
        last = self._last_error
        cause = f" (last: {type(last).__name__}: {last})" if last is not None else ""
        if self._state is CircuitState.HALF_OPEN:
            return CircuitOpenError(
                f"{label} for '{component}' is half-open after {self._failures} consecutive "
                f"failures{cause} and its one probe call is still running; retry when it ends"
            )
        wait = max(self._opened_at + self.reset_timeout - now, 0.0)
        return CircuitOpenError(
            f"{label} for '{component}' is open after {self._failures} consecutive "
            f"failures{cause}; calls fail fast until it lets a probe through in {wait:.1f}s"
        )

    def _enter(self, component: str) -> bool:
        with self._lock:
            now = self.clock()
            state = self._advance(now)
            if state is CircuitState.CLOSED:
                return False
            if state is CircuitState.HALF_OPEN and not self._probing:
                self._probing = True
                return True
            raise self._refusal(component, now)

    def _exit(self, probe: bool, exc: BaseException | None) -> None:
        with self._lock:
            if exc is None:
                self._state = CircuitState.CLOSED
                self._failures = 0
                self._last_error = None
            elif self._counts(exc):
                self._failures += 1
                self._last_error = exc
                if probe or self._failures >= self.failure_threshold:
                    self._state = CircuitState.OPEN
                    self._opened_at = self.clock()
            if probe:
                self._probing = False

    @contextlib.contextmanager
    def guard(self, component: str = "component") -> Iterator[None]:
        """Run a block under the breaker: refuse it when open, record how it ends.

        A block left by ``GeneratorExit`` or cancellation (a stream the caller stopped) records
        nothing, since the component did not fail.

        Raises:
            CircuitOpenError: the circuit is open, or half-open with its probe running.
        """
        probe = self._enter(component)
        try:
            yield
        except Exception as exc:
            self._exit(probe, exc)
            raise
        except BaseException:
            with self._lock:
                if probe:
                    self._probing = False
            raise
        self._exit(probe, None)


class CircuitBreakerRunnable(RunnableWrapper[Input, Output]):
    """A component guarded by a :class:`CircuitBreaker`; a stream counts as one call.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def ok(x: int) -> int:
        ...     return x
        >>> guarded = CircuitBreakerRunnable(RunnableLambda(ok), CircuitBreaker())
        >>> guarded.invoke(1), guarded.breaker.state.value
        (1, 'closed')
    """

    def __init__(
        self, bound: Runnable[Input, Output], breaker: CircuitBreaker, *, name: str | None = None
    ) -> None:
        super().__init__(bound, name=name)
        self.breaker = breaker

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        with self.breaker.guard(self.component):
            return self.bound.invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        with self.breaker.guard(self.component):
            return await self.bound.ainvoke(input, config, **kwargs)

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        with self.breaker.guard(self.component):
            yield from self.bound.stream(input, config, **kwargs)

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        with self.breaker.guard(self.component):
            async for chunk in self.bound.astream(input, config, **kwargs):
                yield chunk


def with_circuit_breaker(
    component: Runnable[Input, Output], breaker: CircuitBreaker | None = None, **options: Any
) -> CircuitBreakerRunnable[Input, Output]:
    """Guard ``component`` with ``breaker``, or a new one made from ``options``."""
    return CircuitBreakerRunnable(component, breaker or CircuitBreaker(**options))


# -- fallback ---------------------------------------------------------------------------------


def with_fallback(
    component: Runnable[Input, Output],
    *fallbacks: Runnable[Input, Output],
    exceptions: tuple[type[BaseException], ...] = (Exception,),
) -> Runnable[Input, Output]:
    """Try ``fallbacks`` in order when ``component`` raises one of ``exceptions``.

    This is langchain-core's ``with_fallbacks`` as it is (it already keeps the input and
    output types and streams); the helper exists so :func:`resilient` reads as one call.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def broken(x: str) -> str:
        ...     raise ConnectionError("down")
        >>> def cached_answer(x: str) -> str:
        ...     return "from fallback"
        >>> with_fallback(RunnableLambda(broken), RunnableLambda(cached_answer)).invoke("q")
        'from fallback'
    """
    if not fallbacks:
        raise ConfigurationError("with_fallback needs at least one fallback component")
    return component.with_fallbacks(list(fallbacks), exceptions_to_handle=exceptions)


# -- rate limit -------------------------------------------------------------------------------


class TokenBucket:
    """A token bucket: ``rate`` tokens a second, holding at most ``burst``; starts full.

    Written here rather than reusing langchain-core's ``InMemoryRateLimiter`` because that one
    polls on a sleep loop, cannot bound how long a caller waits, and reads the real clock.
    This one reserves a token and sleeps exactly until it is due, so waiters are served in
    order, a caller that would wait longer than ``max_wait`` is refused at once, and tests run
    on a fake clock. A waiter cancelled while sleeping forfeits its token (the rate stays safe).

    Example:
        >>> bucket = TokenBucket(rate=2.0, burst=2)
        >>> bucket.try_acquire(), bucket.try_acquire(), bucket.try_acquire()
        (True, True, False)
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ConfigurationError(f"rate limit must be > 0 calls a second, got {rate}")
        if burst < 1:
            raise ConfigurationError(f"rate limit burst must be >= 1, got {burst}")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.sleep = sleep
        self.asleep = asleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    @property
    def tokens(self) -> float:
        """Tokens available now; negative while callers wait for reserved ones."""
        with self._lock:
            self._refill(self.clock())
            return self._tokens

    def _refill(self, now: float) -> None:
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _reserve(self, max_wait: float | None, who: str) -> float:
        with self._lock:
            self._refill(self.clock())
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            if max_wait is not None and wait > max_wait:
                raise RateLimitedError(
                    f"rate limit for '{who}' ({self.rate:g}/s, burst {self.burst}) has no token "
                    f"within max_wait={max_wait:g}s (next in {wait:.2f}s); raise max_wait or "
                    f"the rate"
                )
            self._tokens -= 1
            return wait

    def try_acquire(self) -> bool:
        """Take a token if one is free now."""
        try:
            self._reserve(0.0, "")
        except RateLimitedError:
            return False
        return True

    def acquire(self, max_wait: float | None = None, *, who: str = "component") -> None:
        """Take a token, sleeping until it is due.

        Raises:
            RateLimitedError: it would take longer than ``max_wait`` seconds.
        """
        wait = self._reserve(max_wait, who)
        if wait > 0:
            self.sleep(wait)

    async def aacquire(self, max_wait: float | None = None, *, who: str = "component") -> None:
        """Async twin of :meth:`acquire`."""
        wait = self._reserve(max_wait, who)
        if wait > 0:
            await self.asleep(wait)


class RateLimitedRunnable(RunnableWrapper[Input, Output]):
    """Takes a token before each call (and before each stream starts).

    ``limiter`` is a :class:`TokenBucket` or any langchain-core ``BaseRateLimiter`` (e.g. an
    ``InMemoryRateLimiter`` shared with a chat model); ``max_wait`` needs a TokenBucket.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def ok(x: int) -> int:
        ...     return x
        >>> RateLimitedRunnable(RunnableLambda(ok), TokenBucket(rate=10.0)).invoke(1)
        1
    """

    def __init__(
        self,
        bound: Runnable[Input, Output],
        limiter: TokenBucket | BaseRateLimiter,
        *,
        max_wait: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(bound, name=name)
        if max_wait is not None and not isinstance(limiter, TokenBucket):
            raise ConfigurationError(
                f"max_wait needs a weft TokenBucket; {type(limiter).__name__} can only block; "
                f"pass limiter=TokenBucket(rate=...) or drop max_wait"
            )
        self.limiter = limiter
        self.max_wait = max_wait

    def _acquire(self) -> None:
        if isinstance(self.limiter, TokenBucket):
            self.limiter.acquire(self.max_wait, who=self.component)
        else:
            self.limiter.acquire(blocking=True)

    async def _aacquire(self) -> None:
        if isinstance(self.limiter, TokenBucket):
            await self.limiter.aacquire(self.max_wait, who=self.component)
        else:
            await self.limiter.aacquire(blocking=True)

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        self._acquire()
        return self.bound.invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        await self._aacquire()
        return await self.bound.ainvoke(input, config, **kwargs)

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        self._acquire()
        yield from self.bound.stream(input, config, **kwargs)

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        await self._aacquire()
        async for chunk in self.bound.astream(input, config, **kwargs):
            yield chunk


def with_rate_limit(
    component: Runnable[Input, Output],
    rate: float | TokenBucket | BaseRateLimiter,
    *,
    burst: int = 1,
    max_wait: float | None = None,
) -> RateLimitedRunnable[Input, Output]:
    """Limit ``component`` to ``rate`` calls a second (or share an existing limiter)."""
    limiter = rate if isinstance(rate, (TokenBucket, BaseRateLimiter)) else TokenBucket(rate, burst)
    return RateLimitedRunnable(component, limiter, max_wait=max_wait)


# -- concurrency limit ------------------------------------------------------------------------


class _Waiter:
    """One caller queued for a slot; ``granted`` is set under the limiter's lock."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.granted = False
        self.loop = loop
        self.event = threading.Event() if loop is None else None
        self.future: asyncio.Future[None] | None = None if loop is None else loop.create_future()

    def grant(self) -> bool:
        self.granted = True
        if self.event is not None:
            self.event.set()
            return True
        assert self.loop is not None and self.future is not None
        future = self.future
        try:
            self.loop.call_soon_threadsafe(
                lambda: None if future.done() else future.set_result(None)
            )
        except RuntimeError:  # its event loop is closed: nobody is waiting any more
            self.granted = False
            return False
        return True


class ConcurrencyLimiter:
    """At most ``max_concurrency`` calls at once, across threads and event loops together.

    One FIFO queue serves sync callers (threads) and async callers (tasks, on any loop), so a
    component shared by both never runs more than the limit. A released slot is handed to the
    longest waiter directly. ``asyncio.Semaphore`` and ``threading.Semaphore`` were not enough:
    each only counts its own kind of caller, and an asyncio one belongs to a single loop.

    Example:
        >>> limiter = ConcurrencyLimiter(2)
        >>> with limiter.slot():
        ...     limiter.active
        1
    """

    def __init__(self, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._active = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def active(self) -> int:
        """Slots in use."""
        with self._lock:
            return self._active

    @property
    def waiting(self) -> int:
        """Callers queued for a slot."""
        with self._lock:
            return len(self._waiters)

    def _refusal(self, max_wait: float, who: str) -> ConcurrencyLimitError:
        return ConcurrencyLimitError(
            f"'{who}' already runs {self.max_concurrency} calls at once "
            f"(max_concurrency={self.max_concurrency}) and no slot freed within "
            f"max_wait={max_wait:g}s; raise max_concurrency or max_wait"
        )

    def _try_enter(self) -> bool:
        if self._active < self.max_concurrency and not self._waiters:
            self._active += 1
            return True
        return False

    def acquire(self, max_wait: float | None = None, *, who: str = "component") -> None:
        """Take a slot, waiting up to ``max_wait`` seconds (None: no limit).

        Raises:
            ConcurrencyLimitError: no slot freed in time.
        """
        with self._lock:
            if self._try_enter():
                return
            if max_wait is not None and max_wait <= 0:
                raise self._refusal(max_wait, who)
            waiter = _Waiter(None)
            self._waiters.append(waiter)
        assert waiter.event is not None
        if waiter.event.wait(max_wait):
            return
        with self._lock:
            if waiter.granted:  # handed a slot just as the wait ran out: keep it
                return
            self._waiters.remove(waiter)
        raise self._refusal(max_wait or 0.0, who)

    async def aacquire(self, max_wait: float | None = None, *, who: str = "component") -> None:
        """Async twin of :meth:`acquire`."""
        with self._lock:
            if self._try_enter():
                return
            if max_wait is not None and max_wait <= 0:
                raise self._refusal(max_wait, who)
            waiter = _Waiter(asyncio.get_running_loop())
            self._waiters.append(waiter)
        assert waiter.future is not None
        try:
            done, _ = await asyncio.wait({waiter.future}, timeout=max_wait)
        except BaseException:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
            if granted:  # cancelled after being handed a slot: pass it on
                self.release()
            raise
        if done:
            return
        with self._lock:
            if waiter.granted:
                return
            self._waiters.remove(waiter)
        raise self._refusal(max_wait or 0.0, who)

    def release(self) -> None:
        """Give a slot back, handing it to the longest waiter if there is one."""
        with self._lock:
            while self._waiters:
                if self._waiters.popleft().grant():
                    return
            if self._active <= 0:
                raise RuntimeError("ConcurrencyLimiter.release() called more often than acquire")
            self._active -= 1

    @contextlib.contextmanager
    def slot(self, max_wait: float | None = None, *, who: str = "component") -> Iterator[None]:
        """Hold a slot for the block."""
        self.acquire(max_wait, who=who)
        try:
            yield
        finally:
            self.release()

    @contextlib.asynccontextmanager
    async def aslot(
        self, max_wait: float | None = None, *, who: str = "component"
    ) -> AsyncIterator[None]:
        """Async twin of :meth:`slot`."""
        await self.aacquire(max_wait, who=who)
        try:
            yield
        finally:
            self.release()


class ConcurrencyLimitedRunnable(RunnableWrapper[Input, Output]):
    """Runs a component under a :class:`ConcurrencyLimiter`; a stream holds its slot until it
    ends or is closed.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def ok(x: int) -> int:
        ...     return x
        >>> limited = ConcurrencyLimitedRunnable(RunnableLambda(ok), ConcurrencyLimiter(4))
        >>> limited.batch([1, 2, 3])
        [1, 2, 3]
    """

    def __init__(
        self,
        bound: Runnable[Input, Output],
        limiter: ConcurrencyLimiter,
        *,
        max_wait: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(bound, name=name)
        self.limiter = limiter
        self.max_wait = max_wait

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        with self.limiter.slot(self.max_wait, who=self.component):
            return self.bound.invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        async with self.limiter.aslot(self.max_wait, who=self.component):
            return await self.bound.ainvoke(input, config, **kwargs)

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        with self.limiter.slot(self.max_wait, who=self.component):
            yield from self.bound.stream(input, config, **kwargs)

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        async with self.limiter.aslot(self.max_wait, who=self.component):
            async for chunk in self.bound.astream(input, config, **kwargs):
                yield chunk


def with_concurrency_limit(
    component: Runnable[Input, Output],
    max_concurrency: int | ConcurrencyLimiter,
    *,
    max_wait: float | None = None,
) -> ConcurrencyLimitedRunnable[Input, Output]:
    """Run at most ``max_concurrency`` calls of ``component`` at once (or share a limiter)."""
    limiter = (
        max_concurrency
        if isinstance(max_concurrency, ConcurrencyLimiter)
        else ConcurrencyLimiter(max_concurrency)
    )
    return ConcurrencyLimitedRunnable(component, limiter, max_wait=max_wait)


# -- all together -----------------------------------------------------------------------------


def resilient(
    component: Runnable[Input, Output],
    *,
    retry: int | RetryPolicy | None = None,
    timeout: float | None = None,
    breaker: CircuitBreaker | bool | None = None,
    fallback: Runnable[Input, Output] | Sequence[Runnable[Input, Output]] | None = None,
    rate_limit: float | TokenBucket | BaseRateLimiter | None = None,
    max_concurrency: int | ConcurrencyLimiter | None = None,
    max_wait: float | None = None,
) -> Runnable[Input, Output]:
    """Stack the wrappers asked for, in the order the module docstring explains.

    Args:
        component: What to protect.
        retry: Attempts (``3``) or a :class:`RetryPolicy`.
        timeout: Seconds per attempt.
        breaker: A :class:`CircuitBreaker` (share one across components), or True for a new
            default one.
        fallback: A component, or several tried in order, used when everything inside fails.
        rate_limit: Calls a second, a :class:`TokenBucket`, or a langchain ``BaseRateLimiter``.
        max_concurrency: Calls at once, or a shared :class:`ConcurrencyLimiter`.
        max_wait: Longest wait for a rate-limit token or a concurrency slot before
            RateLimitedError / ConcurrencyLimitError; None waits as long as it takes.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def flaky(x: str) -> str:
        ...     raise ConnectionError("down")
        >>> def backup(x: str) -> str:
        ...     return "backup"
        >>> policy = RetryPolicy(attempts=2, initial_wait=0.0, jitter=0.0)
        >>> safe = resilient(RunnableLambda(flaky), retry=policy, fallback=RunnableLambda(backup))
        >>> safe.invoke("q")
        'backup'
    """
    wrapped: Runnable[Input, Output] = component
    if timeout is not None:
        wrapped = TimeoutRunnable(wrapped, timeout)
    if max_concurrency is not None:
        wrapped = with_concurrency_limit(wrapped, max_concurrency, max_wait=max_wait)
    if rate_limit is not None:
        wrapped = with_rate_limit(
            wrapped,
            rate_limit,
            max_wait=max_wait if not isinstance(rate_limit, BaseRateLimiter) else None,
        )
    if retry is not None:
        policy = RetryPolicy(attempts=retry) if isinstance(retry, int) else retry
        wrapped = policy.apply(wrapped)
    if breaker is not None and breaker is not False:
        wrapped = CircuitBreakerRunnable(wrapped, CircuitBreaker() if breaker is True else breaker)
    if fallback is not None:
        fallbacks = [fallback] if isinstance(fallback, Runnable) else list(fallback)
        wrapped = with_fallback(wrapped, *fallbacks)
    return wrapped

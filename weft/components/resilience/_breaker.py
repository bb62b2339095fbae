"""A circuit breaker: stop calling a component that keeps failing, and probe it again later."""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import Input, Output

from weft.components._wrapper import RunnableWrapper
from weft.components.resilience._content import RetryOn, matches
from weft.core.errors import CircuitOpenError, ConfigurationError

__all__ = ["CircuitBreaker", "CircuitBreakerRunnable", "CircuitState", "with_circuit_breaker"]


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
            elif matches(self.failure_on, exc):
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

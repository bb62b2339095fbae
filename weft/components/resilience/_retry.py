"""Retry with exponential backoff and jitter, for calls and for streams until first content."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.retry import RunnableRetry
from langchain_core.runnables.utils import Input, Output
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt

from weft.components.resilience._content import ContentGate, ContentWatch, RetryOn, matches
from weft.core.errors import (
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ComponentTypeError,
    ConfigurationError,
)

__all__ = ["RetryRunnable", "RetrySettings", "is_transient", "with_retry"]


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


# The watch of the ``invoke`` running now: langchain's retry loop asks it before each retry.
_WATCH: ContextVar[ContentWatch | None] = ContextVar("weft_retry_watch", default=None)


def _content_shown() -> bool:
    watch = _WATCH.get()
    return watch is not None and watch.opened


@contextmanager
def _watching(config: RunnableConfig | None) -> Iterator[RunnableConfig]:
    """``config`` with a fresh watch among its callbacks, the watch :func:`_content_shown` asks
    while the block runs."""
    watch = ContentWatch()
    token = _WATCH.set(watch)
    try:
        yield watch.attach(config)
    finally:
        _WATCH.reset(token)


class RetryRunnable(RunnableRetry[Input, Output]):  # type: ignore[no-redef]
    """langchain-core's ``RunnableRetry`` with an injectable sleep and retried streams.

    ``invoke``/``batch`` and their async twins are langchain's (tenacity, traced attempts
    tagged ``retry:attempt:N``). Two things are added: ``sleep``/``asleep`` replace the real
    sleep (tests check the waits without waiting), and ``stream``/``astream`` retry too, but
    only until the first chunk with content, because after it a retry would repeat output the
    caller has already seen; ``invoke`` likewise stops retrying once a chat model under it has
    streamed content to its callbacks (a streamed graph run shows those tokens). Chunks without
    content (an OpenAI stream's opening role chunk) are held back until content comes, so a
    stream that fails before its first token is retried as a whole. Build it with
    :func:`with_retry`.

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
            "retry": retry_if_exception(
                lambda exc: self._should_retry(exc, 0) and not _content_shown()
            ),
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
        return attempt < self.max_attempt_number and matches(self.retry_exception_types, exc)

    def _wait(self, attempt: int) -> float:
        if not self.wait_exponential_jitter:
            return 0.0
        params: dict[str, float] = {"initial": 1.0, "max": 60.0, "exp_base": 2.0, "jitter": 1.0}
        params.update(cast("dict[str, float]", self.exponential_jitter_params or {}))
        return _backoff(
            attempt, params["initial"], params["max"], params["exp_base"], params["jitter"]
        )

    def _retry_wait(self, exc: Exception, gate: ContentGate, attempt: int) -> float:
        """The wait before the next attempt; re-raises ``exc`` when there is none."""
        if gate.opened or not self._should_retry(exc, attempt):
            raise exc
        return self._wait(attempt)

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        with _watching(config) as watched:
            return super().invoke(input, watched, **kwargs)

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        with _watching(config) as watched:
            return await super().ainvoke(input, watched, **kwargs)

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        attempt = 1
        while True:
            gate = ContentGate()
            try:
                for chunk in self.bound.stream(input, config, **{**self.kwargs, **kwargs}):
                    yield from gate.feed(chunk)
                yield from gate.end()
                return
            except Exception as exc:
                wait = self._retry_wait(exc, gate, attempt)
            (self.sleep or time.sleep)(wait)
            attempt += 1

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        attempt = 1
        while True:
            gate = ContentGate()
            try:
                async for chunk in self.bound.astream(input, config, **{**self.kwargs, **kwargs}):
                    for ready in gate.feed(chunk):
                        yield ready
                for ready in gate.end():
                    yield ready
                return
            except Exception as exc:
                wait = self._retry_wait(exc, gate, attempt)
            await (self.asleep or asyncio.sleep)(wait)
            attempt += 1


@dataclass(frozen=True)
class RetrySettings:
    """How to retry: attempts, what to retry on, and the exponential backoff with jitter.

    The wait before attempt ``n + 1`` is ``min(initial_wait * exp_base ** (n - 1) +
    uniform(0, jitter), max_backoff)`` seconds.

    Example:
        >>> RetrySettings(attempts=5, retry_on=(ConnectionError,), initial_wait=0.2).attempts
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
    """Retry ``component`` with exponential backoff and jitter; see :class:`RetrySettings`.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def ok(x: int) -> int:
        ...     return x
        >>> with_retry(RunnableLambda(ok), attempts=4, retry_on=(ConnectionError,)).invoke(3)
        3
    """
    policy = RetrySettings(
        attempts, retry_on, initial_wait, max_backoff, exp_base, jitter, sleep, asleep
    )
    return policy.apply(component)

"""A token-bucket rate limit in front of a component."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import Input, Output

from weft.components._wrapper import RunnableWrapper
from weft.core.errors import ConfigurationError, RateLimitedError

__all__ = ["RateLimitedRunnable", "TokenBucket", "with_rate_limit"]


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

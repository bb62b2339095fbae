"""Stacking the wrappers in one documented order."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable
from langchain_core.runnables.utils import Input, Output

from weft.components.resilience._breaker import CircuitBreaker, CircuitBreakerRunnable
from weft.components.resilience._concurrency import ConcurrencyLimiter, with_concurrency_limit
from weft.components.resilience._fallback import with_fallback
from weft.components.resilience._rate import TokenBucket, with_rate_limit
from weft.components.resilience._retry import RetrySettings
from weft.components.resilience._timeout import TimeoutRunnable

__all__ = ["resilient"]


def resilient(
    component: Runnable[Input, Output],
    *,
    retry: int | RetrySettings | None = None,
    timeout: float | None = None,
    breaker: CircuitBreaker | bool | None = None,
    fallback: Runnable[Input, Output] | Sequence[Runnable[Input, Output]] | None = None,
    rate_limit: float | TokenBucket | BaseRateLimiter | None = None,
    max_concurrency: int | ConcurrencyLimiter | None = None,
    max_wait: float | None = None,
    deadline: float | None = None,
) -> Runnable[Input, Output]:
    """Stack the wrappers asked for, in the order the package docstring explains.

    Args:
        component: What to protect.
        retry: Attempts (``3``) or a :class:`RetrySettings`.
        timeout: Seconds per attempt.
        breaker: A :class:`CircuitBreaker` (share one across components), or True for a new
            default one.
        fallback: A component, or several tried in order, used when everything inside fails.
        rate_limit: Calls a second, a :class:`TokenBucket`, or a langchain ``BaseRateLimiter``.
        max_concurrency: Calls at once, or a shared :class:`ConcurrencyLimiter`.
        max_wait: Longest wait for a rate-limit token or a concurrency slot before
            RateLimitedError / ConcurrencyLimitError; None waits as long as it takes.
        deadline: Seconds for the whole call, every attempt and wait included, before
            ComponentTimeoutError (and the fallback, if any). A stream must show its first
            content within it, and then each next chunk within it of the one before.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def flaky(x: str) -> str:
        ...     raise ConnectionError("down")
        >>> def backup(x: str) -> str:
        ...     return "backup"
        >>> policy = RetrySettings(attempts=2, initial_wait=0.0, jitter=0.0)
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
        policy = RetrySettings(attempts=retry) if isinstance(retry, int) else retry
        wrapped = policy.apply(wrapped)
    if breaker is not None and breaker is not False:
        wrapped = CircuitBreakerRunnable(wrapped, CircuitBreaker() if breaker is True else breaker)
    if deadline is not None:
        wrapped = TimeoutRunnable(wrapped, deadline, stream_timeout="each_chunk")
    if fallback is not None:
        fallbacks = [fallback] if isinstance(fallback, Runnable) else list(fallback)
        wrapped = with_fallback(wrapped, *fallbacks)
    return wrapped

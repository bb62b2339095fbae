"""Resilience wrappers: retry, timeout, circuit breaker, fallback, rate limit, concurrency limit.

Each wrapper takes any langchain-core Runnable and is a Runnable with the same input and output
types, so wrappers compose and a graph still checks its edges (a chat model under
``with_timeout`` is still a chat model to the compiler). :func:`resilient` stacks them in one
documented order::

    fallback( deadline( breaker( retry( rate_limit( concurrency( timeout( component )))))))

read from the outside in:

* **fallback** is outermost, so it also catches a refusal from the breaker or a limiter, and
  a call that ran out of its deadline;
* **deadline** bounds the whole call, every retry and backoff included;
* **breaker** sees one outcome per call after retries, so a blip that one retry fixes never
  trips it, and an open circuit fails fast without burning retries;
* **retry** wraps the limits: every attempt takes its own token and slot, so retries cannot
  exceed the rate or the concurrency;
* **rate_limit** is outside the concurrency limit, so a call waiting for a token holds no slot;
* **timeout** is innermost, so it bounds one attempt and waiting for a token or slot does not
  count against it.

Streaming passes through every wrapper: limits and the breaker guard a whole stream; retry and
fallback start a stream over only until its first chunk with content (after that the caller has
seen output, and starting over would repeat or contradict it); chunks without content, such as
the role-only chunk an OpenAI-compatible stream opens with, are held back until content comes
(:mod:`._content`). A timeout applies to the first content, each chunk or the whole stream.

Where each piece lives:

* ``_content``: what counts as content, and the gate that holds empty chunks back;
* ``_retry``: :class:`RetrySettings`, :func:`with_retry` (langchain-core's ``RunnableRetry``);
* ``_timeout``: :func:`with_timeout`;
* ``_breaker``: :class:`CircuitBreaker`, :func:`with_circuit_breaker`;
* ``_fallback``: :func:`with_fallback`, which marks a fallback's answer;
* ``_rate`` and ``_concurrency``: :class:`TokenBucket`, :class:`ConcurrencyLimiter`;
* ``_stack``: :func:`resilient`;
* ``_served``: :func:`served_chat_model`, the chat model ``weft serve`` runs, from the
  ``WEFT_MODEL_*`` settings.

Example:
    >>> from langchain_core.runnables import RunnableLambda
    >>> def answer(question: str) -> str:
    ...     return "42"
    >>> safe = resilient(RunnableLambda(answer), retry=3, timeout=10.0, max_concurrency=4)
    >>> safe.invoke("meaning of life?")
    '42'
"""

from weft.components.resilience._breaker import (
    CircuitBreaker,
    CircuitBreakerRunnable,
    CircuitState,
    with_circuit_breaker,
)
from weft.components.resilience._concurrency import (
    ConcurrencyLimitedRunnable,
    ConcurrencyLimiter,
    with_concurrency_limit,
)
from weft.components.resilience._content import FALLBACK_KEY, has_content
from weft.components.resilience._fallback import (
    FallbackRunnable,
    is_fallback_answer,
    with_fallback,
)
from weft.components.resilience._rate import RateLimitedRunnable, TokenBucket, with_rate_limit
from weft.components.resilience._retry import RetryRunnable, RetrySettings, is_transient, with_retry
from weft.components.resilience._served import served_chat_model
from weft.components.resilience._stack import resilient
from weft.components.resilience._timeout import StreamTimeout, TimeoutRunnable, with_timeout
from weft.core.errors import ComponentTimeoutError

__all__ = [
    "FALLBACK_KEY",
    "CircuitBreaker",
    "CircuitBreakerRunnable",
    "CircuitState",
    "ComponentTimeoutError",
    "ConcurrencyLimitedRunnable",
    "ConcurrencyLimiter",
    "FallbackRunnable",
    "RateLimitedRunnable",
    "RetryRunnable",
    "RetrySettings",
    "StreamTimeout",
    "TimeoutRunnable",
    "TokenBucket",
    "has_content",
    "is_fallback_answer",
    "is_transient",
    "resilient",
    "served_chat_model",
    "with_circuit_breaker",
    "with_concurrency_limit",
    "with_fallback",
    "with_rate_limit",
    "with_retry",
    "with_timeout",
]

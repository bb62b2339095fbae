"""The chat model ``weft serve`` runs: a remote model behind the ``WEFT_MODEL_*`` settings."""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable

from weft.components.resilience._breaker import CircuitBreaker
from weft.components.resilience._fallback import with_fallback
from weft.components.resilience._retry import RetrySettings
from weft.components.resilience._stack import resilient
from weft.components.resilience._timeout import TimeoutRunnable
from weft.core.settings import Settings, get_settings

__all__ = ["served_chat_model"]


def served_chat_model(settings: Settings | None = None) -> Runnable[Any, Any]:
    """The offline extractive model, or, when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set,
    the OpenAI-compatible model ``WEFT_MODEL`` behind :func:`resilient`:

    * each HTTP request waits at most ``WEFT_MODEL_ATTEMPT_TIMEOUT`` seconds (the SDK's own
      retries are off, so a ``Retry-After`` cannot hold a request for minutes);
    * a failure before the first token is retried ``WEFT_MODEL_RETRIES`` times, with
      exponential backoff from ``WEFT_MODEL_RETRY_WAIT`` seconds and jitter;
    * ``WEFT_MODEL_BREAKER_FAILURES`` failed calls in a row open a circuit breaker for
      ``WEFT_MODEL_BREAKER_RESET`` seconds (0 failures: no breaker);
    * the whole call, until its first token, has ``WEFT_MODEL_TIMEOUT`` seconds;
    * if all that fails before the first token and ``WEFT_MODEL_FALLBACK`` is on, the offline
      extractive model answers, its message marked as a fallback's
      (:func:`~weft.components.resilience.is_fallback_answer`).

    The compiler still sees a chat model (``list[BaseMessage] -> AIMessage``).

    Example:
        >>> model = served_chat_model(Settings(model_retries=1))  # doctest: +SKIP
    """
    from weft.components.models import ExtractiveChatModel, openai_chat_model

    cfg = settings if settings is not None else get_settings()
    offline = ExtractiveChatModel()
    if not (os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL")):
        return offline
    remote: BaseChatModel = openai_chat_model(
        cfg.model, timeout=cfg.model_attempt_timeout, max_retries=0
    )
    retry = RetrySettings(
        attempts=cfg.model_retries + 1,
        initial_wait=cfg.model_retry_wait,
        max_backoff=max(cfg.model_retry_wait * 8, cfg.model_retry_wait),
        jitter=cfg.model_retry_wait,
    )
    breaker = None
    if cfg.model_breaker_failures > 0:
        breaker = CircuitBreaker(
            cfg.model_breaker_failures, cfg.model_breaker_reset, name=f"model {cfg.model}"
        )
    guarded = resilient(remote, retry=retry, breaker=breaker)
    # resilient(deadline=...) but with the setting to raise named in its error
    bounded = TimeoutRunnable(
        guarded, cfg.model_timeout, stream_timeout="each_chunk", setting="WEFT_MODEL_TIMEOUT"
    )
    return with_fallback(bounded, offline) if cfg.model_fallback else bounded

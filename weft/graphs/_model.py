"""The chat model the environment configures for the ready graphs that also run offline."""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel

__all__ = ["configured_model", "model_configured"]


def model_configured() -> bool:
    """Whether the environment names a model server: ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL``."""
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


def configured_model(settings: Any = None) -> BaseChatModel | None:
    """A remote chat model (``WEFT_MODEL``, with the settings' attempt timeout) when
    ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set, else None: the graph runs on its rules.

    Example:
        >>> configured_model() is None  # with neither variable set  # doctest: +SKIP
        True
    """
    if not model_configured():
        return None
    from weft.components.models import openai_chat_model
    from weft.core.settings import get_settings

    cfg = settings if settings is not None else get_settings()
    return openai_chat_model(cfg.model, timeout=cfg.model_attempt_timeout)

"""Fixtures the component tests share: ``shared``, a scripted OpenAI-compatible server per
module, and ``server``, the same with its script emptied before each test."""

from tests._openai import server, shared

__all__ = ["server", "shared"]

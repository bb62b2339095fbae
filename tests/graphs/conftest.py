"""Fixtures the graph tests share: ``shared``, a scripted OpenAI-compatible server per module."""

from tests._openai import shared

__all__ = ["shared"]

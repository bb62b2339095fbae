"""Shared test helpers for the components tests."""

from __future__ import annotations

from typing import Any

import pytest


def spy_on_encode(monkeypatch: pytest.MonkeyPatch, enc: Any) -> list[str]:
    """Record every text ``enc.encode`` is given from now on (undo with ``monkeypatch.undo()``)."""
    seen: list[str] = []
    real_encode = enc.encode

    def spy(text: str, **kwargs: Any) -> list[int]:
        seen.append(text)
        return real_encode(text, **kwargs)

    monkeypatch.setattr(enc, "encode", spy)
    return seen

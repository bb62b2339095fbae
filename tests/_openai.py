"""The scripted OpenAI-compatible server the model tests share: one per test module (import
``shared`` into it), its script and records emptied by ``server`` before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from weft.testing import OpenAIServer


@pytest.fixture(scope="module")
def shared() -> Iterator[OpenAIServer]:
    with OpenAIServer(models=["gpt-4o-mini", "text-embedding-3-small"]) as server:
        yield server


@pytest.fixture
def server(shared: OpenAIServer) -> OpenAIServer:
    shared.reset()
    return shared

"""The engines of weft/testing/_engines.py (PostgreSQL, ``chroma run``, Redis, nginx), each
started once per test session on loopback in a temporary folder, and stopped after. nginx serves
the configuration docs/deploy.md shows.

``make test`` installs the Debian packages when they are missing (``make engines``); a missing
one fails these tests with that instruction: nothing here is skipped.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from weft.testing._engines import ChromaServer, Nginx, Postgres, Redis

ROOT = Path(__file__).resolve().parents[2]


def deployed_nginx(folder: Path, backends: list[str]) -> Nginx:
    """nginx over ``backends`` (host:port), with docs/deploy.md's upstream and proxy blocks."""
    return Nginx.from_guide(folder, backends, ROOT / "docs" / "deploy.md")


def _running(engine: ChromaServer | Redis) -> Iterator[Any]:
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        yield pg.create()
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    yield from _running(ChromaServer(tmp_path_factory.mktemp("chroma")))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    yield from _running(Redis(tmp_path_factory.mktemp("redis")))


@pytest.fixture(scope="session")
def nginx_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="weft-nginx-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)

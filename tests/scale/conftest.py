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

import pytest

from weft.testing._engines import ChromaServer, Nginx, Postgres, Redis

ROOT = Path(__file__).resolve().parents[2]


def deploy_block(name: str) -> str:
    """A fenced ``nginx`` block of docs/deploy.md, by the comment on its first line: the tests
    serve the configuration that the deployment guide shows."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    for block in text.split("```nginx\n")[1:]:
        body = block.split("```", 1)[0]
        if body.startswith(f"# {name}\n"):
            return body.split("\n", 1)[1]
    raise AssertionError(f"docs/deploy.md has no nginx block that starts '# {name}'")


def deployed_nginx(folder: Path, backends: list[str]) -> Nginx:
    """nginx over ``backends`` (host:port), with docs/deploy.md's upstream and proxy blocks."""
    upstream = deploy_block("upstream").replace("weft-1:8000", backends[0])
    upstream = upstream.replace("weft-2:8000", backends[1])
    return Nginx(folder, upstream, deploy_block("proxy"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = Postgres()
    try:
        yield pg.create()
    finally:
        pg.destroy()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    server = Redis(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nginx_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="weft-nginx-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)

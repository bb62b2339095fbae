"""The saga log in PostgreSQL, for replicas that share ``WEFT_DATABASE_URL``.

:class:`PostgresSagaLog` keeps the same ``sagas`` and ``saga_steps`` tables as the SQLite log,
with the same statuses, one transaction per change, and the same recovery: a saga whose owning
process is gone is taken by :func:`~weft.graphs.saga.arecover` on any process of that host
(``--force`` for a host that is gone). The tables are created on first use and by
``weft db migrate``.

Example:
    >>> log = open_saga_log(get_settings())  # doctest: +SKIP
    >>> log.where  # doctest: +SKIP
    'postgresql://127.0.0.1:5432/weft'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from weft.core._database import Database, database_of, shown
from weft.core.settings import Settings
from weft.graphs.saga import SAGA_LOG_FILE, SagaLog

__all__ = ["PostgresSagaLog", "file_or_database", "marked", "open_saga_log"]

_Store = TypeVar("_Store")


class PostgresSagaLog(SagaLog):
    """The saga log in the tables ``sagas`` and ``saga_steps`` of ``database``."""

    def __init__(self, database: Database) -> None:  # the SQLite file is not opened
        self.database = database
        database.ensure_tables()

    @property
    def where(self) -> str:
        return f"the database at {shown(self.database.url)}"

    def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> int:
        changed = 0
        with self.database.connection() as conn, conn.transaction():
            for sql, params in statements:
                changed = conn.execute(marked(sql), params).rowcount
        return changed

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self.database.connection() as conn:
            rows = conn.execute(marked(sql), params).fetchall()
        return [tuple(r.values()) for r in rows]

    def close(self) -> None:
        """Nothing to close: the connections belong to the process's pool."""


def marked(sql: str) -> str:
    """``sql`` with psycopg's ``%s`` for SQLite's ``?`` (the log's SQL has no other ``?``)."""
    return sql.replace("?", "%s")


def file_or_database(
    settings: Settings,
    local: Callable[[Path], _Store],
    file: str,
    shared: Callable[[Database], _Store],
) -> _Store:
    """``shared`` on the database at ``settings.database_url`` when set, else ``local`` on
    ``file`` in the data dir."""
    database = database_of(settings)
    return local(settings.data_dir / file) if database is None else shared(database)


def open_saga_log(settings: Settings) -> SagaLog:
    """The saga log ``settings`` name: PostgreSQL at ``database_url`` when set, else
    ``sagas.sqlite`` in the data dir."""
    return file_or_database(settings, SagaLog, SAGA_LOG_FILE, PostgresSagaLog)

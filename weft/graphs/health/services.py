"""The services a consultation's saga calls, and the local ones it uses by default.

:class:`HealthServices` is the contract (a deployment plugs in its own records system and
notifier); :class:`LocalHealthServices` keeps everything in ``health.sqlite`` in the data dir:
``consultations``, ``reports``, ``outbox`` (notifications waiting to be sent; a compensation adds
a retraction, since a message may already have left) and ``health_records``.

Every call takes the step's idempotency key. A call made again with the same key (a retry, or a
step run again after a crash) finds the row the first call wrote and changes nothing, because
the row and its key are written in one transaction.

Example:
    >>> services = LocalHealthServices(tmp / "health.sqlite")  # doctest: +SKIP
    >>> services.create_record("s1/create_record", "c-s1", {"summary": "cough"})  # doctest: +SKIP
    'c-s1'
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

from weft.graphs.saga import SqliteFile

__all__ = ["HealthServices", "LocalHealthServices"]


class HealthServices(Protocol):
    """What the saga's steps do; each call is idempotent under its key."""

    def create_record(self, key: str, consultation_id: str, record: Mapping[str, Any]) -> str: ...
    def cancel_record(self, key: str, consultation_id: str) -> None: ...
    def save_report(self, key: str, consultation_id: str, report: str) -> str: ...
    def withdraw_report(self, key: str, consultation_id: str) -> None: ...
    def notify(self, key: str, consultation_id: str, message: str) -> str: ...
    def retract_notification(self, key: str, consultation_id: str) -> None: ...
    def update_health_record(
        self, key: str, person: str, consultation_id: str, entry: str
    ) -> str: ...
    def revert_health_record(self, key: str, consultation_id: str) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS consultations (
    key TEXT PRIMARY KEY, id TEXT UNIQUE NOT NULL, record TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
    key TEXT PRIMARY KEY, consultation_id TEXT NOT NULL, body TEXT NOT NULL,
    status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY, consultation_id TEXT NOT NULL, kind TEXT NOT NULL,
    message TEXT NOT NULL, created REAL NOT NULL, sent REAL);
CREATE TABLE IF NOT EXISTS health_records (
    key TEXT PRIMARY KEY, person TEXT NOT NULL, consultation_id TEXT NOT NULL,
    entry TEXT NOT NULL, status TEXT NOT NULL);
"""


_COLUMNS = {
    "consultations": ("key", "id", "record", "status", "created"),
    "reports": ("key", "consultation_id", "body", "status"),
    "outbox": ("key", "consultation_id", "kind", "message", "created", "sent"),
    "health_records": ("key", "person", "consultation_id", "entry", "status"),
}
"""Each table's columns, in the order its inserts give them."""


class LocalHealthServices(SqliteFile):
    """The default services: SQLite tables in one file (``health.sqlite`` in the data dir).

    The calls go through :meth:`_execute` and :meth:`_select` (``?`` marks a parameter), which
    a subclass points at another database (:class:`~weft.graphs.health._postgres.
    PostgresHealthServices`)."""

    SCHEMA = _SCHEMA
    ORDER = "rowid"
    """How :meth:`rows` orders a table's rows: as they were written."""
    PREFIX = ""
    """Put before each table's name (a database shared with other programs uses one)."""

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, params)

    def _select(self, sql: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [tuple(row) for row in self._db.execute(sql).fetchall()]

    def _once(self, table: str, params: tuple[Any, ...]) -> None:
        """Insert a row that does nothing when its key is already there."""
        columns = _COLUMNS[table][: len(params)]
        marks = ", ".join("?" * len(columns))
        self._execute(
            f"INSERT INTO {self.PREFIX}{table} ({', '.join(columns)}) VALUES ({marks}) "
            "ON CONFLICT(key) DO NOTHING",
            params,
        )

    def _set(self, table: str, status: str, consultation_id: str) -> None:
        sql = f"UPDATE {self.PREFIX}{table} SET status = ? WHERE consultation_id = ?"
        self._execute(sql, (status, consultation_id))

    def create_record(self, key: str, consultation_id: str, record: Mapping[str, Any]) -> str:
        body = json.dumps(dict(record), ensure_ascii=False)
        self._once("consultations", (key, consultation_id, body, "open", time.time()))
        return consultation_id

    def cancel_record(self, key: str, consultation_id: str) -> None:
        self._execute(
            f"UPDATE {self.PREFIX}consultations SET status = 'cancelled' WHERE id = ?",
            (consultation_id,),
        )

    def save_report(self, key: str, consultation_id: str, report: str) -> str:
        self._once("reports", (key, consultation_id, report, "final"))
        return key

    def withdraw_report(self, key: str, consultation_id: str) -> None:
        self._set("reports", "withdrawn", consultation_id)

    def notify(self, key: str, consultation_id: str, message: str) -> str:
        self._once("outbox", (key, consultation_id, "notification", message, time.time()))
        return key

    def retract_notification(self, key: str, consultation_id: str) -> None:
        message = "The consultation was cancelled; disregard the earlier message."
        self._once("outbox", (key, consultation_id, "retraction", message, time.time()))

    def update_health_record(self, key: str, person: str, consultation_id: str, entry: str) -> str:
        self._once("health_records", (key, person, consultation_id, entry, "active"))
        return key

    def revert_health_record(self, key: str, consultation_id: str) -> None:
        self._set("health_records", "reverted", consultation_id)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a table (``consultations``, ``reports``, ``outbox``,
        ``health_records``), for inspection and tests."""
        columns = _COLUMNS.get(table)
        if columns is None:
            raise ValueError(f"no table {table!r}; choose one of {', '.join(_COLUMNS)}")
        sql = f"SELECT {', '.join(columns)} FROM {self.PREFIX}{table} ORDER BY {self.ORDER}"
        found = self._select(sql)
        return [dict(zip(columns, row, strict=True)) for row in found]

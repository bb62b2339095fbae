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


class LocalHealthServices(SqliteFile):
    """The default services: SQLite tables in one file (``health.sqlite`` in the data dir)."""

    SCHEMA = _SCHEMA

    def _once(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run an insert that does nothing when its key is already there."""
        with self._lock:
            self._db.execute(sql + " ON CONFLICT(key) DO NOTHING", params)

    def _set(self, table: str, status: str, consultation_id: str) -> None:
        with self._lock:
            self._db.execute(
                f"UPDATE {table} SET status = ? WHERE consultation_id = ?",
                (status, consultation_id),
            )

    def create_record(self, key: str, consultation_id: str, record: Mapping[str, Any]) -> str:
        body = json.dumps(dict(record), ensure_ascii=False)
        self._once(
            "INSERT INTO consultations VALUES (?, ?, ?, 'open', ?)",
            (key, consultation_id, body, time.time()),
        )
        return consultation_id

    def cancel_record(self, key: str, consultation_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE consultations SET status = 'cancelled' WHERE id = ?", (consultation_id,)
            )

    def save_report(self, key: str, consultation_id: str, report: str) -> str:
        self._once("INSERT INTO reports VALUES (?, ?, ?, 'final')", (key, consultation_id, report))
        return key

    def withdraw_report(self, key: str, consultation_id: str) -> None:
        self._set("reports", "withdrawn", consultation_id)

    def notify(self, key: str, consultation_id: str, message: str) -> str:
        self._once(
            "INSERT INTO outbox VALUES (?, ?, 'notification', ?, ?, NULL)",
            (key, consultation_id, message, time.time()),
        )
        return key

    def retract_notification(self, key: str, consultation_id: str) -> None:
        message = "The consultation was cancelled; disregard the earlier message."
        self._once(
            "INSERT INTO outbox VALUES (?, ?, 'retraction', ?, ?, NULL)",
            (key, consultation_id, message, time.time()),
        )

    def update_health_record(self, key: str, person: str, consultation_id: str, entry: str) -> str:
        self._once(
            "INSERT INTO health_records VALUES (?, ?, ?, ?, 'active')",
            (key, person, consultation_id, entry),
        )
        return key

    def revert_health_record(self, key: str, consultation_id: str) -> None:
        self._set("health_records", "reverted", consultation_id)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a table (``consultations``, ``reports``, ``outbox``,
        ``health_records``), for inspection and tests."""
        if table not in ("consultations", "reports", "outbox", "health_records"):
            raise ValueError(f"no table {table!r}")
        with self._lock:
            cursor = self._db.execute(f"SELECT * FROM {table} ORDER BY rowid")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

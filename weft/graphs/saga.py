"""Sagas: steps with compensations, a durable log in SQLite, and recovery after a crash.

A :class:`Saga` runs its :class:`Step` s in order. Each step has an action and a compensation,
a timeout, retries with exponential backoff and jitter, and an idempotency key
(``<saga id>/<step>``; ``<saga id>/<step>/undo`` for its compensation) that the services it
calls use so that a retried or recovered step never acts twice.

The :class:`SagaLog` (``sagas.sqlite`` in the data dir) is written before and after every step
and every compensation, in one SQLite transaction each: the saga's status (``running``,
``completed``, ``compensating``, ``compensated``, ``failed``), its current step, its context
(each finished step's result under the step's name) and every step's status.

When step *k* fails for good, the compensations of steps *k-1* down to 1 run, in reverse. A
compensation that keeps failing after its retries leaves the saga ``failed``, listed by
:meth:`SagaLog.list` for an operator, with the steps it could not undo.

After a crash, :func:`arecover` takes every saga still ``running`` or ``compensating``: a running
one runs on from its first unfinished step (steps done before are not run again; the one that
was interrupted runs again under the same idempotency key), a compensating one finishes its
compensations.

Example:
    >>> log = SagaLog(tmp / "sagas.sqlite")  # doctest: +SKIP
    >>> saga = Saga("order", [Step("reserve", reserve, release)], log)  # doctest: +SKIP
    >>> saga.run({"item": 7}).status  # doctest: +SKIP
    'completed'
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from weft.core.errors import ConfigurationError, WeftError

__all__ = [
    "SAGA_LOG_FILE",
    "Probe",
    "ProbePoint",
    "Saga",
    "SagaError",
    "SagaLog",
    "SagaRecord",
    "SagaStatus",
    "Step",
    "StepContext",
    "StepRecord",
    "arecover",
    "SqliteFile",
]

SAGA_LOG_FILE = "sagas.sqlite"
"""The saga log's file name in a data dir."""

SagaStatus = Literal["running", "completed", "compensating", "compensated", "failed"]
StepStatus = Literal[
    "pending", "running", "done", "failed", "compensating", "compensated", "compensation_failed"
]
ProbePoint = str
"""Where a probe is called: ``before:<step>``, ``after:<step>``, ``before_undo:<step>``,
``after_undo:<step>`` (tests use it to kill the process at each point)."""


class SagaError(WeftError):
    """A saga cannot run: an unknown saga id or name, or a step that is misconfigured."""


@dataclass(frozen=True)
class StepContext:
    """What an action or compensation gets: the saga, its context and the idempotency key."""

    saga_id: str
    step: str
    key: str
    data: Mapping[str, Any]
    attempt: int


Action = Callable[[StepContext], Any]
"""A step's action or compensation: sync or async, returns a JSON-serializable result."""


@dataclass(frozen=True)
class Step:
    """One step: an action and its compensation, a timeout and a retry policy.

    ``retries`` is how many times a failed attempt is tried again; the wait before retry *n*
    is ``backoff * 2**(n-1)`` seconds, at most ``max_backoff``, times a random factor between
    0.5 and 1.5 (jitter), so that retries of many sagas do not land together.
    """

    name: str
    action: Action
    compensation: Action | None = None
    timeout: float = 30.0
    retries: int = 2
    backoff: float = 0.1
    max_backoff: float = 5.0


@dataclass(frozen=True)
class StepRecord:
    """A step as the log has it."""

    name: str
    status: StepStatus
    attempts: int = 0
    error: str | None = None


@dataclass(frozen=True)
class SagaRecord:
    """A saga as the log has it; :meth:`to_dict` is the JSON ``weft saga show`` prints."""

    id: str
    name: str
    status: SagaStatus
    step: int
    context: dict[str, Any]
    error: str | None
    steps: list[StepRecord]
    created: float
    updated: float
    owner: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "step": self.step,
            "error": self.error,
            "steps": [
                {"name": s.name, "status": s.status, "attempts": s.attempts, "error": s.error}
                for s in self.steps
            ],
            "created": self.created,
            "updated": self.updated,
            "owner": self.owner,
        }


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sagas (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, step INTEGER NOT NULL,
    context TEXT NOT NULL, error TEXT, created REAL NOT NULL, updated REAL NOT NULL,
    owner TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS saga_steps (
    saga_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, PRIMARY KEY (saga_id, idx));
CREATE INDEX IF NOT EXISTS sagas_status ON sagas(status);
"""


class SqliteFile:
    """One SQLite file for short locked writes from any thread: autocommit (transactions are
    explicit), WAL journal, ``synchronous=NORMAL``; ``SCHEMA`` creates its tables."""

    SCHEMA = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(self.SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()


class SagaLog(SqliteFile):
    """The durable saga log: one SQLite file, written in one transaction per change.

    WAL journal with ``synchronous=NORMAL``: a commit survives the process being killed (the
    write is in the operating system's hands); a power loss may lose the last commits.
    """

    SCHEMA = _SCHEMA

    def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> int:
        """Run ``statements`` in one transaction (``?`` marks a parameter); returns how many
        rows the last one changed."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            changed = 0
            try:
                for sql, params in statements:
                    changed = self._db.execute(sql, params).rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return changed

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The rows ``sql`` selects, as tuples in the order of its columns."""
        with self._lock:
            return [tuple(r) for r in self._db.execute(sql, params).fetchall()]

    @property
    def where(self) -> str:
        """Where the log is kept, for messages."""
        return str(self.path)

    def create(
        self, saga_id: str, name: str, steps: Sequence[str], context: Mapping[str, Any]
    ) -> None:
        now = time.time()
        self._write(
            (
                "INSERT INTO sagas (id, name, status, step, context, error, created, updated, "
                "owner) VALUES (?, ?, 'running', 0, ?, NULL, ?, ?, ?)",
                (saga_id, name, json.dumps(context, ensure_ascii=False), now, now, _owner()),
            ),
            *(
                ("INSERT INTO saga_steps VALUES (?, ?, ?, 'pending', 0, NULL)", (saga_id, i, s))
                for i, s in enumerate(steps)
            ),
        )

    def mark(
        self,
        saga_id: str,
        idx: int,
        status: StepStatus,
        *,
        saga_status: SagaStatus | None = None,
        attempts: int | None = None,
        error: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a step's new status (and the saga's), in one transaction."""
        sets = ["step = ?", "updated = ?"]
        params: list[Any] = [idx, time.time()]
        if saga_status is not None:
            sets.append("status = ?")
            params.append(saga_status)
        if context is not None:
            sets.append("context = ?")
            params.append(json.dumps(context, ensure_ascii=False))
        if error is not None:
            sets.append("error = ?")
            params.append(error)
        self._write(
            (
                "UPDATE saga_steps SET status = ?, attempts = COALESCE(?, attempts), "
                "error = COALESCE(?, error) WHERE saga_id = ? AND idx = ?",
                (status, attempts, error, saga_id, idx),
            ),
            (f"UPDATE sagas SET {', '.join(sets)} WHERE id = ?", (*params, saga_id)),
        )

    def claim(self, saga_id: str, owner: str) -> bool:
        """Make this process the saga's owner, taking it from ``owner`` (the one it was read
        with), before carrying the saga on. False when another process took it first: of two
        processes recovering the same saga at once, one carries it on."""
        return bool(
            self._write(
                (
                    "UPDATE sagas SET owner = ? WHERE id = ? AND owner = ?",
                    (_owner(), saga_id, owner),
                )
            )
        )

    def orphaned(self, saga_id: str) -> bool:
        """Whether the process that owns this saga is gone (on this host), so none will
        finish it: the saga needs recovering."""
        rows = self._query("SELECT owner FROM sagas WHERE id = ?", (saga_id,))
        row = rows[0] if rows else None
        host, _, pid = str(row[0] if row else "").rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False  # another host's process: only an operator can tell (--force)
        if int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def finish(self, saga_id: str, status: SagaStatus, error: str | None = None) -> None:
        self._write(
            (
                "UPDATE sagas SET status = ?, error = COALESCE(?, error), updated = ? WHERE id = ?",
                (status, error, time.time(), saga_id),
            )
        )

    def get(self, saga_id: str) -> SagaRecord:
        """The saga with this id; :class:`SagaError` names the id when there is none."""
        rows = self._query(
            "SELECT id, name, status, step, context, error, created, updated, owner FROM sagas "
            "WHERE id = ?",
            (saga_id,),
        )
        steps = self._query(
            "SELECT name, status, attempts, error FROM saga_steps WHERE saga_id = ? ORDER BY idx",
            (saga_id,),
        )
        if not rows:
            raise SagaError(f"no saga {saga_id!r} in {self.where}; list them with: weft saga list")
        row = rows[0]
        return SagaRecord(
            id=row[0],
            name=row[1],
            status=row[2],
            step=row[3],
            context=json.loads(row[4]),
            error=row[5],
            steps=[StepRecord(*s) for s in steps],
            created=row[6],
            updated=row[7],
            owner=row[8],
        )

    def list(self, status: Sequence[SagaStatus] = ()) -> list[SagaRecord]:
        """Every saga, newest first, or only those with one of these statuses."""
        sql = "SELECT id FROM sagas"
        if status:
            sql += f" WHERE status IN ({', '.join('?' for _ in status)})"
        ids = [r[0] for r in self._query(sql + " ORDER BY created DESC", tuple(status))]
        return [self.get(i) for i in ids]


Probe = Callable[[ProbePoint], None]


def _short(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "TimeoutError: the step ran past its timeout"
    return f"{type(exc).__name__}: {exc}"


class Saga:
    """A named sequence of steps run under a :class:`SagaLog`.

    Args:
        name: The saga's name; :func:`arecover` finds the definition of a logged saga by it.
        steps: The steps, in order; names must be unique.
        log: Where the saga's progress is kept.
        probe: Called at every point before and after a step or compensation (for tests).
    """

    def __init__(
        self, name: str, steps: Sequence[Step], log: SagaLog, *, probe: Probe | None = None
    ) -> None:
        names = [s.name for s in steps]
        if not steps or len(set(names)) != len(names):
            raise ConfigurationError(
                f"saga {name!r}: steps must be given and their names unique, got {names}"
            )
        self.name = name
        self.steps = list(steps)
        self.log = log
        self._probe = probe

    def _at(self, point: ProbePoint) -> None:
        if self._probe is not None:
            self._probe(point)

    async def _attempts(self, step: Step, ctx: StepContext, fn: Action) -> tuple[Any, int]:
        """Run ``fn`` under the step's timeout, retrying with backoff and jitter."""
        attempt = 0
        while True:
            attempt += 1
            try:
                this = ctx if attempt == 1 else _again(ctx, attempt)
                # A sync action runs in a worker thread, so its timeout holds too.
                call = fn(this) if _is_async(fn) else asyncio.to_thread(fn, this)
                return await asyncio.wait_for(call, step.timeout), attempt
            except Exception as exc:
                if attempt > step.retries:
                    raise _Failed(_short(exc), attempt) from exc
                wait = min(step.max_backoff, step.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(wait * (0.5 + random.random()))

    async def arun(self, context: Mapping[str, Any], *, saga_id: str | None = None) -> SagaRecord:
        """Start a new saga with this context and run it to its end."""
        sid = saga_id or uuid.uuid4().hex[:16]
        self.log.create(sid, self.name, [s.name for s in self.steps], context)
        return await self._forward(sid, dict(context), 0)

    def run(self, context: Mapping[str, Any], *, saga_id: str | None = None) -> SagaRecord:
        """:meth:`arun` from sync code."""
        return asyncio.run(self.arun(context, saga_id=saga_id))

    async def aresume(self, saga_id: str) -> SagaRecord:
        """Finish a saga the log still has as ``running`` or ``compensating``."""
        record = self.log.get(saga_id)
        if record.name != self.name:
            raise SagaError(f"saga {saga_id!r} is a {record.name!r}, not a {self.name!r}")
        if record.status in ("running", "compensating") and not self.log.claim(
            saga_id, record.owner
        ):
            return self.log.get(saga_id)  # another process took it first and carries it on
        if record.status == "running":
            first = next((i for i, s in enumerate(record.steps) if s.status != "done"), None)
            if first is None:  # every step done; only the final status was lost
                self.log.finish(saga_id, "completed")
                return self.log.get(saga_id)
            return await self._forward(saga_id, record.context, first)
        if record.status == "compensating":
            return await self._compensate(saga_id, record.context, record.steps)
        return record

    async def _move(
        self, sid: str, idx: int, context: dict[str, Any], *, undo: bool
    ) -> tuple[Any, int]:
        """Log the step (or its compensation) as started, then run it with retries."""
        step = self.steps[idx]
        fn = step.compensation if undo else step.action
        assert fn is not None
        self._at(f"{'before_undo' if undo else 'before'}:{step.name}")
        self.log.mark(sid, idx, "compensating" if undo else "running")
        key = f"{sid}/{step.name}/undo" if undo else f"{sid}/{step.name}"
        return await self._attempts(step, StepContext(sid, step.name, key, context, 1), fn)

    async def _forward(self, sid: str, context: dict[str, Any], start: int) -> SagaRecord:
        for idx in range(start, len(self.steps)):
            step = self.steps[idx]
            try:
                result, attempts = await self._move(sid, idx, context, undo=False)
            except _Failed as failed:
                error = f"step {idx + 1} '{step.name}' failed after {failed.attempts} attempts: "
                self.log.mark(
                    sid,
                    idx,
                    "failed",
                    saga_status="compensating",
                    attempts=failed.attempts,
                    error=error + failed.message,
                )
                return await self._compensate(sid, context, self.log.get(sid).steps)
            context[step.name] = result
            self.log.mark(sid, idx, "done", attempts=attempts, context=context)
            self._at(f"after:{step.name}")
        self.log.finish(sid, "completed")
        return self.log.get(sid)

    async def _compensate(
        self, sid: str, context: dict[str, Any], records: Sequence[StepRecord]
    ) -> SagaRecord:
        undone = [i for i, r in enumerate(records) if r.status in ("done", "compensating")]
        stuck = [
            self.steps[i].name for i, r in enumerate(records) if r.status == "compensation_failed"
        ]
        for idx in reversed(undone):
            step = self.steps[idx]
            if step.compensation is None:
                self.log.mark(sid, idx, "compensated")
                continue
            try:
                _, attempts = await self._move(sid, idx, context, undo=True)
            except _Failed as failed:
                stuck.append(step.name)
                self.log.mark(
                    sid, idx, "compensation_failed", attempts=failed.attempts, error=failed.message
                )
                continue
            self.log.mark(sid, idx, "compensated", attempts=attempts)
            self._at(f"after_undo:{step.name}")
        if stuck:
            self.log.finish(
                sid,
                "failed",
                f"compensation failed for {', '.join(stuck)}; undo them by hand, then the saga "
                f"needs no more work",
            )
        else:
            self.log.finish(sid, "compensated")
        return self.log.get(sid)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Failed(Exception):
    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts


def _again(ctx: StepContext, attempt: int) -> StepContext:
    return StepContext(ctx.saga_id, ctx.step, ctx.key, ctx.data, attempt)


def _is_async(fn: Action) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004
    )


async def arecover(
    log: SagaLog, sagas: Mapping[str, Saga], *, force: bool = False
) -> list[SagaRecord]:
    """Finish every saga a crash left ``running`` or ``compensating``, oldest first.

    A saga is taken when the process that ran it is gone (:meth:`SagaLog.orphaned`); with
    ``force``, every unfinished saga is taken, as an operator does for a host that is gone.
    ``sagas`` maps a saga name to its definition. A logged saga whose name is not there is
    left as it is and reported by a :class:`SagaError` after the others are recovered.
    """
    done: list[SagaRecord] = []
    unknown = []
    for record in reversed(log.list(("running", "compensating"))):
        if not force and not log.orphaned(record.id):
            continue
        saga = sagas.get(record.name)
        if saga is None:
            unknown.append(f"{record.id} ({record.name})")
            continue
        done.append(await saga.aresume(record.id))
    if unknown:
        raise SagaError(
            f"cannot recover sagas {', '.join(unknown)}: no definition by that name; known: "
            f"{', '.join(sorted(sagas)) or 'none'}"
        )
    return done

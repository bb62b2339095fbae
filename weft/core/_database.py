"""PostgreSQL for the state replicas share (``WEFT_DATABASE_URL``): a psycopg connection pool,
weft's tables, and LangGraph's PostgreSQL checkpointer on that pool.

One :class:`Database` per URL and process (:func:`open_database`). Its tables (LangGraph's
checkpoint tables and weft's own, listed in :data:`MIGRATIONS`) are created on first use, under
an advisory lock so that replicas starting together do not race; ``weft db migrate`` applies
the same migrations on purpose. A connection the server lost (PostgreSQL restarted, the network
cut) is found by the pool's check when it is next taken, and replaced: the process recovers
when the engine returns, without a restart.

Example:
    >>> db = open_database("postgresql://weft@127.0.0.1:5432/weft")  # doctest: +SKIP
    >>> db.migrate()  # doctest: +SKIP
    ['weft 1: session owners']
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from langgraph.checkpoint.base import BaseCheckpointSaver

from weft.core._checkpoint import ThreadedAsync, allowlist, open_sqlite_checkpointer
from weft.core._extras import import_optional
from weft.core.errors import WeftError
from weft.core.settings import Settings

__all__ = [
    "MIGRATIONS",
    "Database",
    "DatabaseUnavailableError",
    "database_of",
    "open_checkpointer",
    "open_database",
    "shown",
    "unreachable",
]

_WAIT = 3.0
"""Seconds a request waits for a pooled connection before it is answered 503 (the database is
down, or every connection is taken)."""
_LOCK_KEY = 0x77656674  # "weft": the advisory lock migrations hold

MIGRATIONS: list[tuple[str, str]] = [
    (
        "session owners",
        "CREATE TABLE IF NOT EXISTS weft_session_owners (session TEXT PRIMARY KEY, "
        "owner TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)",
    ),
    (
        "saga log",
        "CREATE TABLE IF NOT EXISTS sagas (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
        "status TEXT NOT NULL, step INTEGER NOT NULL, context TEXT NOT NULL, error TEXT, "
        "created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL, "
        "owner TEXT NOT NULL)",
    ),
    (
        "saga steps",
        "CREATE TABLE IF NOT EXISTS saga_steps (saga_id TEXT NOT NULL, idx INTEGER NOT NULL, "
        "name TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
        "error TEXT, PRIMARY KEY (saga_id, idx))",
    ),
    ("saga status index", "CREATE INDEX IF NOT EXISTS sagas_status ON sagas (status)"),
    (
        "knowledge base ingest journal",
        "CREATE TABLE IF NOT EXISTS weft_kb_ingests (id BIGSERIAL PRIMARY KEY, kb TEXT NOT NULL, "
        "kind TEXT NOT NULL, collection TEXT NOT NULL, ids JSONB NOT NULL, state TEXT NOT NULL, "
        "started DOUBLE PRECISION NOT NULL, finished DOUBLE PRECISION)",
    ),
    (
        "knowledge base version pointer",
        "CREATE TABLE IF NOT EXISTS weft_kb_current (kb TEXT PRIMARY KEY, version BIGINT NOT NULL, "
        "collection TEXT NOT NULL, retired TEXT, updated DOUBLE PRECISION NOT NULL)",
    ),
    (
        "knowledge base BM25 indexes",
        "CREATE TABLE IF NOT EXISTS weft_kb_indexes (kb TEXT NOT NULL, version BIGINT NOT NULL, "
        "blob BYTEA NOT NULL, PRIMARY KEY (kb, version))",
    ),
    (
        "knowledge base manifest",
        "CREATE TABLE IF NOT EXISTS weft_kb_chunks (kb TEXT NOT NULL, collection TEXT NOT NULL, "
        "id TEXT NOT NULL, source TEXT NOT NULL, version BIGINT NOT NULL, "
        "PRIMARY KEY (kb, collection, id))",
    ),
    (
        "eval cache",
        "CREATE TABLE IF NOT EXISTS weft_eval_cache (key TEXT PRIMARY KEY, value JSONB NOT NULL, "
        "created DOUBLE PRECISION NOT NULL)",
    ),
    ("health services schema", "CREATE SCHEMA IF NOT EXISTS weft_health"),
    (
        "health consultations",
        "CREATE TABLE IF NOT EXISTS weft_health.consultations (seq BIGSERIAL, "
        "key TEXT PRIMARY KEY, id TEXT UNIQUE NOT NULL, record TEXT NOT NULL, "
        "status TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)",
    ),
    (
        "health reports",
        "CREATE TABLE IF NOT EXISTS weft_health.reports (seq BIGSERIAL, key TEXT PRIMARY KEY, "
        "consultation_id TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL)",
    ),
    (
        "health outbox",
        "CREATE TABLE IF NOT EXISTS weft_health.outbox (seq BIGSERIAL, key TEXT PRIMARY KEY, "
        "consultation_id TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, "
        "created DOUBLE PRECISION NOT NULL, sent DOUBLE PRECISION)",
    ),
    (
        "health records",
        "CREATE TABLE IF NOT EXISTS weft_health.health_records (seq BIGSERIAL, "
        "key TEXT PRIMARY KEY, person TEXT NOT NULL, consultation_id TEXT NOT NULL, "
        "entry TEXT NOT NULL, status TEXT NOT NULL)",
    ),
]
"""weft's own schema changes, applied in order once each (``weft_migrations`` records them)."""


class DatabaseUnavailableError(WeftError):
    """The database at ``WEFT_DATABASE_URL`` cannot be reached now; the server answers 503
    with ``Retry-After`` and tries again on the next request."""


def shown(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path if parts.hostname else ''}"


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot be reached: a lost or
    refused connection, or no pooled connection free in time."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, DatabaseUnavailableError):
            return True
        module = type(cause).__module__
        name = type(cause).__name__
        if module.startswith("psycopg_pool") and name in ("PoolTimeout", "PoolClosed"):
            return True
        if module.startswith("psycopg") and name in ("OperationalError", "InterfaceError"):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class Database:
    """A pool of connections to ``url`` (opened on first use) and what weft keeps there."""

    def __init__(self, url: str, *, size: int = 20) -> None:
        self.url = url
        self.size = size
        self._pool: Any = None
        self._lock = threading.Lock()
        self._migrated = False
        self._locker: Any = None
        self._locker_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Database('{shown(self.url)}')"

    @property
    def pool(self) -> Any:
        """The psycopg ``ConnectionPool``: autocommit connections with dict rows, each checked
        when taken, so one the server dropped is replaced instead of failing a request."""
        with self._lock:
            if self._pool is None:
                import_optional("psycopg", extra="scale", feature="WEFT_DATABASE_URL")
                pool_module = import_optional(
                    "psycopg_pool", extra="scale", feature="WEFT_DATABASE_URL"
                )
                from psycopg.rows import dict_row

                pool_class = pool_module.ConnectionPool
                self._pool = pool_class(
                    self.url,
                    min_size=1,
                    max_size=self.size,
                    kwargs={
                        "autocommit": True,
                        "prepare_threshold": 0,
                        "row_factory": dict_row,
                        "connect_timeout": 5,
                    },
                    check=pool_class.check_connection,
                    timeout=_WAIT,
                    reconnect_timeout=0,  # keep trying for as long as the process runs
                    open=False,
                    name="weft",
                )
                self._pool.open(wait=False)
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection; :class:`DatabaseUnavailableError` when none can be had."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except Exception as exc:
            if unreachable(exc) and not isinstance(exc, DatabaseUnavailableError):
                raise self.unavailable(exc) from exc
            raise

    def unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        return DatabaseUnavailableError(
            f"the database at {shown(self.url)} (WEFT_DATABASE_URL) cannot be reached "
            f"({type(exc).__name__}); check that PostgreSQL runs and accepts connections there"
        )

    def migrate(self) -> list[str]:
        """Create or update every table weft keeps here (LangGraph's checkpoints, weft's
        own); returns the migrations applied now, none when the schema is current."""
        plain = _postgres_saver()
        applied: list[str] = []
        with self.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
            try:
                saver = plain(conn)
                before = _checkpoint_version(conn)
                saver.setup()
                after = _checkpoint_version(conn)
                if after != before:
                    applied.append(f"langgraph checkpoints {before + 1}..{after}")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS weft_migrations (v INTEGER PRIMARY KEY, "
                    "name TEXT NOT NULL)"
                )
                row = conn.execute("SELECT max(v) AS v FROM weft_migrations").fetchone()
                done = -1 if row is None or row["v"] is None else int(row["v"])
                for v, (name, sql) in enumerate(MIGRATIONS):
                    if v <= done:
                        continue
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute(
                            "INSERT INTO weft_migrations (v, name) VALUES (%s, %s)", (v, name)
                        )
                    applied.append(f"weft {v + 1}: {name}")
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        self._migrated = True
        return applied

    def ensure_tables(self) -> None:
        """:meth:`migrate`, once per process: the tables are made on first use."""
        if not self._migrated:
            self.migrate()

    def checkpointer(self, allowed: Iterable[type] = ()) -> Any:
        """LangGraph's PostgreSQL checkpointer on this pool, loading the ``allowed`` classes;
        its async methods run the sync ones in a worker thread."""
        self.ensure_tables()
        return _saver_class()(self, allowed)

    def try_lock(self, key: int) -> bool:
        """Take the session-level advisory lock ``key`` unless another process holds it.

        Every lock this process holds sits on one connection of its own, outside the pool: a
        turn holds no pooled connection while it runs, and if the process dies, PostgreSQL
        drops the connection and every lock on it."""
        return bool(self._on_locker("SELECT pg_try_advisory_lock(%s) AS ok", key))

    def unlock(self, key: int) -> None:
        """Let go of the advisory lock ``key`` (nothing when the connection holding it is
        gone: the lock went with it)."""
        with contextlib.suppress(DatabaseUnavailableError):
            self._on_locker("SELECT pg_advisory_unlock(%s) AS ok", key)

    def _on_locker(self, sql: str, key: int) -> Any:
        psycopg = import_optional("psycopg", extra="scale", feature="WEFT_DATABASE_URL")
        from psycopg.rows import dict_row

        with self._locker_lock:
            try:
                if self._locker is None or self._locker.closed:
                    self._locker = psycopg.connect(
                        self.url, autocommit=True, row_factory=dict_row, connect_timeout=5
                    )
                row = self._locker.execute(sql, (key,)).fetchone()
            except psycopg.Error as exc:
                if self._locker is not None:
                    self._locker.close()
                    self._locker = None
                raise self.unavailable(exc) from exc
            return row["ok"]

    def ping(self) -> None:
        """Raise :class:`DatabaseUnavailableError` unless the database answers."""
        with self.connection() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        with self._locker_lock:
            if self._locker is not None:
                self._locker.close()
                self._locker = None


def _checkpoint_version(conn: Any) -> int:
    row = conn.execute("SELECT to_regclass('checkpoint_migrations') AS t").fetchone()
    if row is None or row["t"] is None:
        return -1
    row = conn.execute("SELECT max(v) AS v FROM checkpoint_migrations").fetchone()
    return -1 if row is None or row["v"] is None else int(row["v"])


def _postgres_saver() -> type[Any]:
    """LangGraph's ``PostgresSaver``: imported only when a database is used (an optional
    dependency)."""
    module = import_optional(
        "langgraph.checkpoint.postgres", extra="scale", feature="WEFT_DATABASE_URL"
    )
    saver: type[Any] = module.PostgresSaver
    return saver


@functools.cache
def _saver_class() -> type[Any]:
    """``PostgresSaver`` made to run on a :class:`Database`."""
    saver = _postgres_saver()

    class ThreadedPostgresSaver(ThreadedAsync, saver):  # type: ignore[misc,valid-type]
        """LangGraph's ``PostgresSaver`` on a pool, its async methods run in a worker thread;
        a lost connection raises :class:`DatabaseUnavailableError`."""

        def __init__(self, database: Database, allowed: Iterable[type] = ()) -> None:
            super().__init__(database.pool, serde=allowlist(allowed))
            self.database = database
            # LangGraph's saver locks around every query, for a connection shared by threads;
            # here each query takes a pooled connection of its own, so queries run side by side.
            self.lock = contextlib.nullcontext()

        @contextmanager
        def _cursor(self, *, pipeline: bool = False) -> Iterator[Any]:
            try:
                with super()._cursor(pipeline=pipeline) as cur:
                    yield cur
            except Exception as exc:
                if unreachable(exc) and not isinstance(exc, DatabaseUnavailableError):
                    raise self.database.unavailable(exc) from exc
                raise

    return ThreadedPostgresSaver


_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def open_database(url: str, *, size: int = 20) -> Database:
    """The process's :class:`Database` for ``url`` (made on first call)."""
    with _databases_lock:
        db = _databases.get(url)
        if db is None:
            db = _databases[url] = Database(url, size=size)
        return db


def database_of(settings: Settings) -> Database | None:
    """The database ``settings.database_url`` names; None when it is unset (embedded)."""
    if settings.database_url is None:
        return None
    return open_database(settings.database_url, size=settings.database_pool_size)


def open_checkpointer(settings: Settings, allowed: Iterable[type] = ()) -> BaseCheckpointSaver[Any]:
    """The checkpointer ``settings`` name: PostgreSQL at ``database_url`` when set, else the
    SQLite file ``checkpoint_path``; it loads the ``allowed`` classes."""
    db = database_of(settings)
    if db is None:
        return open_sqlite_checkpointer(settings.checkpoint_path, allowed)
    saver: BaseCheckpointSaver[Any] = db.checkpointer(allowed)
    return saver

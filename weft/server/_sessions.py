"""Who owns a chat session: each ``session_id`` is bound to the caller that first used it.

A caller is its API key when the server has keys (``WEFT_API_KEYS``), else an owner token the
server issues: a request that names a session without one gets a new token in the
``X-Weft-Owner`` response header, and sends it back in that request header to continue. Only a
SHA-256 fingerprint of the key or token is stored, never the secret itself.

The bindings live beside the checkpoints, so they last as long as the conversations do: in
``sessions.sqlite`` in the data directory, or in the ``weft_session_owners`` table of the
database at ``WEFT_DATABASE_URL``, which every replica shares. Binding is one insert that
ignores a conflict: of two callers racing for a new session id, one wins and the other is
refused, before either run reads the conversation.

A session runs one turn at a time (:class:`SessionRuns`): a second turn of a session whose
turn is still running, on this replica or another, gets a 409 that names the session. Across
replicas the turn holds a PostgreSQL advisory lock, which the database lets go by itself if
the replica holding it dies.

Example:
    >>> owners = SessionOwners(Path(tmp) / "sessions.sqlite")  # doctest: +SKIP
    >>> owners.claim("s1", "key:ab12"), owners.claim("s1", "key:cd34")  # doctest: +SKIP
    (True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from langgraph.checkpoint.base import BaseCheckpointSaver
from starlette.types import Scope

from weft.core._database import Database
from weft.core.compiled import thread
from weft.server._errors import ApiError
from weft.server._guards import bearer_token

__all__ = [
    "OWNER_HEADER",
    "Owner",
    "SessionOwners",
    "SessionRuns",
    "busy",
    "not_found",
    "owner_of",
]

OWNER_HEADER = "X-Weft-Owner"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


@dataclass(frozen=True)
class Owner:
    """A caller, as stored: ``fingerprint``; ``issued`` is a token made for this request (the
    caller sent none) that the response must carry."""

    fingerprint: str
    issued: str | None = None


def _fingerprint(kind: str, secret: str) -> str:
    digest = hashlib.sha256(f"weft-session-owner\0{kind}\0{secret}".encode()).hexdigest()
    return f"{kind}:{digest}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1").strip()
    return None


def owner_of(scope: Scope, keys: Sequence[str]) -> Owner:
    """The caller of a request: its API key when there are keys (the auth guard has checked it
    already), else the owner token it sent, else a new token."""
    if keys:
        return Owner(_fingerprint("key", bearer_token(scope) or ""))
    token = _header(scope, OWNER_HEADER.lower().encode())
    if token is None or token == "":
        token = secrets.token_urlsafe(32)
        return Owner(_fingerprint("token", token), issued=token)
    if not _TOKEN.match(token):
        raise ApiError(
            400,
            f"the {OWNER_HEADER} header is not an owner token this server issues (32 to 128 "
            f"letters, digits, '-' or '_'); send the token from an earlier response's "
            f"{OWNER_HEADER} header, or none to be given a new one",
        )
    return Owner(_fingerprint("token", token))


def not_found(session_id: str, keys: Sequence[str]) -> ApiError:
    """The 404 for a session the caller does not own: the same whether it exists or not, so a
    caller learns nothing about other callers' sessions."""
    by = "API key" if keys else f"owner token ({OWNER_HEADER} header)"
    return ApiError(
        404,
        f"no session '{session_id}' for this caller; a session is read and continued only "
        f"with the {by} that started it",
    )


class SessionOwners:
    """The session bindings in one SQLite file (opened, and made, on first use), or in
    ``database`` when given; ``keys`` are the server's API keys (none: callers are owner
    tokens)."""

    def __init__(
        self, path: Path, keys: Sequence[str] = (), database: Database | None = None
    ) -> None:
        self.path = path
        self.keys = list(keys)
        self.database = database
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            db.execute(
                "CREATE TABLE IF NOT EXISTS owners (session TEXT PRIMARY KEY, owner TEXT NOT "
                "NULL, created REAL NOT NULL)"
            )
            db.commit()
            self._db = db
        return self._db

    def _owner(self, db: sqlite3.Connection, session: str) -> str | None:
        row = db.execute("SELECT owner FROM owners WHERE session = ?", (session,)).fetchone()
        return None if row is None else str(row[0])

    def claim(
        self, session: str, owner: str, kept: Callable[[str], bool] = lambda session: False
    ) -> bool:
        """Bind ``session`` to ``owner`` unless it is bound already; whether ``owner`` holds it.

        ``kept`` says whether a conversation is stored under that id already: one stored with no
        owner (before owners were recorded) is nobody's, so it is not bound to the first caller
        that names it."""
        if self.database is not None:
            bound = self._claim_shared(self.database, session, owner, kept)
        else:
            with self._lock:
                db = self._open()
                bound = self._owner(db, session)
                if bound is None:
                    if kept(session):
                        return False
                    with db:
                        db.execute(
                            "INSERT OR IGNORE INTO owners (session, owner, created) "
                            "VALUES (?, ?, ?)",
                            (session, owner, time.time()),
                        )
                    bound = self._owner(db, session)
        return bound is not None and hmac.compare_digest(bound, owner)

    def _claim_shared(
        self, database: Database, session: str, owner: str, kept: Callable[[str], bool]
    ) -> str | None:
        database.ensure_tables()
        # One short use of a pooled connection at a time: `kept` reads the checkpoints with
        # another, and holding one meanwhile would run the pool dry under load.
        with database.connection() as conn:
            bound = _shared_owner(conn, session)
        if bound is not None:
            return bound
        if kept(session):
            return None
        with database.connection() as conn:
            conn.execute(
                "INSERT INTO weft_session_owners (session, owner, created) "
                "VALUES (%s, %s, %s) ON CONFLICT (session) DO NOTHING",
                (session, owner, time.time()),
            )
            return _shared_owner(conn, session)

    def owns(self, session: str, owner: str) -> bool:
        """Whether ``session`` is bound to ``owner`` (an unbound session belongs to nobody)."""
        if self.database is not None:
            self.database.ensure_tables()
            with self.database.connection() as conn:
                bound = _shared_owner(conn, session)
        elif not self.path.exists():
            return False
        else:
            with self._lock:
                bound = self._owner(self._open(), session)
        return bound is not None and hmac.compare_digest(bound, owner)

    async def bind(
        self, scope: Scope, saver: BaseCheckpointSaver[Any] | None, sessions: list[str | None]
    ) -> str | None:
        """Bind each session a run names to its caller, or 404 for one another caller holds.
        Only a graph with a checkpointer (``saver``) keeps a session. Returns an owner token
        issued for this request, for its response to carry."""
        named = list(dict.fromkeys(s for s in sessions if s))
        if saver is None or not named:
            return None
        owner = owner_of(scope, self.keys)

        def kept(session: str) -> bool:
            return saver.get_tuple(thread(session)) is not None

        for session in named:
            if not await anyio.to_thread.run_sync(self.claim, session, owner.fingerprint, kept):
                raise not_found(session, self.keys)
        return owner.issued

    async def check(self, scope: Scope, session: str) -> None:
        """404 unless the request's caller holds ``session``."""
        owner = owner_of(scope, self.keys)
        if not await anyio.to_thread.run_sync(self.owns, session, owner.fingerprint):
            raise not_found(session, self.keys)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _shared_owner(conn: Any, session: str) -> str | None:
    row = conn.execute(
        "SELECT owner FROM weft_session_owners WHERE session = %s", (session,)
    ).fetchone()
    return None if row is None else str(row["owner"])


def busy(session: str) -> ApiError:
    """The 409 for a turn of a session whose previous turn still runs."""
    return ApiError(
        409,
        f"session '{session}' is answering another turn now; wait for that answer to finish, "
        "then send this turn again",
        headers={"Retry-After": "1"},
    )


class SessionRuns:
    """One running turn per session: in this process, and with ``database`` across every
    replica that shares it (a PostgreSQL advisory lock per running session, all on one
    connection per process, which PostgreSQL closes, locks and all, if the replica dies)."""

    def __init__(self, database: Database | None = None) -> None:
        self.database = database
        self._running: set[str] = set()

    async def hold(self, sessions: Sequence[str]) -> Callable[[], Awaitable[None]]:
        """Start the turns of ``sessions``; returns what ends them. 409 naming a session whose
        turn is running already (here or on another replica)."""
        taken: list[str] = []
        locked: list[int] = []
        database = self.database

        async def release() -> None:
            if database is not None:
                for key in reversed(locked):
                    await anyio.to_thread.run_sync(database.unlock, key)
            locked.clear()
            for session in taken:
                self._running.discard(session)
            taken.clear()

        try:
            for session in sessions:
                if session in self._running:
                    raise busy(session)
                self._running.add(session)
                taken.append(session)
                if database is not None:
                    key = _key(session)
                    if not await anyio.to_thread.run_sync(database.try_lock, key):
                        raise busy(session)
                    locked.append(key)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await release()
            raise
        return release


def _key(session: str) -> int:
    """The advisory lock key of ``session``: 64 bits of its hash, signed as PostgreSQL's bigint."""
    digest = hashlib.sha256(f"weft-session-run\0{session}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)

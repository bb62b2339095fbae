"""Who owns a chat session: each ``session_id`` is bound to the caller that first used it.

A caller is its API key when the server has keys (``WEFT_API_KEYS``), else an owner token the
server issues: a request that names a session without one gets a new token in the
``X-Weft-Owner`` response header, and sends it back in that request header to continue. Only a
SHA-256 fingerprint of the key or token is stored, never the secret itself.

The bindings live in ``sessions.sqlite`` in the data directory, beside the checkpoints, so they
last as long as the conversations do, across restarts and across server processes sharing one
data directory. Binding is one ``INSERT OR IGNORE``: of two callers racing for a new session
id, one wins and the other is refused, before either run reads the conversation.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from langgraph.checkpoint.base import BaseCheckpointSaver
from starlette.types import Scope

from weft.core.compiled import thread
from weft.server._errors import ApiError
from weft.server._guards import bearer_token

__all__ = [
    "OWNER_HEADER",
    "Owner",
    "SessionOwners",
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
    """The session bindings in one SQLite file (opened, and made, on first use); ``keys`` are
    the server's API keys (none: callers are owner tokens)."""

    def __init__(self, path: Path, keys: Sequence[str] = ()) -> None:
        self.path = path
        self.keys = list(keys)
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
        with self._lock:
            db = self._open()
            bound = self._owner(db, session)
            if bound is None:
                if kept(session):
                    return False
                with db:
                    db.execute(
                        "INSERT OR IGNORE INTO owners (session, owner, created) VALUES (?, ?, ?)",
                        (session, owner, time.time()),
                    )
                bound = self._owner(db, session)
        return bound is not None and hmac.compare_digest(bound, owner)

    def owns(self, session: str, owner: str) -> bool:
        """Whether ``session`` is bound to ``owner`` (an unbound session belongs to nobody)."""
        if not self.path.exists():
            return False
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

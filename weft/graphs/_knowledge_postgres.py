"""The knowledge base of replicas that share PostgreSQL (``WEFT_DATABASE_URL``) and a Chroma
server (``WEFT_CHROMA_URL``): no shared data directory.

What lives where:

* ``weft_kb_current``: the version pointer, one row per knowledge base (its collection name):
  the committed version, the Chroma collection that holds it, and the one it replaced.
* ``weft_kb_indexes``: the BM25 index of each committed version, packed into one blob
  (:meth:`~weft.components.bm25.BM25Retriever.to_bytes`; JSON and numpy arrays, no pickles).
* ``weft_kb_chunks``: the manifest: each chunk's id, source and the version that added it.
* ``weft_kb_ingests``: the journal: each ingest's id (its version), kind, collection, the ids it
  added to Chroma, and its state (``running``, ``committed``, ``rolled back``).

An ingest writes its chunks to Chroma tagged with its version (metadata ``weft_version``); a
reset writes into a new collection (``<name>-g<version>``). Then one PostgreSQL transaction
stores the new BM25 index and manifest rows, moves the pointer and marks the journal row
committed: that transaction is the commit. Vector search asks Chroma only for chunks whose
version is at most the one the process loaded, so chunks an ingest has written but not
committed are invisible, and the vector store and BM25 always describe the same version.

Writers take turns on a PostgreSQL advisory lock (one per knowledge base), which dies with a
killed writer's connection. The next writer rolls back what a dead one left (its chunks leave
Chroma, its new collection is dropped) before it writes, and drops collections two resets old.

A process checks the pointer at most once a second (:data:`FOLLOW_SECONDS`, one indexed
query), and when it moved, loads the new version's index and collection in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from rich.console import Console

from weft.components.bm25 import BM25Retriever
from weft.components.stores import ChromaRetriever, ChromaStore
from weft.core._database import Database, DatabaseUnavailableError, database_of, shown
from weft.core.errors import ConfigurationError
from weft.core.settings import Settings
from weft.graphs._kb_stores import drop, find_collection, missing
from weft.graphs.knowledge import KnowledgeBase

__all__ = ["FOLLOW_SECONDS", "VERSION_KEY", "SharedKnowledgeBase"]

FOLLOW_SECONDS = 1.0
"""How often, at most, a process asks PostgreSQL whether the knowledge base moved on."""
VERSION_KEY = "weft_version"
"""The Chroma metadata key holding the version (ingest id) that added a chunk."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pointer:
    version: int
    collection: str


class _CommittedRetriever(ChromaRetriever):
    """Vector search over the chunks of committed versions only, up to ``committed()``."""

    committed: Callable[[], int]

    def _search(self, query: str, k: int | None, filter: dict[str, Any] | None) -> list[Document]:
        visible = {VERSION_KEY: {"$lte": self.committed()}}
        given = filter if filter is not None else self.filter
        where = {"$and": [given, visible]} if given else visible
        return [
            doc.model_copy(
                update={"metadata": {k: v for k, v in doc.metadata.items() if k != VERSION_KEY}}
            )
            for doc in super()._search(query, k, where)
        ]


class SharedKnowledgeBase(KnowledgeBase):
    """A :class:`~weft.graphs.knowledge.KnowledgeBase` whose manifest, journal, BM25 index and
    version pointer are in PostgreSQL; ``KnowledgeBase(settings)`` makes one when
    ``settings.database_url`` is set. See the module docstring for how it commits."""

    def __init__(self, settings: Settings | None = None, *, embedding: Embeddings | None = None):
        super().__init__(settings, embedding=embedding)
        database = database_of(self.settings)
        if database is None:
            raise ConfigurationError(
                "a shared knowledge base needs WEFT_DATABASE_URL; set it, or use KnowledgeBase "
                "for one in the data dir"
            )
        self.database: Database = database
        self._pointer: _Pointer | None = None  # the version _store and _bm25 hold
        self._checked = 0.0

    def __repr__(self) -> str:
        return f"KnowledgeBase(collection='{self._name}', database='{shown(self.database.url)}')"

    @property
    def _name(self) -> str:
        return self.settings.collection

    @property
    def where(self) -> str:
        """Where this knowledge base is kept, for messages: its name and database."""
        return f"the knowledge base '{self._name}' at {shown(self.database.url)}"

    # -- reading --------------------------------------------------------------------------------

    @property
    def store(self) -> ChromaStore:
        """The Chroma collection of the version this process serves (opened on first use)."""
        with self._lock:
            if self._store is None:
                self._open()
            assert self._store is not None
            return self._store

    @property
    def bm25(self) -> BM25Retriever:
        """The BM25 index of the version this process serves (loaded on first use)."""
        with self._lock:
            if self._bm25 is None:
                self._open()
            assert self._bm25 is not None
            return self._bm25

    @property
    def version(self) -> int:
        """The committed version this process serves; 0 before the first ingest."""
        return self._pointer.version if self._pointer is not None else 0

    def _open(self) -> None:
        pointer, index = self._current_index()
        self._store = ChromaStore(
            pointer.collection, self._embedder(), data_dir=self.settings.chroma_dir
        )
        self._bm25, self._pointer = index, pointer
        self._checked = time.monotonic()

    def _current(self) -> _Pointer:
        self.database.ensure_tables()
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT version, collection FROM weft_kb_current WHERE kb = %s", (self._name,)
            ).fetchone()
        if row is None:
            return _Pointer(0, f"{self._name}-g0")
        return _Pointer(int(row["version"]), str(row["collection"]))

    def _current_index(self) -> tuple[_Pointer, BM25Retriever]:
        """The pointer and its version's index; read again if a commit removed that index
        between the two queries (a commit keeps the version before it, so once is rare)."""
        for _ in range(5):
            pointer = self._current()
            if pointer.version == 0:
                return pointer, BM25Retriever()
            with self.database.connection() as conn:
                row = conn.execute(
                    "SELECT blob FROM weft_kb_indexes WHERE kb = %s AND version = %s",
                    (self._name, pointer.version),
                ).fetchone()
            if row is not None:
                where = f"weft_kb_indexes (version {pointer.version}) of {self.where}"
                return pointer, BM25Retriever.from_bytes(bytes(row["blob"]), where)
        raise ConfigurationError(
            f"the BM25 index of {self.where} (version {pointer.version}) is missing from "
            "weft_kb_indexes; rebuild the knowledge base with `weft ingest --reset PATH...`"
        )

    def changed_on_disk(self) -> bool:
        """Whether it is time to ask PostgreSQL if the knowledge base moved on (once every
        :data:`FOLLOW_SECONDS`); no I/O, so an event loop may ask it."""
        return self._pointer is not None and time.monotonic() - self._checked >= FOLLOW_SECONDS

    def follow(self) -> bool:
        """Move to the version another process committed since this one last looked, in place
        (graphs made from this knowledge base answer from it): one query, and when the pointer
        moved, its index loaded from PostgreSQL. Returns whether anything changed."""
        if not self.changed_on_disk():
            return False
        with self._lock:
            try:
                return self._catch_up()
            except DatabaseUnavailableError as exc:
                # The version loaded is whole in both stores: serve it until the database is
                # back, asking again a second later (a request that needs the database gets
                # its 503 from that request's own query).
                self._checked = time.monotonic()
                _log.warning("cannot check %s for a newer version: %s", self.where, exc)
                return False

    def _catch_up(self) -> bool:
        if self._pointer is None:
            self._open()
            return True
        was = self._pointer
        pointer, index = (was, None) if self._current() == was else self._current_index()
        self._checked = time.monotonic()
        if index is None:
            return False
        self._move_to(pointer, index)
        return True

    def _move_to(self, pointer: _Pointer, index: BM25Retriever) -> None:
        was = self._pointer.collection if self._pointer is not None else None
        if self._store is not None and pointer.collection != was:
            self._store.reopen(pointer.collection)
        if self._bm25 is not None:
            self._bm25.replace_with(index)
        else:
            self._bm25 = index
        self._pointer = pointer

    def count(self) -> int:
        """How many chunks the committed version holds (Chroma is asked too: it must answer)."""
        self.store.count()
        return self.bm25.count()

    def vector_retriever(self, k: int | None = None) -> ChromaRetriever:
        """Vector search over the chunks of the version this process serves."""
        store = self.store
        return _CommittedRetriever(
            vectorstore=store,
            k=k or self.settings.top_k,
            committed=lambda: self.version,
            tags=["Chroma", type(store.embeddings).__name__],
        )

    # -- writing --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self, wait: bool, console: Console | None) -> Iterator[None]:
        """Hold this knowledge base's advisory lock; roll back what a dead writer left, then
        move to the committed version (a writer builds on it)."""
        self.database.ensure_tables()
        key = _lock_key(self._name)
        with self._lock, self.database.connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
            if not row["ok"]:
                if not wait:
                    raise ConfigurationError(
                        f"another ingest of {self.where} is running; try again once it has "
                        "finished, or let this one wait for it (leave out --no-wait; wait=True)"
                    )
                (console or Console(stderr=True)).print(
                    f"waiting for another ingest of {self.where} to finish...",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                self._roll_back_dead()
                self._catch_up()
                yield
            finally:
                with contextlib.suppress(Exception):  # a lost connection took the lock with it
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def _roll_back_dead(self) -> None:
        """Undo the ingests a killed writer left ``running`` (the lock is held: no live writer
        has one), then drop the collections that neither the pointer nor its predecessor use."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT id, kind, collection, ids FROM weft_kb_ingests "
                "WHERE kb = %s AND state = 'running' ORDER BY id",
                (self._name,),
            ).fetchall()
        client = self.store._client
        for row in rows:
            if row["kind"] == "reset":
                drop(client, row["collection"])
            else:
                _delete_ids(client, row["collection"], [str(i) for i in row["ids"]])
            self._finish(int(row["id"]), "rolled back")
        self._drop_retired()

    def _drop_retired(self) -> None:
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT collection, retired FROM weft_kb_current WHERE kb = %s", (self._name,)
            ).fetchone()
        if row is None:
            return
        keep = {row["collection"], row["retired"]}
        generation = re.compile(re.escape(self._name) + r"-g\d+")
        client = self.store._client
        for collection in client.list_collections():
            if generation.fullmatch(collection.name) and collection.name not in keep:
                drop(client, collection.name)

    def _begin(self, kind: str, collection: str | None, ids: Sequence[str]) -> tuple[int, str]:
        """Journal an ingest as running; returns its id (the version it commits) and the
        collection it writes to (a reset's new one is named after the id)."""
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT nextval(pg_get_serial_sequence('weft_kb_ingests', 'id')) AS id"
            ).fetchone()
            version = int(row["id"])
            target = collection or f"{self._name}-g{version}"
            conn.execute(
                "INSERT INTO weft_kb_ingests (id, kb, kind, collection, ids, state, started) "
                "VALUES (%s, %s, %s, %s, %s, 'running', %s)",
                (version, self._name, kind, target, json.dumps(list(ids)), time.time()),
            )
        return version, target

    def _finish(self, version: int, state: str) -> None:
        with self.database.connection() as conn:
            conn.execute(
                "UPDATE weft_kb_ingests SET state = %s, finished = %s WHERE id = %s",
                (state, time.time(), version),
            )

    def _commit(
        self, base: _Pointer, new: _Pointer, index: BM25Retriever, chunks: Sequence[Document]
    ) -> None:
        """One transaction: the new index and manifest rows, the pointer, the journal row."""
        blob = index.to_bytes()
        name = self._name
        rows = [
            (name, new.collection, c.id or "", str(c.metadata.get("source", "")), new.version)
            for c in chunks
        ]
        with self.database.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT version FROM weft_kb_current WHERE kb = %s FOR UPDATE", (name,)
            ).fetchone()
            if (int(row["version"]) if row is not None else 0) != base.version:
                raise ConfigurationError(
                    f"another ingest committed to {self.where} while this one ran (its lock "
                    "was lost with the database connection); nothing was committed, run it again"
                )
            conn.execute(
                "INSERT INTO weft_kb_indexes (kb, version, blob) VALUES (%s, %s, %s)",
                (name, new.version, blob),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO weft_kb_chunks (kb, collection, id, source, version) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    rows,
                )
            if new.collection != base.collection:
                conn.execute(
                    "DELETE FROM weft_kb_chunks WHERE kb = %s AND collection = %s",
                    (name, base.collection),
                )
            conn.execute(
                "INSERT INTO weft_kb_current (kb, version, collection, retired, updated) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kb) DO UPDATE SET "
                "version = EXCLUDED.version, collection = EXCLUDED.collection, "
                "retired = CASE WHEN EXCLUDED.collection <> weft_kb_current.collection "
                "THEN weft_kb_current.collection ELSE weft_kb_current.retired END, "
                "updated = EXCLUDED.updated",
                (name, new.version, new.collection, base.collection, time.time()),
            )
            marked = conn.execute(
                "UPDATE weft_kb_ingests SET state = 'committed', finished = %s "
                "WHERE id = %s AND state = 'running'",
                (time.time(), new.version),
            )
            if marked.rowcount != 1:  # another writer took the lock and rolled this one back
                raise ConfigurationError(
                    f"ingest {new.version} of {self.where} was rolled back by another writer "
                    "while it ran (its lock was lost with the database connection); nothing "
                    "was committed, run it again"
                )
            # The version before this one stays: a process may be loading it right now.
            conn.execute(
                "DELETE FROM weft_kb_indexes WHERE kb = %s AND version < %s", (name, base.version)
            )

    def _abandon(self, version: int, undo: Callable[[], None], exc: BaseException) -> None:
        try:
            undo()
            self._finish(version, "rolled back")
        except Exception as failed:  # the original error matters more; say what is left
            _log.error(
                "ingest %d of %s failed (%s) and undoing it failed too (%s); its chunks stay "
                "invisible, and the next ingest removes them",
                version,
                self.where,
                exc,
                failed,
            )

    def _add(
        self, chunks: Sequence[Document], progress: bool, console: Console | None
    ) -> tuple[list[Document], list[Document]]:
        """Add the chunks the committed version lacks, as a new version of the same collection."""
        store, bm25 = self.store, self.bm25
        base = self._pointer or _Pointer(0, store._collection.name)
        for_chroma, for_bm25 = missing(store, bm25, chunks)
        if not for_chroma and not for_bm25:
            return for_chroma, for_bm25
        new_ids = [c.id or "" for c in for_chroma]
        version, _ = self._begin("add", base.collection, new_ids)
        staged = bm25.clone()
        try:
            self._write(store, staged, _tagged(for_chroma, version), for_bm25, progress, console)
            self._commit(base, _Pointer(version, base.collection), staged, for_bm25)
        except BaseException as exc:
            client = store._client
            self._abandon(version, lambda: _delete_ids(client, base.collection, new_ids), exc)
            raise
        self._move_to(_Pointer(version, base.collection), staged)
        return for_chroma, for_bm25

    def _replace(self, chunks: Sequence[Document], progress: bool, console: Console | None) -> None:
        """Make ``chunks`` the whole knowledge base: a new collection and index, committed by
        the pointer moving to them; the old collection stays until the next reset."""
        store = self.store
        base = self._pointer or _Pointer(0, store._collection.name)
        version, name = self._begin("reset", None, [])
        index = BM25Retriever()
        client = store._client
        try:
            staged = ChromaStore(name, self._embedder(), client=client, reset=True)
            self._write(staged, index, _tagged(chunks, version), chunks, progress, console)
            self._commit(base, _Pointer(version, name), index, chunks)
        except BaseException as exc:
            self._abandon(version, lambda: drop(client, name), exc)
            raise
        self._move_to(_Pointer(version, name), index)
        self._drop_retired()


def _lock_key(name: str) -> int:
    """The advisory lock of the knowledge base ``name``: a signed 64-bit number."""
    digest = hashlib.sha256(f"weft knowledge base {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _tagged(chunks: Sequence[Document], version: int) -> list[Document]:
    return [c.model_copy(update={"metadata": {**c.metadata, VERSION_KEY: version}}) for c in chunks]


def _delete_ids(client: Any, collection: str, ids: list[str]) -> None:
    target = find_collection(client, collection)
    if target is None:
        return
    for start in range(0, len(ids), 1000):
        target.delete(ids=ids[start : start + 1000])

"""A knowledge base on disk: a Chroma collection and a BM25 index that always agree.

:class:`KnowledgeBase` keeps both stores in ``Settings.data_dir`` (Chroma in ``chroma/``, BM25
in ``bm25/``), so two data directories are two separate knowledge bases. With
``WEFT_DATABASE_URL``, ``KnowledgeBase(settings)`` makes a ``SharedKnowledgeBase`` that keeps the
same promises in PostgreSQL and Chroma instead (``_knowledge_postgres.py``), for replicas.

What :meth:`KnowledgeBase.ingest` guarantees:

* **Idempotent.** Every chunk's id is a hash of its source path, page and text, so ingesting the
  same files again writes nothing (``added == 0``).
* **One writer at a time.** An ingest, a reset and :meth:`KnowledgeBase.reset` hold the data
  dir's lock file (``ingest.lock``) from start to end, across processes. A second one waits
  for it, saying so on stderr, or with ``wait=False`` (``weft ingest --no-wait``) fails at once.
  Holding the lock, a writer first reads again whatever another process wrote since it opened
  the stores, so two ingests never save over each other's chunks.
* **All or nothing, per call, even when killed.** Files are read and split before anything is
  written. The ids of the chunks new to Chroma are journaled (``ingest.journal`` in the data
  dir); then they go to Chroma (in batches, embedding as they go), then BM25 is updated in
  memory and saved atomically (a new version directory, then a pointer swap). That swap commits
  the ingest. If anything raises before it, the journaled chunks are deleted from Chroma and
  the in-memory BM25 index forgets them, so neither store keeps data the other lacks; the error
  is re-raised. If the process dies before it, the next open of the knowledge base reads the
  journal and rolls the ingest back the same way; after it, the ingest stands.
* **A reset replaces, it does not empty first.** ``reset=True`` (``weft ingest --reset``) builds
  the new contents in a staged Chroma collection and a new BM25 index, then swaps them in (two
  collection renames and the BM25 pointer swap). Until then the old knowledge base stays
  whole and searchable; a failure or Ctrl-C before the swap leaves it exactly as it was. The
  reset is journaled (``reset.journal`` in the data dir): if the process dies, the next open
  finishes it when the new BM25 index went live (it goes last), else undoes it.
* **Readers never see half an index.** A BM25 load that races a save reads the new version.
* Markdown heading lines are not indexed as text (see :func:`_without_headings`); the first
  heading is the document's title.
* A changed file adds its new chunks; the old chunks of that file stay until ``reset()``
  (``weft ingest --reset``).

Example:
    >>> kb = KnowledgeBase(Settings(data_dir=tmp))  # doctest: +SKIP
    >>> kb.ingest(["handbook/"], progress=False).added  # doctest: +SKIP
    42
    >>> kb.hybrid_retriever(k=3).invoke("how do I install weft?")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from filelock import FileLock, Timeout
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from weft.components.bm25 import BM25Retriever
from weft.components.documents import SkippedFile, TokenSplitter, load_documents
from weft.components.embeddings import default_embeddings
from weft.components.hybrid import HybridRetriever, default_reranker
from weft.components.stores import ChromaRetriever, ChromaStore, chroma_client
from weft.core.errors import ConfigurationError
from weft.core.settings import Settings, get_settings
from weft.graphs._kb_stores import drop, find_collection, hexed, missing, write_journal

__all__ = ["DEMO_KB_DIR", "IngestSummary", "KnowledgeBase"]

DEMO_KB_DIR = Path(__file__).resolve().parent / "kb"
"""The bundled demo knowledge base: weft's own handbook, a few markdown files."""

_BATCH = 64
# How long a writer waits quietly before it says it is waiting: an open that settles a journal
# holds the lock for as long as that takes.
_QUIET_WAIT = 0.5
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSummary:
    """What one :meth:`KnowledgeBase.ingest` did.

    ``files`` counts the files read; ``chunks`` the chunks they split into; ``added`` the chunks
    new to the knowledge base and ``unchanged`` those it already held.
    """

    files: int
    chunks: int
    added: int
    unchanged: int
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self) -> str:
        """A one-paragraph, human summary (what ``weft ingest`` prints last)."""
        lines = [
            f"{self.files} file{'s' * (self.files != 1)}, "
            f"{self.chunks} chunk{'s' * (self.chunks != 1)} "
            f"({self.added} added, {self.unchanged} unchanged), "
            f"{len(self.skipped)} skipped, in {self.seconds:.1f} s"
        ]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


class KnowledgeBase:
    """Chroma + BM25 over one data directory; ingest files, get a hybrid retriever.

    Args:
        settings: where (``data_dir``), which collection, chunk sizes; from ``WEFT_*`` if None.
        embedding: the embedder; :func:`~weft.components.embeddings.default_embeddings` if None.
            A data directory built with another embedder raises the store's
            :class:`~weft.core.errors.ConfigurationError` naming both and the fix.

    Example:
        >>> kb = KnowledgeBase(Settings(data_dir=tmp))  # doctest: +SKIP
        >>> kb.ensure_demo(progress=False).files  # doctest: +SKIP
        9
    """

    def __new__(
        cls, settings: Settings | None = None, *, embedding: Embeddings | None = None
    ) -> KnowledgeBase:
        # With WEFT_DATABASE_URL, replicas share it through PostgreSQL (docs/deploy.md).
        if cls is KnowledgeBase:
            chosen = settings if settings is not None else get_settings()
            if chosen.database_url is not None:
                from weft.graphs._knowledge_postgres import SharedKnowledgeBase

                return super().__new__(SharedKnowledgeBase)
        return super().__new__(cls)

    def __init__(self, settings: Settings | None = None, *, embedding: Embeddings | None = None):
        self.settings = settings if settings is not None else get_settings()
        self._embedding = embedding
        self._lock = threading.RLock()
        self._store: ChromaStore | None = None
        self._bm25: BM25Retriever | None = None
        self._version: bytes | None = None  # the BM25 pointer as it was when _bm25 was read
        self._writer: FileLock | None = None

    def __repr__(self) -> str:
        return f"KnowledgeBase(data_dir='{self.settings.data_dir}')"

    @property
    def where(self) -> str:
        """Where this knowledge base is kept, for messages: its data dir here."""
        return str(self.settings.data_dir)

    # -- the stores ------------------------------------------------------------------------------

    def _embedder(self) -> Embeddings:
        return self._embedding if self._embedding is not None else default_embeddings()

    @property
    def store(self) -> ChromaStore:
        """The Chroma store (opened on first use)."""
        with self._lock:
            if self._store is None:
                self._recover()
                self._store = ChromaStore(
                    self.settings.collection, self._embedder(), data_dir=self.settings.chroma_dir
                )
            return self._store

    @property
    def bm25(self) -> BM25Retriever:
        """The BM25 index (loaded from ``bm25_dir`` on first use, empty if there is none)."""
        with self._lock:
            if self._bm25 is None:
                self._version = self._on_disk()
                if self._version is not None:  # a damaged pointer too: load() reports it
                    self._bm25 = BM25Retriever.load(self.settings.bm25_dir)
                else:
                    self._bm25 = BM25Retriever()
            return self._bm25

    def _on_disk(self) -> bytes | None:
        """What the BM25 ``CURRENT`` pointer holds (every ingest that writes, and every reset,
        saves a new version); None when there is none. A damaged pointer is for
        :meth:`BM25Retriever.load` to report."""
        try:
            return (self.settings.bm25_dir / "CURRENT").read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return b"\0unreadable"

    def changed_on_disk(self) -> bool:
        """True when another process (``weft ingest``) wrote to the knowledge base since this
        one read it. Its searches then miss the new contents (Chroma and BM25 keep their
        indexes in memory), or fail if it was reset; :meth:`follow` reads them. Reads no lock,
        so an event loop may ask it."""
        return self._bm25 is not None and self._on_disk() != self._version

    def follow(self) -> bool:
        """Read again what another process (``weft ingest``, another replica) wrote since this
        one read the stores: a new BM25 index replaces the one in memory in place, and the
        Chroma collection is looked up again by name (a reset swaps a new one in), so graphs
        made from this knowledge base answer from the new contents. Returns whether anything
        changed. The BM25 pointer is the ingest's commit, so both stores agree once it moved."""
        if not self.changed_on_disk():
            return False  # the usual case, read without the lock
        with self._lock:
            now = self._on_disk()
            if self._bm25 is None or now == self._version:
                return False
            fresh = BM25Retriever.load(self.settings.bm25_dir) if now else BM25Retriever()
            self._bm25.replace_with(fresh)
            if self._store is not None:
                self._store.reopen()
            self._version = now
            return True

    def count(self) -> int:
        """How many chunks the knowledge base holds (in Chroma)."""
        return self.store.count()

    def is_empty(self) -> bool:
        """True when neither store holds a chunk."""
        return self.count() == 0 and self.bm25.count() == 0

    def vector_retriever(self, k: int | None = None) -> ChromaRetriever:
        """Vector search over the Chroma collection, ``k`` from settings by default."""
        return self.store.as_retriever(k=k or self.settings.top_k)

    def hybrid_retriever(self, k: int | None = None) -> HybridRetriever:
        """Vector and BM25 in parallel, fused by Reciprocal Rank Fusion and re-ranked by the
        best sentence (:func:`~weft.components.hybrid.default_reranker`); top ``k`` (settings'
        ``top_k`` by default) with the fused score in ``metadata["score"]``."""
        top = k or self.settings.top_k
        return HybridRetriever(
            vector=self.vector_retriever(top), bm25=self.bm25, k=top, reranker=default_reranker()
        )

    # -- writing ---------------------------------------------------------------------------------

    def ingest(
        self,
        paths: str | Path | Iterable[str | Path],
        *,
        progress: bool = True,
        console: Console | None = None,
        reset: bool = False,
        wait: bool = True,
        encoding: str = "utf-8",
    ) -> IngestSummary:
        """Read files and folders, split them, and add new chunks to Chroma and BM25.

        Args:
            paths: files and folders (read recursively; hidden entries are ignored).
            progress: show a progress bar (on ``console``, stderr by default).
            console: where the progress bar goes.
            reset: replace the knowledge base's contents with these documents. The new
                contents are built beside the old ones and swapped in once complete, so a bad
                path, a failure or Ctrl-C on the way leaves the old ones as they were.
            wait: when another process is writing to this knowledge base, wait for it (saying
                so on ``console``) rather than fail.
            encoding: the text files' codec (see
                :func:`~weft.components.documents.load_documents`).

        Raises:
            ConfigurationError: a given path does not exist, ``reset`` is set and there is
                nothing to ingest, or ``wait`` is False and another process is writing
                (nothing is written).

        See the module docstring for what happens on failure.
        """
        started = time.perf_counter()
        roots = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        missing = [str(p) for p in roots if not p.expanduser().exists()]
        if missing:
            raise ConfigurationError(
                f"cannot ingest {', '.join(repr(m) for m in missing)}: no such file or folder; "
                "pass existing files or folders (.txt, .md, .html, .pdf)"
            )
        if not roots:
            raise ConfigurationError("nothing to ingest; pass at least one file or folder")
        loaded = load_documents(roots, encoding=encoding)
        documents = [_without_headings(d) for d in loaded.documents]
        documents = [d for d in documents if d.page_content.strip()]
        splitter = TokenSplitter(self.settings.chunk_tokens, self.settings.chunk_overlap)
        chunks = list({c.id: c for c in splitter.split_documents(documents)}.values())
        files = len({d.metadata.get("source") for d in loaded.documents})
        if reset and not chunks:
            raise ConfigurationError(
                f"nothing to ingest in {', '.join(repr(str(r)) for r in roots)}: no readable "
                f"document ({len(loaded.skipped)} files skipped), so the knowledge base was not "
                "reset; pass .txt, .md, .html or .pdf files or folders that hold them"
            )
        with self._writing(wait, console):
            if reset:
                self._replace(chunks, progress, console)
                for_chroma = for_bm25 = chunks
            else:
                for_chroma, for_bm25 = self._add(chunks, progress, console)
        added = len({c.id for c in for_chroma} | {c.id for c in for_bm25})
        return IngestSummary(
            files=files,
            chunks=len(chunks),
            added=added,
            unchanged=len(chunks) - added,
            skipped=list(loaded.skipped),
            seconds=time.perf_counter() - started,
        )

    # -- one writer at a time, and what a killed one left ---------------------------------------

    @contextlib.contextmanager
    def _writing(self, wait: bool, console: Console | None) -> Iterator[None]:
        """Hold the data dir's write lock: one writer at a time, across processes.

        Holding it, journals a killed writer left are settled, and stores another process wrote
        to since they were opened are opened again (else this writer would save over its work).
        """
        with self._lock:
            lock = self._write_lock()
            try:
                lock.acquire(timeout=_QUIET_WAIT)
            except Timeout:
                where = self.settings.data_dir
                if not wait:
                    raise ConfigurationError(
                        f"another ingest of {where} is running; try again once it has finished, "
                        "or let this one wait for it (leave out --no-wait; wait=True)"
                    ) from None
                (console or Console(stderr=True)).print(
                    f"waiting for another ingest of {where} to finish...",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
                lock.acquire()
            try:
                if self._bm25 is None or self._on_disk() != self._version:
                    self._store, self._bm25 = None, None
                self._recover()
                yield
            finally:
                lock.release()

    def _write_lock(self) -> FileLock:
        if self._writer is None:
            data_dir = self.settings.data_dir
            try:
                data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot create the data dir '{data_dir}' ({exc.strerror or exc}); pass a "
                    "folder this user may write to with --data-dir or WEFT_DATA_DIR"
                ) from exc
            self._writer = FileLock(data_dir / "ingest.lock")
        return self._writer

    def _recover(self) -> None:
        """Settle the journals a killed ingest or reset left, when no writer is running.

        A writer holding the lock owns its journals, so an open while one runs leaves them be.
        """
        if not (self._journal("reset").exists() or self._journal("ingest").exists()):
            return
        lock = self._write_lock()
        try:
            lock.acquire(blocking=False)
        except Timeout:
            return
        try:
            client = chroma_client(self.settings.chroma_dir)
            self._settle(client)
            self._undo_ingest(client)
        finally:
            lock.release()

    def _journal(self, kind: str) -> Path:
        """``ingest.journal`` or ``reset.journal`` in the data dir."""
        return self.settings.data_dir / f"{kind}.journal"

    def _undo_ingest(self, client: ClientAPI) -> None:
        """Take out of Chroma the chunks of a journaled ingest whose BM25 save never happened."""
        journal = self._read_journal("ingest", "an ingest adds chunks")
        if journal is None:
            return
        if hexed(self._on_disk()) == journal["pointer"]:  # not committed
            collection = find_collection(client, str(journal["collection"]))
            ids = [str(i) for i in journal.get("ids", [])]
            while collection is not None and ids:
                collection.delete(ids=ids[:1000])
                ids = ids[1000:]
        self._journal("ingest").unlink()

    def _read_journal(self, kind: str, written_while: str) -> dict[str, Any] | None:
        path = self._journal(kind)
        try:
            journal = json.loads(path.read_text())
            if not isinstance(journal, dict) or not {"collection", "pointer"} <= journal.keys():
                raise ValueError("it names no collection or BM25 pointer")
            return journal
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"'{path}' (written while {written_while}) is damaged ({exc}); check the Chroma "
                f"collections in {self.settings.chroma_dir}, then delete it and run weft ingest "
                "--reset again"
            ) from exc

    # -- writing, continued ----------------------------------------------------------------------

    def _add(
        self, chunks: Sequence[Document], progress: bool, console: Console | None
    ) -> tuple[list[Document], list[Document]]:
        """Add to each store the chunks it lacks; returns those (for Chroma, for BM25).

        The BM25 pointer swap commits them; until then the journal names the chunks new to
        Chroma, so a failure here, or a killed process at the next open, takes them out again.
        """
        store, bm25 = self.store, self.bm25
        for_chroma, for_bm25 = missing(store, bm25, chunks)
        if not for_chroma and not for_bm25:
            return for_chroma, for_bm25
        before = self._on_disk()
        journal = {
            "collection": self.settings.collection,
            "pointer": hexed(before),
            "ids": [c.id or "" for c in for_chroma],
        }
        write_journal(self._journal("ingest"), journal)
        try:
            self._write(store, bm25, for_chroma, for_bm25, progress, console)
            bm25.save(self.settings.bm25_dir)
        except BaseException as exc:
            self._version = self._on_disk()
            if self._version == before:
                bm25.delete([c.id or "" for c in for_bm25])
            try:
                self._undo_ingest(store._client)
            except Exception as undo:  # the original error matters more; say what is left
                _log.error(
                    "ingest failed (%s) and removing its %d new chunks from Chroma failed too "
                    "(%s); the next open of the knowledge base tries again",
                    exc,
                    len(for_chroma),
                    undo,
                )
            raise
        self._version = self._on_disk()
        self._journal("ingest").unlink()
        return for_chroma, for_bm25

    @staticmethod
    def _write(
        store: ChromaStore,
        bm25: BM25Retriever,
        for_chroma: Sequence[Document],
        for_bm25: Sequence[Document],
        progress: bool,
        console: Console | None,
    ) -> None:
        """Upsert into Chroma in batches (with a progress bar), then into BM25 in memory."""
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            disable=not progress,
            transient=False,
        )
        with bar:
            task = bar.add_task("Embedding chunks", total=len(for_chroma))
            for start in range(0, len(for_chroma), _BATCH):
                batch = for_chroma[start : start + _BATCH]
                store.upsert(batch)
                bar.advance(task, len(batch))
        if for_bm25:
            bm25.upsert(for_bm25)

    def _replace(self, chunks: Sequence[Document], progress: bool, console: Console | None) -> None:
        """Make ``chunks`` the whole knowledge base, keeping the old one until the new one is
        complete: the chunks go into a staged collection and a new BM25 index, which then take
        the old ones' places. A failure before the swap leaves the old knowledge base as it was.
        """
        name = self.settings.collection
        embedding = self._embedder()
        chroma_dir = self.settings.chroma_dir
        client = chroma_client(chroma_dir)
        # The journal says how to finish or undo the reset if this process dies: the BM25
        # pointer on disk tells which (the new index goes live last). It is written before the
        # staged collection, so that the next open drops one a killed reset left.
        before = self._on_disk()
        self._journal_reset(client, before)
        bm25 = BM25Retriever()
        try:
            # reset=True: a staged collection left by an interrupted reset is dropped first.
            staged = ChromaStore(f"{name}.staged", embedding, data_dir=chroma_dir, reset=True)
            self._write(staged, bm25, chunks, chunks, progress, console)
            old = self._journal_reset(client, before)  # an open may have made one since
            if old is not None:
                drop(client, f"{name}.replaced")
                old.modify(name=f"{name}.replaced")
            staged._collection.modify(name=name)
            bm25.save(self.settings.bm25_dir)
        finally:  # drops the old collection if the new index went live, else the staged one
            self._settle(client)
            now = self._on_disk()
            if now != before:  # live, even if what followed the swap failed
                self._store = ChromaStore(name, embedding, data_dir=chroma_dir)
                self._bm25, self._version = bm25, now

    def _journal_reset(self, client: ClientAPI, pointer: bytes | None) -> Collection | None:
        """Journal a reset of the collection; returns the collection it replaces, if any."""
        old = find_collection(client, self.settings.collection)
        journal = {"collection": self.settings.collection, "pointer": hexed(pointer)}
        write_journal(self._journal("reset"), {**journal, "old": old is not None})
        return old

    def _settle(self, client: ClientAPI) -> None:
        """Finish a reset whose new BM25 index went live, or undo one whose did not."""
        journal = self._read_journal("reset", "a reset swaps its collections in")
        if journal is None:
            return
        name = str(journal["collection"])
        main, retired = find_collection(client, name), find_collection(client, f"{name}.replaced")
        if hexed(self._on_disk()) != journal["pointer"]:
            drop(client, f"{name}.replaced")  # the new contents are live in both stores
        else:
            if retired is not None:  # the old collection was retired: back under its name
                if main is not None:
                    main.modify(name=f"{name}.staged")
                retired.modify(name=name)
            elif main is not None and not journal.get("old", True):
                main.modify(name=f"{name}.staged")  # there was no old one: the new one goes
            drop(client, f"{name}.staged")
        self._journal("reset").unlink()

    def reset(self, *, wait: bool = True) -> None:
        """Empty the knowledge base: swap in an empty Chroma collection and BM25 index, as
        ``ingest(..., reset=True)`` swaps in new contents (journaled, under the write lock).

        Retrievers and graphs made from this knowledge base before the reset still hold the old
        BM25 index; make them again afterwards.
        """
        with self._writing(wait, None):
            self._replace([], False, None)

    def ensure_demo(self, *, progress: bool = False) -> IngestSummary | None:
        """Ingest the bundled handbook (:data:`DEMO_KB_DIR`) if the knowledge base is empty;
        returns the summary, or None when there was something already."""
        with self._lock:
            if not self.is_empty():
                return None
            return self.ingest([DEMO_KB_DIR], progress=progress)


_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+.*)?$\n?", re.MULTILINE)


def _without_headings(doc: Document) -> Document:
    """A markdown document without its ATX heading lines.

    The first heading is already the document's title (``metadata["title"]``); a section
    heading has no full stop, so once sources are packed onto one line it would run into the
    next sentence and be quoted with it.
    """
    if not str(doc.metadata.get("source", "")).lower().endswith((".md", ".markdown")):
        return doc
    return doc.model_copy(update={"page_content": _HEADING.sub("", doc.page_content)})

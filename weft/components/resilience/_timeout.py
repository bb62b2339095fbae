"""A time limit on a call, or on a stream's first content, each chunk, or the whole stream."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, Literal

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import Input, Output

from weft.components._wrapper import RunnableWrapper
from weft.components.resilience._content import has_content
from weft.core.errors import ComponentTimeoutError, ConfigurationError

__all__ = ["StreamTimeout", "TimeoutRunnable", "with_timeout"]

StreamTimeout = Literal["first_chunk", "each_chunk", "total"]

_CHUNK, _DONE, _ERROR = 0, 1, 2


def _consume_result(task: asyncio.Future[Any]) -> None:
    # Retrieve a cancelled or abandoned task's outcome so asyncio does not log it as lost.
    if not task.cancelled():
        task.exception()


async def _within(awaitable: Awaitable[Any], seconds: float | None, on_timeout: str) -> Any:
    """Await with a limit; unlike ``asyncio.wait_for`` a ``TimeoutError`` raised by the
    component itself is passed on as it is, not mistaken for ours."""
    if seconds is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(seconds, 0.0))
    except BaseException:
        task.cancel()
        task.add_done_callback(_consume_result)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_consume_result)
        raise ComponentTimeoutError(on_timeout)
    return task.result()


class TimeoutRunnable(RunnableWrapper[Input, Output]):
    """Fails a call that takes longer than ``seconds`` with :class:`ComponentTimeoutError`.

    langchain-core has no timeout wrapper, hence this one. ``ainvoke`` cancels the component's
    task. ``invoke`` runs the component in a worker thread (in a copy of the caller's context,
    so callbacks and tracing still nest) and stops waiting for it; Python cannot stop a thread,
    so the worker runs on in the background and its result is dropped.

    ``stream_timeout`` says what the limit bounds when streaming: ``"first_chunk"`` (the
    default: time to first output, then no limit), ``"each_chunk"`` (every chunk, including
    the first, within ``seconds`` of the one before) or ``"total"`` (the whole stream, as the
    caller consumes it). The first chunk is the first with content: an opening role-only or
    empty chunk does not end the wait for output.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def fast(x: int) -> int:
        ...     return x + 1
        >>> TimeoutRunnable(RunnableLambda(fast), 5.0).invoke(1)
        2
    """

    def __init__(
        self,
        bound: Runnable[Input, Output],
        seconds: float,
        *,
        stream_timeout: StreamTimeout = "first_chunk",
        setting: str = "timeout=...",
        name: str | None = None,
    ) -> None:
        super().__init__(bound, name=name)
        if seconds <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {seconds}")
        if stream_timeout not in ("first_chunk", "each_chunk", "total"):
            raise ConfigurationError(
                f"stream_timeout must be 'first_chunk', 'each_chunk' or 'total', "
                f"got {stream_timeout!r}"
            )
        self.seconds = seconds
        self.stream_timeout: StreamTimeout = stream_timeout
        self.setting = setting
        """What sets the limit, as the timeout error names it (e.g. ``WEFT_MODEL_TIMEOUT``)."""

    def _message(self, what: str = "finish") -> str:
        return (
            f"'{self.component}' did not {what} within its {self.seconds:g}s timeout; raise "
            f"the limit ({self.setting}) or make the call cheaper"
        )

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
        context = contextvars.copy_context()

        def work() -> None:
            try:
                box.put((True, context.run(self.bound.invoke, input, config, **kwargs)))
            except BaseException as exc:
                box.put((False, exc))

        worker = threading.Thread(target=work, name=f"weft-timeout:{self.component}", daemon=True)
        worker.start()
        try:
            ok, value = box.get(timeout=self.seconds)
        except queue.Empty:
            raise ComponentTimeoutError(self._message()) from None
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        result = await _within(
            self.bound.ainvoke(input, config, **kwargs), self.seconds, self._message()
        )
        return result  # type: ignore[no-any-return]

    def _limit(self, first: bool, deadline: float) -> float | None:
        if self.stream_timeout == "total":
            return deadline - time.monotonic()
        if self.stream_timeout == "first_chunk" and not first:
            return None
        return self.seconds

    def _stream_message(self, first: bool) -> str:
        if self.stream_timeout == "total":
            return self._message("finish streaming")
        return self._message("stream its first chunk" if first else "stream its next chunk")

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        chunks: queue.Queue[tuple[int, Any]] = queue.Queue()
        stop = threading.Event()
        context = contextvars.copy_context()

        def produce() -> None:
            try:
                for chunk in self.bound.stream(input, config, **kwargs):
                    chunks.put((_CHUNK, chunk))
                    if stop.is_set():
                        return
                chunks.put((_DONE, None))
            except BaseException as exc:
                chunks.put((_ERROR, exc))

        deadline = time.monotonic() + self.seconds
        worker = threading.Thread(
            target=context.run, args=(produce,), name=f"weft-timeout:{self.component}", daemon=True
        )
        worker.start()
        first = True
        try:
            while True:
                limit = self._limit(first, deadline)
                try:
                    if limit is not None and limit <= 0:
                        raise queue.Empty
                    kind, value = chunks.get(timeout=limit)
                except queue.Empty:
                    raise ComponentTimeoutError(self._stream_message(first)) from None
                if kind == _DONE:
                    return
                if kind == _ERROR:
                    raise value
                yield value
                first = first and not has_content(value)
        finally:
            # The producer stops at its next chunk; an abandoned or timed-out stream must not
            # keep pulling from the component.
            stop.set()

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        source = self.bound.astream(input, config, **kwargs)
        deadline = time.monotonic() + self.seconds
        first = True
        try:
            while True:
                limit = self._limit(first, deadline)
                try:
                    chunk = await _within(source.__anext__(), limit, self._stream_message(first))
                except StopAsyncIteration:
                    return
                yield chunk
                first = first and not has_content(chunk)
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()


def with_timeout(
    component: Runnable[Input, Output],
    seconds: float,
    *,
    stream_timeout: StreamTimeout = "first_chunk",
) -> TimeoutRunnable[Input, Output]:
    """Limit each call of ``component`` to ``seconds``; see :class:`TimeoutRunnable`."""
    return TimeoutRunnable(component, seconds, stream_timeout=stream_timeout)

"""Fallbacks: other components tried in order when one fails, until the caller has seen output."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import Input, Output

from weft.components._wrapper import RunnableWrapper
from weft.components.resilience._content import (
    FALLBACK_KEY,
    ContentGate,
    ContentWatch,
    RetryOn,
    matches,
)
from weft.core.errors import ConfigurationError

__all__ = ["FallbackRunnable", "is_fallback_answer", "with_fallback"]


def _marked(value: Any) -> Any:
    """``value`` marked as a fallback's answer, when it is a message."""
    if isinstance(value, BaseMessage):
        metadata = {**value.response_metadata, FALLBACK_KEY: True}
        return value.model_copy(update={"response_metadata": metadata})
    return value


def is_fallback_answer(message: Any) -> bool:
    """Whether ``message`` came from a fallback rather than the component it stands in for.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> is_fallback_answer(AIMessage("hi", response_metadata={FALLBACK_KEY: True}))
        True
    """
    metadata = getattr(message, "response_metadata", None)
    return isinstance(metadata, dict) and bool(metadata.get(FALLBACK_KEY))


class FallbackRunnable(RunnableWrapper[Input, Output]):
    """Runs ``bound``; when it fails, each of ``fallbacks`` in turn.

    Unlike langchain-core's ``with_fallbacks``, a stream falls back until its first chunk with
    content, not its first chunk: an OpenAI-compatible stream opens with a role-only chunk, and
    a stream that drops right after it has shown the caller nothing. Chunks without content are
    held back until content comes. After content a failure is raised as it is, since switching
    components would repeat or contradict what the caller has seen. A message that a fallback
    answers with carries ``response_metadata["weft_fallback"] = True`` (see
    :func:`is_fallback_answer`), so the caller can say the answer is a stand-in. When every
    component fails, the first one's error is raised.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> from langchain_core.runnables import RunnableLambda
        >>> def down(x: str) -> AIMessage:
        ...     raise ConnectionError("down")
        >>> def offline(x: str) -> AIMessage:
        ...     return AIMessage("a stand-in answer")
        >>> answer = FallbackRunnable(RunnableLambda(down), [RunnableLambda(offline)]).invoke("q")
        >>> answer.text, is_fallback_answer(answer)
        ('a stand-in answer', True)
    """

    def __init__(
        self,
        bound: Runnable[Input, Output],
        fallbacks: Sequence[Runnable[Input, Output]],
        *,
        exceptions: RetryOn = (Exception,),
        name: str | None = None,
    ) -> None:
        super().__init__(bound, name=name)
        if not fallbacks:
            raise ConfigurationError("with_fallback needs at least one fallback component")
        self.fallbacks = list(fallbacks)
        self.exceptions = exceptions

    @property
    def runnables(self) -> list[Runnable[Input, Output]]:
        """The component, then its fallbacks, in the order they are tried."""
        return [self.bound, *self.fallbacks]

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        tries, watch = _Tries(self), ContentWatch()
        config = watch.attach(config)
        for i, runnable in tries:
            try:
                out = runnable.invoke(input, config, **kwargs)
            except Exception as exc:
                tries.failed(exc, i, watch)
                continue
            return tries.out(i, [out])[0]  # type: ignore[no-any-return]
        raise AssertionError("unreachable: the last failure raises")  # pragma: no cover

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        tries, watch = _Tries(self), ContentWatch()
        config = watch.attach(config)
        for i, runnable in tries:
            try:
                out = await runnable.ainvoke(input, config, **kwargs)
            except Exception as exc:
                tries.failed(exc, i, watch)
                continue
            return tries.out(i, [out])[0]  # type: ignore[no-any-return]
        raise AssertionError("unreachable: the last failure raises")  # pragma: no cover

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        tries = _Tries(self)
        for i, runnable in tries:
            gate = ContentGate()
            try:
                for chunk in runnable.stream(input, config, **kwargs):
                    yield from tries.out(i, gate.feed(chunk))
                yield from tries.out(i, gate.end())
                return
            except Exception as exc:
                tries.failed(exc, i, gate)

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        tries = _Tries(self)
        for i, runnable in tries:
            gate = ContentGate()
            try:
                async for chunk in runnable.astream(input, config, **kwargs):
                    for ready in tries.out(i, gate.feed(chunk)):
                        yield ready
                for ready in tries.out(i, gate.end()):
                    yield ready
                return
            except Exception as exc:
                tries.failed(exc, i, gate)


class _Tries:
    """One call's way through a component and its fallbacks, shared by the four ways to call:
    which failures move on to the next, the error raised at the end, and marking output."""

    def __init__(self, owner: FallbackRunnable[Any, Any]) -> None:
        self.owner = owner
        self.first: Exception | None = None

    def __iter__(self) -> Iterator[tuple[int, Runnable[Any, Any]]]:
        return enumerate(self.owner.runnables)

    def failed(
        self, exc: Exception, i: int, gate: ContentGate | ContentWatch | None = None
    ) -> None:
        """Go on to the next, or raise: the error itself when it is not one to fall back on or
        it showed content (streamed, or through callbacks while invoked), the first error when
        nothing is left to try."""
        if (gate is not None and gate.opened) or not matches(self.owner.exceptions, exc):
            raise exc
        self.first = self.first or exc
        if i == len(self.owner.fallbacks):
            raise self.first

    @staticmethod
    def out(i: int, values: list[Any]) -> list[Any]:
        """``values`` as the caller gets them: marked when a fallback (not ``i == 0``) made them."""
        return [_marked(v) for v in values] if i else values


def with_fallback(
    component: Runnable[Input, Output],
    *fallbacks: Runnable[Input, Output],
    exceptions: RetryOn = (Exception,),
) -> FallbackRunnable[Input, Output]:
    """Try ``fallbacks`` in order when ``component`` raises one of ``exceptions`` (types or a
    predicate); see :class:`FallbackRunnable`.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def broken(x: str) -> str:
        ...     raise ConnectionError("down")
        >>> def cached_answer(x: str) -> str:
        ...     return "from fallback"
        >>> with_fallback(RunnableLambda(broken), RunnableLambda(cached_answer)).invoke("q")
        'from fallback'
    """
    return FallbackRunnable(component, fallbacks, exceptions=exceptions)

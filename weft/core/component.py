"""The component contract: a langchain-core Runnable whose input and output types are known.

langchain-core classes work as they are (chat models, retrievers, tools, prompt templates, any
Runnable with ``InputType``/``OutputType``). A plain Python function works as it is too, typed by
its annotations: sync, async, generator (streaming) or async generator. :func:`lambda_` is the
one way to make a typed component of a function by hand, to declare its types or name it; it
returns a :class:`TypedLambda`. Everything is inspected once, when the lambda is made, never per
call.

Example:
    >>> from weft.core.component import lambda_
    >>> shout = lambda_(lambda text: text.upper(), input_type=str, output_type=str)
    >>> shout.invoke("hi")
    'HI'
"""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import inspect
import typing
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from langchain_core.language_models import BaseChatModel, BaseLanguageModel
from langchain_core.messages import AIMessage, BaseMessageChunk, message_chunk_to_message
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import BasePromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnableWithFallbacks
from langchain_core.runnables.base import RunnableBindingBase
from langchain_core.runnables.config import run_in_executor
from langchain_core.tools import BaseTool

from weft.core.errors import ComponentTypeError
from weft.core.stream import concat_chunks
from weft.core.types import Document, MessagesInput, typed_dict

__all__ = [
    "ComponentKind",
    "ComponentSpec",
    "TypedLambda",
    "lambda_",
    "prompt_input_type",
]

ComponentKind = Literal[
    "lambda", "chat_model", "retriever", "tool", "prompt", "graph", "passthrough", "runnable"
]

_LambdaMode = Literal["sync", "async", "gen", "agen"]


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__qualname__", repr(fn))
    return f"{getattr(fn, '__qualname__', fn.__name__)} ({code.co_filename}:{code.co_firstlineno})"


def _chunk_type(tp: Any, mode: _LambdaMode) -> Any:
    """The element type of ``Iterator[T]``/``AsyncIterator[T]``/``Generator[T, ...]``."""
    if mode not in ("gen", "agen"):
        return tp
    origin = get_origin(tp)
    if origin in (
        cabc.Iterator,
        cabc.Iterable,
        cabc.Generator,
        cabc.AsyncIterator,
        cabc.AsyncIterable,
        cabc.AsyncGenerator,
    ):
        args = get_args(tp)
        return args[0] if args else Any
    return Any


class TypedLambda(Runnable[Any, Any]):
    """A Python function as a typed component: what :func:`lambda_` returns.

    Make one with :func:`lambda_`; the class is public for ``isinstance`` checks and type
    annotations. The first parameter is the input. A parameter named ``config`` receives the
    ``RunnableConfig``; one named ``state`` receives the graph's shared state. A generator
    function streams: its chunks are yielded as they come and its output is their concatenation.

    Example:
        >>> def words(text: str) -> Iterator[str]:
        ...     for w in text.split():
        ...         yield w + " "
        >>> lambda_(words).invoke("a b")
        'a b '
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        input_type: Any = None,
        output_type: Any = None,
        name: str | None = None,
    ) -> None:
        if not callable(fn):
            raise ComponentTypeError(f"expected a function, got {type(fn).__name__}: {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        if self.name == "<lambda>":
            self.name = "lambda"
        target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn).__call__
        if inspect.isasyncgenfunction(target):
            self.mode: _LambdaMode = "agen"
        elif inspect.isgeneratorfunction(target):
            self.mode = "gen"
        elif inspect.iscoroutinefunction(target):
            self.mode = "async"
        else:
            self.mode = "sync"
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError) as exc:
            raise ComponentTypeError(
                f"cannot read the signature of {_where(fn)}; wrap it in a def with annotations"
            ) from exc
        positional = [
            p
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name not in ("config", "state")
        ]
        names = {p.name for p in params}
        self.accepts_config = "config" in names
        self.accepts_state = "state" in names
        if not positional:
            raise ComponentTypeError(
                f"{_where(fn)} takes no input parameter; a component takes its input as its first "
                f"parameter, e.g. def {self.name}(value: str) -> str"
            )
        self._input_param = positional[0].name
        hints = self._hints(fn)
        if input_type is None:
            input_type = hints.get(self._input_param)
            if input_type is None:
                raise ComponentTypeError(
                    f"{_where(fn)} has no type annotation for its input '{self._input_param}'; "
                    f"annotate it (def {self.name}({self._input_param}: str) -> str) or declare "
                    f"the types: weft.lambda_(fn, input_type=..., output_type=...)"
                )
        if output_type is None:
            if "return" not in hints:
                raise ComponentTypeError(
                    f"{_where(fn)} has no return annotation; annotate it "
                    f"(def {self.name}(...) -> str, or -> Iterator[str] for a generator) or "
                    f"declare the types: weft.lambda_(fn, input_type=..., output_type=...)"
                )
            output_type = _chunk_type(hints["return"], self.mode)
        self.input_type: Any = input_type
        self.output_type: Any = output_type

    def _hints(self, fn: Callable[..., Any]) -> dict[str, Any]:
        target = fn if inspect.isfunction(fn) or inspect.ismethod(fn) else type(fn).__call__
        try:
            return typing.get_type_hints(target, include_extras=True)
        except Exception as exc:
            raise ComponentTypeError(
                f"cannot resolve the type annotations of {_where(fn)}: {exc}; make the annotated "
                f"types importable at module level or declare them with "
                f"weft.lambda_(fn, input_type=..., output_type=...)"
            ) from exc

    @property
    def InputType(self) -> Any:
        return self.input_type

    @property
    def OutputType(self) -> Any:
        return self.output_type

    @property
    def streams(self) -> bool:
        """Whether this lambda yields chunks (a generator or async generator)."""
        return self.mode in ("gen", "agen")

    def _kwargs(self, config: RunnableConfig | None, state: Any) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.accepts_config:
            kw["config"] = config
        if self.accepts_state:
            kw["state"] = state
        return kw

    # The call_* methods are the fast path the graph compiler uses: no tracing of their own,
    # since the graph node around them is already a traced run.

    def call(self, value: Any, config: RunnableConfig | None = None, state: Any = None) -> Any:
        kw = self._kwargs(config, state) if self.accepts_config or self.accepts_state else {}
        if self.mode == "sync":
            return self.fn(value, **kw)
        if self.mode == "gen":
            return concat_chunks(list(self.fn(value, **kw)))
        if self.mode == "async":
            return _run_coroutine(self.fn(value, **kw))
        return _run_coroutine(_collect(self.fn(value, **kw)))

    async def acall(
        self, value: Any, config: RunnableConfig | None = None, state: Any = None
    ) -> Any:
        kw = self._kwargs(config, state)
        if self.mode == "async":
            return await self.fn(value, **kw)
        if self.mode == "agen":
            return await _collect(self.fn(value, **kw))
        return await run_in_executor(config, self.call, value, config, state)

    def call_stream(
        self, value: Any, config: RunnableConfig | None = None, state: Any = None
    ) -> Iterator[Any]:
        if self.mode == "gen":
            yield from self.fn(value, **self._kwargs(config, state))
        elif self.mode == "agen":
            yield from _run_coroutine(_collect_list(self.fn(value, **self._kwargs(config, state))))
        else:
            yield self.call(value, config, state)

    async def acall_stream(
        self, value: Any, config: RunnableConfig | None = None, state: Any = None
    ) -> AsyncIterator[Any]:
        if self.mode == "agen":
            async for chunk in self.fn(value, **self._kwargs(config, state)):
                yield chunk
        elif self.mode == "gen":
            iterator = iter(self.fn(value, **self._kwargs(config, state)))
            done = object()
            while (chunk := await run_in_executor(config, next, iterator, done)) is not done:
                yield chunk
        else:
            yield await self.acall(value, config, state)

    # Runnable interface, traced through langchain-core callbacks.

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(
            lambda x, config: self.call(x, config), input, config, run_type="chain"
        )

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self._acall_with_config(
            lambda x, config: self.acall(x, config), input, config, run_type="chain"
        )

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        yield from self._transform_stream_with_config(
            iter([input]),
            lambda xs, config: self.call_stream(next(xs), config),
            config,
        )

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async def gen(
            xs: AsyncIterator[Any], run_manager: Any, config: RunnableConfig
        ) -> AsyncIterator[Any]:
            async for x in xs:
                async for chunk in self.acall_stream(x, config):
                    yield chunk

        async for chunk in self._atransform_stream_with_config(one(), gen, config):
            yield chunk

    def __repr__(self) -> str:
        return f"TypedLambda({self.name}: {self.input_type!r} -> {self.output_type!r})"


async def _collect(agen: AsyncIterator[Any]) -> Any:
    return concat_chunks([c async for c in agen])


async def _collect_list(agen: AsyncIterator[Any]) -> list[Any]:
    return [c async for c in agen]


def _run_coroutine(coro: cabc.Coroutine[Any, Any, Any]) -> Any:
    """Run an async lambda from sync code: in this thread if no loop runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise ComponentTypeError(
        "an async component was called synchronously from inside a running event loop; "
        "use the async API (ainvoke/astream/abatch)"
    )


def lambda_(
    fn: Callable[..., Any],
    *,
    input_type: Any = None,
    output_type: Any = None,
    name: str | None = None,
) -> TypedLambda:
    """Make a typed component of a function, typed by its annotations or by explicit types.

    This is the one way to wrap a function by hand; a function passed to ``add_node`` or
    ``Chain.then`` as it is gets wrapped the same way.

    Args:
        fn: A sync, async, generator or async generator function. Its first parameter is the
            input; parameters named ``config`` and ``state`` get the run's config and the
            graph's shared state.
        input_type: The input type, when the first parameter is not annotated (or to override).
        output_type: The output type (a generator's item type), when the return is not
            annotated (or to override).
        name: The component's name (defaults to the function's).

    Raises:
        ComponentTypeError: ``fn`` is not callable, takes no input, or lacks annotations that
            are not declared here.

    Example:
        >>> lambda_(len, input_type=str, output_type=int).invoke("abc")
        3
    """
    return TypedLambda(fn, input_type=input_type, output_type=output_type, name=name)


def prompt_input_type(template: BasePromptTemplate[Any]) -> Any:
    """A TypedDict of the variables a prompt template needs, so missing ones fail at compile."""
    optional = set(getattr(template, "optional_variables", ()) or ())
    partial = set(template.partial_variables or {})
    required = [v for v in template.input_variables if v not in optional and v not in partial]
    name = (template.get_name() or "Prompt") + "Input"
    return typed_dict(name, dict.fromkeys(required, Any))


@dataclass(frozen=True)
class ComponentSpec:
    """What the compiler knows of a component, resolved once at build time."""

    component: Any
    kind: ComponentKind
    name: str
    input_type: Any
    output_type: Any

    @property
    def type_label(self) -> str:
        """``kind:ClassName``, as shown in errors and callbacks."""
        return f"{self.kind}:{type(self.component).__name__}"


def _unwrap(runnable: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """The component inside bindings, retries, fallbacks and weft's wrappers (timeouts,
    breakers, limits, caches: each marks itself ``__weft_wrapper__``)."""
    while True:
        if isinstance(runnable, RunnableBindingBase) or getattr(
            runnable, "__weft_wrapper__", False
        ):
            runnable = runnable.bound  # type: ignore[attr-defined]
        elif isinstance(runnable, RunnableWithFallbacks):
            runnable = runnable.runnable
        else:
            return runnable


def _runnable_types(runnable: Runnable[Any, Any]) -> tuple[Any, Any]:
    try:
        in_t = runnable.InputType
    except Exception:
        in_t = Any
    try:
        out_t = runnable.OutputType
    except Exception:
        out_t = Any
    return in_t, out_t


def spec_of(component: Any, *, input_type: Any = None, output_type: Any = None) -> ComponentSpec:
    """Resolve anything usable as a node into a :class:`ComponentSpec` (what ``add_node`` does).

    Raises:
        ComponentTypeError: the object is not a Runnable or a function, or a function lacks
            annotations and no explicit types are given.
    """
    if getattr(component, "__weft_graph__", False):
        kind: ComponentKind = "graph"
        in_t, out_t = component.input_type, component.output_type
        name = str(component.name)
    elif isinstance(component, TypedLambda):
        kind, in_t, out_t = "lambda", component.input_type, component.output_type
        name = str(component.name)
    elif isinstance(component, Runnable):
        inner = _unwrap(component)
        name = component.get_name()
        in_t, out_t = _runnable_types(component)
        if isinstance(inner, BaseChatModel):
            # Bindings, retries and fallbacks keep the model's own input and output.
            kind, in_t, out_t = "chat_model", MessagesInput, AIMessage
        elif isinstance(inner, BaseLanguageModel):
            kind, in_t = "chat_model", MessagesInput
        elif isinstance(inner, BaseRetriever):
            kind, in_t, out_t = "retriever", str, list[Document]
        elif isinstance(inner, BaseTool):
            kind = "tool"
        elif isinstance(inner, BasePromptTemplate):
            kind, in_t, out_t = "prompt", prompt_input_type(inner), PromptValue
        elif isinstance(inner, TypedLambda):
            kind, in_t, out_t = "lambda", inner.input_type, inner.output_type
        else:
            kind = "runnable"
    elif callable(component):
        lam = TypedLambda(component, input_type=input_type, output_type=output_type)
        return ComponentSpec(lam, "lambda", str(lam.name), lam.input_type, lam.output_type)
    else:
        raise ComponentTypeError(
            f"{component!r} is not a component; pass a langchain-core Runnable, a compiled weft "
            f"graph, or a function with type annotations"
        )
    if input_type is not None:
        in_t = input_type
    if output_type is not None:
        out_t = output_type
    return ComponentSpec(component, kind, name, in_t, out_t)


def as_component(
    component: Any, *, input_type: Any = None, output_type: Any = None
) -> ComponentSpec:
    """Deprecated: pass the component to ``add_node`` as it is, or wrap a function with
    :func:`lambda_`. Kept so old code runs; it warns and resolves as :func:`spec_of` does."""
    warnings.warn(
        "weft.as_component is deprecated and will be removed: pass the component to add_node "
        "as it is, or make a typed component of a function with weft.lambda_(fn, ...)",
        DeprecationWarning,
        stacklevel=2,
    )
    return spec_of(component, input_type=input_type, output_type=output_type)


def to_message(value: Any) -> Any:
    """Turn a concatenated message chunk into its message (``AIMessageChunk`` → ``AIMessage``)."""
    if isinstance(value, BaseMessageChunk):
        return message_chunk_to_message(value)
    return value

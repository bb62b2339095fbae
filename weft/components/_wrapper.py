"""The base every weft wrapper (cache, retry, timeout, breaker, limits) builds on.

A wrapper must be invisible to the graph compiler: it reports the wrapped component's input and
output types, schemas and config specs, so an edge into a cached or rate-limited component is
checked exactly like an edge into the component itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.prompts import BasePromptTemplate
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.utils import ConfigurableFieldSpec, Input, Output
from langchain_core.utils.pydantic import TypeBaseModel

from weft.core.component import prompt_input_type
from weft.core.errors import ComponentTypeError

__all__ = ["RunnableWrapper", "component_name", "unwrap"]


def unwrap(runnable: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """The innermost component under weft wrappers and langchain bindings."""
    while True:
        if isinstance(runnable, (RunnableWrapper, RunnableBinding)):
            runnable = runnable.bound
        else:
            return runnable


def component_name(runnable: Runnable[Any, Any]) -> str:
    """The name used in error messages: the innermost component's name."""
    inner = unwrap(runnable)
    try:
        return inner.get_name()
    except Exception:
        return type(inner).__name__


class RunnableWrapper(Runnable[Input, Output]):
    """A Runnable that wraps another and keeps its types.

    Subclasses override ``invoke``/``ainvoke`` and, where they add something to streaming,
    ``stream``/``astream``. The defaults here pass everything straight through.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> w = RunnableWrapper(RunnableLambda(lambda x: 2 * x).with_types(input_type=int))
        >>> w.invoke(2), w.InputType
        (4, <class 'int'>)
    """

    __weft_wrapper__ = True
    """Tells the compiler (which may not import components) to look at ``bound`` for the kind
    and types of component this is."""

    def __init__(self, bound: Runnable[Input, Output], *, name: str | None = None) -> None:
        if not isinstance(bound, Runnable):
            raise ComponentTypeError(
                f"{type(self).__name__} wraps a langchain-core Runnable, got "
                f"{type(bound).__name__}: {bound!r}; wrap a function first with "
                f"RunnableLambda(fn) or weft.lambda_(fn)"
            )
        self.bound: Runnable[Input, Output] = bound
        self.name = name

    @property
    def component(self) -> str:
        """The wrapped component's name, as error messages show it."""
        return component_name(self.bound)

    @property
    def InputType(self) -> Any:
        inner = unwrap(self.bound)
        # A prompt template reports dict[str, Any]; the compiler needs its variables to check
        # that an edge provides them, so report the same TypedDict the compiler builds.
        if isinstance(inner, BasePromptTemplate):
            return prompt_input_type(inner)
        return self.bound.InputType

    @property
    def OutputType(self) -> Any:
        return self.bound.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        return self.bound.get_input_schema(config)

    def get_output_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        return self.bound.get_output_schema(config)

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        return self.bound.config_specs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.bound!r})"

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        return self.bound.invoke(input, config, **kwargs)

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        return await self.bound.ainvoke(input, config, **kwargs)

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        yield from self.bound.stream(input, config, **kwargs)

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        async for chunk in self.bound.astream(input, config, **kwargs):
            yield chunk

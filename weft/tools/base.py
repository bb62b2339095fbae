"""A tool from a typed function: its argument schema comes from the signature and the docstring.

:func:`tool` (or :meth:`Tool.from_function`) reads the parameters' annotations and defaults, and
the Google-style docstring: its first paragraph describes the tool, its ``Args:`` section
describes each argument. The schema is a pydantic model, so a model's arguments are validated
before the function runs. The result is a langchain-core ``StructuredTool``: it works in
LangChain and LangGraph, and any LangChain tool works where weft takes a tool.

Example:
    >>> @tool
    ... def add(a: int, b: int = 0) -> int:
    ...     '''Add two whole numbers.
    ...
    ...     Args:
    ...         a: The first number.
    ...         b: The second number.
    ...     '''
    ...     return a + b
    >>> add.invoke({"a": 2, "b": 3})
    5
    >>> add.args["a"]["description"]
    'The first number.'
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any, overload

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field, PrivateAttr, create_model

from weft.core.component import _run_coroutine
from weft.core.errors import ComponentTypeError
from weft.core.types import typed_dict

__all__ = ["Tool", "parse_docstring", "tool"]

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Examples?|Notes?):\s*$")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
# Parameters LangChain fills in itself rather than the model.
_SKIPPED = ("callbacks", "run_manager")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and its argument descriptions.

    Example:
        >>> parse_docstring('''Look up a word.
        ...
        ... Args:
        ...     word (str): The word to
        ...         look up.
        ... ''')
        ('Look up a word.', {'word': 'The word to look up.'})
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    arg_indent = -1
    for raw in lines:
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        header = _SECTION.match(line)
        if header and indent == 0:
            section, current, arg_indent = header.group(1), None, -1
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters") and line:
            match = _ARG_LINE.match(line)
            if match and (arg_indent < 0 or indent == arg_indent):
                arg_indent = indent
                current = match.group(1).lstrip("*")
                args[current] = match.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line}".strip()
    description = "\n".join(summary).strip()
    return re.sub(r"\n{3,}", "\n\n", description), args


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    return f"{name} ({code.co_filename}:{code.co_firstlineno})" if code else str(name)


def _schema(
    fn: Callable[..., Any], name: str, arg_docs: dict[str, str]
) -> tuple[type[BaseModel], Any]:
    """The pydantic model of ``fn``'s arguments, and its return type."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise ComponentTypeError(
            f"cannot resolve the type annotations of {_where(fn)}: {exc}; make the annotated "
            f"types importable at module level"
        ) from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        # LangChain fills in a parameter annotated exactly RunnableConfig with the run's config.
        if param.name in _SKIPPED or hints.get(param.name) is RunnableConfig:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ComponentTypeError(
                f"{_where(fn)} takes *{param.name}; a tool's arguments must be named, so list "
                f"them as parameters"
            )
        if param.name not in hints:
            raise ComponentTypeError(
                f"{_where(fn)}: parameter '{param.name}' has no type annotation; annotate it "
                f"(e.g. {param.name}: str) so the model knows what to send"
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            hints[param.name],
            Field(default, description=arg_docs.get(param.name)),
        )
    unknown = sorted(set(arg_docs) - set(fields))
    if unknown:
        raise ComponentTypeError(
            f"{_where(fn)}: the docstring's Args section describes {', '.join(unknown)}, which "
            f"the function does not take; arguments: {', '.join(fields) or '(none)'}"
        )
    model: type[BaseModel] = create_model(name, **fields)
    return model, hints.get("return", Any)


class Tool(StructuredTool):
    """A langchain-core ``StructuredTool`` made from a typed function, sync or async.

    Use :func:`tool` or :meth:`from_function` to make one. An async function also runs from
    sync code (``invoke``) when no event loop runs in the calling thread; a sync one runs in a
    worker thread under ``ainvoke``.

    In a weft graph its input type is a TypedDict of its arguments and its output type is the
    function's return type, so an edge that cannot supply the arguments fails at compile.
    """

    _return_type: Any = PrivateAttr(default=Any)

    @classmethod
    def from_function(  # type: ignore[override]
        cls,
        func: Callable[..., Any],
        name: str | None = None,
        description: str | None = None,
        return_direct: bool = False,
        **kwargs: Any,
    ) -> Tool:
        """Make a tool from ``func``: a sync or async function with annotated parameters.

        Args:
            func: The function. Its Google-style docstring describes the tool and its arguments.
            name: The tool's name; defaults to the function's name.
            description: Overrides the docstring's description.
            return_direct: Whether an agent should stop after this tool and return its result.
            **kwargs: Passed to ``StructuredTool`` (``response_format``, ``handle_tool_error``,
                ``coroutine``: an async twin of a sync ``func``, used by ``ainvoke``).

        Raises:
            ComponentTypeError: a parameter lacks an annotation, the docstring describes an
                argument the function does not take, or there is no description at all.
        """
        if not callable(func):
            raise ComponentTypeError(f"a tool needs a function, got {type(func).__name__}")
        tool_name = name or getattr(func, "__name__", None) or type(func).__name__
        summary, arg_docs = parse_docstring(inspect.getdoc(func))
        description = description or summary
        if not description:
            raise ComponentTypeError(
                f"{_where(func)} has no docstring; the model reads a tool's description to "
                f"choose it, so write one or pass description=..."
            )
        args_schema, return_type = _schema(func, tool_name, arg_docs)
        twin = kwargs.pop("coroutine", None)
        is_async = inspect.iscoroutinefunction(func)
        made = cls(
            name=tool_name,
            description=description,
            args_schema=args_schema,
            func=None if is_async else func,
            coroutine=func if is_async else twin,
            return_direct=return_direct,
            **kwargs,
        )
        if made.response_format == "content_and_artifact":
            # Called with plain arguments, such a tool returns only the content.
            parts = typing.get_args(return_type)
            return_type = parts[0] if parts else Any
        made._return_type = return_type
        return made

    @property
    def InputType(self) -> Any:
        schema = self.args_schema
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            fields = {n: f.annotation for n, f in schema.model_fields.items() if f.is_required()}
            return typed_dict(f"{self.name}_args", fields)
        return super().InputType

    @property
    def OutputType(self) -> Any:
        return self._return_type

    def _run(
        self,
        *args: Any,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        if self.func is None and self.coroutine is not None:
            return _run_coroutine(self._arun(*args, config=config, **kwargs))
        return super()._run(*args, config=config, run_manager=run_manager, **kwargs)


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, return_direct: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    return_direct: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` from a function: ``@tool`` or ``@tool(name=..., description=...)``.

    Example:
        >>> @tool(name="shout")
        ... async def upper(text: str) -> str:
        ...     '''Shout the text.'''
        ...     return text.upper()
        >>> upper.invoke({"text": "hi"})
        'HI'
    """

    def make(fn: Callable[..., Any]) -> Tool:
        return Tool.from_function(
            fn, name=name, description=description, return_direct=return_direct
        )

    return make(func) if func is not None else make

"""Message and document types, and the type checks the graph compiler runs on edges.

weft uses langchain-core's records as they are (``Document``, ``BaseMessage`` and friends) so any
LangChain component plugs in. :func:`is_assignable` answers "can a value of type ``src`` flow
into a parameter of type ``dst``?" for the types that appear on edges: builtins, generics
(``list[Document]``, ``dict[str, int]``), ``Optional``/``Union``, ``Literal``, pydantic models,
TypedDicts (structurally) and ``Any``.

Example:
    >>> from weft.core.types import is_assignable, Document
    >>> is_assignable(list[Document], list[Document] | None)
    True
    >>> is_assignable(list[Document], list[str])
    False
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompt_values import PromptValue
from typing_extensions import TypedDict, is_typeddict

__all__ = [
    "AIMessage",
    "AIMessageChunk",
    "BaseMessage",
    "Document",
    "HumanMessage",
    "MessagesInput",
    "PromptValue",
    "SystemMessage",
    "ToolMessage",
    "is_assignable",
    "missing_typeddict_keys",
    "type_name",
    "typed_dict",
]

MessagesInput = Union[PromptValue, str, cabc.Sequence[BaseMessage]]  # noqa: UP007
"""What a chat model node takes: a prompt value, a string, or a list of messages."""

_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)
_NONE = type(None)

# Abstract containers a concrete builtin satisfies, keyed by the builtin.
_ABC_OF: dict[type, tuple[type, ...]] = {
    list: (cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection, cabc.Sized),
    tuple: (cabc.Sequence, cabc.Iterable, cabc.Collection),
    dict: (cabc.Mapping, cabc.MutableMapping, cabc.Iterable, cabc.Collection),
    set: (cabc.Set, cabc.MutableSet, cabc.Iterable, cabc.Collection),
    frozenset: (cabc.Set, cabc.Iterable, cabc.Collection),
    str: (cabc.Sequence, cabc.Iterable, cabc.Collection),
}


def _strip(tp: Any) -> Any:
    """Remove ``Annotated`` and resolve ``NewType`` and type aliases to what they stand for."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif hasattr(tp, "__supertype__"):
            tp = tp.__supertype__
        elif isinstance(tp, typing.TypeAliasType if hasattr(typing, "TypeAliasType") else ()):
            tp = tp.__value__
        else:
            return tp


def _is_any(tp: Any) -> bool:
    return tp is Any or tp is object or isinstance(tp, typing.TypeVar)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in _UNION_TYPES


def is_assignable(src: Any, dst: Any) -> bool:
    """Return whether a value of type ``src`` may be passed where ``dst`` is expected.

    The check is permissive where Python's runtime types cannot decide (``Any``, type
    variables, unparameterised generics, protocols) and strict where a mismatch is certain.
    """
    src, dst = _strip(src), _strip(dst)
    if _is_any(dst) or _is_any(src) or src == dst:
        return True
    if src is None:
        src = _NONE
    if dst is None:
        dst = _NONE
    if _is_union(src):
        return all(is_assignable(s, dst) for s in get_args(src))
    if _is_union(dst):
        return any(is_assignable(src, d) for d in get_args(dst))
    if get_origin(src) is Literal:
        values = get_args(src)
        if get_origin(dst) is Literal:
            return set(values) <= set(get_args(dst))
        return all(is_assignable(type(v), dst) for v in values)
    if get_origin(dst) is Literal:
        return False
    if is_typeddict(dst):
        return _typeddict_assignable(src, dst)
    if is_typeddict(src):
        src = dict[str, Any]
    return _generic_assignable(src, dst)


def missing_typeddict_keys(src: Any, dst: Any) -> list[str]:
    """Required keys of the TypedDict ``dst`` that the TypedDict ``src`` does not provide."""
    src, dst = _strip(src), _strip(dst)
    if not (is_typeddict(src) and is_typeddict(dst)):
        return []
    have = set(typing.get_type_hints(src))
    return sorted(k for k in getattr(dst, "__required_keys__", ()) if k not in have)


def _typeddict_assignable(src: Any, dst: Any) -> bool:
    if is_typeddict(src):
        if missing_typeddict_keys(src, dst):
            return False
        src_hints = typing.get_type_hints(src)
        dst_hints = typing.get_type_hints(dst)
        return all(is_assignable(src_hints[k], t) for k, t in dst_hints.items() if k in src_hints)
    # A plain mapping may hold the keys; only its value type can be checked.
    origin = get_origin(src) or src
    if isinstance(origin, type) and issubclass(origin, cabc.Mapping):
        args = get_args(src)
        if len(args) == 2:
            return all(is_assignable(args[1], t) for t in typing.get_type_hints(dst).values())
        return True
    return False


def _issubclass(a: Any, b: Any) -> bool:
    try:
        return issubclass(a, b)
    except TypeError:
        # Protocols without runtime_checkable and other special forms: cannot decide.
        return True


def _generic_assignable(src: Any, dst: Any) -> bool:
    s_origin, d_origin = get_origin(src) or src, get_origin(dst) or dst
    if s_origin is _NONE or d_origin is _NONE:
        return s_origin is d_origin
    if not isinstance(s_origin, type) or not isinstance(d_origin, type):
        return True
    if not (_issubclass(s_origin, d_origin) or d_origin in _ABC_OF.get(s_origin, ())):
        return False
    d_args, s_args = get_args(dst), get_args(src)
    if not d_args or not s_args:
        return True
    if s_origin is str:
        # str is a Sequence[str]
        return all(is_assignable(str, a) for a in d_args)
    if issubclass(d_origin, cabc.Mapping) or issubclass(s_origin, cabc.Mapping):
        return len(s_args) == len(d_args) == 2 and all(map(is_assignable, s_args, d_args))
    if d_origin is tuple and s_origin is tuple:
        if len(d_args) == 2 and d_args[1] is Ellipsis:
            return all(is_assignable(a, d_args[0]) for a in s_args if a is not Ellipsis)
        if len(s_args) == 2 and s_args[1] is Ellipsis:
            return False
        return len(s_args) == len(d_args) and all(map(is_assignable, s_args, d_args))
    if s_origin is tuple:
        # tuple[int, str] into Sequence[int | str]: every element must fit
        return all(is_assignable(a, d_args[0]) for a in s_args if a is not Ellipsis)
    return is_assignable(s_args[0], d_args[0])


def type_name(tp: Any) -> str:
    """A short, readable name for a type, as it appears in compile errors.

    Example:
        >>> type_name(list[Document] | None)
        'list[Document] | None'
    """
    tp = _strip(tp)
    if tp is Any:
        return "Any"
    if tp is None or tp is _NONE:
        return "None"
    if _is_union(tp):
        return " | ".join(type_name(a) for a in get_args(tp))
    origin = get_origin(tp)
    if origin is Literal:
        return "Literal[" + ", ".join(repr(a) for a in get_args(tp)) + "]"
    if origin is not None:
        args = get_args(tp)
        base = getattr(origin, "__name__", str(origin))
        if not args:
            return str(base)
        return f"{base}[{', '.join('...' if a is Ellipsis else type_name(a) for a in args)}]"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def typed_dict(name: str, fields: dict[str, Any]) -> Any:
    """Make a TypedDict class at run time, e.g. for a prompt's variables or a parallel step.

    Example:
        >>> typed_dict("QA", {"question": str}).__required_keys__
        frozenset({'question'})
    """
    factory: Any = TypedDict
    return factory(name, fields)

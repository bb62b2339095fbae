"""Stable, process-independent descriptions of components and inputs, for cache keys.

A cache key must be equal for equal calls in any process (so the disk level is shared across
runs) and different whenever the output could differ. ``describe`` turns a value into plain JSON
data: langchain ``Serializable`` objects through their ``to_json()`` constructor form, pydantic
models and dataclasses field by field, functions by their code, defaults and closure, and other
objects by their public attributes. Memory addresses are stripped from any ``repr`` it falls
back to. ``digest`` hashes that data with sha256.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import re
import types
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.load.serializable import Serializable
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel, SecretBytes, SecretStr

__all__ = ["Uncacheable", "describe", "digest"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 12

# Fields of a Runnable that never change what it returns, and often hold clients, handlers or
# caches whose state would make the key differ between two identical components. Only skipped
# on Runnables: a document's metadata or a message's name is part of the input.
_SKIP_FIELDS = frozenset(
    {
        "async_client",
        "cache",
        "callback_manager",
        "callbacks",
        "client",
        "http_async_client",
        "http_client",
        "metadata",
        "name",
        "rate_limiter",
        "root_async_client",
        "root_client",
        "tags",
        "verbose",
    }
)


def _skipped(value: Any) -> frozenset[str]:
    return _SKIP_FIELDS if isinstance(value, Runnable) else frozenset()


class Uncacheable(TypeError):
    """A value has no stable description (only a ``repr``), so it cannot be part of a key."""


def digest(data: Any) -> str:
    """sha256 of the canonical JSON form of ``data`` (already the output of ``describe``)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def describe(value: Any, *, strict: bool = False) -> Any:
    """Plain JSON data that identifies ``value``.

    With ``strict=True`` a value that could only be described by its ``repr`` raises
    :class:`Uncacheable`: two different objects may share a repr, and a wrong cache hit is
    worse than a miss.
    """
    return _Describer(strict).run(value, 0)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _code_digest(code: types.CodeType) -> str:
    h = hashlib.sha256()
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            h.update(_code_digest(const).encode())
        else:
            h.update(_ADDRESS.sub("", repr(const)).encode())
    return h.hexdigest()


class _Describer:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.active: set[int] = set()

    def repr_of(self, value: Any) -> Any:
        if self.strict:
            raise Uncacheable(
                f"cannot build a stable cache key for a {type(value).__name__}; pass str, "
                f"numbers, dict, list, pydantic models, dataclasses or langchain messages and "
                f"documents"
            )
        try:
            text = repr(value)
        except Exception:
            text = type(value).__name__
        return {"!repr": _qualname(type(value)), "text": _ADDRESS.sub("", text)}

    def run(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"!float": repr(value)}
        if isinstance(value, (bytes, bytearray)):
            return {"!bytes": hashlib.sha256(bytes(value)).hexdigest()}
        if isinstance(value, enum.Enum):
            return {"!enum": _qualname(type(value)), "value": self.run(value.value, depth + 1)}
        if isinstance(value, (SecretStr, SecretBytes)):
            return "!secret"
        if isinstance(value, (BaseCallbackHandler, BaseCallbackManager)):
            return "!callbacks"
        if isinstance(value, type):
            return {"!type": _qualname(value)}
        if depth > _MAX_DEPTH:
            return self.repr_of(value)
        if id(value) in self.active:
            return "!cycle"
        self.active.add(id(value))
        try:
            return self.compound(value, depth + 1)
        finally:
            self.active.discard(id(value))

    def compound(self, value: Any, depth: int) -> Any:
        if isinstance(value, list):
            return [self.run(v, depth) for v in value]
        if isinstance(value, tuple):
            return {"!tuple": [self.run(v, depth) for v in value]}
        if isinstance(value, (set, frozenset)):
            items = [self.run(v, depth) for v in value]
            return {"!set": sorted(items, key=digest)}
        if isinstance(value, Mapping):
            pairs = [[self.run(k, depth), self.run(v, depth)] for k, v in value.items()]
            return {"!dict": sorted(pairs, key=lambda kv: digest(kv[0]))}
        if isinstance(value, Serializable) and value.is_lc_serializable():
            return self.serializable(value, depth)
        if isinstance(value, BaseModel):
            fields = {
                name: self.run(getattr(value, name, None), depth)
                for name, info in type(value).model_fields.items()
                if not info.exclude and name not in _skipped(value)
            }
            return {"!model": _qualname(type(value)), "fields": fields}
        if dataclasses.is_dataclass(value):
            fields = {
                f.name: self.run(getattr(value, f.name, None), depth)
                for f in dataclasses.fields(value)
            }
            return {"!dataclass": _qualname(type(value)), "fields": fields}
        if isinstance(value, functools.partial):
            return {
                "!partial": self.run(value.func, depth),
                "args": self.run(value.args, depth),
                "keywords": self.run(value.keywords, depth),
            }
        if isinstance(value, types.MethodType):
            return {
                "!method": self.run(value.__func__, depth),
                "self": self.run(value.__self__, depth),
            }
        if isinstance(value, types.FunctionType):
            return self.function(value, depth)
        if isinstance(value, (types.BuiltinFunctionType, types.ModuleType)):
            return {"!builtin": _qualname(value)}
        attrs = getattr(value, "__dict__", None)
        if isinstance(attrs, dict):
            public = {
                k: self.run(v, depth)
                for k, v in attrs.items()
                if not k.startswith("_") and k not in _skipped(value)
            }
            if public or not attrs:
                return {"!object": _qualname(type(value)), "attrs": public}
        return self.repr_of(value)

    def serializable(self, value: Serializable, depth: int) -> Any:
        data = value.to_json()
        if data.get("type") != "constructor":
            return self.repr_of(value)
        kwargs: dict[str, Any] = dict(data.get("kwargs") or {})  # type: ignore[call-overload]
        for name in _skipped(value):
            kwargs.pop(name, None)
        if isinstance(value, BaseMessage):
            # Message ids are random per run (AI replies get "run-<uuid>") and never change what
            # a component does with the message; keeping them would make every chat history miss.
            kwargs.pop("id", None)
        return {"!lc": list(data["id"]), "kwargs": self.run(kwargs, depth)}

    def function(self, fn: types.FunctionType, depth: int) -> Any:
        closure = []
        for cell in fn.__closure__ or ():
            try:
                closure.append(self.run(cell.cell_contents, depth))
            except ValueError:  # an empty cell: the variable is not bound yet
                closure.append("!empty")
        return {
            "!function": _qualname(fn),
            "code": _code_digest(fn.__code__),
            "defaults": self.run(fn.__defaults__, depth),
            "kwdefaults": self.run(fn.__kwdefaults__, depth),
            "closure": closure,
        }

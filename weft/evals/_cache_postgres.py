"""The eval output cache in PostgreSQL (``WEFT_DATABASE_URL``): JSON rows, never pickles.

A row anyone with write access to the database could change must not run code in the process
that reads it, so values are stored as JSON and read back by building data only:

* JSON values (dicts with string keys, lists, strings, numbers, booleans, None) as they are;
* LangChain messages and documents with langchain-core's ``dumpd``, read back with ``load``
  limited to its core classes;
* a pydantic model as its JSON dump and class name, read back with ``model_validate`` only when
  the reading process has already imported that class (nothing is imported to read a row);
* tuples, marked as such.

A value of any other type, or one that would not read back equal, is not cached (``set``
returns False) and its case runs again next time; a row that cannot be read is a miss.

Example:
    >>> cache = PostgresOutputCache(open_database(url))  # doctest: +SKIP
    >>> cache.set(key, {"output": AIMessage("hi"), "error": None})  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import warnings
from typing import Any

from langchain_core._api.beta_decorator import LangChainBetaWarning
from langchain_core.load import dumpd, load
from langchain_core.load.serializable import Serializable
from pydantic import BaseModel

from weft.core._database import Database
from weft.evals.runner import OutputCache

__all__ = ["PostgresOutputCache", "from_json", "to_json"]

_MARK = "$weft"
_log = logging.getLogger(__name__)


class NotStorable(Exception):
    """A value the cache cannot hold as JSON; the message names its type."""


def to_json(value: Any) -> Any:
    """``value`` as JSON that :func:`from_json` reads back; :class:`NotStorable` otherwise."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotStorable(f"the float {value}")
        return value
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, tuple):
        return {_MARK: "tuple", "items": [to_json(v) for v in value]}
    if isinstance(value, dict):
        if _MARK in value or not all(isinstance(k, str) for k in value):
            raise NotStorable("a dict with keys that are not strings")
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, Serializable) and value.is_lc_serializable():
        data = dumpd(value)
        if "not_implemented" in repr(data):
            raise NotStorable(f"a {type(value).__name__} holding what LangChain cannot save")
        return {_MARK: "lc", "value": data}
    if isinstance(value, BaseModel):
        cls = type(value)
        name = f"{cls.__module__}:{cls.__qualname__}"
        return {_MARK: "model", "class": name, "value": value.model_dump(mode="json")}
    raise NotStorable(f"a {type(value).__name__}")


def from_json(data: Any) -> Any:
    """What :func:`to_json` stored; ``ValueError`` for what it cannot have written."""
    if isinstance(data, list):
        return [from_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    kind = data.get(_MARK)
    if kind is None:
        return {k: from_json(v) for k, v in data.items()}
    if kind == "tuple":
        return tuple(from_json(v) for v in data["items"])
    if kind == "lc":
        with warnings.catch_warnings():  # load() is marked beta; what it reads here is settled
            warnings.simplefilter("ignore", LangChainBetaWarning)
            return load(data["value"], allowed_objects="core")
    if kind == "model":
        return _imported_model(str(data["class"])).model_validate(data["value"])
    raise ValueError(f"unknown kind {kind!r}")


def _imported_model(name: str) -> type[BaseModel]:
    """The pydantic model ``module:qualname``, if this process imported it already."""
    module_name, _, qualname = name.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ValueError(f"{name} is not a pydantic model this process has imported")
    return found


class PostgresOutputCache(OutputCache):
    """Graph outputs in the table ``weft_eval_cache``, keyed as :class:`OutputCache` keys them;
    every process on the same database shares them."""

    def __init__(self, database: Database) -> None:  # no folder is opened
        self.database = database
        database.ensure_tables()

    def get(self, key: str) -> dict[str, Any] | None:
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT value FROM weft_eval_cache WHERE key = %s", (key,)
            ).fetchone()
        if row is None:
            return None
        try:
            value = from_json(row["value"])
        except Exception as exc:  # a row this version cannot read runs the case again
            _log.warning("eval cache entry %s cannot be read (%s); running it again", key, exc)
            return None
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> bool:
        """Store ``value``; False when it cannot be stored as JSON (the run is then not
        cached)."""
        try:
            data = to_json(value)
            if from_json(data) != value:
                raise NotStorable("a value that does not read back equal")
        except (NotStorable, ValueError, TypeError) as exc:
            _log.info("eval output %s is not cached: it holds %s", key, exc)
            return False
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO weft_eval_cache (key, value, created) VALUES (%s, %s::jsonb, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
                "created = EXCLUDED.created",
                (key, json.dumps(data), time.time()),
            )
        return True

    def __len__(self) -> int:
        with self.database.connection() as conn:
            row = conn.execute("SELECT count(*) AS n FROM weft_eval_cache").fetchone()
        return int(row["n"])

    def clear(self) -> None:
        with self.database.connection() as conn:
            conn.execute("DELETE FROM weft_eval_cache")

    def close(self) -> None:
        """Nothing to close: the connections belong to the process's pool."""

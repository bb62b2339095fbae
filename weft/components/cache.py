"""A two-level cache around any component: an in-memory LRU with a TTL, then an optional disk.

:class:`CachedRunnable` looks a call up in memory (level 1), then on disk (level 2, a
``diskcache`` directory shared by every process that opens it), and only then calls the
component. A successful result is stored in both levels; an exception is never stored.

The key is the sha256 of three things:

* the component's identity, computed once when the cache is made: its langchain ``to_json()``
  form when it is serializable, else its class and public fields (pydantic fields, dataclass
  fields or ``__dict__``), functions by their code, defaults and closure. Module globals a
  function reads are not part of it: pass ``key="my-component-v2"`` when they change the output,
  or whenever you want to name the identity yourself;
* what the call passes that can change the output: keyword arguments (``stop=...``) and the
  ``configurable`` values of the component's own configurable fields;
* the input: str, numbers, dict, list, tuple, pydantic models, dataclasses, langchain messages
  (without their random ``id``) and documents. An input with no stable form (an object only a
  ``repr`` can describe) is not cached: the call goes through and ``stats.uncacheable`` counts it.

Streaming replays: ``stream``/``astream`` on a miss pass the chunks through as they come and
record them; the list is stored only when the stream ends without an error and without the
caller stopping early. A hit yields the stored chunks in order. Streamed and invoked results are
stored under different keys, because chunks are not the same thing as the final output.

Level 2 can be Redis instead (``redis_url``), so that replicas share it. Disk entries are
pickled, so outputs must be picklable to reach level 2 (messages, documents,
str, dict and pydantic models are); one that is not stays in memory only. diskcache commits each
entry in one SQLite transaction after its value is written, so a crash never leaves a
half-written entry, and a stream's chunks are one entry.

Example:
    >>> from langchain_core.runnables import RunnableLambda
    >>> def shout(text: str) -> str:
    ...     return text.upper()
    >>> cache = CachedRunnable(RunnableLambda(shout), maxsize=100, ttl=60)
    >>> cache.invoke("hi"), cache.invoke("hi")
    ('HI', 'HI')
    >>> cache.stats.l1_hits, cache.stats.misses
    (1, 1)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import os
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.utils import Input, Output

from weft.components._keys import Uncacheable, describe, digest
from weft.components._wrapper import RunnableWrapper, component_name
from weft.core._extras import import_optional
from weft.core.errors import ConfigurationError
from weft.core.tracing import record_cache_lookup

__all__ = ["CacheStats", "CachedRunnable", "cached"]

logger = logging.getLogger(__name__)

_KEY_VERSION = 1
_MISSING = object()


@dataclass(frozen=True)
class CacheStats:
    """Counts of a cache's lookups, per level.

    A call that reaches the component counts one miss at each level it looked in: with a disk
    level, ``l1_misses == l2_hits + l2_misses``.

    Example:
        >>> CacheStats(l1_hits=3, l1_misses=1, l2_hits=0, l2_misses=1).hit_rate
        0.75
    """

    l1_hits: int = 0
    l1_misses: int = 0
    l2_hits: int = 0
    l2_misses: int = 0
    uncacheable: int = 0
    """Calls whose input had no stable key; they went to the component uncached."""

    @property
    def hits(self) -> int:
        """Calls answered from either level."""
        return self.l1_hits + self.l2_hits

    @property
    def misses(self) -> int:
        """Cacheable calls that reached the component."""
        return self.l1_misses - self.l2_hits

    @property
    def hit_rate(self) -> float:
        """Hits over cacheable calls; 0.0 before the first call."""
        total = self.l1_hits + self.l1_misses
        return self.hits / total if total else 0.0


class _MemoryLRU:
    """Level 1: an LRU dict with a per-entry deadline, guarded by one lock."""

    def __init__(self, maxsize: int, ttl: float | None, clock: Callable[[], float]) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self.clock = clock
        self.lock = threading.Lock()
        self.data: OrderedDict[str, tuple[Any, float | None]] = OrderedDict()

    def get(self, key: str) -> Any:
        with self.lock:
            entry = self.data.get(key)
            if entry is None:
                return _MISSING
            value, deadline = entry
            if deadline is not None and self.clock() >= deadline:
                del self.data[key]
                return _MISSING
            self.data.move_to_end(key)
            return value

    def set(self, key: str, value: Any) -> None:
        if self.maxsize <= 0:
            return
        deadline = None if self.ttl is None else self.clock() + self.ttl
        with self.lock:
            self.data[key] = (value, deadline)
            self.data.move_to_end(key)
            while len(self.data) > self.maxsize:
                self.data.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()

    def __len__(self) -> int:
        with self.lock:
            return len(self.data)


class _Disk:
    """Level 2: a diskcache directory. Every failure degrades to a miss, never to an error."""

    def __init__(self, directory: str, ttl: float | None, size_limit: int | None) -> None:
        import diskcache

        settings: dict[str, Any] = {}
        if size_limit is not None:
            settings["size_limit"] = size_limit
        self.cache = diskcache.Cache(directory, **settings)
        self.ttl = ttl

    def _read(self, key: str) -> Any:
        return self.cache.get(key, default=_MISSING, retry=True)

    def _drop(self, key: str) -> None:
        self.cache.delete(key, retry=True)

    def get(self, key: str) -> Any:
        try:
            entry = self._read(key)
        except Exception:
            # An entry written by another version whose classes no longer unpickle: drop it.
            logger.debug("weft cache: unreadable level-2 entry %s, dropping it", key, exc_info=True)
            with contextlib.suppress(Exception):
                self._drop(key)
            return _MISSING
        if entry is _MISSING or not (isinstance(entry, tuple) and len(entry) == 2):
            return _MISSING
        return entry[1]

    def set(self, key: str, value: Any) -> None:
        try:
            self.cache.set(key, (_KEY_VERSION, value), expire=self.ttl, retry=True)
        except Exception:
            # Most often an unpicklable output; the memory level still has it.
            logger.debug("weft cache: cannot store %s on disk", key, exc_info=True)

    def clear(self) -> None:
        self.cache.clear(retry=True)

    def close(self) -> None:
        self.cache.close()


class _Redis(_Disk):
    """Level 2 in Redis (``redis_url``), shared by every replica: entries pickled with their key
    version, expiring after ``ttl``. Every failure degrades to a miss, never to an error."""

    def __init__(self, url: str, ttl: float | None, prefix: str = "weft:cache:") -> None:
        redis = import_optional("redis", extra="scale", feature="a cache in Redis")
        self.cache = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.ttl = ttl
        self.prefix = prefix

    def _read(self, key: str) -> Any:
        raw = self.cache.get(self.prefix + key)
        return _MISSING if raw is None else pickle.loads(raw)

    def _drop(self, key: str) -> None:
        self.cache.delete(self.prefix + key)

    def set(self, key: str, value: Any) -> None:
        try:
            ttl = None if self.ttl is None else max(1, math.ceil(self.ttl))
            self.cache.set(self.prefix + key, pickle.dumps((_KEY_VERSION, value)), ex=ttl)
        except Exception:
            logger.debug("weft cache: cannot store %s in Redis", key, exc_info=True)

    def clear(self) -> None:
        for name in self.cache.scan_iter(match=self.prefix + "*", count=500):
            self.cache.delete(name)


_LOOKUPS: dict[str, tuple[bool, Literal["memory", "disk"]]] = {
    "l1_hits": (True, "memory"),
    "l1_misses": (False, "memory"),
    "l2_hits": (True, "disk"),
    "l2_misses": (False, "disk"),
}


class _Counters:
    def __init__(self, name: str = "cache") -> None:
        self.name = name
        self.lock = threading.Lock()
        self.values = dict.fromkeys(
            ("l1_hits", "l1_misses", "l2_hits", "l2_misses", "uncacheable"), 0
        )

    def add(self, *names: str) -> None:
        with self.lock:
            for name in names:
                self.values[name] += 1
        for name in names:
            if name in _LOOKUPS:
                hit, level = _LOOKUPS[name]
                # The weft.cache.requests metric, when a tracing handler is on.
                record_cache_lookup(hit, cache=self.name, level=level)

    def snapshot(self) -> CacheStats:
        with self.lock:
            return CacheStats(**self.values)

    def reset(self) -> None:
        with self.lock:
            for name in self.values:
                self.values[name] = 0


def _identity(component: Runnable[Any, Any]) -> str:
    try:
        return digest({"component": describe(component)})
    except Exception as exc:
        raise ConfigurationError(
            f"cannot derive a cache key for {type(component).__name__}: "
            f"{type(exc).__name__}: {exc}; name its identity yourself with "
            f"CachedRunnable(component, key='my-component-v1')"
        ) from exc


class CachedRunnable(RunnableWrapper[Input, Output]):
    """Caches a component's results in memory and, optionally, on disk.

    Concurrent calls with the same key run the component once: the others wait for it and read
    its result (single flight, for ``invoke`` among threads and ``ainvoke`` among tasks of one
    event loop). If that call fails the next waiter tries itself. Streams are not de-duplicated.

    Args:
        bound: The component to cache.
        maxsize: Entries kept in memory, least recently used dropped first; 0 keeps none.
        ttl: Seconds an entry lives in memory; None for no limit.
        directory: A diskcache directory for level 2; None for memory only.
        redis_url: ``redis://...`` for level 2 in Redis instead, shared by every replica
            (``WEFT_REDIS_URL``); entries are pickled there, so the Redis must be as trusted
            as a cache directory would be. Needs ``weft[scale]``.
        disk_ttl: Seconds an entry lives on disk (diskcache uses wall-clock time); None for no
            limit.
        disk_size_limit: Bytes diskcache may use before it evicts; None for its default (1 GB).
        key: Names the component's identity instead of deriving it from its fields.
        copy_values: Hand out deep copies, so a caller that mutates a result cannot change
            what later hits see. Turn off for large outputs nobody mutates.
        clock: Seconds, monotonic; tests pass a fake one to expire entries without sleeping.
        name: The wrapper's run name.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def size(text: str) -> int:
        ...     return len(text)
        >>> c = CachedRunnable(RunnableLambda(size))
        >>> c.batch(["a", "bb", "a"]), c.stats.hits
        ([1, 2, 1], 1)
    """

    def __init__(
        self,
        bound: Runnable[Input, Output],
        *,
        maxsize: int = 1024,
        ttl: float | None = None,
        directory: str | os.PathLike[str] | None = None,
        redis_url: str | None = None,
        disk_ttl: float | None = None,
        disk_size_limit: int | None = None,
        key: str | None = None,
        copy_values: bool = True,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
    ) -> None:
        super().__init__(bound, name=name)
        if maxsize < 0:
            raise ConfigurationError(f"cache maxsize must be >= 0, got {maxsize}")
        if ttl is not None and ttl <= 0:
            raise ConfigurationError(f"cache ttl must be > 0 seconds or None, got {ttl}")
        self.directory = None if directory is None else os.fspath(directory)
        self.copy_values = copy_values
        self._memory = _MemoryLRU(maxsize, ttl, clock)
        if self.directory is not None and redis_url is not None:
            raise ConfigurationError(
                "a cache has one second level: pass directory (a diskcache folder) or "
                "redis_url (Redis, shared by every replica), not both"
            )
        self._disk: _Disk | None = None
        if self.directory is not None:
            self._disk = _Disk(self.directory, disk_ttl, disk_size_limit)
        elif redis_url is not None:
            self._disk = _Redis(redis_url, disk_ttl)
        self._counters = _Counters(component_name(bound))
        self._identity = digest({"key": key}) if key is not None else _identity(bound)
        self._config_ids = frozenset(spec.id for spec in bound.config_specs)
        self._flights = threading.Lock()
        self._sync_locks: dict[str, tuple[threading.Lock, int]] = {}
        self._async_locks: dict[tuple[int, str], tuple[asyncio.Lock, int]] = {}

    # -- public helpers -------------------------------------------------------------------

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the hit and miss counts."""
        return self._counters.snapshot()

    def reset_stats(self) -> None:
        """Set every count back to zero."""
        self._counters.reset()

    def clear(self, *, memory: bool = True, disk: bool = True) -> None:
        """Drop entries from the memory level, the disk level, or both."""
        if memory:
            self._memory.clear()
        if disk and self._disk is not None:
            self._disk.clear()

    def close(self) -> None:
        """Close the disk level's files; the memory level keeps working."""
        if self._disk is not None:
            self._disk.close()

    def __enter__(self) -> CachedRunnable[Input, Output]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def key_for(
        self,
        input: Input,
        config: RunnableConfig | None = None,
        *,
        stream: bool = False,
        **kwargs: Any,
    ) -> str | None:
        """The cache key of a call, or None when its input has no stable form."""
        configurable = (config or {}).get("configurable") or {}
        try:
            data = {
                "v": _KEY_VERSION,
                "component": self._identity,
                "mode": "stream" if stream else "invoke",
                "input": describe(input, strict=True),
                "kwargs": describe(kwargs, strict=True),
                "configurable": describe(
                    {k: v for k, v in configurable.items() if k in self._config_ids}, strict=True
                ),
            }
        except Uncacheable:
            return None
        return digest(data)

    # -- lookups ----------------------------------------------------------------------------

    def _copy(self, value: Any) -> Any:
        if not self.copy_values:
            return value
        try:
            return copy.deepcopy(value)
        except Exception:
            return value

    def _key(
        self, input: Any, config: RunnableConfig | None, kwargs: dict[str, Any], *, stream: bool
    ) -> str | None:
        key = self.key_for(input, config, stream=stream, **kwargs)
        if key is None:
            self._counters.add("uncacheable")
        return key

    def _lookup(self, key: str) -> Any:
        """Both levels, counting the outcome; a disk hit is copied up to memory."""
        value = self._memory.get(key)
        if value is not _MISSING:
            self._counters.add("l1_hits")
            return value
        if self._disk is None:
            self._counters.add("l1_misses")
            return _MISSING
        value = self._disk.get(key)
        if value is _MISSING:
            self._counters.add("l1_misses", "l2_misses")
            return _MISSING
        self._counters.add("l1_misses", "l2_hits")
        self._memory.set(key, value)
        return value

    async def _alookup(self, key: str) -> Any:
        value = self._memory.get(key)
        if value is not _MISSING:
            self._counters.add("l1_hits")
            return value
        if self._disk is None:
            self._counters.add("l1_misses")
            return _MISSING
        # SQLite may wait on a lock held by another process; keep that off the event loop.
        value = await asyncio.to_thread(self._disk.get, key)
        if value is _MISSING:
            self._counters.add("l1_misses", "l2_misses")
            return _MISSING
        self._counters.add("l1_misses", "l2_hits")
        self._memory.set(key, value)
        return value

    def _store(self, key: str, value: Any) -> None:
        self._memory.set(key, self._copy(value))
        if self._disk is not None:
            self._disk.set(key, value)

    async def _astore(self, key: str, value: Any) -> None:
        self._memory.set(key, self._copy(value))
        if self._disk is not None:
            await asyncio.to_thread(self._disk.set, key, value)

    @contextlib.contextmanager
    def _flight(self, key: str) -> Iterator[None]:
        with self._flights:
            lock, users = self._sync_locks.get(key, (threading.Lock(), 0))
            self._sync_locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._flights:
                lock, users = self._sync_locks[key]
                if users == 1:
                    del self._sync_locks[key]
                else:
                    self._sync_locks[key] = (lock, users - 1)

    @contextlib.asynccontextmanager
    async def _aflight(self, key: str) -> AsyncIterator[None]:
        # Keyed by loop too: an asyncio.Lock belongs to the loop that first waits on it.
        slot = (id(asyncio.get_running_loop()), key)
        with self._flights:
            lock, users = self._async_locks.get(slot, (asyncio.Lock(), 0))
            self._async_locks[slot] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            with self._flights:
                lock, users = self._async_locks[slot]
                if users == 1:
                    del self._async_locks[slot]
                else:
                    self._async_locks[slot] = (lock, users - 1)

    # -- Runnable ---------------------------------------------------------------------------

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        key = self._key(input, config, kwargs, stream=False)
        if key is None:
            return self.bound.invoke(input, config, **kwargs)
        with self._flight(key):
            value = self._lookup(key)
            if value is not _MISSING:
                return self._copy(value)  # type: ignore[no-any-return]
            result = self.bound.invoke(input, config, **kwargs)
            self._store(key, result)
            return result

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        key = self._key(input, config, kwargs, stream=False)
        if key is None:
            return await self.bound.ainvoke(input, config, **kwargs)
        async with self._aflight(key):
            value = await self._alookup(key)
            if value is not _MISSING:
                return self._copy(value)  # type: ignore[no-any-return]
            result = await self.bound.ainvoke(input, config, **kwargs)
            await self._astore(key, result)
            return result

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        key = self._key(input, config, kwargs, stream=True)
        if key is None:
            yield from self.bound.stream(input, config, **kwargs)
            return
        chunks = self._lookup(key)
        if chunks is not _MISSING:
            for chunk in chunks:
                yield self._copy(chunk)
            return
        recorded: list[Any] = []
        for chunk in self.bound.stream(input, config, **kwargs):
            recorded.append(self._copy(chunk))
            yield chunk
        # Reached only when the stream ended normally: an error or an early close by the
        # caller leaves the generator before this line, so a partial stream is never stored.
        self._store(key, recorded)

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        key = self._key(input, config, kwargs, stream=True)
        if key is None:
            async for chunk in self.bound.astream(input, config, **kwargs):
                yield chunk
            return
        chunks = await self._alookup(key)
        if chunks is not _MISSING:
            for chunk in chunks:
                yield self._copy(chunk)
            return
        recorded: list[Any] = []
        async for chunk in self.bound.astream(input, config, **kwargs):
            recorded.append(self._copy(chunk))
            yield chunk
        await self._astore(key, recorded)


def cached(component: Runnable[Input, Output], **options: Any) -> CachedRunnable[Input, Output]:
    """Wrap ``component`` in a :class:`CachedRunnable`; ``options`` are its keyword arguments.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> def shout(text: str) -> str:
        ...     return text.upper()
        >>> cached(RunnableLambda(shout), ttl=300).invoke("a")
        'A'
    """
    return CachedRunnable(component, **options)

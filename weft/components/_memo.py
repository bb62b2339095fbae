"""A memo for functions of one string, bounded by the bytes it holds rather than its entries.

``functools.lru_cache(maxsize=N)`` bounds entries, and an entry is as large as the text it was
called with: N questions of a megabyte each are N megabytes kept. :func:`memo_by_bytes` keeps
the least recently used results up to a byte budget, counting each entry's key and value by
:func:`sys.getsizeof`, and never keeps one entry that would take more than a sixteenth of it.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

__all__ = ["BytesMemo", "memo_by_bytes", "size_of"]

V = TypeVar("V")


def size_of(text: str, value: object) -> int:
    """The bytes an entry holds: its key, its value, and the value's items when it is a
    collection of them (a tuple or set of strings)."""
    size = sys.getsizeof(text) + sys.getsizeof(value)
    if isinstance(value, Collection) and not isinstance(value, str | bytes):
        size += sum(sys.getsizeof(item) for item in value)
    return size


class BytesMemo(Generic[V]):
    """``fn`` memoized, least recently used entries dropped past ``max_bytes``; thread-safe.

    Example:
        >>> upper = BytesMemo(str.upper, max_bytes=4096)
        >>> upper("a"), upper("a"), upper.hits
        ('A', 'A', 1)
    """

    def __init__(self, fn: Callable[[str], V], *, max_bytes: int) -> None:
        self.fn = fn
        self.max_bytes = max_bytes
        self.max_entry = max_bytes // 16
        self.bytes = 0
        self.hits = 0
        self._entries: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, text: str) -> V:
        with self._lock:
            entry = self._entries.get(text)
            if entry is not None:
                self._entries.move_to_end(text)
                self.hits += 1
                return entry[0]
        value = self.fn(text)
        size = size_of(text, value)
        if size > self.max_entry:
            return value
        with self._lock:
            if text not in self._entries:
                self._entries[text] = (value, size)
                self.bytes += size
                while self.bytes > self.max_bytes:
                    _, (_, dropped) = self._entries.popitem(last=False)
                    self.bytes -= dropped
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def cache_clear(self) -> None:
        """Forget every entry (as ``functools.lru_cache``'s ``cache_clear``)."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0


def memo_by_bytes(max_bytes: int) -> Callable[[Callable[[str], V]], BytesMemo[V]]:
    """Decorate a function of one string with a :class:`BytesMemo` of ``max_bytes``."""

    def wrap(fn: Callable[[str], V]) -> BytesMemo[V]:
        return BytesMemo(fn, max_bytes=max_bytes)

    return wrap

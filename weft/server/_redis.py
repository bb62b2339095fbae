"""Redis for what replicas must count together (``WEFT_REDIS_URL``): the rate limiter's buckets.

:class:`RedisBuckets` has :class:`~weft.server._guards.TokenBuckets`' rule (``per_minute``
requests per client, refilled evenly, bursts up to that), applied by one Lua script on the
Redis server, with the server's clock: every replica takes from the same bucket, atomically. A
bucket expires once it would be full again. When Redis cannot be reached the request is let
through and the failure logged (``/readyz`` reports it): a rate limiter that cannot count does
not take the service down.

Example:
    >>> buckets = RedisBuckets("redis://127.0.0.1:6379/0", per_minute=60)  # doctest: +SKIP
    >>> await buckets.atake("ip:10.0.0.7")  # doctest: +SKIP
    0.0
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from weft.core._extras import import_optional

__all__ = ["RedisBuckets", "redis_of"]

logger = logging.getLogger("weft.server")

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(saved[1]) or capacity
local stamp = tonumber(saved[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return tostring(wait)
"""


@functools.cache
def redis_of(url: str) -> Any:
    """The process's blocking Redis client for ``url`` (for checks run in a worker thread)."""
    redis = import_optional("redis", extra="scale", feature="WEFT_REDIS_URL")
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


class RedisBuckets:
    """Token buckets per client, kept in Redis at ``url`` and shared by every replica."""

    def __init__(self, url: str, per_minute: int, *, prefix: str = "weft:rate:") -> None:
        self.url = url
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.prefix = prefix
        self._client: Any = None
        self._script: Any = None

    def _take_script(self) -> Any:
        if self._script is None:
            redis = import_optional("redis.asyncio", extra="scale", feature="WEFT_REDIS_URL")
            self._client = redis.Redis.from_url(
                self.url, socket_timeout=2, socket_connect_timeout=2
            )
            self._script = self._client.register_script(_TAKE)
        return self._script

    async def atake(self, client: str) -> float:
        """Take a token for ``client``: 0.0 if there was one, else the seconds until there is;
        0.0 as well when Redis cannot be reached (logged)."""
        try:
            wait = await self._take_script()(
                keys=[self.prefix + client], args=[self.rate, self.capacity]
            )
        except Exception as exc:
            if not type(exc).__module__.startswith("redis"):
                raise
            logger.warning("the rate limiter cannot reach Redis (%s); request let through", exc)
            return 0.0
        return float(wait)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = self._script = None

"""The server's guards, as plain ASGI middleware: API keys, rate limit, headers, body, run cap.

Each answers with the JSON error shape of :mod:`weft.server._errors` before the request reaches
a route, so a rejected request costs no graph work:

- :class:`AuthGuard`: with API keys configured, ``/v1/*`` and ``/metrics`` need
  ``Authorization: Bearer <key>``; otherwise 401.
- :class:`RateLimitGuard`: a token bucket per client (its API key, else its IP address) on
  ``/v1/*``; an empty bucket is 429 with ``Retry-After``.
- :class:`HeaderLimitGuard`: a request with too many headers, or headers too large, is 431,
  connection closed.
- :class:`BodyLimitGuard`: a body over the limit is 413, by ``Content-Length`` or while it is
  read (chunked uploads); a body not all read within the body timeout is 408, connection closed.
- :class:`RunCapGuard`: at most N graph runs at once (:class:`RunSlots`). A route takes its
  slot with :func:`take_run_slots` once it has read and validated the body, so a client that is
  slow to send one holds no slot; one run more than the cap is 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from weft.server._errors import ApiError, error_response

__all__ = [
    "AuthGuard",
    "BodyLimitGuard",
    "HeaderLimitGuard",
    "RateLimitGuard",
    "RunCapGuard",
    "RunSlots",
    "SharedBuckets",
    "TokenBuckets",
    "bearer_token",
    "head_size",
    "is_run",
    "on_run_end",
    "take_run_slots",
    "valid_key",
]

Reject = Callable[[str], None]
"""Called with the reason ("auth", "rate_limit", "headers", "body_size", "body_timeout",
"concurrency") of a rejection."""

_CLOSE = {"Connection": "close"}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def bearer_token(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    raw = _header(scope, b"authorization")
    if raw is None:
        return None
    scheme, _, token = raw.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def valid_key(scope: Scope, keys: Sequence[str]) -> bool:
    """Whether the request carries one of ``keys`` as its Bearer token (compared in constant
    time against every key, so the time taken says nothing about which matched)."""
    token = bearer_token(scope)
    if token is None:
        return False
    given = token.encode()
    return sum(hmac.compare_digest(given, k.encode()) for k in keys) > 0


def route_path(scope: Scope) -> str:
    """The request's path within the app: without the prefix it is mounted under (a ``Mount``,
    or uvicorn's ``--root-path`` behind a proxy), as the router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :] or "/"
    return path


def _guarded(scope: Scope) -> bool:
    path = route_path(scope)
    return path.startswith("/v1/") or path == "/metrics"


def is_run(scope: Scope) -> bool:
    """Whether a request runs a graph (and so takes one of the run slots)."""
    path = route_path(scope)
    return scope["method"] == "POST" and (
        path in ("/v1/chat", "/v1/chat/completions", "/v1/agent") or path.startswith("/v1/graphs/")
    )


class AuthGuard:
    """401 unless the request carries one of ``keys`` as a Bearer token (no keys: no auth)."""

    def __init__(self, app: ASGIApp, *, keys: Sequence[str], reject: Reject) -> None:
        self.app = app
        self.keys = list(keys)
        self.reject = reject

    def valid(self, scope: Scope) -> bool:
        return valid_key(scope, self.keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or not _guarded(scope) or self.valid(scope):
            await self.app(scope, receive, send)
            return
        self.reject("auth")
        given = bearer_token(scope) is not None
        message = (
            "the API key is not valid"
            if given
            else "this server needs an API key: send 'Authorization: Bearer <key>'"
        )
        headers = {"WWW-Authenticate": 'Bearer realm="weft"'}
        await error_response(401, message, headers=headers)(scope, receive, send)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """Token buckets per client: ``per_minute`` requests, refilled evenly, bursts up to that.

    Example:
        >>> buckets = TokenBuckets(per_minute=1, clock=lambda: 0.0)
        >>> buckets.take("a"), buckets.take("a")
        (0.0, 60.0)
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}

    def take(self, client: str) -> float:
        """Take a token for ``client``: 0.0 if there was one, else the seconds until there is."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._prune(now)
            bucket = self._buckets[client] = _Bucket(self.capacity, now)
        else:
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _prune(self, now: float) -> None:
        # A bucket that would be full again is the same as no bucket.
        full = [
            c
            for c, b in self._buckets.items()
            if b.tokens + (now - b.stamp) * self.rate >= self.capacity
        ]
        for c in full:
            del self._buckets[c]
        if len(self._buckets) >= self.max_clients:  # all busy: forget the oldest
            oldest = sorted(self._buckets, key=lambda c: self._buckets[c].stamp)
            for c in oldest[: len(oldest) // 2]:
                del self._buckets[c]


class SharedBuckets(Protocol):
    """Token buckets several processes share (:class:`weft.server._redis.RedisBuckets`)."""

    async def atake(self, client: str) -> float: ...


class RateLimitGuard:
    """429 with ``Retry-After`` when the client's bucket is empty (``per_minute=0``: off).

    The buckets are this process's, or ``shared`` ones (in Redis, with ``WEFT_REDIS_URL``), so
    that a limit holds across replicas.

    A client is its API key when it sends a valid one (so clients behind one NAT do not share a
    budget), else its IP address.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_minute: int,
        keys: Sequence[str],
        reject: Reject,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedBuckets | None = None,
    ) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_minute, clock=clock) if per_minute > 0 else None
        self.shared = shared if per_minute > 0 else None
        self.keys = frozenset(keys)
        self.reject = reject

    def client(self, scope: Scope) -> str:
        token = bearer_token(scope)
        if token is not None and token in self.keys:
            return "key:" + token
        client = scope.get("client")
        return "ip:" + (client[0] if client else "unknown")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.buckets is None
            or scope["type"] != "http"
            or not route_path(scope).startswith("/v1/")
            or scope["method"] == "OPTIONS"
        ):
            await self.app(scope, receive, send)
            return
        if self.shared is not None:  # every replica counts in one place
            wait = await self.shared.atake(self.client(scope))
        else:
            wait = self.buckets.take(self.client(scope))
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        self.reject("rate_limit")
        seconds = max(1, math.ceil(wait))
        response = error_response(
            429,
            f"too many requests; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
        await response(scope, receive, send)


def head_size(scope: Scope) -> int:
    """The bytes of the request line and headers, as the client sent them."""
    query = scope.get("query_string", b"")
    line = len(scope["method"]) + len(scope.get("raw_path") or b"") + len(query) + 13
    return line + sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))


class HeaderLimitGuard:
    """431 for a request with more than ``max_headers`` headers, or a request line and headers
    over ``max_bytes``; the connection is closed.

    ``weft serve`` stops reading a request line and headers once they pass ``max_bytes``
    (:mod:`weft.server._http`), so this guard sees at most one network read more.
    """

    def __init__(self, app: ASGIApp, *, max_headers: int, max_bytes: int, reject: Reject) -> None:
        self.app = app
        self.max_headers = max_headers
        self.max_bytes = max_bytes
        self.reject = reject

    def problem(self, scope: Scope) -> str | None:
        count = len(scope.get("headers", ()))
        if count > self.max_headers:
            return (
                f"the request has {count} headers, more than the {self.max_headers} the server "
                "accepts (WEFT_SERVER_MAX_HEADERS); send fewer"
            )
        if head_size(scope) > self.max_bytes:
            return (
                f"the request line and headers are larger than {self.max_bytes} bytes "
                "(WEFT_SERVER_MAX_HEADER_BYTES); send fewer or shorter headers"
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = self.problem(scope) if scope["type"] == "http" else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        self.reject("headers")
        response = error_response(431, problem, type="headers_too_large", headers=_CLOSE)
        await response(scope, receive, send)


class BodyLimitGuard:
    """413 for a body over ``max_bytes``: at once by ``Content-Length``, or while it is read.
    408 for a body not all read ``timeout`` seconds after the headers (None: no limit).

    Either is raised from ``receive`` inside the route, whose handler answers it; the 408
    closes the connection, so the rest of the body is never waited for.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        reject: Reject,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.reject = reject
        self.clock = clock

    def _too_large(self) -> ApiError:
        self.reject("body_size")
        return ApiError(413, f"the request body is larger than {self.max_bytes} bytes")

    def _too_slow(self) -> ApiError:
        self.reject("body_timeout")
        return ApiError(
            408,
            f"the request body did not arrive within {self.timeout:g} s "
            "(WEFT_SERVER_BODY_TIMEOUT_SECONDS); send it at once",
            type="request_timeout",
            headers=_CLOSE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            err = self._too_large()
            await error_response(413, err.message)(scope, receive, send)
            return
        seen = 0
        deadline = None if self.timeout is None else self.clock() + self.timeout

        async def limited() -> Message:
            nonlocal seen, deadline
            if deadline is None:  # no timeout, or the body is all in
                message = await receive()
            else:
                try:
                    message = await asyncio.wait_for(receive(), deadline - self.clock())
                except asyncio.TimeoutError:
                    raise self._too_slow() from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                deadline = None  # later calls wait for the disconnect, with no deadline
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()  # becomes the 413 response in the route's handler
            return message

        await self.app(scope, limited, send)


class RunSlots:
    """The server's graph-run slots: ``max_runs`` at most, shared by every request.

    One event loop serves every request, so the count needs no lock.

    Example:
        >>> slots = RunSlots(2)
        >>> slots.take(), slots.take(), slots.take()
        (True, True, False)
    """

    def __init__(self, max_runs: int, on_change: Callable[[int], None] | None = None) -> None:
        self.max_runs = max_runs
        self.active = 0
        self.on_change = on_change

    def take(self, n: int = 1) -> bool:
        """Take ``n`` slots if that many are free."""
        if self.active + n > self.max_runs:
            return False
        self.active += n
        if self.on_change is not None:
            self.on_change(n)
        return True

    def give_back(self, n: int = 1) -> None:
        self.active -= n
        if self.on_change is not None:
            self.on_change(-n)

    def busy(self, what: str = "requests") -> ApiError:
        """The 503 for a request that finds too few slots free."""
        return ApiError(
            503,
            f"the server is running {self.active} of at most {self.max_runs} graph runs; "
            f"{what} would go over that limit (WEFT_MAX_CONCURRENT_RUNS); try again shortly",
            headers={"Retry-After": "1"},
        )


_HELD = "weft.run_slots"  # scope key: the run slots a request holds


class _Held:
    """The run slots one request holds, given back when its response is finished."""

    def __init__(self, slots: RunSlots, reject: Reject) -> None:
        self.slots = slots
        self.reject = reject
        self.count = 0
        self.finish: list[Callable[[], Awaitable[None]]] = []

    def take(self, n: int, what: str) -> None:
        if not self.slots.take(n):
            self.reject("concurrency")
            raise self.slots.busy(what)
        self.count += n

    def give_back(self) -> None:
        if self.count:
            self.slots.give_back(self.count)
            self.count = 0


def take_run_slots(scope: Scope, n: int = 1, *, what: str = "one more") -> None:
    """Take ``n`` run slots for the request of ``scope``, until its response is finished.

    A route calls this once the body is read and validated, right before the run.

    Raises:
        ApiError: 503 with ``Retry-After`` when fewer than ``n`` slots are free; ``what`` says
            what would go over the limit ("one more", "3 runs at once (a batch...)").
    """
    held = scope.get(_HELD)
    if not isinstance(held, _Held):
        raise RuntimeError(
            "a graph run outside RunCapGuard: only a request to a run route holds run slots"
        )
    held.take(n, what)


def on_run_end(scope: Scope, end: Callable[[], Awaitable[None]]) -> None:
    """Call ``end`` once the response of the run request of ``scope`` is finished (a session's
    turn lock is let go then, as the run slots are)."""
    held = scope.get(_HELD)
    if not isinstance(held, _Held):
        raise RuntimeError(
            "a graph run outside RunCapGuard: only a request to a run route holds run slots"
        )
    held.finish.append(end)


class RunCapGuard:
    """Gives back, once the response is finished, the run slots the request's route took with
    :func:`take_run_slots`.

    So a stream holds its slot while it streams, and gives it back when the client goes away. A
    route that runs more than one graph at once (a batch) takes a slot for each.
    """

    def __init__(self, app: ASGIApp, *, slots: RunSlots, reject: Reject) -> None:
        self.app = app
        self.slots = slots
        self.reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_run(scope):
            await self.app(scope, receive, send)
            return
        held = scope[_HELD] = _Held(self.slots, self.reject)
        try:
            await self.app(scope, receive, send)
        finally:
            held.give_back()
            with anyio.CancelScope(shield=True):
                for end in held.finish:
                    await end()

"""Every error weft raises, in one place.

A message says what failed, where (graph, node, edge, file, field), what the valid choices are,
and how to fix it.

The hierarchy::

    WeftError
    ├── GraphCompileError          a graph or chain cannot be compiled (raised by compile())
    ├── GraphInputError            a run's input does not match the graph's input type
    ├── NodeError                  a node failed while running; the cause is chained
    ├── StepLimitError             a run took more steps than its step limit
    ├── ComponentTypeError         a component's input/output types cannot be resolved
    ├── ConfigurationError         settings, API keys, or an embedder/collection mismatch
    ├── MissingExtraError          (also ImportError) an optional extra is not installed
    ├── DocumentLoadError          a file could not be loaded (undecodable, encrypted, empty)
    ├── EmptyQueryError            (also ValueError) an empty or whitespace-only query
    ├── RetrievalError             every branch of a retriever failed
    ├── ToolCallError              a tool call named an unknown tool, had invalid arguments,
    │                              failed or timed out (ToolNode with on_error="raise")
    ├── ModelError                 a chat or embedding model call failed
    │   ├── AuthenticationError    401 from the provider
    │   ├── BadRequestError        400 from the provider, or an unknown model
    │   └── ProviderUnavailableError  429/5xx after every retry
    └── ResilienceError            a resilience wrapper stopped the call
        ├── CircuitOpenError       the circuit breaker is open
        ├── RateLimitedError       the rate limiter had no token in time
        ├── ConcurrencyLimitError  the concurrency limit had no slot in time
        └── ComponentTimeoutError  (also TimeoutError) the component took longer than its limit
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CircuitOpenError",
    "ComponentTimeoutError",
    "ComponentTypeError",
    "ConcurrencyLimitError",
    "ConfigurationError",
    "DocumentLoadError",
    "EmptyQueryError",
    "GraphCompileError",
    "GraphInputError",
    "MissingExtraError",
    "ModelError",
    "NodeError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "ResilienceError",
    "RetrievalError",
    "StepLimitError",
    "ToolCallError",
    "WeftError",
]


class WeftError(Exception):
    """Base class of every error weft raises."""


class GraphCompileError(WeftError):
    """A graph or chain failed its compile-time checks.

    ``problems`` lists every problem found, one message each; ``str(error)`` joins them.
    """

    def __init__(self, graph: str, problems: list[str]) -> None:
        self.graph = graph
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"graph '{graph}' cannot compile, {len(self.problems)} {noun}:\n{lines}")


class GraphInputError(WeftError, ValueError):
    """A run's input does not match the graph's declared input type."""

    def __init__(self, graph: str, expected: str, details: str) -> None:
        self.graph = graph
        self.expected = expected
        self.details = details
        super().__init__(
            f"graph '{graph}' got an invalid input: {details}; pass a value of type {expected}"
        )


class NodeError(WeftError):
    """A node raised while running. The original exception is ``__cause__``."""

    def __init__(self, graph: str, node: str, component: str, cause: BaseException) -> None:
        self.graph = graph
        self.node = node
        self.component = component
        super().__init__(
            f"graph '{graph}', node '{node}' ({component}) failed: {type(cause).__name__}: {cause}"
        )


class StepLimitError(WeftError, RecursionError):
    """A run exceeded its step limit, usually a cycle that never takes its exit branch."""

    def __init__(self, graph: str, limit: int) -> None:
        self.graph = graph
        self.limit = limit
        super().__init__(
            f"graph '{graph}' stopped after {limit} steps without reaching END; check the exit "
            f"branch of its cycle, or raise the limit with compile(step_limit=...) or "
            f'config={{"recursion_limit": N}}'
        )


class ComponentTypeError(WeftError, TypeError):
    """A component's input or output type is missing or cannot be used."""


class ConfigurationError(WeftError, ValueError):
    """Settings are invalid or do not match stored data (e.g. another embedder's collection)."""


class MissingExtraError(WeftError, ImportError):
    """An optional feature was used without its extra installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{module}' package, which is not installed; "
            f'install it with: pip install "weft[{extra}]"'
        )


class DocumentLoadError(WeftError):
    """A file could not be turned into documents. Ingest skips it and goes on."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot load '{path}': {reason}")


class EmptyQueryError(WeftError, ValueError):
    """A query was empty or only whitespace."""


class RetrievalError(WeftError):
    """Retrieval failed in every branch."""


class ToolCallError(WeftError):
    """A tool call could not run or failed; the tool's own exception, if any, is chained."""


class ModelError(WeftError):
    """A chat or embedding model call failed."""


class AuthenticationError(ModelError):
    """The provider rejected the API key (HTTP 401)."""


class BadRequestError(ModelError):
    """The provider rejected the request (HTTP 400), e.g. an unknown model name."""


class ProviderUnavailableError(ModelError):
    """The provider kept answering 429 or 5xx after every retry."""


class ResilienceError(WeftError):
    """A resilience wrapper stopped a call: refused it, or gave up waiting for it."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker is open; calls fail fast until the reset timeout passes."""


class RateLimitedError(ResilienceError):
    """The rate limiter had no token within the allowed wait."""


class ConcurrencyLimitError(ResilienceError):
    """The concurrency limiter had no free slot within the allowed wait."""


class ComponentTimeoutError(ResilienceError, TimeoutError):
    """A component did not finish (or stream its next chunk) within its time limit.

    It is a ``TimeoutError`` too, so code that already catches timeouts keeps working.
    """

"""Token usage per model, summed over whole graph runs, and what it cost.

A :class:`UsageTracker` is a callback :class:`~weft.core.callbacks.Handler`: pass it in a run's
config, or wrap calls in :func:`track_usage`, and it adds up every chat model call inside, nested
graphs and parallel branches included. Numbers come from the provider (``usage_metadata`` on the
model's message) when it reports them; otherwise they are estimated by counting tokens, and the
model's entry says ``estimated=True``.

Estimates need a token counter. The core cannot import ``weft.components`` (lower layers never
import higher ones), so the counter is injected: pass ``counter=`` or register one for the process
with :func:`set_default_token_counter`; ``weft.components.tokens`` (offline tiktoken) is the one to
register. Without any, a rough count of about four characters per token is used.

Cost comes from :data:`DEFAULT_PRICES` (US dollars per million tokens), overridable per call.

Example:
    >>> usage = UsageTracker()
    >>> # graph.invoke("question", {"callbacks": [usage]})
    >>> usage.total.total_tokens, usage.cost()
    (0, 0.0)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from weft.core.callbacks import Handler, RunInfo, add_handler, remove_handler

__all__ = [
    "DEFAULT_PRICES",
    "ModelUsage",
    "Price",
    "TokenCounter",
    "UsageTracker",
    "default_token_counter",
    "set_default_token_counter",
    "track_usage",
]

TokenCounter = Callable[[str, "str | None"], int]
"""``counter(text, model) -> tokens``; ``model`` may be None or unknown to the counter."""


@dataclass(frozen=True)
class Price:
    """What a model costs, in US dollars per million tokens."""

    input: float
    output: float = 0.0
    cached_input: float | None = None
    """Price of input tokens served from the provider's cache; ``input`` when None."""


DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "text-embedding-3-small": Price(0.02),
    "text-embedding-3-large": Price(0.13),
    "weft-extractive": Price(0.0, 0.0),
}
"""List prices of a few models. A dated name (``gpt-4o-mini-2024-07-18``) uses the longest
listed prefix. Override or extend per call: ``tracker.cost({"my-model": Price(0.5, 1.5)})``."""


@dataclass(frozen=True)
class ModelUsage:
    """Tokens one model used over the calls a tracker saw."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    calls: int = 0
    estimated: bool = False
    """True when any of the numbers was estimated instead of reported by the provider."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: ModelUsage) -> ModelUsage:
        return replace(
            self,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            calls=self.calls + other.calls,
            estimated=self.estimated or other.estimated,
        )

    def cost(self, prices: Mapping[str, Price] | None = None) -> float | None:
        """US dollars, or None when the model has no price."""
        price = _price_for(self.model, prices)
        if price is None:
            return None
        cached = min(self.cached_input_tokens, self.input_tokens)
        cached_rate = price.input if price.cached_input is None else price.cached_input
        return (
            (self.input_tokens - cached) * price.input
            + cached * cached_rate
            + self.output_tokens * price.output
        ) / 1e6


def _price_for(model: str, prices: Mapping[str, Price] | None) -> Price | None:
    table = {**DEFAULT_PRICES, **(prices or {})}
    if model in table:
        return table[model]
    best = max((k for k in table if model.startswith(k)), key=len, default=None)
    return table[best] if best is not None else None


_counter: TokenCounter | None = None


def set_default_token_counter(counter: TokenCounter | None) -> None:
    """Use ``counter`` for estimates in every tracker made without ``counter=``.

    Example:
        >>> set_default_token_counter(lambda text, model: len(text.split()))
        >>> default_token_counter()("two words", None)
        2
        >>> set_default_token_counter(None)
    """
    global _counter
    _counter = counter


def _rough_count(text: str, model: str | None) -> int:
    # Without a tokenizer: about four characters per token for Latin text, one per CJK character.
    cjk = sum(1 for ch in text if ch >= "\u2e80")
    return cjk + (len(text) - cjk + 3) // 4


def default_token_counter() -> TokenCounter:
    """The registered counter, or a rough character-based one."""
    return _counter or _rough_count


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p if isinstance(p, str) else str(p.get("text", "")) if isinstance(p, dict) else ""
            for p in content
        )
    return str(content or "")


def _input_text(payload: Any) -> str:
    # on_start payload: a list of message lists (chat models) or a list of prompts (LLMs).
    parts: list[str] = []
    for item in payload or ():
        for m in item if isinstance(item, list) else [item]:
            parts.append(m if isinstance(m, str) else _text(getattr(m, "content", m)))
    return "\n".join(parts)


def model_name(info: RunInfo) -> str:
    """The model a chat model run calls, as its metadata or parameters name it."""
    name = (
        info.metadata.get("ls_model_name")
        or info.params.get("model")
        or info.params.get("model_name")
    )
    return str(name) if name else info.name


def reported_usage(output: Any) -> tuple[int, int, int] | None:
    """``(input, output, cached input)`` tokens a model's ``LLMResult`` reports, if it does.

    A provider reports usage per response, and a response to one prompt may hold several
    completions (``n > 1``), each carrying that same usage; so each prompt counts once.
    """
    found = False
    inp = out = cached = 0
    for gens in getattr(output, "generations", None) or ():
        for gen in gens:
            usage = getattr(getattr(gen, "message", None), "usage_metadata", None)
            if usage:
                found = True
                inp += int(usage.get("input_tokens") or 0)
                out += int(usage.get("output_tokens") or 0)
                details = usage.get("input_token_details") or {}
                cached += int(details.get("cache_read") or 0)
                break
    if found:
        return inp, out, cached
    token_usage = (getattr(output, "llm_output", None) or {}).get("token_usage")
    if isinstance(token_usage, dict) and "prompt_tokens" in token_usage:
        return int(token_usage["prompt_tokens"]), int(token_usage.get("completion_tokens", 0)), 0
    return None


def output_text(output: Any) -> str:
    """The text of every generation in a model's ``LLMResult``."""
    texts = []
    for gens in getattr(output, "generations", None) or ():
        for gen in gens:
            msg = getattr(gen, "message", None)
            texts.append(_text(msg.content) if msg is not None else str(getattr(gen, "text", "")))
    return "".join(texts)


class UsageTracker(Handler):
    """Sums token usage per model over every chat model call it sees, and the embeddings
    requests weft's embedders report; safe across threads.

    Args:
        counter: counts tokens for estimates (see the module docs).

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> usage = UsageTracker()
        >>> _ = FakeListChatModel(responses=["four words right here"]).invoke(
        ...     "hi", {"callbacks": [usage.as_langchain()]})
        >>> u = usage.by_model["FakeListChatModel"]
        >>> u.calls, u.output_tokens, u.estimated
        (1, 6, True)
    """

    def __init__(self, counter: TokenCounter | None = None) -> None:
        self.counter = counter
        self._lock = threading.Lock()
        self._models: dict[str, ModelUsage] = {}
        self._inputs: dict[UUID, str] = {}
        self._runs: dict[UUID, dict[str, ModelUsage]] = {}
        self._root: dict[UUID, UUID] = {}

    # -- results --------------------------------------------------------------------------------

    @property
    def by_model(self) -> dict[str, ModelUsage]:
        """Usage per model name, over everything this tracker saw."""
        with self._lock:
            return dict(self._models)

    @property
    def total(self) -> ModelUsage:
        """Everything summed; ``model`` is ``"*"``."""
        total = ModelUsage("*")
        for usage in self.by_model.values():
            total = total + usage
        return replace(total, model="*")

    @property
    def runs(self) -> dict[UUID, dict[str, ModelUsage]]:
        """Usage per model for each top-level run that called a model, oldest first."""
        with self._lock:
            return {run: dict(models) for run, models in self._runs.items()}

    def for_run(self, run_id: UUID) -> dict[str, ModelUsage]:
        """Usage per model inside one top-level graph run (its ``RunInfo.run_id``)."""
        with self._lock:
            return dict(self._runs.get(run_id, {}))

    def cost(self, prices: Mapping[str, Price] | None = None) -> float:
        """US dollars for every model with a price; see :attr:`unpriced` for the others."""
        return sum((c for u in self.by_model.values() if (c := u.cost(prices)) is not None), 0.0)

    def unpriced(self, prices: Mapping[str, Price] | None = None) -> list[str]:
        """Models used that have no price, so :meth:`cost` leaves them out."""
        return sorted(m for m, u in self.by_model.items() if u.cost(prices) is None)

    def reset(self) -> None:
        with self._lock:
            self._models.clear()
            self._runs.clear()

    def as_langchain(self) -> Any:
        """This tracker as a langchain-core callback, for runnables outside a weft graph."""
        from weft.core.callbacks import CallbackBridge

        return CallbackBridge([self])

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self, info: RunInfo, input: Any) -> None:
        with self._lock:
            parent = info.parent_run_id
            self._root[info.run_id] = self._root.get(parent, parent) if parent else info.run_id
            if info.kind == "chat_model":
                self._inputs[info.run_id] = _input_text(input)

    def on_end(self, info: RunInfo, output: Any) -> None:
        if info.kind != "chat_model":
            self._forget(info)
            return
        model = model_name(info)
        reported = reported_usage(output)
        with self._lock:
            prompt = self._inputs.pop(info.run_id, "")
        if reported is not None:
            usage = ModelUsage(model, reported[0], reported[1], reported[2], calls=1)
        else:
            count = self.counter or default_token_counter()
            usage = ModelUsage(
                model, count(prompt, model), count(output_text(output), model), 0, 1, True
            )
        self._add(info, usage)

    def on_error(self, info: RunInfo, error: BaseException) -> None:
        with self._lock:
            self._inputs.pop(info.run_id, None)
        self._forget(info)

    def record_embeddings(self, model: str, input_tokens: int, run_id: UUID | None) -> None:
        """Count one embeddings request of ``input_tokens`` (provider-reported), inside run
        ``run_id`` when given. langchain-core reports no callbacks for embeddings; an embedder
        reports through :func:`~weft.core.tracing.embeddings_span`, which calls this."""
        usage = ModelUsage(model, input_tokens, 0, 0, calls=1)
        with self._lock:
            self._models[model] = self._models.get(model, ModelUsage(model)) + usage
            root = self._root.get(run_id) if run_id is not None else None
            if root is not None:
                run = self._runs.setdefault(root, {})
                run[model] = run.get(model, ModelUsage(model)) + usage

    def _add(self, info: RunInfo, usage: ModelUsage) -> None:
        with self._lock:
            m = usage.model
            self._models[m] = self._models.get(m, ModelUsage(m)) + usage
            root = self._root.pop(info.run_id, info.run_id)
            run = self._runs.setdefault(root, {})
            run[m] = run.get(m, ModelUsage(m)) + usage

    def _forget(self, info: RunInfo) -> None:
        with self._lock:
            self._root.pop(info.run_id, None)


@contextlib.contextmanager
def track_usage(counter: TokenCounter | None = None) -> Iterator[UsageTracker]:
    """Track every graph run in the ``with`` block (registered for the whole process meanwhile).

    For one call among concurrent ones, pass a tracker in that call's config instead.

    Example:
        >>> with track_usage() as usage:
        ...     pass  # graph.invoke(...)
        >>> usage.total.calls
        0
    """
    tracker = UsageTracker(counter)
    add_handler(tracker)
    try:
        yield tracker
    finally:
        remove_handler(tracker)

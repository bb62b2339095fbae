"""UsageTracker: provider-reported vs estimated tokens, per model over a whole run, and cost."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableConfig

from weft import END, START, Graph
from weft.components.models import openai_chat_model
from weft.components.tokens import count_tokens
from weft.core.usage import (
    ModelUsage,
    Price,
    UsageTracker,
    default_token_counter,
    reported_usage,
    set_default_token_counter,
    track_usage,
)
from weft.testing import OpenAIServer


class NamedFake(GenericFakeChatModel):
    """A fake chat model that reports a model name, as real ones do."""

    model: str = "fake"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {**super()._get_ls_params(stop=stop, **kwargs), "ls_model_name": self.model}


def reporting(model: str, text: str, tokens_in: int, tokens_out: int) -> NamedFake:
    usage = {
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }
    return NamedFake(model=model, messages=iter([AIMessage(text, usage_metadata=usage)] * 10))


def silent(model: str, text: str) -> NamedFake:
    return NamedFake(model=model, messages=iter([AIMessage(text)] * 10))


def two_model_graph(left: Any, right: Any, inner: Any) -> Any:
    """Two models in parallel branches and a third inside a nested graph."""
    sub = Graph[str, str]("sub")
    sub.add_node(
        "m", lambda q, config: str(inner.invoke(q, config).content), input_type=str, output_type=str
    )
    sub_graph = sub.add_edge(START, "m").add_edge("m", END).compile()

    def call(model: Any) -> Any:
        def run(q: str, config: RunnableConfig) -> str:
            return str(model.invoke(q, config).content)

        return run

    g = Graph[str, str]("two").add_node("a", call(left)).add_node("b", call(right))
    g.add_node("sub", sub_graph, merge=lambda parts: parts["a"] + parts["b"])
    g.add_edge(START, "a").add_edge(START, "b").add_edge("a", "sub").add_edge("b", "sub")
    return g.add_edge("sub", END).compile()


def test_reported_usage_is_summed_per_model_over_the_whole_graph() -> None:
    graph = two_model_graph(
        reporting("gpt-4o-mini", "x", 10, 2),
        reporting("gpt-4o", "y", 20, 4),
        reporting("gpt-4o-mini", "z", 5, 1),
    )
    usage = UsageTracker()
    graph.invoke("q", {"callbacks": [usage]})
    assert usage.by_model == {
        "gpt-4o-mini": ModelUsage("gpt-4o-mini", 15, 3, calls=2),
        "gpt-4o": ModelUsage("gpt-4o", 20, 4, calls=1),
    }
    assert usage.total.total_tokens == 42 and usage.total.calls == 3
    assert not usage.total.estimated
    [run] = usage.runs.values()
    assert run == usage.by_model  # one top-level run, nested graph included


def test_each_top_level_run_is_kept_apart() -> None:
    graph = two_model_graph(
        reporting("a", "x", 1, 1), reporting("b", "y", 1, 1), reporting("a", "z", 1, 1)
    )
    usage = UsageTracker()
    graph.batch(["q1", "q2"], {"callbacks": [usage]})
    assert len(usage.runs) == 2
    for per_model in usage.runs.values():
        assert per_model["a"].calls == 2 and per_model["b"].calls == 1
    assert usage.by_model["a"].calls == 4


def test_missing_usage_is_estimated_and_marked() -> None:
    words = lambda text, model: len(text.split())  # noqa: E731
    usage = UsageTracker(counter=words)
    g = Graph[str, AIMessage]("g").add_node("m", silent("local", "one two three"))
    g.add_edge(START, "m").add_edge("m", END).compile().invoke(
        "four words in here", {"callbacks": [usage]}
    )
    assert usage.by_model["local"] == ModelUsage("local", 4, 3, calls=1, estimated=True)
    assert usage.total.estimated


def test_tiktoken_counter_from_components_can_be_injected() -> None:
    usage = UsageTracker(counter=count_tokens)
    silent("gpt-4o", "hello world").invoke("hello world", {"callbacks": [usage.as_langchain()]})
    assert usage.by_model["gpt-4o"].output_tokens == count_tokens("hello world", "gpt-4o") == 2


def test_default_counter_can_be_registered_for_the_process() -> None:
    set_default_token_counter(lambda text, model: 100)
    try:
        usage = UsageTracker()
        silent("m", "hi").invoke("hi", {"callbacks": [usage.as_langchain()]})
        assert usage.by_model["m"].output_tokens == 100
    finally:
        set_default_token_counter(None)
    assert default_token_counter()("abcdefgh", None) == 2  # the rough fallback: ~4 chars a token


def test_cost_uses_the_price_table_with_prefixes_and_overrides() -> None:
    usage = UsageTracker()
    reporting("gpt-4o-mini-2024-07-18", "x", 1_000_000, 1_000_000).invoke(
        "q", {"callbacks": [usage.as_langchain()]}
    )
    reporting("my-local", "y", 1_000_000, 0).invoke("q", {"callbacks": [usage.as_langchain()]})
    assert usage.cost() == pytest.approx(0.15 + 0.60)
    assert usage.unpriced() == ["my-local"]
    prices = {"my-local": Price(1.0), "gpt-4o-mini": Price(0.0, 2.0)}
    assert usage.cost(prices) == pytest.approx(1.0 + 2.0)
    assert usage.unpriced(prices) == []


def test_cached_input_tokens_use_the_cached_price() -> None:
    assert ModelUsage("gpt-4o", 1_000_000, 0, cached_input_tokens=400_000).cost() == pytest.approx(
        0.6 * 2.50 + 0.4 * 1.25
    )


def test_track_usage_sees_runs_inside_the_block_only() -> None:
    graph = two_model_graph(
        reporting("a", "x", 1, 1), reporting("b", "y", 2, 2), reporting("a", "z", 3, 3)
    )
    with track_usage() as usage:
        graph.invoke("q")
    graph.invoke("q")
    assert usage.total.calls == 3 and usage.total.input_tokens == 6


@pytest.mark.server
def test_streamed_openai_call_uses_the_providers_numbers() -> None:
    with OpenAIServer(["The answer is 42."]) as server:
        model = openai_chat_model(base_url=server.base_url, api_key="test", max_retries=0)
        usage = UsageTracker(counter=lambda text, model: 0)
        chunks = list(model.stream("What is the answer?", {"callbacks": [usage.as_langchain()]}))
    reported = sum(chunks[1:], chunks[0]).usage_metadata
    got = usage.by_model["gpt-4o-mini"]
    assert (got.input_tokens, got.output_tokens) == (
        reported["input_tokens"],
        reported["output_tokens"],
    )
    assert got.output_tokens > 0 and not got.estimated


def test_usage_of_several_completions_for_one_prompt_counts_once() -> None:
    # A provider reports one usage per response; with n > 1 each completion carries it.
    usage = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
    gens = [ChatGeneration(message=AIMessage(t, usage_metadata=usage)) for t in ("a", "b")]
    assert reported_usage(LLMResult(generations=[gens])) == (100, 20, 0)
    two_prompts = LLMResult(generations=[gens[:1], gens[1:]])
    assert reported_usage(two_prompts) == (200, 40, 0)


@pytest.mark.server
def test_embeddings_requests_count_with_the_runs_models_and_cost() -> None:
    from weft.components.embeddings import OpenAIEmbedder

    with OpenAIServer() as server:
        embedder = OpenAIEmbedder(base_url=server.base_url, api_key="test", max_retries=0)
        chat = reporting("gpt-4o-mini", "an answer", 10, 2)

        def answer(q: str, config: RunnableConfig) -> str:
            embedder.embed_query(q)  # a search would embed the question first
            return str(chat.invoke(q, config).content)

        g = Graph[str, str]("rag").add_node("answer", answer)
        graph = g.add_edge(START, "answer").add_edge("answer", END).compile()
        usage = UsageTracker()
        graph.invoke("how do I install weft", {"callbacks": [usage]})
        with track_usage() as seen:
            graph.invoke("and then", {})
    embedding = usage.by_model["text-embedding-3-small"]
    assert embedding.calls == 1 and embedding.input_tokens > 0 and embedding.output_tokens == 0
    assert not embedding.estimated
    [run] = usage.runs.values()
    assert run == usage.by_model  # counted inside the run that asked for it
    expected = embedding.input_tokens * 0.02 / 1e6 + (10 * 0.15 + 2 * 0.60) / 1e6
    assert usage.cost() == pytest.approx(expected)
    assert seen.by_model["text-embedding-3-small"].calls == 1  # a process-wide tracker too

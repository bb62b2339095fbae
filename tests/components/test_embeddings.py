from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.embeddings import Embeddings

from weft.components.embeddings import (
    HashingEmbeddings,
    MicroBatchEmbeddings,
    OpenAIEmbedder,
    WordLlamaEmbeddings,
    default_embeddings,
)
from weft.components.tokens import count_tokens
from weft.core.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    MissingExtraError,
    ModelError,
    ProviderUnavailableError,
)
from weft.testing import Fault, OpenAIServer


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(var, raising=False)


# --- HashingEmbeddings ----------------------------------------------------------------------


def test_hashing_vectors_are_unit_length_and_deterministic() -> None:
    emb = HashingEmbeddings(dimension=64)
    [a, b] = emb.embed_documents(["The cat sat on the mat", "The cat sat on the mat"])
    assert a == b == HashingEmbeddings(dimension=64).embed_query("The cat sat on the mat")
    assert len(a) == 64 == emb.dimension
    assert math.isclose(sum(x * x for x in a), 1.0)
    assert emb.name == "hashing-v1-64"


def test_hashing_vectors_do_not_depend_on_python_hash_seed() -> None:
    # Pinned values: a change here changes every stored vector, so bump the name's version.
    vector = HashingEmbeddings(dimension=8).embed_query("weft")
    assert [round(x, 4) for x in vector] == [0.2887, -0.866, 0.0, -0.2887, 0.2887, 0.0, 0.0, 0.0]


def test_hashing_similarity_follows_shared_words() -> None:
    emb = HashingEmbeddings()
    query = emb.embed_query("reset my password")
    near = emb.embed_query("how to reset a forgotten password")
    far = emb.embed_query("quarterly revenue grew in Europe")
    assert cosine(query, near) > cosine(query, far) + 0.2


def test_hashing_empty_text_still_gets_a_unit_vector() -> None:
    vector = HashingEmbeddings(dimension=16).embed_query("")
    assert math.isclose(sum(x * x for x in vector), 1.0)
    with pytest.raises(ValueError):
        HashingEmbeddings(dimension=0)


# --- WordLlamaEmbeddings (offline default) --------------------------------------------------


def test_wordllama_embeds_by_meaning_offline() -> None:
    emb = WordLlamaEmbeddings()
    assert emb.name == "wordllama-l2_supercat-256"
    assert emb.dimension == 256
    query = emb.embed_query("how many vacation days do I get")
    [near, far] = emb.embed_documents(
        ["Employees receive 25 days of paid leave per year.", "Add an index to the SQL column."]
    )
    assert len(query) == 256
    assert math.isclose(sum(x * x for x in query), 1.0, rel_tol=1e-4)
    assert cosine(query, near) > cosine(query, far) + 0.1
    assert emb.embed_documents([]) == []


def test_wordllama_truncated_dimension() -> None:
    emb = WordLlamaEmbeddings(dimension=64)
    assert emb.name == "wordllama-l2_supercat-64"
    assert len(emb.embed_query("hello")) == 64


def test_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wordllama", None)  # makes `import wordllama` fail
    with pytest.raises(MissingExtraError, match=r'pip install "weft\[local-embeddings\]"'):
        WordLlamaEmbeddings()


def test_default_is_offline_without_openai_settings() -> None:
    assert isinstance(default_embeddings(), WordLlamaEmbeddings)


def test_default_is_openai_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    emb = default_embeddings("nomic-embed-text")
    assert isinstance(emb, OpenAIEmbedder)
    assert emb.name == "openai:nomic-embed-text"
    assert emb.base_url == "http://127.0.0.1:9/v1"


def test_default_falls_back_to_hashing_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "wordllama", None)
    with caplog.at_level(logging.WARNING, logger="weft.components.embeddings"):
        emb = default_embeddings()
    assert isinstance(emb, HashingEmbeddings)
    assert 'pip install "weft[local-embeddings]"' in caplog.text


# --- OpenAIEmbedder -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(embedding_dimensions=16) as running:
        yield running


@pytest.fixture
def openai_server(server: OpenAIServer) -> OpenAIServer:
    server.reset()
    return server


def embedder(server: OpenAIServer, **kwargs: object) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        kwargs.pop("model", "text-embedding-3-small"),  # type: ignore[arg-type]
        base_url=server.base_url,
        api_key="test",
        max_retries=0,
        **kwargs,  # type: ignore[arg-type]
    )


def inputs_per_request(server: OpenAIServer) -> list[int]:
    return [len(r.body["input"]) for r in server.requests_to("/embeddings")]


@pytest.mark.server
def test_openai_batches_at_the_default_limit_of_2048(openai_server: OpenAIServer) -> None:
    texts = [f"text number {i}" for i in range(5000)]
    vectors = embedder(openai_server).embed_documents(texts)
    assert inputs_per_request(openai_server) == [2048, 2048, 904]
    assert len(vectors) == 5000
    # Order is kept across batches: each vector is the one its own text gets alone.
    single = embedder(openai_server)
    for i in (0, 2047, 2048, 4999):
        assert vectors[i] == single.embed_query(texts[i])


@pytest.mark.server
def test_openai_batch_size_is_configurable(openai_server: OpenAIServer) -> None:
    embedder(openai_server, batch_size=10).embed_documents([f"t{i}" for i in range(25)])
    assert inputs_per_request(openai_server) == [10, 10, 5]


@pytest.mark.server
def test_openai_batches_respect_the_token_budget(openai_server: OpenAIServer) -> None:
    text = "token " * 100  # 100 tokens
    embedder(openai_server, max_batch_tokens=250).embed_documents([text] * 5)
    assert inputs_per_request(openai_server) == [2, 2, 1]


@pytest.mark.server
def test_openai_truncates_long_inputs_to_the_model_limit(openai_server: OpenAIServer) -> None:
    long_text = "lorem ipsum dolor sit amet " * 2500  # ~12.5k tokens
    assert count_tokens(long_text) > 8191
    embedder(openai_server).embed_documents([long_text, "short"])
    [request] = openai_server.requests_to("/embeddings")
    sent = request.body["input"]
    assert all(isinstance(s, str) for s in sent)  # strings, never token ids
    assert count_tokens(sent[0]) == 8191
    assert long_text.startswith(sent[0])
    assert sent[1] == "short"
    assert request.body["encoding_format"] == "float"


@pytest.mark.server
def test_openai_custom_token_limit_and_dimensions(openai_server: OpenAIServer) -> None:
    emb = embedder(openai_server, max_input_tokens=5, dimensions=8)
    [vector] = emb.embed_documents(["one two three four five six seven"])
    [request] = openai_server.requests_to("/embeddings")
    assert request.body["input"] == ["one two three four five"]
    assert request.body["dimensions"] == 8
    assert len(vector) == 8
    assert emb.name == "openai:text-embedding-3-small:8"
    assert emb.dimension == 8


@pytest.mark.server
async def test_openai_async_batches_and_truncates(openai_server: OpenAIServer) -> None:
    emb = embedder(openai_server, batch_size=4, max_input_tokens=3)
    vectors = await emb.aembed_documents([f"alpha beta gamma delta {i}" for i in range(10)])
    assert len(vectors) == 10
    assert inputs_per_request(openai_server) == [4, 4, 2]
    sent = openai_server.requests_to("/embeddings")[0].body["input"]
    assert sent[0] == "alpha beta gamma"
    assert await emb.aembed_query("x") == emb.embed_query("x")


@pytest.mark.server
def test_openai_dimension_of_unknown_model_is_probed_once(openai_server: OpenAIServer) -> None:
    emb = embedder(openai_server, model="local-embedder")
    assert emb.dimension == 16
    assert emb.dimension == 16
    assert len(openai_server.requests_to("/embeddings")) == 1
    known = embedder(openai_server, model="text-embedding-3-large")
    assert known.dimension == 3072
    assert len(openai_server.requests_to("/embeddings")) == 1


@pytest.mark.server
def test_openai_errors_map_to_weft_errors(openai_server: OpenAIServer) -> None:
    emb = embedder(openai_server)
    openai_server.fail_embeddings(Fault.unauthorized())
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        emb.embed_query("x")
    openai_server.fail_embeddings(Fault.bad_request("input too long"))
    with pytest.raises(BadRequestError, match="input too long"):
        emb.embed_query("x")
    openai_server.fail_embeddings(Fault.server_error(503))
    with pytest.raises(ProviderUnavailableError, match="text-embedding-3-small"):
        emb.embed_query("x")


@pytest.mark.server
def test_openai_unknown_model_is_a_bad_request() -> None:
    with OpenAIServer(models=["text-embedding-3-small"]) as strict:
        emb = embedder(strict, model="no-such-model")
        with pytest.raises(BadRequestError, match="no-such-model"):
            emb.embed_query("x")


@pytest.mark.server
def test_openai_retries_server_errors_before_giving_up(openai_server: OpenAIServer) -> None:
    openai_server.fail_embeddings(Fault.server_error(500, retry_after=0.01))
    emb = OpenAIEmbedder(base_url=openai_server.base_url, api_key="test", max_retries=1)
    assert len(emb.embed_query("x")) == 16
    assert len(openai_server.requests_to("/embeddings")) == 2


def test_openai_is_configured_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8080/v1")
    emb = OpenAIEmbedder()
    assert emb.api_key.get_secret_value() == "sk-env"
    assert emb.base_url == "http://localhost:8080/v1"
    assert "sk-env" not in repr(emb)


def test_openai_without_key_or_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIEmbedder()


def test_openai_local_server_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    assert OpenAIEmbedder("nomic-embed-text").api_key.get_secret_value() == "not-needed"


# --- MicroBatchEmbeddings -------------------------------------------------------------------


class Recording(Embeddings):
    """A fake that records each batch call; texts containing 'bad' make a batch fail."""

    def __init__(self, delay: float = 0.0, error: type[Exception] = ValueError) -> None:
        self.calls: list[list[str]] = []
        self.delay = delay
        self.error = error
        self.base = HashingEmbeddings(dimension=8)
        self.lock = threading.Lock()

    def _embed(self, texts: list[str]) -> list[list[float]]:
        with self.lock:
            self.calls.append(list(texts))
        bad = [t for t in texts if "bad" in t]
        if bad:
            raise self.error(f"cannot embed {bad}")
        return self.base.embed_documents(texts)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        time.sleep(self.delay)
        return self._embed(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(self.delay)
        return self._embed(texts)


async def test_async_callers_share_few_batch_calls() -> None:
    inner = Recording()
    batched = MicroBatchEmbeddings(inner, max_batch_size=64, max_wait_ms=20)
    texts = [f"query {i}" for i in range(32)]
    vectors = await asyncio.gather(*(batched.aembed_query(t) for t in texts))
    assert len(inner.calls) == 1
    assert sorted(inner.calls[0]) == sorted(texts)
    assert vectors == inner.base.embed_documents(texts)


async def test_async_batches_are_capped_at_max_batch_size() -> None:
    inner = Recording()
    batched = MicroBatchEmbeddings(inner, max_batch_size=8, max_wait_ms=50)
    texts = [f"query {i}" for i in range(32)]
    start = time.monotonic()
    vectors = await asyncio.gather(*(batched.aembed_query(t) for t in texts))
    assert [len(c) for c in inner.calls] == [8, 8, 8, 8]
    assert time.monotonic() - start < 0.05  # full batches go out without waiting
    assert vectors == inner.base.embed_documents(texts)


async def test_async_one_bad_input_fails_only_its_caller() -> None:
    inner = Recording()
    batched = MicroBatchEmbeddings(inner, max_wait_ms=10)
    texts = [f"query {i}" for i in range(31)] + ["a bad query"]
    results = await asyncio.gather(
        *(batched.aembed_query(t) for t in texts), return_exceptions=True
    )
    assert isinstance(results[-1], ValueError)
    assert "a bad query" in str(results[-1])
    assert results[:-1] == inner.base.embed_documents(texts[:-1])
    assert len(inner.calls) <= 1 + 2 * 5  # bisection: O(log n) extra calls, not n


async def test_async_outage_fails_every_caller_with_one_call() -> None:
    inner = Recording(error=ProviderUnavailableError)
    batched = MicroBatchEmbeddings(inner, max_wait_ms=10)
    texts = [f"bad {i}" for i in range(16)]
    results = await asyncio.gather(
        *(batched.aembed_query(t) for t in texts), return_exceptions=True
    )
    assert all(isinstance(r, ProviderUnavailableError) for r in results)
    assert len(inner.calls) == 1


async def test_async_isolation_can_be_switched_off() -> None:
    inner = Recording()
    batched = MicroBatchEmbeddings(inner, max_wait_ms=10, isolate_failures=False)
    results = await asyncio.gather(
        batched.aembed_query("good"), batched.aembed_query("bad"), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)
    assert len(inner.calls) == 1


async def test_async_identical_texts_are_embedded_once() -> None:
    inner = Recording()
    batched = MicroBatchEmbeddings(inner, max_wait_ms=10)
    results = await asyncio.gather(*(batched.aembed_query("same") for _ in range(5)))
    assert inner.calls == [["same"]]
    assert all(r == results[0] for r in results)
    assert results[0] is not results[1]  # each caller owns its list


async def test_async_cancelled_caller_does_not_break_the_batch() -> None:
    inner = Recording(delay=0.02)
    batched = MicroBatchEmbeddings(inner, max_wait_ms=5)
    doomed = asyncio.ensure_future(batched.aembed_query("doomed"))
    survivor = asyncio.ensure_future(batched.aembed_query("survivor"))
    await asyncio.sleep(0.01)  # the batch is in flight
    doomed.cancel()
    assert await survivor == inner.base.embed_query("survivor")
    assert doomed.cancelled()


async def test_async_lone_caller_waits_only_max_wait() -> None:
    batched = MicroBatchEmbeddings(Recording(), max_wait_ms=5)
    start = time.monotonic()
    await batched.aembed_query("alone")
    assert time.monotonic() - start < 0.5


def test_threaded_callers_share_few_batch_calls() -> None:
    inner = Recording(delay=0.01)
    batched = MicroBatchEmbeddings(inner, max_batch_size=64, max_wait_ms=30)
    texts = [f"query {i}" for i in range(32)]
    barrier = threading.Barrier(32)

    def call(text: str) -> list[float]:
        barrier.wait()
        return batched.embed_query(text)

    with ThreadPoolExecutor(32) as pool:
        vectors = list(pool.map(call, texts))
    assert vectors == inner.base.embed_documents(texts)
    assert len(inner.calls) <= 3
    assert sum(len(c) for c in inner.calls) == 32


def test_threaded_batches_are_capped_and_nobody_is_left_waiting() -> None:
    inner = Recording(delay=0.005)
    batched = MicroBatchEmbeddings(inner, max_batch_size=5, max_wait_ms=10)
    texts = [f"query {i}" for i in range(32)]
    barrier = threading.Barrier(32)

    def call(text: str) -> list[float]:
        barrier.wait()
        return batched.embed_query(text)

    with ThreadPoolExecutor(32) as pool:
        vectors = list(pool.map(call, texts, timeout=10))
    assert vectors == inner.base.embed_documents(texts)
    assert max(len(c) for c in inner.calls) <= 5
    assert sorted(t for c in inner.calls for t in c) == sorted(texts)


def test_threaded_errors_reach_only_their_callers() -> None:
    inner = Recording(delay=0.005)
    batched = MicroBatchEmbeddings(inner, max_wait_ms=30)
    texts = [f"query {i}" for i in range(30)] + ["bad one", "bad two"]
    barrier = threading.Barrier(len(texts))

    def call(text: str) -> list[float] | Exception:
        barrier.wait()
        try:
            return batched.embed_query(text)
        except ValueError as exc:
            return exc

    with ThreadPoolExecutor(len(texts)) as pool:
        results = list(pool.map(call, texts, timeout=10))
    assert all(isinstance(r, ValueError) for r in results[-2:])
    assert results[:-2] == inner.base.embed_documents(texts[:-2])


def test_wrong_vector_count_is_a_model_error() -> None:
    class Short(Recording):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return super().embed_documents(texts)[:-1]

    batched = MicroBatchEmbeddings(Short(), max_wait_ms=1)
    with pytest.raises(ModelError, match="returned 0 vectors for 1 texts"):
        batched.embed_query("x")


def test_wrapper_keeps_identity_and_passes_batches_through() -> None:
    inner = Recording()
    batched = MicroBatchEmbeddings(HashingEmbeddings(dimension=12))
    assert batched.name == "hashing-v1-12"
    assert batched.dimension == 12
    passthrough = MicroBatchEmbeddings(inner)
    passthrough.embed_documents(["a", "b", "c"])
    assert inner.calls == [["a", "b", "c"]]
    with pytest.raises(ValueError):
        MicroBatchEmbeddings(inner, max_batch_size=0)


@pytest.mark.server
async def test_micro_batcher_over_real_http(openai_server: OpenAIServer) -> None:
    emb = embedder(openai_server)
    batched = MicroBatchEmbeddings(emb, max_batch_size=64, max_wait_ms=20)
    texts = [f"question {i}" for i in range(32)]
    vectors = await asyncio.gather(*(batched.aembed_query(t) for t in texts))
    assert inputs_per_request(openai_server) == [32]
    assert vectors == emb.embed_documents(texts)


def test_offline_embedder_leaves_the_root_logger_as_it_was() -> None:
    import logging
    import subprocess
    import sys

    code = (
        "import logging; from weft.components.embeddings import WordLlamaEmbeddings;"
        "WordLlamaEmbeddings().embed_query('hi'); r = logging.getLogger();"
        "print(len(r.handlers), r.level)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", str(logging.WARNING)]


@pytest.mark.server
def test_openai_embedding_requests_are_traced_as_embeddings_spans(
    openai_server: OpenAIServer,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from weft import END, START, Graph, lambda_
    from weft.core.tracing import OTelHandler

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    emb = embedder(openai_server)
    g = Graph[str, int]("embed").add_node(
        "embed", lambda_(lambda t: len(emb.embed_query(t)), input_type=str, output_type=int)
    )
    compiled = g.add_edge(START, "embed").add_edge("embed", END).compile()
    assert compiled.invoke("hello", {"callbacks": [OTelHandler(provider)]}) == 16
    by_name = {s.name: s for s in spans.get_finished_spans()}
    span = by_name["embeddings text-embedding-3-small"]
    assert span.kind == SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == by_name["node embed"].context.span_id
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert (attrs["server.address"], attrs["server.port"]) == ("127.0.0.1", openai_server.port)
    assert attrs["gen_ai.usage.input_tokens"] > 0

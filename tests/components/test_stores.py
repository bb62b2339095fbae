from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import chromadb
import httpx
import pytest
from chromadb.config import Settings
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from weft.components.stores import ChromaRetriever, ChromaStore, embedder_identity
from weft.core.errors import ConfigurationError, EmptyQueryError

DOCS = [
    Document(page_content="apples are red", id="a", metadata={"kind": "fruit", "year": 2020}),
    Document(page_content="bananas are yellow", id="b", metadata={"kind": "fruit", "year": 2022}),
    Document(
        page_content="carrots are orange", id="c", metadata={"kind": "vegetable", "year": 2023}
    ),
]


class NamedEmbeddings(Embeddings):
    """An embedder that declares ``name`` and ``dimension`` like weft's own ones do."""

    def __init__(self, name: str, dimension: int = 16) -> None:
        self.name = name
        self.dimension = dimension
        self._inner = DeterministicFakeEmbedding(size=dimension)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._inner.embed_query(text)


@pytest.fixture
def store(tmp_path: Path) -> ChromaStore:
    store = ChromaStore("test-docs", DeterministicFakeEmbedding(size=16), data_dir=tmp_path)
    store.upsert(DOCS)
    return store


def test_embedder_identity_uses_attributes_or_probes() -> None:
    assert embedder_identity(NamedEmbeddings("hashing-v1", 32)) == ("hashing-v1", 32)
    assert embedder_identity(DeterministicFakeEmbedding(size=12)) == (
        "DeterministicFakeEmbedding",
        12,
    )


def test_upsert_is_idempotent(store: ChromaStore) -> None:
    assert store.upsert(DOCS) == ["a", "b", "c"]
    assert store.count() == 3


def test_upsert_replaces_content_by_id(store: ChromaStore) -> None:
    store.upsert([Document(page_content="apples are green", id="a", metadata={"kind": "fruit"})])
    assert store.count() == 3
    assert store.get_by_ids(["a"])[0].page_content == "apples are green"


def test_documents_without_id_get_a_stable_content_id(store: ChromaStore) -> None:
    doc = Document(page_content="dates are sweet", metadata={"kind": "fruit"})
    first = store.upsert([doc])
    assert store.upsert([doc]) == first
    assert store.count() == 4


def test_upsert_batches_large_inputs(tmp_path: Path) -> None:
    store = ChromaStore("batched", DeterministicFakeEmbedding(size=8), data_dir=tmp_path)
    docs = [Document(page_content=f"chunk {i}", id=str(i)) for i in range(25)]
    assert store.upsert(docs, batch_size=10) == [str(i) for i in range(25)]
    assert store.count() == 25


def test_delete_by_ids_and_by_filter(store: ChromaStore) -> None:
    store.delete(["a"])
    assert store.count() == 2
    store.delete(where={"kind": "vegetable"})
    assert [d.id for d in store.similarity_search("anything", k=5)] == ["b"]
    store.delete()  # no ids and no filter deletes nothing
    assert store.count() == 1


def test_metadata_filters(store: ChromaStore) -> None:
    fruit = store.similarity_search("carrots are orange", k=5, filter={"kind": "fruit"})
    assert {d.id for d in fruit} == {"a", "b"}
    recent = store.similarity_search("x", k=5, filter={"year": {"$gte": 2022}})
    assert {d.id for d in recent} == {"b", "c"}


def test_relevance_scores_are_similarities_in_unit_interval(store: ChromaStore) -> None:
    hits = store.similarity_search_with_relevance_scores("bananas are yellow", k=3)
    assert hits[0][0].id == "b"
    assert hits[0][1] == pytest.approx(1.0, abs=1e-6)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    # The documented mapping: similarity = 1 - cosine_distance / 2.
    distances = dict((d.id, s) for d, s in store.similarity_search_with_score("bananas", k=3))
    for doc, score in store.similarity_search_with_relevance_scores("bananas", k=3):
        assert score == pytest.approx(1 - distances[doc.id] / 2)


def test_retriever_honours_k_and_filter_and_reports_scores(store: ChromaStore) -> None:
    retriever = store.as_retriever(k=1, filter={"kind": "fruit"})
    assert isinstance(retriever, ChromaRetriever)
    docs = retriever.invoke("carrots are orange")
    assert len(docs) == 1 and docs[0].metadata["kind"] == "fruit"
    assert 0.0 <= docs[0].metadata["score"] <= 1.0
    assert len(retriever.invoke("carrots", k=3, filter=None)) == 2  # constructor filter stays
    assert len(retriever.invoke("carrots", k=3, filter={"year": 2023})) == 1


async def test_retriever_async(store: ChromaStore) -> None:
    docs = await store.as_retriever(k=2).ainvoke("apples are red")
    assert docs[0].id == "a" and len(docs) == 2


@pytest.mark.parametrize("query", ["", "  \t"])
def test_empty_query_raises(store: ChromaStore, query: str) -> None:
    with pytest.raises(EmptyQueryError):
        store.similarity_search(query)
    with pytest.raises(EmptyQueryError):
        store.as_retriever().invoke(query)


def test_reopening_with_the_same_embedder_keeps_the_data(
    store: ChromaStore, tmp_path: Path
) -> None:
    again = ChromaStore("test-docs", DeterministicFakeEmbedding(size=16), data_dir=tmp_path)
    assert again.count() == 3


def test_dimension_mismatch_names_both_embedders_and_the_fix(
    store: ChromaStore, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError) as info:
        ChromaStore("test-docs", DeterministicFakeEmbedding(size=32), data_dir=tmp_path)
    message = str(info.value)
    assert "dimension 16" in message and "dimension 32" in message
    assert "test-docs" in message and "--reset" in message and "collection name" in message


def test_name_mismatch_with_equal_dimension_raises(tmp_path: Path) -> None:
    ChromaStore("named", NamedEmbeddings("hashing-v1"), data_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=r"'hashing-v1'.*'minilm-onnx'"):
        ChromaStore("named", NamedEmbeddings("minilm-onnx"), data_dir=tmp_path)
    # Another collection name is the documented way out.
    ChromaStore("named-minilm", NamedEmbeddings("minilm-onnx"), data_dir=tmp_path)


def test_reset_collection_rebinds_it_to_the_new_embedder(tmp_path: Path) -> None:
    old = ChromaStore("reset-me", NamedEmbeddings("old"), data_dir=tmp_path)
    old.upsert(DOCS)
    new = ChromaStore("reset-me", NamedEmbeddings("new"), data_dir=tmp_path, reset=True)
    assert new.count() == 0
    new.upsert(DOCS[:1])
    assert ChromaStore("reset-me", NamedEmbeddings("new"), data_dir=tmp_path).count() == 1
    with pytest.raises(ConfigurationError):
        ChromaStore("reset-me", NamedEmbeddings("old"), data_dir=tmp_path)


def test_unknown_distance_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cosine"):
        ChromaStore("d", DeterministicFakeEmbedding(size=4), data_dir=tmp_path, distance="dot")  # type: ignore[arg-type]


def test_bad_chroma_port_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", "eighty")
    with pytest.raises(ConfigurationError, match="CHROMA_PORT"):
        ChromaStore("d", DeterministicFakeEmbedding(size=4))


# -- a real Chroma server ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(chroma).exists():
        pytest.fail("the 'chroma' CLI (installed with chromadb) was not found")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = (data / "server.log").open("wb")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}: see {data / 'server.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("chroma run did not answer its heartbeat within 30 s")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.server
def test_chroma_host_env_uses_a_real_chroma_server(
    chroma_server: tuple[str, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host, port = chroma_server
    monkeypatch.setenv("CHROMA_HOST", host)
    monkeypatch.setenv("CHROMA_PORT", str(port))
    monkeypatch.chdir(tmp_path)  # the embedded client would create .weft/chroma here
    store = ChromaStore("served", NamedEmbeddings("hashing-v1"))
    store.upsert(DOCS)
    store.upsert(DOCS)
    assert store.count() == 3
    assert not (tmp_path / ".weft").exists()
    hits = store.as_retriever(k=2, filter={"kind": "fruit"}).invoke("apples are red")
    assert [d.id for d in hits][:1] == ["a"] and len(hits) == 2
    # The data lives on the server: a plain HTTP client sees the collection and its metadata.
    client = chromadb.HttpClient(
        host=host, port=port, settings=Settings(anonymized_telemetry=False)
    )
    collection = client.get_collection("served")
    assert collection.count() == 3
    assert collection.metadata["weft:embedder"] == "hashing-v1"
    with pytest.raises(ConfigurationError, match=r"Chroma server 127\.0\.0\.1"):
        ChromaStore("served", NamedEmbeddings("other"))


def test_default_embedder_comes_from_weft_embeddings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import weft.components.embeddings as embeddings

    monkeypatch.setattr(embeddings, "default_embeddings", lambda: NamedEmbeddings("default-x"))
    store = ChromaStore("defaulted", data_dir=tmp_path)
    assert (store.embedder_name, store.dimension) == ("default-x", 16)


def test_missing_default_embedder_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import weft.components.embeddings as embeddings

    monkeypatch.delattr(embeddings, "default_embeddings")
    with pytest.raises(ConfigurationError, match="pass embedding="):
        ChromaStore("defaulted", data_dir=tmp_path)


class TracedEmbeddings(NamedEmbeddings):
    """An embedder that reports its requests, as weft's OpenAI embedder does."""

    def embed_query(self, text: str) -> list[float]:
        from weft.core.tracing import embeddings_span

        with embeddings_span(self.name) as call:
            call.record(input_tokens=len(text.split()))
            return super().embed_query(text)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_stores_embedding_request_nests_under_the_retrieval_span(
    tmp_path: Path, mode: str
) -> None:
    import asyncio

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from weft import END, START, Graph
    from weft.core.tracing import OTelHandler

    store = ChromaStore("traced", TracedEmbeddings("emb-x"), data_dir=tmp_path)
    store.upsert(DOCS)
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    handler = OTelHandler(provider, MeterProvider())
    g = Graph[str, list[Document]]("search").add_node("vector", store.as_retriever(k=1))
    graph = g.add_edge(START, "vector").add_edge("vector", END).compile()
    config = {"callbacks": [handler]}
    if mode == "sync":
        hits = graph.invoke("red apples", config)  # type: ignore[arg-type]
    else:
        hits = asyncio.run(graph.ainvoke("red apples", config))  # type: ignore[arg-type]
    assert [d.id for d in hits] == ["a"]
    finished = {s.name: s for s in spans.get_finished_spans()}
    embedding, retrieval = finished["embeddings emb-x"], finished["retrieval chroma:traced"]
    assert embedding.parent is not None
    assert embedding.parent.span_id == retrieval.context.span_id
    assert (
        embedding.attributes is not None and embedding.attributes["gen_ai.usage.input_tokens"] == 2
    )


def test_a_damaged_chroma_database_is_a_configuration_error_naming_the_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "chroma.sqlite3").write_bytes(b"not a database" * 400)
    with pytest.raises(ConfigurationError) as caught:
        ChromaStore("notes", DeterministicFakeEmbedding(size=8), data_dir=tmp_path)
    message = str(caught.value)
    assert f"cannot open Chroma collection 'notes' at '{tmp_path}'" in message
    assert "move it away and ingest again" in message
    assert (tmp_path / "chroma.sqlite3").read_bytes() == b"not a database" * 400

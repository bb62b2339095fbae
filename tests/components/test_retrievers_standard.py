"""LangChain's standard integration suites, run against weft's store and retrievers."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from weft.components.bm25 import BM25Retriever
from weft.components.hybrid import HybridRetriever
from weft.components.stores import ChromaRetriever, ChromaStore

CORPUS = [
    Document(page_content=f"weft retrieval note {i}: {topic}", id=f"doc-{i}")
    for i, topic in enumerate(
        [
            "vector stores keep embeddings",
            "keyword search ranks by term overlap",
            "hybrid retrieval fuses rankings",
            "chunking splits long documents",
            "rerankers reorder candidates",
        ]
    )
]
QUERY = "weft retrieval"  # shared by every document, so any k up to 5 is filled


class _TmpDir:
    tmp: Path

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        # Autouse fixtures run before the test body, which reads constructor params directly.
        self.tmp = tmp_path

    def chroma(self) -> ChromaStore:
        store = ChromaStore("standard", DeterministicFakeEmbedding(size=16), data_dir=self.tmp)
        store.upsert(CORPUS)
        return store


class TestBM25RetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return BM25Retriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"documents": CORPUS}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


class TestChromaRetrieverStandard(_TmpDir, RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return ChromaRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"vectorstore": self.chroma()}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


class TestHybridRetrieverStandard(_TmpDir, RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"vector": self.chroma().as_retriever(), "bm25": BM25Retriever(documents=CORPUS)}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


class TestChromaStoreStandard(_TmpDir, VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self) -> Generator[VectorStore, None, None]:  # type: ignore[override]
        yield ChromaStore("standard-store", self.get_embeddings(), data_dir=self.tmp)

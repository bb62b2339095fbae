"""LangChain's standard test suites for weft's embedders."""

from __future__ import annotations

from typing import Any

from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

from weft.components.embeddings import HashingEmbeddings, OpenAIEmbedder, WordLlamaEmbeddings


class TestOpenAIEmbedderStandard(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[OpenAIEmbedder]:
        return OpenAIEmbedder

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": "text-embedding-3-small", "api_key": "sk-test"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"OPENAI_API_KEY": "sk-from-env", "OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"},
            {"model": "text-embedding-3-large"},
            {
                "api_key": "sk-from-env",
                "base_url": "http://127.0.0.1:8080/v1",
                "model": "text-embedding-3-large",
            },
        )


class TestWordLlamaEmbeddingsStandard(EmbeddingsIntegrationTests):
    """The offline default runs for real here: no network, weights from the wheel."""

    @property
    def embeddings_class(self) -> type[WordLlamaEmbeddings]:
        return WordLlamaEmbeddings


class TestHashingEmbeddingsStandard(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[HashingEmbeddings]:
        return HashingEmbeddings

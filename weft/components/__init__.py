"""Components: chat models, embeddings, stores, retrievers, prompts, documents, cache, resilience.

Every component is a langchain-core Runnable with known input and output types, so it plugs into
a weft graph and its edges are checked at compile time. The names below are imported on first
use, so ``import weft.components`` stays cheap (Chroma and the embedders load only when needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from weft.components.bm25 import BM25Retriever
    from weft.components.cache import CachedRunnable, cached
    from weft.components.documents import TokenSplitter, load_documents
    from weft.components.embeddings import (
        HashingEmbeddings,
        MicroBatchEmbeddings,
        OpenAIEmbedder,
        default_embeddings,
    )
    from weft.components.hybrid import HybridRetriever
    from weft.components.models import (
        ExtractiveChatModel,
        default_chat_model,
        format_sources,
        openai_chat_model,
    )
    from weft.components.prompts import ContextPacker, chat_prompt, pack_context
    from weft.components.resilience import (
        CircuitBreaker,
        resilient,
        with_circuit_breaker,
        with_concurrency_limit,
        with_rate_limit,
        with_retry,
        with_timeout,
    )
    from weft.components.stores import ChromaStore
    from weft.components.tokens import count_message_tokens, count_tokens

_WHERE = {
    "BM25Retriever": "bm25",
    "CachedRunnable": "cache",
    "cached": "cache",
    "TokenSplitter": "documents",
    "load_documents": "documents",
    "HashingEmbeddings": "embeddings",
    "MicroBatchEmbeddings": "embeddings",
    "OpenAIEmbedder": "embeddings",
    "default_embeddings": "embeddings",
    "HybridRetriever": "hybrid",
    "ExtractiveChatModel": "models",
    "default_chat_model": "models",
    "format_sources": "models",
    "openai_chat_model": "models",
    "ContextPacker": "prompts",
    "chat_prompt": "prompts",
    "pack_context": "prompts",
    "CircuitBreaker": "resilience",
    "resilient": "resilience",
    "with_circuit_breaker": "resilience",
    "with_concurrency_limit": "resilience",
    "with_rate_limit": "resilience",
    "with_retry": "resilience",
    "with_timeout": "resilience",
    "ChromaStore": "stores",
    "count_message_tokens": "tokens",
    "count_tokens": "tokens",
}

__all__ = [
    "BM25Retriever",
    "CachedRunnable",
    "ChromaStore",
    "CircuitBreaker",
    "ContextPacker",
    "ExtractiveChatModel",
    "HashingEmbeddings",
    "HybridRetriever",
    "MicroBatchEmbeddings",
    "OpenAIEmbedder",
    "TokenSplitter",
    "cached",
    "chat_prompt",
    "count_message_tokens",
    "count_tokens",
    "default_chat_model",
    "default_embeddings",
    "format_sources",
    "load_documents",
    "openai_chat_model",
    "pack_context",
    "resilient",
    "with_circuit_breaker",
    "with_concurrency_limit",
    "with_rate_limit",
    "with_retry",
    "with_timeout",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'weft.components' has no attribute {name!r}")
    return getattr(importlib.import_module(f"weft.components.{module}"), name)

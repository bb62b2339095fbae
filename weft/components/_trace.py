"""What retrievers add to their run metadata so tracing can name the data source and top-k."""

from __future__ import annotations

from typing import Any

from langchain_core.retrievers import LangSmithRetrieverParams

__all__ = ["retriever_params"]


def retriever_params(
    params: LangSmithRetrieverParams, *, top_k: int, source: str
) -> LangSmithRetrieverParams:
    """``params`` plus ``weft_top_k`` and ``weft_data_source``, which weft's tracing reads."""
    extra: dict[str, Any] = {"weft_top_k": top_k, "weft_data_source": source}
    return {**params, **extra}  # type: ignore[typeddict-item]

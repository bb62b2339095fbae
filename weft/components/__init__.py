"""Components: chat models, embeddings, stores, retrievers, prompts, documents, cache, resilience.

Every component is a langchain-core Runnable with known input and output types, so it plugs into
a weft graph and its edges are checked at compile time."""

__all__: list[str] = []

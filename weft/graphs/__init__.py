"""Ready graphs: hybrid retrieval, RAG chat, resume analysis and health consultation."""

__all__: list[str] = []

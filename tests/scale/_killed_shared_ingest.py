"""An ingest into a knowledge base in PostgreSQL, killed after its chunks reached Chroma and
before its commit, for test_shared_knowledge.

Run as ``python _killed_shared_ingest.py COLLECTION MODE PATH``, with ``WEFT_DATABASE_URL`` and
``WEFT_CHROMA_URL`` set: it ingests PATH (``MODE`` is ``ingest`` or ``reset``) and dies with
exit code 9 where it would have committed.
"""

import os
import sys
from pathlib import Path
from typing import Any

from weft.components.embeddings import HashingEmbeddings
from weft.core.settings import Settings
from weft.graphs._knowledge_postgres import SharedKnowledgeBase
from weft.graphs.knowledge import KnowledgeBase

KILLED = 9


def knowledge_base(collection: str, data_dir: Path) -> KnowledgeBase:
    settings = Settings(data_dir=data_dir, collection=collection, chunk_tokens=32, chunk_overlap=0)
    return KnowledgeBase(settings, embedding=HashingEmbeddings(64))


def die(*args: Any) -> None:
    os._exit(KILLED)


if __name__ == "__main__":
    collection, mode, path = sys.argv[1:4]
    SharedKnowledgeBase._commit = die  # type: ignore[method-assign]
    kb = knowledge_base(collection, Path(path).parent / "killer-data")
    kb.ingest([path], progress=False, reset=mode == "reset")
    sys.exit(1)  # not reached: the commit kills the process

"""Ingests killed at one step each, for test_knowledge.

Run as ``python _killed_ingest.py BASE DOCS BOOK MODE:STEP...``. For each step it fills the data
dir ``BASE/<MODE-STEP>`` with DOCS, then ingests BOOK there (``MODE`` is ``ingest`` or ``reset``)
in a process that dies at STEP with exit code 9, and prints one JSON line with the exit codes.
Each ingest runs in a forked child, so the slow imports happen once.
"""

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weft.components.bm25 import BM25Retriever
from weft.components.embeddings import HashingEmbeddings
from weft.components.stores import ChromaStore
from weft.core.settings import Settings
from weft.graphs.knowledge import KnowledgeBase

KILLED = 9
STEPS = (
    "before chroma",
    "after one chroma batch",
    "before the bm25 save",
    "before the pointer swap",
    "after the pointer swap",
    "after the bm25 save",
)


def knowledge_base(data_dir: Path) -> KnowledgeBase:
    settings = Settings(data_dir=data_dir, chunk_tokens=32, chunk_overlap=0)
    return KnowledgeBase(settings, embedding=HashingEmbeddings(64))


def die_at(step: str) -> None:
    """Make this process die, with no clean-up, when the ingest reaches ``step``."""
    real_upsert, real_save, real_replace = ChromaStore.upsert, BM25Retriever.save, os.replace

    def upsert(self: ChromaStore, documents: Any, **kwargs: Any) -> list[str]:
        if step == "before chroma":
            os._exit(KILLED)
        ids = real_upsert(self, documents, **kwargs)
        if step == "after one chroma batch":
            os._exit(KILLED)
        return ids

    def save(self: BM25Retriever, path: Any) -> Path:
        if step == "before the bm25 save":
            os._exit(KILLED)
        root = real_save(self, path)
        if step == "after the bm25 save":
            os._exit(KILLED)
        return root

    def replace(src: Any, dst: Any) -> None:
        swap = Path(dst).name == "CURRENT"
        if swap and step == "before the pointer swap":
            os._exit(KILLED)
        real_replace(src, dst)
        if swap and step == "after the pointer swap":
            os._exit(KILLED)

    ChromaStore.upsert = upsert  # type: ignore[method-assign]
    BM25Retriever.save = save  # type: ignore[method-assign]
    os.replace = replace


def in_child(work: Callable[[], object]) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def fill(data_dir: Path, docs: Path) -> None:
    knowledge_base(data_dir).ingest([docs], progress=False)


def killed(data_dir: Path, book: Path, mode: str, step: str) -> None:
    die_at(step)
    knowledge_base(data_dir).ingest([book], progress=False, reset=mode == "reset")


def main(base: Path, docs: Path, book: Path, points: list[str]) -> None:
    for point in points:
        mode, step = point.split(":")
        data_dir = base / point.replace(":", "-").replace(" ", "-")
        ready = in_child(functools.partial(fill, data_dir, docs))
        died = in_child(functools.partial(killed, data_dir, book, mode, step))
        print(json.dumps({"point": point, "ready": ready, "killed": died}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])

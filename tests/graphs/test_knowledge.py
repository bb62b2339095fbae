import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from weft.components.bm25 import BM25Retriever
from weft.components.embeddings import HashingEmbeddings
from weft.components.stores import ChromaStore
from weft.core.errors import ConfigurationError
from weft.core.settings import Settings
from weft.graphs.knowledge import DEMO_KB_DIR, KnowledgeBase


def _kb(data_dir: Path, **settings: object) -> KnowledgeBase:
    return KnowledgeBase(Settings(data_dir=data_dir, **settings), embedding=HashingEmbeddings(64))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "paris.md").write_text(
        "# Paris\n\nParis is the capital of France. The Seine flows through Paris.\n"
    )
    (folder / "berlin.txt").write_text("Berlin is the capital of Germany. It has many lakes.\n")
    (folder / "empty.txt").write_text("")
    (folder / "image.xyz").write_bytes(b"\x00\x01")
    return folder


def test_ingest_summarises_files_chunks_and_skipped_files_with_reasons(
    tmp_path: Path, docs: Path
) -> None:
    summary = _kb(tmp_path / "kb").ingest([docs], progress=False)
    assert (summary.files, summary.chunks, summary.added, summary.unchanged) == (2, 2, 2, 0)
    reasons = {Path(s.path).name: s.reason for s in summary.skipped}
    assert reasons.keys() == {"empty.txt", "image.xyz"}
    assert "empty" in reasons["empty.txt"] and "unsupported" in reasons["image.xyz"]
    assert summary.seconds > 0
    text = summary.describe()
    assert text.startswith("2 files, 2 chunks (2 added, 0 unchanged), 2 skipped, in ")
    assert "skipped" in text.splitlines()[1] and "empty.txt" in text


def test_reingesting_the_same_files_adds_nothing(tmp_path: Path, docs: Path) -> None:
    kb = _kb(tmp_path / "kb")
    kb.ingest([docs], progress=False)
    again = kb.ingest([docs, docs / "paris.md"], progress=False)
    assert (again.added, again.unchanged) == (0, 2)
    reopened = _kb(tmp_path / "kb")
    assert reopened.store.count() == 2 and reopened.bm25.count() == 2


def test_ingest_shows_a_progress_bar(tmp_path: Path, docs: Path) -> None:
    screen = io.StringIO()
    _kb(tmp_path / "kb").ingest([docs], console=Console(file=screen, width=100))
    assert "Embedding chunks" in screen.getvalue() and "2/2" in screen.getvalue()


def test_markdown_headings_are_not_indexed_as_text(tmp_path: Path, docs: Path) -> None:
    kb = _kb(tmp_path / "kb")
    kb.ingest([docs / "paris.md"], progress=False)
    (chunk,) = kb.hybrid_retriever(k=1).invoke("capital of France")
    assert chunk.page_content.startswith("Paris is the capital of France.")
    assert chunk.metadata["title"] == "Paris"


def test_data_dirs_keep_knowledge_bases_apart(tmp_path: Path, docs: Path) -> None:
    _kb(tmp_path / "one").ingest([docs], progress=False)
    other = _kb(tmp_path / "two")
    assert other.is_empty()
    assert other.hybrid_retriever(k=2).invoke("capital of France") == []
    assert _kb(tmp_path / "one").hybrid_retriever(k=1).invoke("capital of France")


def test_a_missing_path_is_an_error_and_writes_nothing(tmp_path: Path, docs: Path) -> None:
    kb = _kb(tmp_path / "kb")
    with pytest.raises(ConfigurationError, match="no such file or folder"):
        kb.ingest([docs, tmp_path / "nope"], progress=False)
    assert kb.is_empty()


def test_failed_bm25_save_rolls_back_the_chroma_upserts(
    tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = _kb(tmp_path / "kb")
    kb.ingest([docs / "berlin.txt"], progress=False)

    def broken_save(self: BM25Retriever, path: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(BM25Retriever, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        kb.ingest([docs], progress=False)
    assert kb.store.count() == 1 and kb.bm25.count() == 1
    assert _kb(tmp_path / "kb").bm25.count() == 1  # on disk too
    monkeypatch.undo()
    assert kb.ingest([docs], progress=False).added == 1
    assert kb.store.count() == 2 and _kb(tmp_path / "kb").bm25.count() == 2


def test_a_chroma_failure_mid_ingest_leaves_both_stores_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = tmp_path / "book.txt"
    book.write_text(" ".join(f"Sentence number {i} talks about topic {i}." for i in range(600)))
    kb = _kb(tmp_path / "kb", chunk_tokens=32, chunk_overlap=0)
    real_upsert = ChromaStore.upsert
    calls = []

    def flaky_upsert(self: ChromaStore, documents: list, **kwargs: object) -> list[str]:
        calls.append(len(documents))
        if len(calls) == 2:
            real_upsert(self, documents[:10])  # half of the batch lands, then it breaks
            raise ConnectionError("chroma went away")
        return real_upsert(self, documents, **kwargs)

    monkeypatch.setattr(ChromaStore, "upsert", flaky_upsert)
    with pytest.raises(ConnectionError):
        kb.ingest([book], progress=False)
    assert len(calls) == 2 and calls[0] == 64
    assert kb.store.count() == 0 and kb.bm25.count() == 0
    assert not (tmp_path / "kb" / "bm25" / "CURRENT").exists()


def test_a_data_dir_built_with_another_embedder_is_a_clear_error(
    tmp_path: Path, docs: Path
) -> None:
    _kb(tmp_path / "kb").ingest([docs], progress=False)
    other = KnowledgeBase(Settings(data_dir=tmp_path / "kb"), embedding=HashingEmbeddings(32))
    with pytest.raises(ConfigurationError, match=r"hashing-v1-64.*--reset"):
        other.count()


def test_reset_empties_both_stores(tmp_path: Path, docs: Path) -> None:
    kb = _kb(tmp_path / "kb")
    kb.ingest([docs], progress=False)
    kb.reset()
    assert kb.is_empty() and _kb(tmp_path / "kb").is_empty()
    assert kb.ingest([docs], progress=False).added == 2


def _collections(data_dir: Path) -> list[str]:
    return sorted(c.name for c in _kb(data_dir).store._client.list_collections())


def test_ingest_reset_replaces_the_contents_of_both_stores(tmp_path: Path, docs: Path) -> None:
    kb = _kb(tmp_path / "kb")
    kb.ingest([docs], progress=False)
    summary = kb.ingest([docs / "berlin.txt"], progress=False, reset=True)
    assert (summary.added, summary.unchanged) == (1, 0)
    for opened in (kb, _kb(tmp_path / "kb")):
        assert opened.store.count() == opened.bm25.count() == 1
        hits = opened.hybrid_retriever(k=2).invoke("capital of France")
        assert [Path(d.metadata["source"]).name for d in hits] == ["berlin.txt"]
    assert _collections(tmp_path / "kb") == ["weft"]  # nothing staged or replaced is left


def test_a_failure_during_a_reset_leaves_the_old_knowledge_base_whole(
    tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = tmp_path / "book.txt"
    book.write_text(" ".join(f"Sentence number {i} talks about topic {i}." for i in range(600)))
    kb = _kb(tmp_path / "kb", chunk_tokens=32, chunk_overlap=0)
    kb.ingest([docs], progress=False)
    real_upsert = ChromaStore.upsert
    calls = []

    def interrupted_upsert(self: ChromaStore, documents: list, **kwargs: object) -> list[str]:
        calls.append(len(documents))
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the new chunks are written
        return real_upsert(self, documents, **kwargs)

    monkeypatch.setattr(ChromaStore, "upsert", interrupted_upsert)
    with pytest.raises(KeyboardInterrupt):
        kb.ingest([book], progress=False, reset=True)
    assert len(calls) == 2
    for opened in (kb, _kb(tmp_path / "kb", chunk_tokens=32, chunk_overlap=0)):
        assert opened.store.count() == opened.bm25.count() == 2
        hit = opened.hybrid_retriever(k=1).invoke("capital of France")[0]
        assert Path(hit.metadata["source"]).name == "paris.md"
    assert _collections(tmp_path / "kb") == ["weft"]


def test_a_failed_bm25_save_during_a_reset_puts_the_old_collection_back(
    tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = _kb(tmp_path / "kb")
    kb.ingest([docs], progress=False)

    def broken_save(self: BM25Retriever, path: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(BM25Retriever, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        kb.ingest([docs / "berlin.txt"], progress=False, reset=True)
    monkeypatch.undo()
    reopened = _kb(tmp_path / "kb")
    assert reopened.store.count() == reopened.bm25.count() == 2
    assert kb.store.count() == kb.bm25.count() == 2
    assert _collections(tmp_path / "kb") == ["weft"]


def test_a_reset_rebuilds_a_data_dir_made_with_another_embedder(tmp_path: Path, docs: Path) -> None:
    _kb(tmp_path / "kb").ingest([docs], progress=False)
    other = KnowledgeBase(Settings(data_dir=tmp_path / "kb"), embedding=HashingEmbeddings(32))
    assert other.ingest([docs], progress=False, reset=True).added == 2
    again = KnowledgeBase(Settings(data_dir=tmp_path / "kb"), embedding=HashingEmbeddings(32))
    assert again.count() == 2 and again.store.dimension == 32


def test_a_knowledge_base_knows_when_another_one_wrote_to_its_data_dir(
    tmp_path: Path, docs: Path
) -> None:
    serving = _kb(tmp_path / "kb")
    serving.ingest([docs / "paris.md"], progress=False)
    assert not serving.changed_on_disk()  # its own writes are no change
    _kb(tmp_path / "kb").ingest([docs / "paris.md"], progress=False)
    assert not serving.changed_on_disk()  # nothing new was written
    _kb(tmp_path / "kb").ingest([docs], progress=False)
    assert serving.changed_on_disk()
    assert not _kb(tmp_path / "kb").changed_on_disk()  # nothing opened yet, nothing stale


def test_searching_a_collection_another_instance_replaced_names_the_fix(
    tmp_path: Path, docs: Path
) -> None:
    serving = _kb(tmp_path / "kb")
    serving.ingest([docs], progress=False)
    retriever = serving.vector_retriever(1)
    _kb(tmp_path / "kb").ingest([docs / "berlin.txt"], progress=False, reset=True)
    assert serving.changed_on_disk()
    with pytest.raises(ConfigurationError, match=r"'weft' .* is gone: .*--reset.*open the store"):
        retriever.invoke("capital")


def test_ensure_demo_ingests_the_bundled_handbook_once(tmp_path: Path) -> None:
    kb = _kb(tmp_path / "kb")
    summary = kb.ensure_demo()
    assert summary is not None and summary.files == len(list(DEMO_KB_DIR.glob("*.md"))) >= 8
    assert summary.skipped == []
    assert kb.ensure_demo() is None
    assert kb.store.count() == kb.bm25.count() == summary.chunks


def _interrupt_rename(monkeypatch: pytest.MonkeyPatch, calls: list[object]) -> None:
    from chromadb.api.models.Collection import Collection

    real_modify = Collection.modify

    def interrupted(self: Collection, *args: object, **kwargs: object) -> None:
        calls.append(kwargs.get("name"))
        if len(calls) == 2:  # the old one is retired; Ctrl-C before the new one takes its name
            raise KeyboardInterrupt
        real_modify(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Collection, "modify", interrupted)


def _interrupt_tidying(monkeypatch: pytest.MonkeyPatch, calls: list[object]) -> None:
    import shutil

    real_rmtree = shutil.rmtree

    def interrupted(path: object, *args: object, **kwargs: object) -> None:
        if Path(str(path)).name.startswith("v-"):  # the new BM25 index is live; Ctrl-C as the
            calls.append(path)  # old version is removed
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(shutil, "rmtree", interrupted)


@pytest.mark.parametrize(
    ("interrupt", "chunks"),
    [(_interrupt_rename, 2), (_interrupt_tidying, 1)],
    ids=["between the renames: the old contents", "after the new index: the new ones"],
)
def test_an_interrupt_inside_a_resets_swap_leaves_one_whole_knowledge_base(
    tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch, interrupt: Any, chunks: int
) -> None:
    kb = _kb(tmp_path / "kb")
    kb.ingest([docs], progress=False)
    calls: list[object] = []
    interrupt(monkeypatch, calls)
    with pytest.raises(KeyboardInterrupt):
        kb.ingest([docs / "berlin.txt"], progress=False, reset=True)
    monkeypatch.undo()
    assert calls  # the interrupt came where it was meant to
    for opened in (kb, _kb(tmp_path / "kb")):
        assert opened.store.count() == opened.bm25.count() == chunks
    assert _collections(tmp_path / "kb") == ["weft"]


@pytest.mark.parametrize("damage", ["bytes", "folder"])
def test_a_damaged_bm25_pointer_is_reported_not_mistaken_for_an_empty_index(
    tmp_path: Path, docs: Path, damage: str
) -> None:
    _kb(tmp_path / "kb").ingest([docs], progress=False)
    pointer = tmp_path / "kb" / "bm25" / "CURRENT"
    pointer.unlink()
    if damage == "bytes":
        pointer.write_bytes(b"\xff\xfe")
    else:
        pointer.mkdir()
    with pytest.raises(ConfigurationError, match=r"BM25 index at .* is damaged: CURRENT"):
        _kb(tmp_path / "kb").ingest([docs], progress=False)


_KILLED_IN_A_RESET = """
import os, sys
from chromadb.api.models.Collection import Collection
import weft.components.bm25 as bm25
from weft.components.embeddings import HashingEmbeddings
from weft.core.settings import Settings
from weft.graphs.knowledge import KnowledgeBase

point, data_dir, path = sys.argv[1:]
real_modify, renames = Collection.modify, []

def modify(self, *args, **kwargs):
    real_modify(self, *args, **kwargs)
    renames.append(kwargs.get("name"))
    if point == f"rename {len(renames)}":
        os._exit(9)

Collection.modify = modify
if point == "pointer swapped":
    bm25.fsync_dir = lambda root: os._exit(9)
kb = KnowledgeBase(Settings(data_dir=data_dir), embedding=HashingEmbeddings(64))
kb.ingest([path], progress=False, reset=True)
"""


@pytest.mark.parametrize(
    ("point", "expected"),
    [("rename 1", "paris.md"), ("rename 2", "paris.md"), ("pointer swapped", "berlin.txt")],
)
def test_a_process_killed_inside_a_resets_swap_is_settled_when_the_knowledge_base_opens(
    tmp_path: Path, docs: Path, point: str, expected: str
) -> None:
    import subprocess
    import sys

    _kb(tmp_path / "kb").ingest([docs], progress=False)
    argv = [sys.executable, "-c", _KILLED_IN_A_RESET, point, str(tmp_path / "kb")]
    killed = subprocess.run([*argv, str(docs / "berlin.txt")], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    assert (tmp_path / "kb" / "reset.journal").exists()
    reopened = _kb(tmp_path / "kb")
    hit = reopened.hybrid_retriever(k=1).invoke("capital of France")[0]
    assert Path(hit.metadata["source"]).name == expected
    chunks = 2 if expected == "paris.md" else 1  # the old contents, or the new ones
    assert reopened.store.count() == reopened.bm25.count() == chunks
    assert _collections(tmp_path / "kb") == ["weft"]
    assert not (tmp_path / "kb" / "reset.journal").exists()


# -- several writers, and writers that die ---------------------------------------------------------


def _chroma_ids(kb: KnowledgeBase) -> set[str]:
    return set(kb.store.get(include=[])["ids"])


def _consistent(kb: KnowledgeBase) -> int:
    """How many chunks ``kb`` holds, checking that Chroma and BM25 hold the same ones."""
    ids = _chroma_ids(kb)
    assert kb.bm25.count() == len(ids) == len(kb.bm25.get_by_ids(sorted(ids)))
    return len(ids)


def test_a_writer_reads_what_another_wrote_since_it_opened_before_it_saves(
    tmp_path: Path, docs: Path
) -> None:
    early = _kb(tmp_path / "kb")
    assert early.is_empty()  # both stores open, and empty
    _kb(tmp_path / "kb").ingest([docs / "berlin.txt"], progress=False)
    early.ingest([docs / "paris.md"], progress=False)
    reopened = _kb(tmp_path / "kb")
    assert _consistent(reopened) == 2
    hits = early.bm25.invoke("Germany lakes")  # its own index has both now
    assert [Path(d.metadata["source"]).name for d in hits] == ["berlin.txt"]


def _hold_the_lock(data_dir: Path) -> Any:
    from filelock import FileLock

    data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(data_dir / "ingest.lock")
    lock.acquire()
    return lock


def test_an_ingest_that_may_not_wait_for_another_fails_and_writes_nothing(
    tmp_path: Path, docs: Path
) -> None:
    kb = _kb(tmp_path / "kb")
    kb.ingest([docs / "berlin.txt"], progress=False)
    lock = _hold_the_lock(tmp_path / "kb")  # another ingest is running
    try:
        with pytest.raises(ConfigurationError, match=r"another ingest of .*kb is running"):
            kb.ingest([docs], progress=False, wait=False)
        with pytest.raises(ConfigurationError, match="another ingest"):
            kb.reset(wait=False)
    finally:
        lock.release()
    assert _consistent(_kb(tmp_path / "kb")) == 1


def test_an_ingest_waits_for_another_and_says_so(tmp_path: Path, docs: Path) -> None:
    import threading

    kb, screen = _kb(tmp_path / "kb"), io.StringIO()
    lock = _hold_the_lock(tmp_path / "kb")
    done = threading.Event()

    def ingest() -> None:
        kb.ingest([docs], progress=False, console=Console(file=screen, width=300))
        done.set()

    thread = threading.Thread(target=ingest)
    thread.start()
    try:
        assert not done.wait(2.0)  # still waiting
        said = screen.getvalue()
        assert said == f"waiting for another ingest of {tmp_path / 'kb'} to finish...\n"
    finally:
        lock.release()
    thread.join(60)
    assert done.is_set() and _consistent(_kb(tmp_path / "kb")) == 2


_KILL_POINTS = {
    # what an ingest killed there leaves, once the knowledge base is opened again
    "ingest:before chroma": "the old contents",
    "ingest:after one chroma batch": "the old contents",
    "ingest:before the bm25 save": "the old contents",
    "ingest:before the pointer swap": "the old contents",
    "ingest:after the pointer swap": "both",
    "ingest:after the bm25 save": "both",
    "reset:after one chroma batch": "the old contents",
    "reset:before the pointer swap": "the old contents",
}


@pytest.fixture(scope="module")
def killed_ingests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    import json
    import subprocess
    import sys

    base = tmp_path_factory.mktemp("killed")
    docs = base / "docs"
    docs.mkdir()
    (docs / "paris.md").write_text("# Paris\n\nParis is the capital of France.\n")
    (docs / "berlin.txt").write_text("Berlin is the capital of Germany. It has many lakes.\n")
    book = base / "book.txt"  # more chunks than one Chroma batch
    book.write_text(" ".join(f"Tide table {i} lists the harbour at hour {i}." for i in range(300)))
    helper = Path(__file__).with_name("_killed_ingest.py")
    run = subprocess.run(
        [sys.executable, str(helper), str(base), str(docs), str(book), *_KILL_POINTS],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    return {r["point"]: (base / r["point"].replace(":", "-").replace(" ", "-"), r) for r in results}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("point", list(_KILL_POINTS))
def test_an_ingest_killed_at_any_step_leaves_both_stores_agreeing_once_reopened(
    killed_ingests: dict[str, tuple[Path, dict]], point: str
) -> None:
    from tests.graphs._killed_ingest import KILLED, knowledge_base

    data_dir, result = killed_ingests[point]
    assert (result["ready"], result["killed"]) == (0, KILLED)  # it died where it was meant to
    reopened = knowledge_base(data_dir)
    chunks = _consistent(reopened)
    sources = {Path(d.metadata["source"]).name for d in reopened.bm25.invoke("tide harbour")}
    assert not (data_dir / "ingest.journal").exists()
    assert not (data_dir / "reset.journal").exists()
    assert _collections(data_dir) == ["weft"]
    # Nothing is left half-done: the same ingest runs again and fills in what is missing.
    again = reopened.ingest([data_dir.parent / "book.txt"], progress=False)
    assert again.chunks > 64
    if _KILL_POINTS[point] == "the old contents":
        assert chunks == 2 and sources == set() and again.added == again.chunks
    else:
        assert chunks == 2 + again.chunks and sources == {"book.txt"} and again.added == 0
    assert _consistent(knowledge_base(data_dir)) == 2 + again.chunks


def test_a_damaged_ingest_journal_is_reported_naming_it(tmp_path: Path, docs: Path) -> None:
    _kb(tmp_path / "kb").ingest([docs], progress=False)
    (tmp_path / "kb" / "ingest.journal").write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"ingest\.journal' .* is damaged"):
        _kb(tmp_path / "kb").count()

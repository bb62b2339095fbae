"""A knowledge base in PostgreSQL and a Chroma server, read by processes that share no data
directory: ingests and resets reach every reader, a killed ingest stays invisible and is
rolled back, and BM25 never names a chunk the vector store does not serve."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.scale._killed_shared_ingest import KILLED, knowledge_base
from weft.core.errors import ConfigurationError
from weft.graphs import _knowledge_postgres
from weft.graphs._knowledge_postgres import VERSION_KEY, SharedKnowledgeBase, _lock_key
from weft.graphs.knowledge import KnowledgeBase
from weft.testing._engines import ChromaServer, Postgres

pytestmark = pytest.mark.timeout(180)

_names = itertools.count()
OTTERS = "# Otters\n\nSea otters hold hands while they sleep so they do not drift apart.\n"
KELP = "# Kelp\n\nGiant kelp grows up to half a metre a day in cold coastal water.\n"
NARWHALS = "# Narwhals\n\nA narwhal tusk is a tooth that can grow three metres long.\n"

Open = Callable[[str], KnowledgeBase]


@pytest.fixture
def shared(
    postgres: Postgres,
    chroma_server: ChromaServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[tuple[str, Open]]:
    """A fresh collection name, and a function that opens it from a data dir of its own."""
    monkeypatch.setenv("WEFT_DATABASE_URL", postgres.url)
    monkeypatch.setenv("WEFT_CHROMA_URL", chroma_server.url)
    monkeypatch.setattr(_knowledge_postgres, "FOLLOW_SECONDS", 0.0)  # ask on every follow()
    name = f"shared{next(_names)}"
    yield name, lambda data: knowledge_base(name, tmp_path / data)


def write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.md").write_text(text)
    return folder


def sources(kb: KnowledgeBase, question: str) -> set[str]:
    return {Path(d.metadata["source"]).stem for d in kb.hybrid_retriever(k=6).invoke(question)}


def agree(kb: KnowledgeBase, url: str) -> set[str]:
    """The chunk ids of the version ``kb`` serves, after checking that BM25, the chunks vector
    search may return, and the manifest in PostgreSQL all name the same ones."""
    assert isinstance(kb, SharedKnowledgeBase)
    in_bm25 = {d.id for d in kb.bm25.get_by_ids([d.id or "" for d in kb.bm25._docs])}
    visible = kb.store.get(where={VERSION_KEY: {"$lte": kb.version}}, include=[])["ids"]
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id FROM weft_kb_chunks WHERE kb = %s AND collection = %s",
            (kb.settings.collection, kb.store._collection.name),
        ).fetchall()
    assert in_bm25 == set(visible) == {r[0] for r in rows}
    return set(visible)


def journal(url: str, name: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT kind, state FROM weft_kb_ingests WHERE kb = %s ORDER BY id", (name,)
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def kill(name: str, mode: str, path: Path) -> None:
    helper = Path(__file__).with_name("_killed_shared_ingest.py")
    done = subprocess.run(
        [sys.executable, str(helper), name, mode, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == KILLED, done.stderr


def killed_after_otters(
    shared: tuple[str, Open], tmp_path: Path, mode: str, late: Path
) -> KnowledgeBase:
    """A writer that ingested the otters, after another process was killed ingesting ``late``
    (``mode``: ingest or reset) before its commit."""
    name, open_kb = shared
    writer = open_kb("writer")
    writer.ingest(write(tmp_path / "docs", otters=OTTERS), progress=False)
    kill(name, mode, late)
    return writer


def test_an_ingest_reaches_a_reader_with_a_data_dir_of_its_own(
    shared: tuple[str, Open], tmp_path: Path, postgres: Postgres
) -> None:
    _, open_kb = shared
    docs = write(tmp_path / "docs", otters=OTTERS)
    writer, reader = open_kb("writer"), open_kb("reader")
    writer.ingest(docs, progress=False)
    retriever = reader.hybrid_retriever(k=4)  # made before the next ingest, as a graph's is
    assert {Path(str(d.metadata["source"])).stem for d in retriever.invoke("narwhal tusk")} == {
        "otters"
    }
    writer.ingest(write(docs, narwhals=NARWHALS), progress=False)
    assert reader.follow() is True
    assert not reader.follow()  # nothing new since
    found = {Path(str(d.metadata["source"])).stem for d in retriever.invoke("narwhal tusk")}
    assert "narwhals" in found
    assert len(agree(reader, postgres.url)) == 2
    for data in ("writer", "reader"):  # nothing of the knowledge base is kept in a data dir
        assert not (tmp_path / data / "bm25").exists()
        assert not list((tmp_path / data).glob("*.journal")) and not list(
            (tmp_path / data).glob("ingest.lock")
        )


def test_a_reset_moves_every_reader_to_the_new_contents_together(
    shared: tuple[str, Open], tmp_path: Path, postgres: Postgres
) -> None:
    name, open_kb = shared
    writer, reader = open_kb("writer"), open_kb("reader")
    writer.ingest(write(tmp_path / "old", otters=OTTERS, kelp=KELP), progress=False)
    assert sources(reader, "otters kelp narwhal") == {"otters", "kelp"}
    first = reader.store._collection.name
    writer.ingest(write(tmp_path / "new", narwhals=NARWHALS), reset=True, progress=False)
    assert sources(reader, "otters kelp narwhal") == {"otters", "kelp"}  # until it follows
    assert reader.follow() is True
    assert sources(reader, "otters kelp narwhal") == {"narwhals"}
    assert reader.count() == 1 and len(agree(reader, postgres.url)) == 1
    client = reader.store._client
    kept = {c.name for c in client.list_collections() if c.name.startswith(f"{name}-g")}
    assert first in kept  # the replaced collection stays for a reader still searching it
    writer.ingest(tmp_path / "old", reset=True, progress=False)
    kept = {c.name for c in client.list_collections() if c.name.startswith(f"{name}-g")}
    assert first not in kept and len(kept) == 2  # two resets old: dropped
    assert reader.follow() and sources(reader, "otters kelp narwhal") == {"otters", "kelp"}


def test_a_killed_ingest_is_never_searched_and_the_next_writer_rolls_it_back(
    shared: tuple[str, Open], tmp_path: Path, postgres: Postgres
) -> None:
    name, open_kb = shared
    late = write(tmp_path / "late", narwhals=NARWHALS) / "narwhals.md"
    writer = killed_after_otters(shared, tmp_path, "ingest", late)
    reader = open_kb("reader")
    collection = reader.store._collection
    assert collection.count() == 2  # the killed ingest's chunk reached Chroma...
    assert sources(reader, "narwhal tusk tooth") == {"otters"}  # ...and is never served
    assert reader.bm25.search("narwhal") == []
    assert len(agree(reader, postgres.url)) == 1
    assert journal(postgres.url, name) == [("add", "committed"), ("add", "running")]

    writer.ingest(write(tmp_path / "more", kelp=KELP), progress=False)
    assert journal(postgres.url, name)[1:] == [("add", "rolled back"), ("add", "committed")]
    assert collection.count() == 2  # the killed one's chunk is gone from Chroma
    assert reader.follow() and sources(reader, "narwhal kelp otters") == {"otters", "kelp"}
    assert len(agree(reader, postgres.url)) == 2


def test_a_killed_reset_leaves_the_old_contents_served_and_its_collection_dropped(
    shared: tuple[str, Open], tmp_path: Path, postgres: Postgres
) -> None:
    name, open_kb = shared
    writer = killed_after_otters(shared, tmp_path, "reset", write(tmp_path / "late", n=NARWHALS))
    client = writer.store._client
    made = {c.name for c in client.list_collections() if c.name.startswith(f"{name}-g")}
    assert len(made) == 2  # the live one and the killed reset's
    reader = open_kb("reader")
    assert sources(reader, "narwhal otters") == {"otters"}
    writer.ingest(tmp_path / "docs", progress=False)  # nothing new; it still tidies up
    left = {c.name for c in client.list_collections() if c.name.startswith(f"{name}-g")}
    assert left == {reader.store._collection.name}
    assert journal(postgres.url, name)[-1] == ("reset", "rolled back")


def test_a_writer_that_may_not_wait_is_refused_while_another_writes(
    shared: tuple[str, Open], tmp_path: Path, postgres: Postgres
) -> None:
    name, open_kb = shared
    kb = open_kb("writer")
    with psycopg.connect(postgres.url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (_lock_key(name),))
        with pytest.raises(
            ConfigurationError, match=f"another ingest of the knowledge base '{name}'"
        ):
            kb.ingest(write(tmp_path / "docs", otters=OTTERS), progress=False, wait=False)
    assert kb.count() == 0 and journal(postgres.url, name) == []


def test_a_writer_whose_ingest_was_rolled_back_under_it_does_not_commit(
    shared: tuple[str, Open], tmp_path: Path, postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer whose connection (and lock) was lost while it ran, so that another writer
    rolled its ingest back, must not commit what is no longer all in Chroma."""
    name, open_kb = shared
    kb = open_kb("writer")
    kb.ingest(write(tmp_path / "docs", otters=OTTERS), progress=False)
    real_write = SharedKnowledgeBase._write

    def write_then_lose_the_lock(*args: object) -> None:
        real_write(*args)  # type: ignore[arg-type]
        with psycopg.connect(postgres.url, autocommit=True) as other:  # what the next writer does
            other.execute(
                "UPDATE weft_kb_ingests SET state = 'rolled back' WHERE kb = %s "
                "AND state = 'running'",
                (name,),
            )

    monkeypatch.setattr(SharedKnowledgeBase, "_write", staticmethod(write_then_lose_the_lock))
    with pytest.raises(ConfigurationError, match="was rolled back by another writer"):
        kb.ingest(write(tmp_path / "late", narwhals=NARWHALS), progress=False)
    reader = open_kb("reader")
    assert sources(reader, "narwhal otters") == {"otters"} and reader.version == kb.version
    assert journal(postgres.url, name)[-1] == ("add", "rolled back")

"""The engine settings, one turn at a time per session, a lost database as a 503, ``weft db
migrate``, and a knowledge base following another process's ingest: without replicas."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import httpx
import psycopg
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.runnables import RunnableLambda

from tests.server.conftest import FakeChat, LiveServer
from weft import END, START, Graph
from weft.cli import main
from weft.components.cache import CachedRunnable
from weft.core._database import DatabaseUnavailableError, open_database
from weft.core.errors import ConfigurationError
from weft.core.settings import Settings
from weft.graphs.knowledge import KnowledgeBase
from weft.graphs.schema import ChatInput, ChatOutput
from weft.server._errors import from_exception
from weft.server.app import create_app
from weft.testing._engines import Postgres, Redis


@pytest.mark.parametrize(
    ("field", "value", "scheme"),
    [
        ("database_url", "mysql://db/weft", "postgresql"),
        ("chroma_url", "chroma:8000", "http"),
        ("redis_url", "http://cache:6379", "redis"),
    ],
)
def test_an_engine_url_of_the_wrong_kind_is_refused_with_an_example(
    field: str, value: str, scheme: str
) -> None:
    with pytest.raises(ValueError, match=f"is not a {scheme}:// URL; give one like {scheme}://"):
        Settings(**{field: value})


def test_unset_or_empty_engine_urls_keep_the_embedded_defaults() -> None:
    settings = Settings(database_url="", chroma_url=" ", redis_url=None)
    assert (settings.database_url, settings.chroma_url, settings.redis_url) == (None, None, None)


def _answer(question: ChatInput) -> ChatOutput:
    return ChatOutput(answer=question.question, sources=[])


def _chat_graph() -> Graph[ChatInput, ChatOutput]:
    graph = Graph[ChatInput, ChatOutput]("rag")
    graph.add_node("answer", _answer)
    return graph.add_edge(START, "answer").add_edge("answer", END)


def test_a_second_turn_of_a_running_session_gets_409_naming_it(tmp_path: Path) -> None:
    chat = FakeChat(hang=True)
    graphs = {"rag": _chat_graph().compile(checkpointer="memory")}
    app = create_app(Settings(data_dir=tmp_path), graphs=graphs, chat=chat, tracing=False)
    with LiveServer(app) as server:
        first = {"question": "Why is the sea salty?", "session_id": "reef-1"}
        token: list[str] = []
        started = threading.Event()

        def hold() -> None:
            with (
                contextlib.suppress(httpx.HTTPError),
                httpx.stream("POST", server.url + "/v1/chat", json=first, timeout=30) as r,
            ):
                token.append(r.headers["X-Weft-Owner"])
                started.set()
                for _ in r.iter_lines():
                    pass

        running = threading.Thread(target=hold, daemon=True)
        running.start()
        assert started.wait(10) and chat.first_token.wait(10)
        again = {"question": "And the rivers?", "session_id": "reef-1"}
        busy = httpx.post(
            server.url + "/v1/chat", json=again, headers={"X-Weft-Owner": token[0]}, timeout=10
        )
        assert busy.status_code == 409
        assert "session 'reef-1' is answering another turn" in busy.json()["error"]["message"]
        other = {"question": "Why is the sea salty?", "session_id": "reef-2"}
        with httpx.stream("POST", server.url + "/v1/chat", json=other, timeout=10) as response:
            assert response.status_code == 200  # another session is not held up


def test_a_lost_database_is_a_503_with_retry_after_naming_the_setting() -> None:
    lost = psycopg.OperationalError("connection refused")
    api = from_exception(lost)
    assert api.status == 503 and api.headers == {"Retry-After": "2"}
    db = open_database("postgresql://weft:secret@127.0.0.1:9/weft")
    api = from_exception(db.unavailable(lost))
    assert api.status == 503
    assert "postgresql://127.0.0.1:9/weft (WEFT_DATABASE_URL) cannot be reached" in api.message
    assert "secret" not in api.message


def test_db_migrate_makes_the_tables_once(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres.url.rsplit("/", 1)[0] + "/postgres"  # a database no other test uses
    monkeypatch.setenv("WEFT_DATABASE_URL", url)
    assert main(["db", "migrate"]) == 0
    first = capsys.readouterr().out
    assert "applied langgraph checkpoints" in first and "weft 1: session owners" in first
    assert "weft 2: saga log" in first and "weft 3: saga steps" in first
    assert "knowledge base ingest journal" in first and "eval cache" in first
    assert main(["db", "migrate"]) == 0
    assert "the schema is current; nothing to do" in capsys.readouterr().out
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM weft_session_owners").fetchone() == (0,)
        for table in (
            "weft_kb_current",
            "weft_kb_indexes",
            "weft_kb_chunks",
            "weft_kb_ingests",
            "weft_eval_cache",
        ):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_db_migrate_without_a_database_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WEFT_DATABASE_URL", raising=False)
    assert main(["db", "migrate"]) == 2
    assert "WEFT_DATABASE_URL is not set; set it to the database" in capsys.readouterr().err


def test_an_unreachable_database_raises_its_own_error_naming_it() -> None:
    db = open_database("postgresql://weft@127.0.0.1:9/nothing")
    try:
        with pytest.raises(DatabaseUnavailableError, match=r"127\.0\.0\.1:9"):
            db.ping()
    finally:
        db.close()


def test_a_knowledge_base_follows_what_another_process_ingested(tmp_path: Path) -> None:
    embedding = DeterministicFakeEmbedding(size=16)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "otters.md").write_text("# Otters\n\nSea otters hold hands while they sleep.\n")
    settings = Settings(data_dir=tmp_path / "data")
    writer = KnowledgeBase(settings, embedding=embedding)
    writer.ingest(docs, progress=False)
    reader = KnowledgeBase(settings, embedding=embedding)
    retriever = reader.hybrid_retriever(k=4)  # made before the next ingest, as a graph's is
    assert reader.bm25.search("narwhal") == []
    (docs / "narwhals.md").write_text("# Narwhals\n\nA narwhal tusk is a long tooth.\n")
    writer.ingest(docs, progress=False)
    assert reader.changed_on_disk()
    assert reader.follow() is True
    assert not reader.follow()  # nothing new since
    found = retriever.invoke("narwhal tusk")
    assert any("narwhals.md" in str(d.metadata.get("source")) for d in found)
    writer.reset()
    assert reader.follow() is True
    assert reader.bm25.count() == 0 and reader.count() == 0


def test_a_cache_in_redis_is_shared_by_two_processes(redis_server: Redis) -> None:
    calls: list[str] = []

    def shout(text: str) -> str:
        calls.append(text)
        return text.upper()

    first = CachedRunnable(RunnableLambda(shout), redis_url=redis_server.url, key="shout-v1")
    second = CachedRunnable(RunnableLambda(shout), redis_url=redis_server.url, key="shout-v1")
    first.clear()
    assert first.invoke("tides") == "TIDES"
    assert second.invoke("tides") == "TIDES"  # from Redis: the second never calls shout
    assert calls == ["tides"]
    assert second.stats.l2_hits == 1


def test_a_cache_takes_one_second_level() -> None:
    with pytest.raises(ConfigurationError, match=r"pass directory .* or redis_url"):
        CachedRunnable(RunnableLambda(str.upper), directory="x", redis_url="redis://h:6379/0")

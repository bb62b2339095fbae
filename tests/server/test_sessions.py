"""Sessions belong to their owner: the API key that started one, or without keys the owner token
the server issued. Real uvicorn, the real RAG graph with its SQLite checkpoints over a small
knowledge base about the sea (``sea_data``)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import LiveServer, read_sse
from weft.core.settings import Settings
from weft.server import create_app
from weft.server._sessions import SessionOwners

pytestmark = pytest.mark.server

KEY_A, KEY_B = "key-of-alice-0123456789", "key-of-bob-0123456789"
OWNER = "X-Weft-Owner"


def serve(data_dir: Path, *keys: str) -> LiveServer:
    settings = Settings(data_dir=data_dir, api_keys=list(keys), rate_limit_per_minute=0)
    return LiveServer(create_app(settings, tracing=False))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    response = httpx.post(url + "/v1/chat", json=body, headers=headers, timeout=30)
    if response.status_code == 200:
        records = [r for r in read_sse(iter(response.text.splitlines())) if r["event"]]
        assert records[-1]["event"] == "done", records[-1]
    return response


def history(url: str, session: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{url}/v1/chat/sessions/{session}", headers=headers, timeout=10)


def assert_not_found(response: httpx.Response, session: str) -> str:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["type"] == "not_found" and f"no session '{session}'" in error["message"]
    message: str = error["message"]
    return message.replace(f"'{session}'", "'<id>'")


def test_another_key_gets_404_for_a_session_and_cannot_read_or_continue_it(
    sea_data: Path,
) -> None:
    session = "alice-private"
    with serve(sea_data, KEY_A, KEY_B) as server:
        url = server.url
        first = chat(url, {"question": "How do otters sleep?", "session_id": session}, auth(KEY_A))
        assert first.status_code == 200, first.text
        mine = history(url, session, auth(KEY_A))
        assert mine.status_code == 200
        turns = mine.json()["history"]
        assert [t["content"] for t in turns if t["role"] == "user"] == ["How do otters sleep?"]

        # Another key: the same 404 as for a session that does not exist.
        theirs = assert_not_found(history(url, session, auth(KEY_B)), session)
        missing = assert_not_found(history(url, "no-such-session", auth(KEY_B)), "no-such-session")
        assert theirs == missing

        # Nor can it continue the conversation, by any route that runs a graph.
        body = {"question": "What did I ask before?", "session_id": session}
        assert_not_found(chat(url, body, auth(KEY_B)), session)
        runs = [
            ("invoke", {"input": {"question": "And kelp?", "session_id": session}}),
            ("invoke", {"input": {"question": "And kelp?"}, "session_id": session}),
            ("stream", {"input": {"question": "And kelp?"}, "session_id": session}),
            ("batch", {"inputs": [{"question": "And kelp?", "session_id": session}]}),
        ]
        for route, run in runs:
            response = httpx.post(f"{url}/v1/graphs/rag/{route}", json=run, headers=auth(KEY_B))
            assert_not_found(response, session)

        # What it posted reached nobody's conversation: alice's is as it was.
        assert history(url, session, auth(KEY_A)).json()["history"] == turns
        # And alice continues it as before.
        again = {"question": "How fast does kelp grow?", "session_id": session}
        assert chat(url, again, auth(KEY_A)).status_code == 200
        after = history(url, session, auth(KEY_A)).json()["history"]
        assert [t["content"] for t in after if t["role"] == "user"] == [
            "How do otters sleep?",
            "How fast does kelp grow?",
        ]


def test_a_session_stays_bound_to_its_key_across_a_restart(sea_data: Path) -> None:
    session = "kept-across-restarts"
    with serve(sea_data, KEY_A, KEY_B) as server:
        body = {"question": "How do otters sleep?", "session_id": session}
        assert chat(server.url, body, auth(KEY_A)).status_code == 200
    with serve(sea_data, KEY_A, KEY_B) as server:
        assert history(server.url, session, auth(KEY_A)).json()["history"]
        assert_not_found(history(server.url, session, auth(KEY_B)), session)
        body = {"question": "And kelp?", "session_id": session}
        assert_not_found(chat(server.url, body, auth(KEY_B)), session)
    # Only fingerprints are stored, never a key.
    stored = (sea_data / "sessions.sqlite").read_bytes()
    assert KEY_A.encode() not in stored and KEY_B.encode() not in stored


def test_without_keys_a_session_belongs_to_the_owner_token_the_server_issued(
    sea_data: Path,
) -> None:
    session = "page-conversation"
    with serve(sea_data) as server:
        url = server.url
        first = chat(url, {"question": "How do otters sleep?", "session_id": session}, {})
        assert first.status_code == 200, first.text
        token = first.headers[OWNER]
        assert len(token) >= 32
        mine = {OWNER: token}

        assert history(url, session, mine).json()["history"]
        stranger = {OWNER: secrets.token_urlsafe(32)}
        assert_not_found(history(url, session, {}), session)
        assert_not_found(history(url, session, stranger), session)
        body = {"question": "What did I ask?", "session_id": session}
        assert_not_found(chat(url, body, {}), session)
        assert_not_found(chat(url, body, stranger), session)

        # The owner continues it, and is not given a new token.
        again = chat(url, {"question": "And kelp?", "session_id": session}, mine)
        assert again.status_code == 200 and OWNER not in again.headers
        users = [t for t in history(url, session, mine).json()["history"] if t["role"] == "user"]
        assert len(users) == 2

        # A chat with no session needs no owner.
        assert OWNER not in chat(url, {"question": "How do otters sleep?"}, {}).headers
        bad = history(url, session, {OWNER: "guessable"})
        assert bad.status_code == 400 and OWNER in bad.json()["error"]["message"]


def test_a_conversation_stored_before_sessions_had_owners_is_nobodys(sea_data: Path) -> None:
    from weft.graphs.knowledge import KnowledgeBase
    from weft.graphs.rag import build_rag_graph
    from weft.graphs.schema import ChatInput

    session = "stored-without-owner"
    settings = Settings(data_dir=sea_data)
    graph = build_rag_graph(KnowledgeBase(settings), checkpointer=str(settings.checkpoint_path))
    graph.invoke(ChatInput(question="How do otters sleep?", session_id=session))
    with serve(sea_data, KEY_A) as server:
        assert_not_found(history(server.url, session, auth(KEY_A)), session)
        body = {"question": "What did I ask?", "session_id": session}
        assert_not_found(chat(server.url, body, auth(KEY_A)), session)


def test_two_owners_racing_for_one_new_session_cannot_both_hold_it(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite"
    first, second = SessionOwners(path), SessionOwners(path)  # two processes' views
    try:
        assert first.claim("s", "key:a") and not second.claim("s", "key:b")
        assert second.owns("s", "key:a") and not first.owns("s", "key:b")
        assert not first.owns("unknown", "key:a")
    finally:
        first.close()
        second.close()

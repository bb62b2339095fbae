"""Provider faults against ``weft serve``: its RAG graph's remote model is weft's local
OpenAI-compatible test server (``OPENAI_BASE_URL``), reached by the openai client, and faults
are scripted there; the ``WEFT_MODEL_*`` settings come from the environment.

Faults before the first token are retried, or answered by the marked fallback; a stream cut
after content ends in one error event and saves no turn; a hung provider is a 504 within
``WEFT_MODEL_TIMEOUT``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.server.conftest import ServeProcess, read_sse
from weft.core.settings import Settings
from weft.graphs.knowledge import KnowledgeBase
from weft.server._sessions import OWNER_HEADER
from weft.testing import Fault, OpenAIServer, Reply

pytestmark = pytest.mark.server

ANSWER = "Worker bees build the comb from wax. [1]"
QUESTION = "What do worker bees build the comb from?"
HIVE = """# Honey bees

A honey bee colony has one queen, thousands of female workers and a few hundred drones.
Worker bees build the comb from wax that they secrete from glands on their abdomen.
Bees tell each other the direction of flowers with the waggle dance.
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server, pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_BASE_URL", server.base_url)
        env.setenv("OPENAI_API_KEY", "test")
        yield server


@pytest.fixture(scope="module")
def data_dir(provider: OpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = tmp_path_factory.mktemp("docs")
    (docs / "bees.md").write_text(HIVE)
    data = tmp_path_factory.mktemp("faults")
    KnowledgeBase(Settings(data_dir=data)).ingest(docs, progress=False)
    return data


@pytest.fixture
def script(provider: OpenAIServer) -> Iterator[OpenAIServer]:
    provider.reset()
    yield provider
    provider.reset()


def serve(data_dir: Path, **settings: Any) -> Iterator[ServeProcess]:
    """``weft serve`` over ``data_dir`` with these settings (``model_retries=1`` sets
    ``WEFT_MODEL_RETRIES=1``); the provider comes from the environment."""
    given = {"rate_limit_per_minute": 0, "model_retry_wait": 0.0, **settings}
    env = {f"WEFT_{k.upper()}": str(v) for k, v in given.items()}
    with ServeProcess(data_dir, **env) as server:
        yield server


@pytest.fixture(scope="module")
def weft(data_dir: Path) -> Iterator[ServeProcess]:
    """One retry, a breaker that opens after 4 failed calls in a row, the extractive fallback.
    Starting a server takes seconds, so the tests share it; the breaker test, which leaves the
    breaker open, comes last."""
    yield from serve(data_dir, model_retries=1, model_breaker_failures=4, model_breaker_reset=600.0)


@pytest.fixture(scope="module")
def no_fallback(data_dir: Path) -> Iterator[ServeProcess]:
    """A one-second deadline, each request to the provider allowed a minute, no fallback."""
    yield from serve(data_dir, model_timeout=1.0, model_attempt_timeout=60.0, model_fallback=False)


def chat(http: httpx.Client, url: str, **body: Any) -> list[dict[str, Any]]:
    with http.stream("POST", url + "/v1/chat", json={"question": QUESTION, **body}) as response:
        assert response.status_code == 200
        records = [r for r in read_sse(response.iter_lines()) if r["event"]]
    if owner := response.headers.get(OWNER_HEADER):  # the session is this client's from now on
        http.headers[OWNER_HEADER] = owner
    return [{"event": r["event"], **json.loads(r["data"])} for r in records]


def chat_requests(server: OpenAIServer) -> int:
    return len(server.requests_to("/chat/completions"))


BEFORE_TOKEN: dict[str, Fault | Reply] = {
    "500": Fault.server_error(500),
    "503": Fault.server_error(503),
    "429": Fault.rate_limit(retry_after=None),
    "dropped before content": Fault.drop(after_chunks=1),
    "malformed before content": Fault.malformed(after_chunks=1),
    "slow first byte": Reply(ANSWER, delay=0.5),
}


def test_faults_before_the_first_token_fail_no_user_request(
    script: OpenAIServer, weft: ServeProcess
) -> None:
    failed: list[str] = []
    server = weft
    with httpx.Client(timeout=30) as http:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        messages: Any = [{"role": "user", "content": QUESTION}]
        for name, fault in BEFORE_TOKEN.items():
            replies = [fault] if isinstance(fault, Reply) else [fault, ANSWER]
            script.script(*replies)
            events = chat(http, server.url)
            done = [e for e in events if e["event"] == "done"]
            if not done or done[0]["answer"] != ANSWER or done[0]["fallback"]:
                failed.append(f"chat, {name}: {events[-1]}")

            script.script(*replies)
            answer = client.chat.completions.create(model="rag", messages=messages)
            if answer.choices[0].message.content != ANSWER:
                failed.append(f"completion, {name}: {answer}")

            script.script(*replies)
            stream = client.chat.completions.create(model="rag", messages=messages, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            if text != ANSWER:
                failed.append(f"streamed completion, {name}: {text!r}")
    assert failed == []
    assert script.pending == 0


def test_a_stream_cut_after_content_is_one_error_event_and_no_saved_turn(
    script: OpenAIServer, weft: ServeProcess
) -> None:
    cut = Reply("Worker bees build the comb from wax that they secrete.", fault=Fault.drop(3))
    server = weft
    with httpx.Client(timeout=30) as http:
        script.script(cut)
        events = chat(http, server.url, session_id="hive-notes")
        kinds = [e["event"] for e in events]
        assert "token" in kinds and kinds.count("error") == 1 and "done" not in kinds
        assert kinds[-1] == "error" and events[-1]["error"]["code"] == 503
        assert chat_requests(script) == 1  # content was shown: neither retried nor replaced

        history = http.get(server.url + "/v1/chat/sessions/hive-notes").json()["history"]
        assert history == []

        script.script(cut)
        body = {"input": {"question": QUESTION}}
        with http.stream("POST", server.url + "/v1/graphs/rag/stream", json=body) as response:
            records = [r for r in read_sse(response.iter_lines()) if r["event"]]
        graph_kinds = [r["event"] for r in records]
        assert "chunk" in graph_kinds and graph_kinds.count("error") == 1
        assert graph_kinds[-1] == "error" and "done" not in graph_kinds

        script.script(cut)
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        stream = client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        shown: list[str] = []
        with pytest.raises(openai.APIError):
            for chunk in stream:
                shown.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
        assert "".join(shown).startswith("Worker")

        script.script(ANSWER)
        assert chat(http, server.url, session_id="hive-notes")[-1]["answer"] == ANSWER
        history = http.get(server.url + "/v1/chat/sessions/hive-notes").json()["history"]
        assert [t["content"] for t in history] == [QUESTION, ANSWER]


def test_a_hung_provider_is_a_504_within_the_deadline(
    script: OpenAIServer, no_fallback: ServeProcess
) -> None:
    server = no_fallback
    with httpx.Client(timeout=30) as http:
        script.script(Fault.hang())
        started = time.monotonic()
        response = http.post(
            server.url + "/v1/chat/completions",
            json={"model": "rag", "messages": [{"role": "user", "content": QUESTION}]},
        )
        took = time.monotonic() - started
        assert response.status_code == 504, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == 504
        assert "WEFT_MODEL_TIMEOUT" in response.json()["error"]["message"]
        assert took < 15  # the hang lasts an hour; the deadline is one second

        script.script(Fault.hang())
        events = chat(http, server.url)
        assert [e["event"] for e in events][-1] == "error"
        assert events[-1]["error"]["code"] == 504


def test_when_the_provider_keeps_failing_the_fallback_answers_and_is_marked(
    script: OpenAIServer, weft: ServeProcess
) -> None:
    down = [Fault.server_error(500), Fault.server_error(503)]  # the call and its one retry
    server = weft
    with httpx.Client(timeout=30) as http:
        script.script(*down)
        done = chat(http, server.url)[-1]
        assert done["event"] == "done" and done["fallback"] is True
        assert "wax" in done["answer"]

        script.script(*down)
        body = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}]}
        completion = http.post(server.url + "/v1/chat/completions", json=body).json()
        assert (
            completion["fallback"] is True
            and "wax" in completion["choices"][0]["message"]["content"]
        )

        script.script(ANSWER)
        completion = http.post(server.url + "/v1/chat/completions", json=body).json()
        assert completion["fallback"] is False

        script.script(*down)
        with http.stream(
            "POST", server.url + "/v1/chat/completions", json={**body, "stream": True}
        ) as response:
            lines = [ln for ln in response.iter_lines() if ln.startswith("data: {")]
        finish = json.loads(lines[-1].removeprefix("data: "))
        assert finish["choices"][0]["finish_reason"] == "stop" and finish["fallback"] is True

        metrics = http.get(server.url + "/metrics").text
        assert "weft_server_model_fallbacks_total 3" in metrics
    assert chat_requests(script) == 7


def test_an_open_breaker_answers_from_the_fallback_without_calling_the_provider(
    script: OpenAIServer, weft: ServeProcess
) -> None:
    with httpx.Client(timeout=30) as http:
        # a success (the count starts at 0), then four calls of two failed attempts each
        script.script(ANSWER, *[Fault.server_error(500)] * 8, ANSWER)
        answers = [chat(http, weft.url)[-1] for _ in range(6)]
        assert [a["fallback"] for a in answers] == [False] + [True] * 5
        assert chat_requests(script) == 9
        assert script.pending == 1

"""Two real ``weft serve`` replicas behind real nginx, sharing PostgreSQL, a Chroma server and
Redis, each with a data directory of its own: what a session, an ingest, a rate limit and a
crash do there."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.scale.conftest import ROOT, deployed_nginx
from weft.testing import OpenAIServer
from weft.testing._engines import ChromaServer, Nginx, Postgres, Redis, Replica, wait_for
from weft.testing._openai_script import Fault, RecordedRequest, content_text, echo

pytestmark = pytest.mark.timeout(240)

HOLD = "hold on:"
"""A question that starts so makes the model hang: its turn is still running."""
RATE = 20
FOLLOWED = 10.0
"""Seconds a test waits for an ingest to reach a replica (docs/deploy.md says about one)."""
KEYS = ["key-memory", "key-ingest", "key-rate", "key-crash", "key-db", "key-probe"]
DOCS = {
    "otters.md": "# Otters\n\nSea otters hold hands while they sleep so they do not drift apart.\n",
    "kelp.md": "# Kelp\n\nGiant kelp grows up to half a metre a day in cold coastal water.\n",
}


def _reply(request: RecordedRequest) -> Any:
    last = next((m for m in reversed(request.messages) if m.get("role") == "user"), {})
    if HOLD in content_text(last.get("content")):
        return Fault.hang(120)
    return echo(request)


@dataclass
class Cluster:
    postgres: Postgres
    model: OpenAIServer
    a: Replica
    b: Replica
    nginx: Nginx
    workdir: Path
    env: dict[str, str]

    def ingest(self, folder: Path, *flags: str) -> None:
        """``weft ingest`` from a folder of its own: it needs no replica's data dir."""
        done = subprocess.run(
            [sys.executable, "-m", "weft.cli", "ingest", str(folder), *flags],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def cluster(
    postgres: Postgres,
    chroma_server: ChromaServer,
    redis_server: Redis,
    nginx_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("replicas")
    docs = base / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    with OpenAIServer(default=_reply) as model:
        engines = {
            "WEFT_DATABASE_URL": postgres.url,
            "WEFT_CHROMA_URL": chroma_server.url,
            "WEFT_REDIS_URL": redis_server.url,
        }
        env = {
            "WEFT_API_KEYS": ",".join(KEYS),
            "WEFT_RATE_LIMIT_PER_MINUTE": str(RATE),
            "WEFT_COLLECTION": "replicas",
            "WEFT_MODEL_FALLBACK": "false",
            "OPENAI_BASE_URL": model.base_url,
            "OPENAI_API_KEY": "test",
        }
        workdir = base / "cli"
        workdir.mkdir()
        replicas: list[Replica] = []
        # docs/deploy.md's commands, with this machine's engines, folders and ports.
        for line in deploy_commands():
            line = line.replace("./handbook", str(docs)).replace("/srv/", f"{base}/")
            words = shlex.split(line.removesuffix("&"))
            if words[0] == "export":
                name = words[1].partition("=")[0]
                env[name] = engines[name]
            elif words[:2] == ["weft", "serve"]:
                assert words[2::2] == ["--port", "--data-dir"], line
                replicas.append(Replica(Path(words[5]), env, "ab"[len(replicas)]))
            else:
                assert words[0] == "weft", line
                done = subprocess.run(
                    [sys.executable, "-m", "weft.cli", *words[1:]],
                    env={**os.environ, **env},
                    cwd=workdir,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert done.returncode == 0, f"{line}: {done.stderr}"
        assert env.keys() >= engines.keys() and len(replicas) == 2
        a, b = replicas
        assert a.data_dir != b.data_dir  # nothing shared on disk
        threads = [threading.Thread(target=r.start) for r in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        nginx = deployed_nginx(nginx_dir, [a.address, b.address])
        nginx.start()
        cluster = Cluster(postgres, model, a, b, nginx, workdir, {**os.environ, **env})
        try:
            yield cluster
        finally:
            cluster.nginx.stop()
            cluster.a.stop()
            cluster.b.stop()


def deploy_commands() -> list[str]:
    """The shell commands of docs/deploy.md's "On one machine" section."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(url: str, key: str, question: str, session: str) -> tuple[httpx.Response, list[Any]]:
    """One chat turn over SSE: the response and its events as (event, data) pairs."""
    body = {"question": question, "session_id": session}
    with httpx.stream(
        "POST", url + "/v1/chat", json=body, headers=_headers(key), timeout=60
    ) as response:
        events: list[Any] = []
        if response.status_code == 200:
            event = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event is not None:
                    events.append((event, json.loads(line.split(":", 1)[1])))
        else:
            response.read()
    return response, events


def history(url: str, key: str, session: str) -> list[Any]:
    got = httpx.get(f"{url}/v1/chat/sessions/{session}", headers=_headers(key), timeout=30)
    assert got.status_code == 200, got.text
    return list(got.json()["history"])


def texts(turns: list[Any]) -> list[str]:
    return [t["content"] if isinstance(t, dict) else str(t) for t in turns]


def test_turns_alternating_between_replicas_keep_the_conversation(cluster: Cluster) -> None:
    served = set()
    questions = ["Why do sea otters hold hands?", "How fast does kelp grow?", "And otters?"]
    for question in questions:
        response, events = chat(cluster.nginx.url, "key-memory", question, "tide-1")
        assert response.status_code == 200, response.text
        assert events[-1][0] == "done", events
        served.add(response.headers["X-Upstream"])
    assert served == {cluster.a.address, cluster.b.address}  # nginx alternated
    for url in (cluster.a.url, cluster.b.url):
        said = " ".join(texts(history(url, "key-memory", "tide-1")))
        assert all(q in said for q in questions), said
    with psycopg.connect(cluster.postgres.url) as db:  # kept in PostgreSQL, not a local file
        row = db.execute("SELECT count(*) FROM checkpoints WHERE thread_id = 'tide-1'").fetchone()
        owner = db.execute("SELECT owner FROM weft_session_owners WHERE session = 'tide-1'")
        assert row is not None and row[0] >= 1
        assert owner.fetchone() is not None


def hybrid_sources(url: str, question: str) -> set[str]:
    got = httpx.post(
        url + "/v1/graphs/hybrid/invoke",
        json={"input": question},
        headers=_headers("key-ingest"),
        timeout=30,
    )
    assert got.status_code == 200, got.text
    return {Path(d["metadata"]["source"]).name for d in got.json()["output"]}


def test_cli_ingest_and_reset_are_answered_by_both_replicas_without_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    (tmp_path / "narwhals.md").write_text(
        "# Narwhals\n\nA narwhal tusk is a tooth that can grow three metres long.\n"
    )
    cluster.ingest(tmp_path)
    for replica in (cluster.a, cluster.b):  # within docs/deploy.md's bound: a second or so
        wait_for(
            lambda r=replica: "narwhals.md" in hybrid_sources(r.url, "narwhal tusk tooth"),
            "the ingest reaching a replica",
            timeout=FOLLOWED,
        )
        assert httpx.get(replica.url + "/readyz", timeout=10).status_code == 200
    cluster.ingest(tmp_path, "--reset")  # the knowledge base is now the narwhals alone
    for replica in (cluster.a, cluster.b):
        wait_for(
            lambda r=replica: hybrid_sources(r.url, "otters kelp narwhal") == {"narwhals.md"},
            "the reset reaching a replica",
            timeout=FOLLOWED,
        )
        # Never the old contents again, nor a mix: the replica moved to the new version.
        for _ in range(5):
            assert hybrid_sources(replica.url, "sea otters kelp narwhal tusk") == {"narwhals.md"}


def test_rate_limit_holds_across_replicas(cluster: Cluster) -> None:
    codes = []
    started = time.monotonic()
    for i in range(2 * RATE):
        url = (cluster.a, cluster.b)[i % 2].url
        codes.append(httpx.get(url + "/v1/models", headers=_headers("key-rate")).status_code)
    refilled = math.ceil((time.monotonic() - started) * RATE / 60)
    # One bucket of RATE for the key, not one per replica (2 * RATE), plus what refilled.
    assert RATE <= codes.count(200) <= RATE + refilled < 2 * RATE, codes
    assert codes.count(429) == len(codes) - codes.count(200)


def test_stopped_database_answers_503_until_it_is_back(cluster: Cluster) -> None:
    cluster.postgres.stop()
    try:
        response, _ = chat(cluster.nginx.url, "key-db", "Why do otters hold hands?", "tide-db")
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
        assert "WEFT_DATABASE_URL" in response.json()["error"]["message"]
        ready = httpx.get(cluster.a.url + "/readyz", headers=_headers("key-db"), timeout=30)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("failed")
    finally:
        cluster.postgres.start()

    def served() -> bool:
        response, _ = chat(cluster.nginx.url, "key-db", "Why do otters hold hands?", "tide-db")
        return response.status_code == 200

    wait_for(served, "service after PostgreSQL restarted", timeout=30)
    for replica in (cluster.a, cluster.b):
        assert httpx.get(replica.url + "/readyz", timeout=10).status_code == 200


def test_killed_replica_keeps_completed_turns_and_drops_the_running_one(
    cluster: Cluster,
) -> None:
    first, _ = chat(cluster.a.url, "key-crash", "Why do sea otters hold hands?", "tide-crash")
    assert first.status_code == 200
    asked = len(cluster.model.requests)
    running = threading.Thread(
        target=lambda: _quietly(chat, cluster.a.url, "key-crash", f"{HOLD} kelp?", "tide-crash"),
        daemon=True,
    )
    running.start()
    wait_for(
        lambda: any(HOLD in json.dumps(r.messages) for r in cluster.model.requests[asked:]),
        "the held turn reaching the model",
    )
    # The same session on the other replica, while its turn runs here: refused, by name.
    busy, _ = chat(cluster.b.url, "key-crash", "How fast does kelp grow?", "tide-crash")
    assert busy.status_code == 409, busy.text
    assert "tide-crash" in busy.json()["error"]["message"]

    cluster.a.kill()
    try:
        after, _events = chat(cluster.b.url, "key-crash", "How fast does kelp grow?", "tide-crash")
        assert after.status_code == 200, after.text
        said = texts(history(cluster.b.url, "key-crash", "tide-crash"))
        assert any("Why do sea otters hold hands?" in t for t in said)
        assert any("How fast does kelp grow?" in t for t in said)
        assert not any(HOLD in t for t in said), said  # the killed turn left nothing
        assert len(said) == 4, said
    finally:
        cluster.a.start()


def _quietly(fn: Any, *args: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        fn(*args)


def test_replicas_answer_while_both_run(cluster: Cluster) -> None:
    """After a crash and restart, both replicas serve again: the restarted one included, and
    each reports every engine it uses."""
    for replica in (cluster.a, cluster.b):
        ready = httpx.get(replica.url + "/readyz", headers=_headers("key-probe"), timeout=30)
        checks = ready.json()["checks"]
        assert ready.status_code == 200, checks
        assert {"knowledge_base", "database", "redis", "checkpointer:rag"} <= checks.keys()
        assert all(checks[name] == "ok" for name in ("knowledge_base", "database", "redis"))
        response, events = chat(replica.url, "key-probe", "How fast does kelp grow?", "tide-probe")
        assert response.status_code == 200 and events[-1][0] == "done"

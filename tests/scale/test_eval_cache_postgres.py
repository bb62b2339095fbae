"""The eval output cache in PostgreSQL: JSON rows that two processes share, and that never run
code when read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage

from tests.scale.conftest import ROOT
from weft.core._database import open_database
from weft.evals._cache_postgres import PostgresOutputCache, from_json, to_json
from weft.evals.results import SourceInfo, Usage
from weft.testing._engines import Postgres

pytestmark = pytest.mark.timeout(180)

RUN = textwrap.dedent(
    """
    import json
    from tests.evals.test_runner import qa_suite
    from weft.core.settings import Settings
    from weft.evals import run_suite

    result = run_suite(qa_suite(), settings=Settings(data_dir={data!r}))
    print(json.dumps([[c.case, c.cached, c.answer] for c in result.cases]))
    """
)


def test_an_eval_run_in_one_process_is_a_cache_hit_in_another(
    postgres: Postgres, tmp_path: Path
) -> None:
    PostgresOutputCache(open_database(postgres.url)).clear()
    runs = []
    for name in ("first", "second"):  # two processes, each with a data dir of its own
        done = subprocess.run(
            [sys.executable, "-c", RUN.format(data=str(tmp_path / name))],
            env={"PATH": "/usr/bin:/bin", "WEFT_DATABASE_URL": postgres.url, "HOME": "/tmp"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert [cached for _, cached, _ in first] == [False, False, False]
    assert [cached for _, cached, _ in second] == [True, True, True]
    assert [answer for *_, answer in second] == [answer for *_, answer in first]
    assert "Rome" in second[0][2]
    with psycopg.connect(postgres.url) as conn:
        row = conn.execute("SELECT count(*) FROM weft_eval_cache").fetchone()
    assert row == (3,)


def test_outputs_read_back_equal_and_what_is_not_json_is_refused() -> None:
    run = {
        "output": {"messages": [HumanMessage("hi"), AIMessage("Rome. [1]")], "pair": (1, "a")},
        "docs": [Document(page_content="Rome is in Italy.", id="rome", metadata={"p": 1})],
        "usage": Usage(input_tokens=3, output_tokens=2, total_tokens=5),
        "sources": [SourceInfo(id="rome.md", text="Rome")],
        "error": None,
        "latency_ms": 1.5,
    }
    assert from_json(json.loads(json.dumps(to_json(run)))) == run
    cache = PostgresOutputCache.__new__(PostgresOutputCache)  # set() refuses before any query
    assert cache.set("k", {"output": {1, 2}}) is False
    assert cache.set("k", {"output": object()}) is False
    assert cache.set("k", {"output": float("nan")}) is False


def test_a_row_never_imports_or_builds_what_the_reader_does_not_allow(postgres: Postgres) -> None:
    cache = PostgresOutputCache(open_database(postgres.url))
    rows = {
        "not-imported": {"$weft": "model", "class": "json.tool:Unknown", "value": {}},
        "not-a-model": {"$weft": "model", "class": "subprocess:Popen", "value": {"args": "ls"}},
        "not-core": {
            "$weft": "lc",
            "value": {"lc": 1, "type": "constructor", "id": ["os", "system"], "kwargs": {}},
        },
    }
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        for key, value in rows.items():
            conn.execute(
                "INSERT INTO weft_eval_cache (key, value, created) VALUES (%s, %s::jsonb, 0) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (key, json.dumps({"output": value})),
            )
    for key in rows:
        assert cache.get(key) is None  # a miss: the case runs again
    assert "json.tool" not in sys.modules

"""The consultation saga's log, services and checkpoints in PostgreSQL (``WEFT_DATABASE_URL``):
a saga that fails and compensates, and one a killed process left running, recovered by another
process with a data dir of its own, as another replica would."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests.graphs import _killed_saga
from weft.cli import main
from weft.core._database import open_database
from weft.core.settings import Settings
from weft.graphs._saga_postgres import PostgresSagaLog, open_saga_log
from weft.graphs.health._postgres import PostgresHealthServices
from weft.graphs.health.consult import SAGA_NAME
from weft.graphs.saga import SagaError, arecover
from weft.testing._engines import Postgres

_SERVICE_TABLES = ("consultations", "reports", "outbox", "health_records")


@pytest.fixture
def clean(postgres: Postgres) -> str:
    """The database's URL, its saga log emptied (the tables stay, as ``weft db migrate`` made
    them)."""
    open_saga_log(Settings(database_url=postgres.url))  # the tables, on first use
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        for table in ("saga_steps", "sagas", *(f"weft_health.{t}" for t in _SERVICE_TABLES)):
            conn.execute(f"DELETE FROM {table}")
    return postgres.url


def _logged(url: str, saga_id: str) -> tuple[str, list[tuple[str, str]]]:
    """The saga's status and its steps' as PostgreSQL has them, read without weft."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT status FROM sagas WHERE id = %s", (saga_id,)).fetchone()
        steps = conn.execute(
            "SELECT name, status FROM saga_steps WHERE saga_id = %s ORDER BY idx", (saga_id,)
        ).fetchall()
    assert row is not None, f"saga {saga_id} is not in PostgreSQL"
    return row[0], [(name, status) for name, status in steps]


def test_a_failing_saga_compensates_and_is_logged_in_postgresql(clean: str, tmp_path: Path) -> None:
    saga = _killed_saga.build(tmp_path, fail="notify", database_url=clean)
    assert isinstance(saga.log, PostgresSagaLog)
    record = saga.run(_killed_saga.CONTEXT, saga_id="pg-fail")
    assert record.status == "compensated"
    assert _logged(clean, "pg-fail") == (
        "compensated",
        [
            ("create_record", "compensated"),
            ("specialists", "compensated"),
            ("report", "compensated"),
            ("notify", "failed"),
            ("update_health_record", "pending"),
        ],
    )
    assert "failed after 2 attempts" in (record.steps[3].error or "")
    assert not list(tmp_path.iterdir())  # neither a log nor services in the data dir
    with psycopg.connect(clean) as conn:  # read without weft
        found = conn.execute("SELECT status FROM weft_health.consultations").fetchall()
        reports = conn.execute("SELECT status FROM weft_health.reports").fetchall()
    assert (found, reports) == ([("cancelled",)], [("withdrawn",)])


def test_an_unknown_saga_names_the_database_not_a_file(clean: str) -> None:
    log = open_saga_log(Settings(database_url=clean))
    with pytest.raises(SagaError, match=r"no saga 'nowhere' in the database at postgresql://"):
        log.get("nowhere")


def test_a_saga_a_killed_process_left_running_is_recovered_from_postgresql(
    clean: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = multiprocessing.get_context("forkserver")
    child = ctx.Process(target=_killed_saga.run, args=(str(tmp_path), "inside:notify", "", clean))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    status, steps = _logged(clean, _killed_saga.SAGA_ID)
    assert (status, steps[3]) == ("running", ("notify", "running"))

    monkeypatch.setenv("WEFT_DATABASE_URL", clean)
    assert main(["saga", "list", "--data-dir", str(tmp_path)]) == 0
    assert f"{_killed_saga.SAGA_ID}  {SAGA_NAME}  running  step 4 notify" in capsys.readouterr().out
    other = tmp_path / "replica-2"  # another replica: its own data dir, the same database
    saga = _killed_saga.build(other, database_url=clean)
    (record,) = asyncio.run(arecover(saga.log, {SAGA_NAME: saga}))
    assert record.status == "completed"
    assert _logged(clean, _killed_saga.SAGA_ID) == ("completed", [(s, "done") for s, _ in steps])
    services = PostgresHealthServices(open_database(clean))
    # the killed process's notification was in PostgreSQL: the recovery found it, sent none again
    assert Counter(r["kind"] for r in services.rows("outbox")) == {"notification": 1}
    assert [r["status"] for r in services.rows("health_records")] == ["active"]
    assert not list(tmp_path.glob("**/*.sqlite"))
    assert main(["saga", "recover", "--data-dir", str(other)]) == 0
    assert "no saga to recover" in capsys.readouterr().out


def test_of_two_processes_recovering_one_saga_only_one_takes_it(clean: str, tmp_path: Path) -> None:
    saga = _killed_saga.build(tmp_path, database_url=clean)
    saga.log.create("pg-claim", SAGA_NAME, [s.name for s in saga.steps], _killed_saga.CONTEXT)
    mine = saga.log.get("pg-claim").owner
    with psycopg.connect(clean, autocommit=True) as conn:
        conn.execute("UPDATE sagas SET owner = 'gone:1' WHERE id = 'pg-claim'")
    stale = saga.log.get("pg-claim")  # what both recoverers read
    assert saga.log.claim("pg-claim", stale.owner)
    assert not saga.log.claim("pg-claim", stale.owner)  # the second one read the same owner
    assert saga.log.get("pg-claim").owner == mine  # this process, which took it first


def test_a_consultation_stopped_on_one_replica_resumes_on_another_from_postgresql(
    clean: str, tmp_path: Path
) -> None:
    from weft.core.runtime.compiled import thread
    from weft.graphs.health._postgres import configured_parts
    from weft.graphs.health.consult import StepPolicy
    from weft.graphs.health.graph import build_health_graph, health_checkpointer

    def stop(point: str) -> None:
        if point == "after:report":
            raise KeyboardInterrupt  # the run stops between the report and the notification

    fast = StepPolicy(timeout=5.0, retries=1, backoff=0.001, max_backoff=0.001)
    config = thread("pg-visit")
    one, two = (Settings(data_dir=tmp_path / n, database_url=clean) for n in ("r1", "r2"))
    first = build_health_graph(
        one.data_dir,
        policy=fast,
        checkpointer=health_checkpointer(one.data_dir, one),
        probe=stop,
        **configured_parts(one),
    )
    with pytest.raises(KeyboardInterrupt):
        first.invoke({"text": "sneezing and itchy eyes"}, config)
    assert _logged(clean, "pg-visit")[0] == "running"
    second = build_health_graph(
        two.data_dir,
        policy=fast,
        checkpointer=health_checkpointer(two.data_dir, two),
        recover=False,
        **configured_parts(two),
    )
    result = second.invoke(None, config)  # replica 2 finds replica 1's checkpoint: triage done
    assert result.saga is not None
    assert (result.saga["id"], result.saga["status"]) == ("pg-visit", "completed")
    services = PostgresHealthServices(open_database(clean))
    assert len(services.rows("reports")) == 1 and len(services.rows("outbox")) == 1
    assert not list(tmp_path.glob("**/*.sqlite"))  # nothing of it in either data dir

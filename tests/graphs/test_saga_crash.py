"""Crash recovery: a child process running the consultation saga is SIGKILLed before, inside
and after every step and every compensation; recovery then finishes or compensates the saga,
and no step's effect is applied twice."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.graphs import _killed_saga
from weft.cli import main
from weft.graphs.health.consult import SAGA_NAME, STEP_NAMES
from weft.graphs.health.services import LocalHealthServices
from weft.graphs.saga import SagaLog, arecover

FORWARD = [f"{when}:{step}" for step in STEP_NAMES for when in ("before", "inside", "after")]
UNDONE = ("create_record", "report", "notify")  # the specialists have nothing to undo
BACKWARD = [
    f"{when}:{step}" for step in UNDONE for when in ("before_undo", "inside_undo", "after_undo")
]


@pytest.fixture(scope="module")
def forkserver() -> multiprocessing.context.ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.graphs._killed_saga"])
    return ctx


def _kill_at(
    ctx: multiprocessing.context.ForkServerContext, data_dir: Path, point: str, fail: str
) -> None:
    child = ctx.Process(target=_killed_saga.run, args=(str(data_dir), point, fail))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL, f"the child was not killed at {point}"
    assert SagaLog(data_dir / "sagas.sqlite").get(_killed_saga.SAGA_ID).status in (
        "running",
        "compensating",
    )


def _recover(data_dir: Path) -> str:
    saga = _killed_saga.build(data_dir)
    (record,) = asyncio.run(arecover(saga.log, {SAGA_NAME: saga}))
    assert record.id == _killed_saga.SAGA_ID
    return record.status


def _effects(data_dir: Path) -> dict[str, Counter[str]]:
    services = LocalHealthServices(data_dir / "health.sqlite")
    return {
        "consultations": Counter(r["status"] for r in services.rows("consultations")),
        "reports": Counter(r["status"] for r in services.rows("reports")),
        "outbox": Counter(r["kind"] for r in services.rows("outbox")),
        "health_records": Counter(r["status"] for r in services.rows("health_records")),
    }


@pytest.mark.parametrize("point", FORWARD)
def test_a_saga_killed_on_its_way_completes_once_on_recovery(
    point: str, tmp_path: Path, forkserver: multiprocessing.context.ForkServerContext
) -> None:
    _kill_at(forkserver, tmp_path, point, fail="")
    assert _recover(tmp_path) == "completed"
    assert _effects(tmp_path) == {
        "consultations": Counter({"open": 1}),
        "reports": Counter({"final": 1}),
        "outbox": Counter({"notification": 1}),
        "health_records": Counter({"active": 1}),
    }
    record = SagaLog(tmp_path / "sagas.sqlite").get(_killed_saga.SAGA_ID)
    assert [s.status for s in record.steps] == ["done"] * 5


@pytest.mark.parametrize("point", BACKWARD)
def test_a_saga_killed_while_compensating_is_compensated_once_on_recovery(
    point: str, tmp_path: Path, forkserver: multiprocessing.context.ForkServerContext
) -> None:
    _kill_at(forkserver, tmp_path, point, fail="update_health_record")
    assert _recover(tmp_path) == "compensated"
    assert _effects(tmp_path) == {
        "consultations": Counter({"cancelled": 1}),
        "reports": Counter({"withdrawn": 1}),
        "outbox": Counter({"notification": 1, "retraction": 1}),
        "health_records": Counter(),
    }


def test_weft_saga_recover_finishes_a_killed_saga(
    tmp_path: Path,
    forkserver: multiprocessing.context.ForkServerContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _kill_at(forkserver, tmp_path, "inside:notify", fail="")
    assert main(["saga", "recover", "--data-dir", str(tmp_path)]) == 0
    assert f"{_killed_saga.SAGA_ID} completed" in capsys.readouterr().out
    assert _effects(tmp_path)["outbox"] == Counter({"notification": 1})
    assert main(["saga", "recover", "--data-dir", str(tmp_path)]) == 0  # nothing left to do
    assert "no saga to recover" in capsys.readouterr().out


def test_the_health_graph_recovers_a_killed_saga_when_it_starts(
    tmp_path: Path, forkserver: multiprocessing.context.ForkServerContext
) -> None:
    from weft.graphs.health.graph import build_health_graph

    _kill_at(forkserver, tmp_path, "after:specialists", fail="")
    build_health_graph(tmp_path)
    record = SagaLog(tmp_path / "sagas.sqlite").get(_killed_saga.SAGA_ID)
    assert record.status == "completed"
    assert _effects(tmp_path)["reports"] == Counter({"final": 1})

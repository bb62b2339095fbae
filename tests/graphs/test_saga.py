"""The saga engine: order, retries with backoff, timeouts, compensation in reverse, a failing
compensation, and the log written at every step."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from weft.cli import main
from weft.core.errors import ConfigurationError
from weft.graphs.saga import Saga, SagaError, SagaLog, Step, StepContext, arecover


class Recorder:
    def __init__(self, fail: dict[str, int] | None = None, slow: str = "") -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.fail = dict(fail or {})
        self.slow = slow

    def action(self, name: str) -> Any:
        async def act(ctx: StepContext) -> dict[str, Any]:
            self.calls.append((name, ctx.key, ctx.attempt))
            if self.slow == name:
                await asyncio.sleep(5)
            if self.fail.get(name, 0) > 0:
                self.fail[name] -= 1
                raise RuntimeError(f"{name} broke")
            return {"seen": sorted(k for k in ctx.data if k != "order")}

        return act

    def undo(self, name: str) -> Any:
        def comp(ctx: StepContext) -> None:  # a sync compensation runs in a worker thread
            self.calls.append((f"undo {name}", ctx.key, ctx.attempt))
            if self.fail.get(f"undo {name}", 0) > 0:
                self.fail[f"undo {name}"] -= 1
                raise RuntimeError(f"undo {name} broke")

        return comp


def _saga(log: SagaLog, rec: Recorder, n: int = 5, **kw: Any) -> Saga:
    steps = [
        Step(f"s{i}", rec.action(f"s{i}"), rec.undo(f"s{i}"), backoff=0.001, **kw)
        for i in range(1, n + 1)
    ]
    return Saga("demo", steps, log)


def test_a_saga_runs_its_steps_in_order_and_keeps_their_results(tmp_path: Path) -> None:
    log = SagaLog(tmp_path / "sagas.sqlite")
    rec = Recorder()
    record = _saga(log, rec, 3).run({"order": 1}, saga_id="a")
    assert record.status == "completed"
    assert [c[0] for c in rec.calls] == ["s1", "s2", "s3"]
    assert record.context["s3"] == {"seen": ["s1", "s2"]}  # each step sees the earlier results
    assert [s.status for s in record.steps] == ["done"] * 3


def test_a_failing_step_is_retried_under_the_same_idempotency_key(tmp_path: Path) -> None:
    rec = Recorder(fail={"s2": 2})
    record = _saga(SagaLog(tmp_path / "l.sqlite"), rec, 3, retries=2).run({}, saga_id="b")
    assert record.status == "completed" and record.steps[1].attempts == 3
    assert [c for c in rec.calls if c[0] == "s2"] == [
        ("s2", "b/s2", 1),
        ("s2", "b/s2", 2),
        ("s2", "b/s2", 3),
    ]


def test_step_4_failing_compensates_3_2_1_in_reverse(tmp_path: Path) -> None:
    log = SagaLog(tmp_path / "l.sqlite")
    rec = Recorder(fail={"s4": 99})
    record = _saga(log, rec, retries=1).run({}, saga_id="c")
    assert record.status == "compensated"
    assert [c[0] for c in rec.calls] == [
        "s1",
        "s2",
        "s3",
        "s4",
        "s4",
        "undo s3",
        "undo s2",
        "undo s1",
    ]
    assert [c[1] for c in rec.calls[-3:]] == ["c/s3/undo", "c/s2/undo", "c/s1/undo"]
    statuses = [s.status for s in record.steps]
    assert statuses == ["compensated"] * 3 + ["failed", "pending"]
    assert "step 4 's4' failed after 2 attempts: RuntimeError: s4 broke" in (record.error or "")


def test_a_step_past_its_timeout_fails_and_compensates(tmp_path: Path) -> None:
    rec = Recorder(slow="s2")
    steps = [
        Step("s1", rec.action("s1"), rec.undo("s1")),
        Step("s2", rec.action("s2"), timeout=0.05, retries=0),
    ]
    record = Saga("t", steps, SagaLog(tmp_path / "l.sqlite")).run({}, saga_id="t")
    assert record.status == "compensated" and "timeout" in (record.error or "")
    assert rec.calls[-1][0] == "undo s1"


def test_a_compensation_that_keeps_failing_leaves_the_saga_failed_and_listed(
    tmp_path: Path,
) -> None:
    log = SagaLog(tmp_path / "l.sqlite")
    rec = Recorder(fail={"s3": 99, "undo s2": 99})
    record = _saga(log, rec, 3, retries=2).run({}, saga_id="d")
    assert record.status == "failed"
    assert [c[0] for c in rec.calls].count("undo s2") == 3  # retried, then given up
    assert [c[0] for c in rec.calls][-1] == "undo s1"  # the others are still undone
    assert [s.status for s in record.steps] == ["compensated", "compensation_failed", "failed"]
    assert "compensation failed for s2" in (record.error or "")
    assert [r.id for r in log.list(("failed",))] == ["d"]


def test_the_log_is_written_before_and_after_every_step(tmp_path: Path) -> None:
    log = SagaLog(tmp_path / "l.sqlite")
    seen: list[tuple[str, str, list[str]]] = []

    def probe(point: str) -> None:
        r = log.get("e")
        seen.append((point, r.status, [s.status for s in r.steps]))

    rec = Recorder(fail={"s2": 99})
    steps = [Step(f"s{i}", rec.action(f"s{i}"), rec.undo(f"s{i}"), retries=0) for i in (1, 2)]
    Saga("p", steps, log, probe=probe).run({}, saga_id="e")
    assert seen == [
        ("before:s1", "running", ["pending", "pending"]),
        ("after:s1", "running", ["done", "pending"]),
        ("before:s2", "running", ["done", "pending"]),
        ("before_undo:s1", "compensating", ["done", "failed"]),
        ("after_undo:s1", "compensating", ["compensated", "failed"]),
    ]


def test_steps_need_unique_names(tmp_path: Path) -> None:
    rec = Recorder()
    with pytest.raises(ConfigurationError, match="unique"):
        Saga("x", [Step("a", rec.action("a")), Step("a", rec.action("a"))], SagaLog(tmp_path / "l"))


def test_recovering_an_unknown_saga_name_says_which(tmp_path: Path) -> None:
    log = SagaLog(tmp_path / "l.sqlite")
    log.create("z", "gone", ["a"], {})
    with pytest.raises(SagaError, match=r"z \(gone\).*known: demo"):
        asyncio.run(arecover(log, {"demo": _saga(log, Recorder())}, force=True))
    # Without force, a saga whose process is alive (this one) is left to it.
    assert asyncio.run(arecover(log, {"demo": _saga(log, Recorder())})) == []
    with pytest.raises(SagaError, match="no saga 'nope'"):
        log.get("nope")


def test_cli_saga_list_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = SagaLog(tmp_path / "sagas.sqlite")
    _saga(log, Recorder(fail={"s2": 99}), 2, retries=0).run({}, saga_id="f")
    assert main(["saga", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "f" in out and "compensated" in out
    assert main(["saga", "show", "f", "--data-dir", str(tmp_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "compensated" and [s["name"] for s in shown["steps"]] == ["s1", "s2"]
    assert main(["saga", "show", "nope", "--data-dir", str(tmp_path)]) == 2
    assert "no saga 'nope'" in capsys.readouterr().err


def test_retries_back_off_exponentially_with_jitter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import weft.graphs.saga as saga_module

    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    jitter = iter([0.0, 1.0, 0.5, 0.5])  # the factor is 0.5 + random(): 0.5, 1.5, 1.0, 1.0
    monkeypatch.setattr(saga_module.asyncio, "sleep", no_wait)
    monkeypatch.setattr(saga_module.random, "random", lambda: next(jitter))
    rec = Recorder(fail={"s1": 4})
    step = Step("s1", rec.action("s1"), retries=4, backoff=0.1, max_backoff=0.3)
    record = Saga("b", [step], SagaLog(tmp_path / "l.sqlite")).run({}, saga_id="g")
    assert record.status == "completed" and record.steps[0].attempts == 5
    assert waits == pytest.approx([0.05, 0.3, 0.3, 0.3])  # 0.1, 0.2, then capped at 0.3

"""The ``health`` graph: emergencies stop at triage and are streamed first, consultations run
the saga with three specialists, a missing specialist is reported, a failed notification
compensates, free text is masked, and the graph is served and run from the CLI."""

# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import LiveServer, read_sse
from weft.cli import main
from weft.core.settings import Settings
from weft.core.stream import NodeFinished, NodeStarted
from weft.core.tracing import disable_tracing, enable_tracing
from weft.graphs.health.consult import StepPolicy
from weft.graphs.health.graph import HealthConsultation, Triaged, build_health_graph
from weft.graphs.health.services import LocalHealthServices
from weft.graphs.health.specialists import Analysis, SpecialistInput
from weft.graphs.health.triage import HealthInput, Triager
from weft.graphs.registry import default_graphs
from weft.graphs.saga import SagaLog
from weft.server.app import create_app

FAST = StepPolicy(retries=1, backoff=0.001, max_backoff=0.001)


async def _events(graph: Any, value: Any) -> list[Any]:
    return [e async for e in graph.aevents(value)]


def test_an_emergency_stops_at_triage_and_is_the_first_output(tmp_path: Path) -> None:
    graph = build_health_graph(tmp_path, policy=FAST)
    events = asyncio.run(_events(graph, {"text": "他突然口角歪斜，说话不清"}))
    started = [e.path for e in events if isinstance(e, NodeStarted)]
    assert ("consult",) not in started
    first = next(e for e in events if isinstance(e, NodeFinished))
    assert first.path == ("triage",) and first.output.triage.triage == "emergency"
    assert "急诊" in first.output.triage.instruction
    result = events[-1].output
    assert result.saga is None and result.report is None
    assert result.disclaimer.startswith("这不是诊断")
    assert SagaLog(tmp_path / "sagas.sqlite").list() == []


def test_a_consultation_runs_the_saga_with_three_cited_specialists(tmp_path: Path) -> None:
    graph = build_health_graph(tmp_path, policy=FAST)
    result = graph.invoke(HealthInput(text="Burning when I pee since Monday", age=34))
    assert result.triage.triage == "non_emergency"
    assert sorted(result.analyses) == ["care", "risk_factors", "symptoms"] and not result.missing
    assert result.sources[0]["id"] == "uti"
    assert "[1]" in result.analyses["care"].text and result.analyses["care"].citations
    assert result.saga is not None and result.saga["status"] == "completed"
    assert [s["status"] for s in result.saga["steps"]] == ["done"] * 5
    assert result.report is not None and "not a diagnosis" in result.report
    services = LocalHealthServices(tmp_path / "health.sqlite")
    assert len(services.rows("outbox")) == 1 and len(services.rows("health_records")) == 1


async def _broken(data: SpecialistInput) -> Analysis:
    raise RuntimeError("risk service unavailable")


async def _quick(data: SpecialistInput) -> Analysis:
    return Analysis(text=f"{data.sources[0].metadata['title']} [1]", citations=[1])


async def _slow(data: SpecialistInput) -> Analysis:
    await asyncio.sleep(5)
    return Analysis(text="late")


def test_a_failing_or_slow_specialist_is_reported_missing(tmp_path: Path) -> None:
    chosen = {"symptoms": _quick, "risk_factors": _broken, "care": _slow}
    policy = StepPolicy(retries=0, specialists_timeout=0.5)
    graph = build_health_graph(tmp_path, specialists=chosen, policy=policy)
    result = graph.invoke({"text": "sneezing and itchy eyes"})
    assert result.saga["status"] == "completed"
    assert list(result.analyses) == ["symptoms"]
    assert result.missing == {
        "risk_factors": "RuntimeError: risk service unavailable",
        "care": "timed out after 0.5 s",
    }
    assert "(missing: this analysis is not available: timed out" in result.report


class NoNotifier(LocalHealthServices):
    def notify(self, key: str, consultation_id: str, message: str) -> str:
        raise ConnectionError("the notifier is down")


def test_a_failed_notification_compensates_the_earlier_steps(tmp_path: Path) -> None:
    services = NoNotifier(tmp_path / "health.sqlite")
    graph = build_health_graph(tmp_path, services=services, policy=FAST)
    result = graph.invoke({"text": "mild cough for a day"})
    assert result.saga["status"] == "compensated" and result.report is None
    statuses = [s["status"] for s in result.saga["steps"]]
    assert statuses == ["compensated", "compensated", "compensated", "failed", "pending"]
    assert "step 4 'notify' failed after 2 attempts" in result.saga["error"]
    assert [r["status"] for r in services.rows("consultations")] == ["cancelled"]
    assert [r["status"] for r in services.rows("reports")] == ["withdrawn"]


def test_free_text_is_masked_in_the_saga_log_records_and_traces(tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    handler = enable_tracing("jsonl", path=str(traces), capture_content=True)
    try:
        text = "Cough for 2 days, call me on 13812345678 or li.lei@example.com"
        result = build_health_graph(tmp_path, policy=FAST).invoke({"text": text})
    finally:
        disable_tracing(handler)
    saga = SagaLog(tmp_path / "sagas.sqlite").get(result.saga["id"])
    assert saga.context["input"]["text"] == "Cough for 2 days, call me on [PHONE] or [EMAIL]"
    stored = (tmp_path / "sagas.sqlite").read_bytes() + (tmp_path / "health.sqlite").read_bytes()
    assert b"13812345678" not in stored and b"li.lei@example.com" not in stored
    spans = traces.read_text(encoding="utf-8")
    assert "[PHONE]" in spans and "13812345678" not in spans


def test_a_consultation_run_again_on_its_thread_acts_once(tmp_path: Path) -> None:
    parts = HealthConsultation(tmp_path, policy=FAST)
    data = HealthInput(text="sore throat for two days")
    triaged = Triaged(input=data, triage=Triager().assess(data))
    config: Any = {"configurable": {"thread_id": "t-1"}}
    first = asyncio.run(parts.consult(triaged, config))
    again = asyncio.run(parts.consult(triaged, config))
    assert first.saga == again.saga and again.saga["id"] == "t-1"
    assert len(LocalHealthServices(tmp_path / "health.sqlite").rows("outbox")) == 1


def test_the_health_graph_is_registered_and_served(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    graphs = default_graphs(settings)
    assert "health" in list(graphs)
    app = create_app(settings, graphs={"health": graphs["health"]}, tracing=False)
    with LiveServer(app) as server:
        body = {"input": {"text": "I have a runny nose", "age": 30}}
        reply = httpx.post(server.url + "/v1/graphs/health/invoke", json=body, timeout=30)
        assert reply.status_code == 200
        output = reply.json()["output"]
        assert output["triage"]["triage"] == "self_care" and output["saga"]["status"] == "completed"
        body = {"input": {"text": "crushing chest pain and sweating"}}
        with httpx.stream(
            "POST", server.url + "/v1/graphs/health/stream", json=body, timeout=30
        ) as stream:
            events = list(read_sse(stream.iter_lines()))
        finished = [json.loads(e["data"]) for e in events if e["event"] == "node_finished"]
        assert finished[0]["path"] == ["triage"]
        assert finished[0]["output"]["triage"]["triage"] == "emergency"
        bad = httpx.post(server.url + "/v1/graphs/health/invoke", json={"input": {"text": " "}})
        assert bad.status_code == 422 and "the text is empty" in bad.text
        page = httpx.get(server.url + "/static/health.html").text
        script = httpx.get(server.url + "/static/health.js").text
        assert (
            '<script src="/static/sse.js">' in page and '<script src="/static/health.js">' in page
        )
        assert "/v1/graphs/health/stream" in script and 'path.join("/") === "triage"' in script


def test_cli_consult_streams_the_triage_first_then_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["health", "consult", "mild headache after a long day", "--data-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("[SELF-CARE]")
    assert "## Care" in out and "completed (create_record=done" in out
    assert main([*args, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert set(body["saga"]) == {"id", "status", "steps", "error"}
    assert body["triage"]["triage"] == "self_care" and body["disclaimer"]


def test_a_run_stopped_inside_the_saga_resumes_it_from_the_checkpoint(tmp_path: Path) -> None:
    from weft.core.runtime.compiled import thread
    from weft.graphs.health.graph import health_checkpointer

    def stop(point: str) -> None:
        if point == "after:report":
            raise KeyboardInterrupt  # the run stops between the report and the notification

    config = thread("visit-7")
    first = build_health_graph(
        tmp_path, policy=FAST, checkpointer=health_checkpointer(tmp_path), probe=stop
    )
    with pytest.raises(KeyboardInterrupt):
        first.invoke({"text": "sneezing and itchy eyes"}, config)
    assert SagaLog(tmp_path / "sagas.sqlite").get("visit-7").status == "running"
    graph = build_health_graph(tmp_path, policy=FAST, checkpointer=health_checkpointer(tmp_path))
    result = graph.invoke(None, config)  # the checkpoint has triage done: consult runs again
    assert result.saga["id"] == "visit-7" and result.saga["status"] == "completed"
    services = LocalHealthServices(tmp_path / "health.sqlite")
    assert len(services.rows("reports")) == 1 and len(services.rows("outbox")) == 1


def test_a_specialist_with_a_model_answers_from_the_same_numbered_sources() -> None:
    from weft.graphs.health.specialists import HealthKnowledgeBase, KnowledgeBaseSpecialist
    from weft.testing import ScriptedChatModel

    model = ScriptedChatModel(replies=["Rest and fluids [1]; see a doctor if it lasts [2] [9]."])
    sources = HealthKnowledgeBase().search("runny nose and sneezing", 3)
    data = SpecialistInput(text="runny nose and sneezing", sources=sources)
    result = asyncio.run(KnowledgeBaseSpecialist("care", model)(data))
    assert result.citations == [1, 2]  # [9] names no source
    prompt = str(model.received[0][-1].content)
    assert f"[1] {sources[0].metadata['title']}:" in prompt and "Question: What self-care" in prompt

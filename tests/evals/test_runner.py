import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from weft import END, START, Graph
from weft.core.settings import Settings
from weft.evals import (
    Case,
    CitationsGrounded,
    Contains,
    Dataset,
    Evaluator,
    EvaluatorContext,
    HitAtK,
    Refusal,
    Suite,
    load_suite,
    run_suite,
)
from weft.evals.runner import OutputCache, graph_version

from .conftest import qa_graph

QA_CASES = [
    Case(
        name="italy",
        inputs="What is the capital of Italy?",
        expected_output="Rome",
        expected_sources=["rome.md"],
    ),
    Case(
        name="germany",
        inputs="What is the capital of Germany?",
        expected_output="Berlin",
        expected_sources=["berlin.md"],
    ),
    Case(name="mona-lisa", inputs="Who painted the Mona Lisa?", tags=["unanswerable"]),
]


def qa_suite(**kw: object) -> Suite:
    return Suite(
        name="qa",
        graph=qa_graph(),
        dataset=Dataset(cases=QA_CASES),
        evaluators=[Contains(), CitationsGrounded(), Refusal(), HitAtK(k=1, by="source")],
        thresholds={"contains": 1.0, "hit@1": 1.0},
        **kw,  # type: ignore[arg-type]
    )


def test_runs_a_graph_and_measures_answers_sources_latency_and_tokens(tmp_path: Path) -> None:
    result = run_suite(qa_suite(), settings=Settings(data_dir=tmp_path))
    assert result.passed and [c.case for c in result.cases] == ["italy", "germany", "mona-lisa"]
    italy = result.cases[0]
    assert italy.answer == "Rome is the capital of Italy. [1]"
    # the graph's output is a message; its sources come from the retriever's callbacks
    assert [s.title for s in italy.sources][:1] == ["Rome guide"]
    assert italy.assertions == {"contains": True, "citations_grounded": True, "refusal": True}
    assert italy.scores == {"hit@1": 1.0}
    assert italy.latency_ms > 0 and italy.usage.input_tokens > 10 and italy.usage.output_tokens > 3
    m = result.summary["qa"].metrics
    assert m["contains"] == 1.0 and m["pass_rate"] == 1.0 and m["error_rate"] == 0.0
    assert 0 < m["latency_p50_ms"] <= m["latency_p95_ms"]
    assert m["tokens_per_case"] == sum(c.usage.total_tokens for c in result.cases) / 3
    assert [(t.metric, t.op, t.passed) for t in result.thresholds] == [
        ("contains", ">=", True),
        ("hit@1", ">=", True),
    ]


def test_a_missed_threshold_fails_the_result(tmp_path: Path) -> None:
    suite = qa_suite()
    suite.thresholds = {"contains": 1.0, "latency_p95_ms": 0.001}
    result = run_suite(suite, settings=Settings(data_dir=tmp_path))
    assert not result.passed
    assert [t.metric for t in result.failed_thresholds] == ["latency_p95_ms"]
    assert result.failed_thresholds[0].op == "<="


def _flaky_graph(fail_on: str, calls: list[str]):  # type: ignore[no-untyped-def]
    def answer(question: str) -> str:
        calls.append(question)
        if question == fail_on:
            raise RuntimeError("model fell over")
        return f"answer to {question}"

    g = Graph[str, str]("flaky")
    g.add_node("answer", answer)
    g.add_edge(START, "answer").add_edge("answer", END)
    return g.compile()


def test_an_error_is_recorded_on_its_case_and_the_run_goes_on(tmp_path: Path) -> None:
    calls: list[str] = []
    suite = Suite(
        name="flaky",
        graph=_flaky_graph("b", calls),
        dataset=Dataset(cases=[Case(inputs=x, expected_output=x) for x in "abc"]),
        evaluators=[Contains()],
    )
    result = run_suite(suite, settings=Settings(data_dir=tmp_path))
    assert sorted(calls) == ["a", "b", "c"]
    failed = result.cases[1]
    assert failed.error is not None and "model fell over" in failed.error and not failed.passed
    assert [c.passed for c in result.cases] == [True, False, True]
    m = result.summary["flaky"].metrics
    assert m["error_rate"] == pytest.approx(1 / 3) and m["contains"] == pytest.approx(2 / 3)
    # errors are not cached: the next run tries the failed case again, and only it
    calls.clear()
    again = run_suite(suite, settings=Settings(data_dir=tmp_path))
    assert calls == ["b"] and [c.cached for c in again.cases] == [True, False, True]


def test_concurrency_is_bounded_and_repeats_run_each_case_again(tmp_path: Path) -> None:
    lock = threading.Lock()
    running, peak, calls = [0], [0], []

    def slow(question: str) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            calls.append(question)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return question

    g = Graph[str, str]("slow")
    g.add_node("slow", slow)
    g.add_edge(START, "slow").add_edge("slow", END)
    suite = Suite(
        name="slow",
        graph=g.compile(),
        dataset=Dataset(cases=[Case(inputs=str(i)) for i in range(6)]),
        concurrency=2,
        repeats=2,
    )
    result = run_suite(suite, settings=Settings(data_dir=tmp_path), cache=False)
    assert peak[0] == 2 and len(calls) == 12
    assert [(c.case, c.repeat) for c in result.cases[:3]] == [
        ("case-1", 0),
        ("case-1", 1),
        ("case-2", 0),
    ]


@dataclass
class SlowAsyncCheck(Evaluator):
    name: str = "async_check"

    async def evaluate(self, ctx: EvaluatorContext) -> dict[str, object]:
        return {"length": len(ctx.text), "kind": "short" if len(ctx.text) < 40 else "long"}


@dataclass
class Broken(Evaluator):
    def evaluate(self, ctx: EvaluatorContext) -> bool:
        raise ValueError("bad evaluator")


def test_async_evaluators_mappings_labels_and_a_raising_evaluator(tmp_path: Path) -> None:
    suite = qa_suite()
    suite.evaluators = [SlowAsyncCheck(), Broken()]
    suite.thresholds = {}
    result = run_suite(suite, settings=Settings(data_dir=tmp_path))
    italy = result.cases[0]
    assert italy.scores == {"length": len(italy.answer)}
    assert italy.labels == {"kind": "short"}
    assert italy.assertions == {"broken": False}
    assert italy.reasons["broken"] == "evaluator raised ValueError: bad evaluator"
    assert result.summary["qa"].labels["kind"] == {"short": 2, "long": 1}


def test_cache_key_changes_with_graph_version_input_and_repeat(tmp_path: Path) -> None:
    key = OutputCache.key("g", "v1", {"question": "x"}, 0)
    assert key == OutputCache.key("g", "v1", {"question": "x"}, 0)
    assert (
        len(
            {
                key,
                OutputCache.key("g", "v2", {"question": "x"}, 0),
                OutputCache.key("g", "v1", {"question": "y"}, 0),
                OutputCache.key("g", "v1", {"question": "x"}, 1),
                OutputCache.key("h", "v1", {"question": "x"}, 0),
            }
        )
        == 5
    )
    assert graph_version(qa_graph()) == graph_version(qa_graph())
    assert graph_version(qa_graph()) != graph_version(_flaky_graph("x", []))


SLOW_GRAPH = """
import os, time
from weft import END, START, Graph

def answer(question: str) -> str:
    with open(os.environ["EVAL_LOG"], "a") as f:
        f.write(question + "\\n")
    time.sleep(float(os.environ.get("EVAL_SLEEP", "0")))
    return "echo " + question

def graph():
    g = Graph[str, str]("echo")
    g.add_node("answer", answer)
    g.add_edge(START, "answer").add_edge("answer", END)
    return g.compile()
"""


def test_a_killed_run_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "echo_graph.py").write_text(SLOW_GRAPH)
    names = [f"q{i}" for i in range(8)]
    (tmp_path / "cases.jsonl").write_text(
        "".join(
            f'{{"name": "{n}", "inputs": "{n}", "expected_output": "echo {n}"}}\n' for n in names
        )
    )
    suite_file = tmp_path / "echo.yaml"
    suite_file.write_text(
        textwrap.dedent("""
        name: echo
        graph: echo_graph:graph
        dataset: cases.jsonl
        concurrency: 1
        evaluators: [Contains]
        thresholds: {contains: 1.0}
    """)
    )
    first_log = tmp_path / "first.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "EVAL_LOG": str(first_log),
        "EVAL_SLEEP": "0.25",
    }
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "weft.cli", "eval", "run", str(suite_file), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if first_log.exists() and len(first_log.read_text().split()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    started_before = first_log.read_text().split()
    assert 4 <= len(started_before) < len(names)  # killed mid-run
    # with one case at a time, every case before the last one started had finished
    finished_before = set(started_before[:-1])

    second_log = tmp_path / "second.log"
    monkeypatch.setenv("EVAL_LOG", str(second_log))
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run_suite(load_suite(suite_file), settings=Settings(data_dir=data))
    cached = {c.case for c in result.cases if c.cached}
    rerun = second_log.read_text().split()
    assert finished_before <= cached
    assert sorted(rerun) == sorted(set(names) - cached)  # nothing done twice
    assert result.passed and len(result.cases) == len(names)

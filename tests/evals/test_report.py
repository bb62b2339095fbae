import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from tests._chromium import FLAGS
from weft.core.settings import Settings
from weft.evals import Case, Contains, Dataset, EvalResult, Suite, compare, run_suite, write_reports
from weft.evals.results import ResultFileError

from .conftest import qa_graph
from .test_runner import QA_CASES


def _result(tmp_path: Path, cases: list[Case] | None = None) -> EvalResult:
    suite = Suite(
        name="qa",
        graphs={"extractive": qa_graph(), "again": qa_graph()},
        dataset=Dataset(cases=cases or QA_CASES),
        evaluators=[Contains()],
        thresholds={"contains": 0.9, "extractive/pass_rate": 1.0},
    )
    return run_suite(suite, settings=Settings(data_dir=tmp_path), cache=False)


def test_results_json_round_trips_and_bad_files_are_clear_errors(tmp_path: Path) -> None:
    result = _result(tmp_path)
    paths = write_reports(result, tmp_path / "out")
    assert EvalResult.load(paths["json"]) == result
    assert result.metrics()["again/contains"] == 1.0  # several variants: variant/metric
    (tmp_path / "bad.json").write_text('{"cases": 3}')
    with pytest.raises(ResultFileError, match="not a weft eval result"):
        EvalResult.load(tmp_path / "bad.json")
    with pytest.raises(ResultFileError, match="does not exist"):
        EvalResult.load(tmp_path / "missing.json")


def test_junit_has_a_testcase_per_case_and_per_threshold_with_failures(tmp_path: Path) -> None:
    cases = [
        *QA_CASES,
        Case(name="wrong", inputs="What is the capital of Italy?", expected_output="Milan"),
    ]
    result = _result(tmp_path, cases)
    root = ET.fromstring(write_reports(result, tmp_path / "out")["junit"].read_text())
    assert root.get("tests") == str(2 * 4 + 3) and root.get("failures") == str(2 + 3)
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert sorted(suites) == ["qa.again", "qa.extractive", "qa.thresholds"]
    wrong = suites["qa.extractive"].find("testcase[@name='wrong']")
    assert wrong is not None
    failure = wrong.find("failure")
    assert failure is not None and failure.get("message") == "contains: missing 'Milan'"
    missed = [t.get("name") for t in suites["qa.thresholds"] if t.find("failure") is not None]
    assert missed == [
        "extractive/contains >= 0.9",
        "again/contains >= 0.9",
        "extractive/pass_rate >= 1",
    ]


def test_compare_reports_metric_deltas_and_newly_failing_cases(tmp_path: Path) -> None:
    base = _result(tmp_path)
    cases = [
        c if c.name != "italy" else c.model_copy(update={"expected_output": "Milan"})
        for c in QA_CASES
    ]
    worse = _result(tmp_path, cases)
    cmp = compare(worse, base)
    contains = next(d for d in cmp.metrics if d.metric == "extractive/contains")
    # mona-lisa has no expected output, so contains is the mean over two cases
    assert contains.delta == pytest.approx(-1 / 2) and contains.regressed
    latency = next(d for d in cmp.metrics if d.metric == "extractive/latency_p95_ms")
    assert not latency.regressed  # timings are shown, never gated
    assert cmp.newly_failing == ["extractive/italy", "again/italy"]
    assert "extractive/contains fell from 1 to 0.5" in cmp.regressions
    assert compare(worse, base, tolerance=0.5).newly_failing and not [
        d for d in compare(worse, base, tolerance=0.5).metrics if d.regressed
    ]


def _png_size_and_colours(png: bytes) -> tuple[int, int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    data, pos = b"", 8
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        if png[pos + 4 : pos + 8] == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(data)
    return width, height, len(set(raw[i : i + 3] for i in range(1, min(len(raw), 400_000), 3)))


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "chromium",
            *FLAGS,
            f"--user-data-dir={tmp / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


@pytest.mark.browser
def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    base = _result(tmp_path)
    cases = [
        *QA_CASES,
        Case(name="wrong", inputs="What is the capital of Italy?", expected_output="Milan"),
    ]
    result = _result(tmp_path, cases)
    result.comparison = compare(result, base)
    html_path = write_reports(result, tmp_path / "out")["html"]
    assert "http://" not in html_path.read_text() and "https://" not in html_path.read_text()
    dom = _chromium("--dump-dom", html_path.as_uri(), tmp=tmp_path).stdout
    assert 'id="verdict">FAILED' in dom
    assert dom.count('class="chart-svg"') == 2  # contains distribution + latency histogram
    assert dom.count('class="bar"') >= 4
    assert dom.count("<tr class=") == 2 * 4 and dom.count('<tr class="failed">') == 2
    assert "contains: missing 'Milan'" in dom and "Rome guide" in dom
    assert 'id="diff"' in dom and "Newly passing" not in dom
    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,2000", html_path.as_uri(), tmp=tmp_path)
    width, height, colours = _png_size_and_colours(shot.read_bytes())
    assert (width, height) == (1280, 2000) and colours > 20  # a rendered page, not a blank one

import io
import json
import textwrap
from pathlib import Path

import pytest

from weft.cli import main
from weft.evals import EvalResult

SUITE = """
name: qa
graph: tests.evals.conftest:qa_graph
dataset: cases.jsonl
evaluators: [Contains, CitationsGrounded, Refusal]
thresholds: {contains: 1.0}
"""

CASES = [
    {"name": "italy", "inputs": "What is the capital of Italy?", "expected_output": "Rome"},
    {"name": "germany", "inputs": "What is the capital of Germany?", "expected_output": "Berlin"},
]


def _suite(tmp_path: Path, cases: list[dict[str, object]] = CASES) -> Path:
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    path = tmp_path / "qa.yaml"
    path.write_text(textwrap.dedent(SUITE))
    return path


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_eval_run_writes_the_three_reports_and_prints_the_table(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    code, text = run(
        "eval", "run", str(suite), "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "d")
    )
    assert code == 0
    assert "suite qa: 2 cases x 1 variant, 2 runs (0 cached)" in text
    assert "contains" in text and "PASSED: 1 thresholds met" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "junit.xml",
        "report.html",
        "results.json",
    ]
    code, text = run(
        "eval", "run", str(suite), "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "d")
    )
    assert "(2 cached)" in text


def test_fail_under_and_a_baseline_regression_exit_1(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    data = ["--data-dir", str(tmp_path / "d")]
    assert run("eval", "run", str(suite), "--out", str(tmp_path / "base"), *data)[0] == 0
    code, text = run("eval", "run", str(suite), "--fail-under", "citations_grounded=1.5", *data)
    assert code == 1 and "citations_grounded >= 1.5 (got 1)" in text
    # the same suite with a case the graph now gets wrong: contains falls, italy newly fails
    worse = [CASES[0] | {"expected_output": "Milan"}, CASES[1]]
    _suite(tmp_path, worse)
    code, text = run(
        "eval",
        "run",
        str(suite),
        "--baseline",
        str(tmp_path / "base" / "results.json"),
        "--out",
        str(tmp_path / "new"),
        *data,
    )
    assert code == 1
    assert "contains fell from 1 to 0.5" in text and "case italy passed in the baseline" in text
    code, text = run(
        "eval",
        "compare",
        str(tmp_path / "base" / "results.json"),
        str(tmp_path / "new" / "results.json"),
    )
    assert (
        code == 1  # a regression fails the comparison without being asked to
        and "contains" in text
        and "-0.5 worse" in text
        and "newly failing (1): italy" in text
    )
    assert run("eval", "compare", *[str(tmp_path / "base" / "results.json")] * 2)[0] == 0
    code, _ = run(
        "eval",
        "compare",
        "--fail-on-regression",
        str(tmp_path / "base" / "results.json"),
        str(tmp_path / "new" / "results.json"),
    )
    assert code == 1


def test_bad_input_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = _suite(tmp_path)
    assert run("eval", "run", "no-such-suite")[0] == 2
    err = capsys.readouterr().err
    assert (
        "suite 'no-such-suite' is neither a file nor a shipped suite" in err
        and "hybrid-retrieval" in err
    )
    assert "Traceback" not in err
    assert run("eval", "run", str(suite), "--fail-under", "contains")[0] == 2
    assert "want METRIC=VALUE" in capsys.readouterr().err
    assert run("eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"))[0] == 2
    assert "a.json does not exist" in capsys.readouterr().err

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\ngraph: nowhere_module:graph\ndataset: cases.jsonl\nevaluators: [Contans]\n"
    )
    assert run("eval", "run", str(bad))[0] == 2
    assert "unknown evaluator 'Contans'; built-in ones are" in capsys.readouterr().err
    bad.write_text("name: x\ngraph: nowhere_module:graph\ndataset: cases.jsonl\n")
    assert run("eval", "run", str(bad), "--data-dir", str(tmp_path / "d"))[0] == 2
    assert "cannot import 'nowhere_module'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run("eval", "run", str(suite), "--concurrency", "0")
    assert exc.value.code == 2


def test_eval_list_names_the_shipped_suites() -> None:
    code, text = run("eval", "list")
    assert code == 0
    assert text.startswith("health-triage") and "\nhybrid-retrieval " in text
    assert "\nrag-chat " in text
    assert "graphs: bm25, vector, hybrid" in text and "graphs: rag" in text


def test_every_eval_command_has_help_and_data_dir(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "list", "compare"):
        with pytest.raises(SystemExit):
            main(["eval", command, "--help"])
        assert "--data-dir" in capsys.readouterr().out


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad options must stop `weft eval run` before the suite runs."""

    def run_suite(*args: object, **kwargs: object) -> None:
        raise AssertionError("the suite ran")

    monkeypatch.setattr("weft.evals.runner.run_suite", run_suite)


def test_a_suite_or_dataset_that_is_not_utf8_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = _suite(tmp_path)
    data = ["--data-dir", str(tmp_path / "d")]
    (tmp_path / "cases.jsonl").write_bytes('{"inputs": "Où est Rome ?"}\n'.encode("latin-1"))
    assert run("eval", "run", str(suite), *data)[0] == 2
    err = capsys.readouterr().err
    assert err == (
        f"weft eval: error: {tmp_path / 'cases.jsonl'}, line 1: not UTF-8 text (byte 0xf9); "
        f"save the file as UTF-8\n"
    )
    suite.write_bytes(b"name: qa\ndescription: r\xe9sum\xe9\n" + SUITE.encode())
    assert run("eval", "run", str(suite), *data)[0] == 2
    err = capsys.readouterr().err
    assert f"{suite}, line 2: not UTF-8 text (byte 0xe9)" in err and "Traceback" not in err


def test_an_out_that_cannot_be_a_folder_exits_2_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_run: None
) -> None:
    suite = _suite(tmp_path)
    data = ["--data-dir", str(tmp_path / "d")]
    report = tmp_path / "report.html"
    report.write_text("keep me")
    assert run("eval", "run", str(suite), "--out", str(report), *data)[0] == 2
    assert capsys.readouterr().err == (
        f"weft eval: error: --out {report} is a file, not a folder; pass --out with a folder "
        f"for results.json, report.html and junit.xml\n"
    )
    assert run("eval", "run", str(suite), "--out", str(report / "sub"), *data)[0] == 2
    assert (
        f"--out {report / 'sub'} cannot be created: {report} is a file" in capsys.readouterr().err
    )
    assert report.read_text() == "keep me" and not (tmp_path / "d").exists()


def test_a_fail_under_metric_the_suite_does_not_report_exits_2_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_run: None
) -> None:
    suite = _suite(tmp_path)
    out = ["--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "d")]
    code, _ = run("eval", "run", str(suite), "--fail-under", "contain=0.9", *out)
    assert code == 2
    assert capsys.readouterr().err == (
        "weft eval: error: --fail-under 'contain=0.9': suite 'qa' reports no metric 'contain'; "
        "its metrics are ['contains', 'citations_grounded', 'refusal', 'pass_rate', "
        "'error_rate', 'latency_p50_ms', 'latency_p95_ms', 'tokens_per_case', 'cost_usd']\n"
    )
    assert run("eval", "run", str(suite), "--fail-under", "bm25/contains=0.9", *out)[0] == 2
    assert "suite 'qa' has no variant 'bm25'; its variants are" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "d").exists()


def test_a_suite_threshold_on_a_metric_it_does_not_report_exits_2_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_run: None
) -> None:
    suite = _suite(tmp_path)
    suite.write_text(suite.read_text().replace("{contains: 1.0}", "{contain: 1.0}"))
    assert run("eval", "run", str(suite), "--data-dir", str(tmp_path / "d"))[0] == 2
    err = capsys.readouterr().err
    assert err.startswith(f"weft eval: error: {suite}: threshold 'contain': suite 'qa' reports ")
    assert "no metric 'contain'; its metrics are ['contains'," in err


def test_a_bad_dataset_exits_2_before_anything_runs_or_is_ingested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_run: None
) -> None:
    suite = _suite(tmp_path)
    suite.write_text(suite.read_text() + "knowledge_base: demo\n")
    (tmp_path / "cases.jsonl").write_text('{"inputs": "Rome?"}\n{"inputs": \n')
    assert run("eval", "run", str(suite), "--data-dir", str(tmp_path / "d"))[0] == 2
    err = capsys.readouterr().err
    assert err.startswith(f"weft eval: error: {tmp_path / 'cases.jsonl'}, line 2")
    assert not (tmp_path / "d").exists()  # the demo knowledge base was not ingested first


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("name: qa", "name: ../../elsewhere"), "use letters, digits, '.', '_' and '-' only"),
        (
            ("evaluators: [Contains, CitationsGrounded, Refusal]", "evaluators: Contains"),
            "is a list",
        ),
        (("name: qa", "name: qa\ntimeout_s: -1"), "timeout_s must be more than 0"),
    ],
)
def test_a_suite_that_cannot_run_as_written_exits_2_before_the_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_run: None,
    change: tuple[str, str],
    expected: str,
) -> None:
    suite = _suite(tmp_path)
    suite.write_text(suite.read_text().replace(*change))
    assert run("eval", "run", str(suite), "--data-dir", str(tmp_path / "d"))[0] == 2
    assert expected in capsys.readouterr().err


def test_a_suite_with_no_cases_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_run: None
) -> None:
    suite = _suite(tmp_path, cases=[])
    assert run("eval", "run", str(suite), "--data-dir", str(tmp_path / "d"))[0] == 2
    assert "its dataset has no cases" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "lots"])
def test_a_tolerance_that_is_no_allowed_drop_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_run: None, value: str
) -> None:
    suite = _suite(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run("eval", "run", str(suite), "--tolerance", value)
    assert exit_.value.code == 2
    assert f"want a number of at least 0, got {value!r}" in capsys.readouterr().err


def test_compare_refuses_runs_of_two_suites_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = EvalResult(suite="rag-chat", started_at="2026-01-01T00:00:00+00:00")
    b = EvalResult(suite="hybrid-retrieval", started_at="2026-01-02T00:00:00+00:00")
    a.save(tmp_path / "a.json")
    b.save(tmp_path / "b.json")
    paths = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert run("eval", "compare", *paths)[0] == 2
    err = capsys.readouterr().err
    assert "of suite 'rag-chat'" in err and "'hybrid-retrieval'" in err and "--force" in err
    assert run("eval", "compare", "--force", *paths)[0] == 0

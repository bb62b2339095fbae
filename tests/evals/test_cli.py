import io
import json
import textwrap
from pathlib import Path

import pytest

from weft.cli import main

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
        code == 0
        and "contains" in text
        and "-0.5 worse" in text
        and "newly failing (1): italy" in text
    )
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
    assert text.startswith("hybrid-retrieval") and "\nrag-chat " in text
    assert "graphs: bm25, vector, hybrid" in text and "graphs: rag" in text


def test_every_eval_command_has_help_and_data_dir(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "list", "compare"):
        with pytest.raises(SystemExit):
            main(["eval", command, "--help"])
        assert "--data-dir" in capsys.readouterr().out

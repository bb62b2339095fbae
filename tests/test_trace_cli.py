"""``weft trace``: prints the last traced run from the JSONL file as a tree with a waterfall."""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import pytest

from weft import END, START, Graph
from weft.cli import main
from weft.core.tracing import add_trace_command, disable_tracing, enable_tracing, read_spans


def run_cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="weft")
    add_trace_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["trace", *argv])
    out = io.StringIO()
    code = args.handler(args, out)
    return code, out.getvalue()


def traced_runs(path: Path, *inputs: str) -> None:
    def shout(text: str) -> str:
        return text.upper()

    def exclaim(text: str) -> str:
        return text + "!"

    inner = Graph[str, str]("inner").add_node("exclaim", exclaim)
    inner_graph = inner.add_edge(START, "exclaim").add_edge("exclaim", END).compile()
    g = Graph[str, str]("hello").add_node("shout", shout).add_node("sub", inner_graph)
    graph = g.add_edge(START, "shout").add_edge("shout", "sub").add_edge("sub", END).compile()
    handler = enable_tracing(path=str(path))
    try:
        for x in inputs:
            graph.invoke(x)
    finally:
        disable_tracing(handler)


ROW = re.compile(r"^(?P<indent> *)(?P<name>\S.*?) +(?P<ms>\d+\.\d) ms  \|(?P<bar>[ █]+)\|")


def test_prints_the_last_run_as_an_indented_tree_with_bars(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    traced_runs(path, "first", "second")
    code, out = run_cli(str(path))
    assert code == 0
    lines = out.splitlines()
    spans = read_spans(path)
    last_trace = spans[-1]["trace_id"]
    assert lines[0].startswith(f"trace {last_trace[:16]}  invoke_workflow hello  ")
    assert lines[0].endswith("5 spans")
    rows = [ROW.match(line) for line in lines[1:]]
    assert all(rows), lines
    tree = [(len(m["indent"]) // 2, m["name"]) for m in rows if m]
    assert tree == [
        (0, "invoke_workflow hello"),
        (1, "node shout"),
        (1, "node sub"),
        (2, "invoke_workflow inner"),
        (3, "node exclaim"),
    ]
    bars = [m["bar"] for m in rows if m]
    assert len({len(b) for b in bars}) == 1 and len(bars[0]) == 30
    assert bars[0] == "█" * 30  # the root spans the whole run
    # a later sibling's bar starts no earlier than an earlier one's
    assert bars[2].index("█") >= bars[1].index("█")
    root_ms = float(rows[0]["ms"])  # type: ignore[index]
    assert all(float(m["ms"]) <= root_ms for m in rows if m)


def test_trace_id_picks_an_earlier_run(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    traced_runs(path, "first", "second")
    first = read_spans(path)[0]["trace_id"]
    code, out = run_cli(str(path), "--trace-id", first[:8])
    assert code == 0 and out.startswith(f"trace {first[:16]}")


def test_a_trace_id_prefix_that_matches_several_traces_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "traces.jsonl"
    traced_runs(path, "first", "second")
    ids = sorted({s["trace_id"] for s in read_spans(path)})
    code, out = run_cli(str(path), "--trace-id", "")  # every id starts with ''
    err = capsys.readouterr().err
    assert (code, out) == (2, "")
    assert err.startswith("weft trace: error: 2 traces") and all(i[:16] in err for i in ids)
    assert "give more of the trace id" in err


def test_default_file_lives_in_weft_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEFT_DATA_DIR", str(tmp_path))
    handler = enable_tracing()
    try:
        Graph[str, str]("solo").add_node("id", str.strip, input_type=str, output_type=str).add_edge(
            START, "id"
        ).add_edge("id", END).compile().invoke(" x ")
    finally:
        disable_tracing(handler)
    assert (tmp_path / "traces.jsonl").exists()
    code, out = run_cli()
    assert code == 0 and "invoke_workflow solo" in out.splitlines()[0]


def test_errors_are_marked_in_the_tree(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"

    def boom(x: str) -> str:
        raise KeyError("nope")

    handler = enable_tracing(path=str(path))
    g = Graph[str, str]("bad").add_node("boom", boom).add_edge(START, "boom").add_edge("boom", END)
    try:
        with pytest.raises(Exception, match="nope"):
            g.compile().invoke("x")
    finally:
        disable_tracing(handler)
    code, out = run_cli(str(path))
    assert code == 0
    assert any(
        line.lstrip().startswith("node boom") and line.endswith("✗ KeyError")
        for line in out.splitlines()
    )


SPAN = {
    "trace_id": "ab" * 16,
    "span_id": "1" * 16,
    "parent_id": None,
    "name": "invoke_workflow x",
    "start": 0,
    "end": 1_000_000,
    "status": "UNSET",
    "attributes": {},
}


def test_missing_file_and_torn_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(str(tmp_path / "none.jsonl"))
    err = capsys.readouterr().err
    assert (code, out) == (1, "") and "no trace file at" in err and "enable_tracing" in err
    torn = tmp_path / "torn.jsonl"
    torn.write_text(json.dumps(SPAN) + "\n" + '{"trace_id": "cut')
    code, out = run_cli(str(torn))
    assert code == 0 and "invoke_workflow x" in out and "1.0 ms" in out


def test_trace_reads_the_data_dir_given_on_the_command_line(tmp_path: Path) -> None:
    traced_runs(tmp_path / "traces.jsonl", "hi")
    code, out = run_cli("--data-dir", str(tmp_path))
    assert code == 0
    assert out.splitlines()[1].startswith("invoke_workflow hello")


def test_a_folder_exits_2_and_points_at_the_file_inside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(str(tmp_path))
    assert (code, out) == (2, "")
    assert capsys.readouterr().err == (
        f"weft trace: error: {tmp_path} is a folder, not a trace file; pass the file "
        f"enable_tracing() writes\n"
    )
    traced_runs(tmp_path / "traces.jsonl", "hi")
    assert run_cli(str(tmp_path))[0] == 2
    assert f"pass {tmp_path / 'traces.jsonl'}\n" in capsys.readouterr().err


def test_a_file_that_is_not_a_trace_exits_2_naming_the_path_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.jsonl"
    cases = [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1 is not UTF-8 text"),
        ("\n# caf\xe9\n".encode("latin-1"), "line 2 is not UTF-8 text"),
        (b"\nhello\nworld\n", "line 2 is not JSON (Expecting value)"),
        (b'{"trace_id": "ab"}\n', "line 1 is not a span (a span has trace_id, span_id, name,"),
    ]
    for data, why in cases:
        path.write_bytes(data)
        code, out = run_cli(str(path))
        err = capsys.readouterr().err
        assert (code, out) == (2, "")
        assert err.startswith(f"weft trace: error: {path} is not a trace file: {why}")
        assert err.endswith("; pass the JSON-lines file that enable_tracing() writes\n")


def test_lines_that_are_not_spans_among_spans_are_skipped_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(SPAN) + "\nnot json\n" + json.dumps(SPAN | {"span_id": "2" * 16}))
    code, out = run_cli(str(path))
    assert code == 0 and out.splitlines()[0].endswith("invoke_workflow x  1.0 ms  2 spans")
    assert capsys.readouterr().err == (
        f"weft trace: skipped 1 line of {path}; line 2 is not JSON (Expecting value)\n"
    )


def test_the_trace_file_is_found_through_the_settings_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "team.env"
    settings.write_text(f"WEFT_DATA_DIR={tmp_path / 'kb'}\n")
    code = main(["trace", "--settings", str(settings)])
    assert code == 1
    assert f"no trace file at {tmp_path / 'kb' / 'traces.jsonl'}" in capsys.readouterr().err


def test_spans_that_do_not_form_a_tree_a_pipe_and_a_wild_width_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    loop = tmp_path / "loop.jsonl"
    spans = [{**SPAN, "span_id": "a" * 16, "parent_id": "b" * 16}]
    spans.append({**SPAN, "span_id": "b" * 16, "parent_id": "a" * 16})
    loop.write_text("".join(json.dumps(s) + "\n" for s in spans))
    assert run_cli(str(loop)) == (2, "")
    assert "cannot draw the trace in" in capsys.readouterr().err
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert run_cli(str(fifo)) == (2, "")  # returns at once instead of waiting for a writer
    assert "is not a regular file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli(str(loop), "--width", "1000000000")
    assert "out of range; pass 10 to 500" in capsys.readouterr().err

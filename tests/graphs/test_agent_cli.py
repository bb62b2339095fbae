"""``weft agent``: tool calls on stderr, the answer on stdout, approval from stdin, and a one-line
refusal when no model is configured."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from weft.cli import main
from weft.testing import OpenAIServer, Reply, ToolCall


@pytest.fixture
def server(shared: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIServer:
    shared.reset()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", shared.base_url)
    monkeypatch.setenv("WEFT_MODEL", "gpt-4o-mini")
    return shared


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["agent", *argv], out=out)
    return code, out.getvalue()


MULTIPLY = Reply(tool_calls=[ToolCall("calculator", {"expression": "17 * 23"}, id="call_1")])


def test_without_a_model_the_command_explains_in_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {"PATH": "", "HOME": str(tmp_path), "WEFT_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "weft.cli", "agent", "What is 17 * 23?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("weft agent: error: the agent needs a tool-calling model")
    assert "OPENAI_API_KEY" in lines[0] and "OPENAI_BASE_URL" in lines[0]
    assert not (tmp_path / "data").exists()  # nothing was opened or written


def test_the_answer_streams_to_stdout_and_tool_calls_to_stderr(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.script(MULTIPLY, "17 times 23 is 391.")
    code, text = run("What is 17 * 23?", "--tools", "calculator,time", "--data-dir", str(tmp_path))
    assert code == 0
    assert text == "17 times 23 is 391.\n"
    err = capsys.readouterr().err
    assert '[tool] calculator {"expression": "17 * 23"}' in err
    assert "[tool] calculator -> 391" in err
    tools = server.requests_to("/v1/chat/completions")[0].body["tools"]
    assert sorted(t["function"]["name"] for t in tools) == ["calculator", "current_time"]


def test_json_output_holds_the_answer_and_every_tool_call(
    server: OpenAIServer, tmp_path: Path
) -> None:
    server.script(MULTIPLY, "391.")
    code, text = run("17 * 23?", "--tools", "calculator", "--json", "--data-dir", str(tmp_path))
    assert code == 0
    assert json.loads(text) == {
        "answer": "391.",
        "tool_calls": [
            {
                "name": "calculator",
                "args": {"expression": "17 * 23"},
                "id": "call_1",
                "output": "391",
                "error": False,
            }
        ],
        "session": None,
    }


def test_approval_reads_the_decision_from_stdin_and_the_model_gets_the_reason(
    server: OpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script(MULTIPLY, "Fine, I will not compute it.")
    monkeypatch.setattr(sys, "stdin", io.StringIO("n do it by hand\n"))
    code, text = run(
        "17 * 23?", "--tools", "calculator", "--approve", "calculator", "--data-dir", str(tmp_path)
    )
    assert code == 0 and text == "Fine, I will not compute it.\n"
    sent = server.requests_to("/v1/chat/completions")[1].messages
    assert sent[-1]["role"] == "tool"
    assert sent[-1]["content"] == "the user rejected this call to 'calculator': do it by hand"


def test_an_edit_from_stdin_runs_the_call_with_the_new_arguments(
    server: OpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script(MULTIPLY, "It is 40.")
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"expression": "17 + 23"}\n'))
    code, _ = run("17 * 23?", "--tools", "calculator", "--approve", "calculator", "--json")
    assert code == 0
    sent = server.requests_to("/v1/chat/completions")[1].messages
    assert sent[-1]["content"] == "40"


def test_a_session_continues_the_conversation(server: OpenAIServer, tmp_path: Path) -> None:
    server.script("Noted: your train leaves at 9.", "At 9.")
    args = ("--tools", "time", "--session", "trip", "--data-dir", str(tmp_path))
    assert run("My train leaves at 9.", *args)[0] == 0
    assert run("When does my train leave?", *args) == (0, "At 9.\n")
    sent = server.requests_to("/v1/chat/completions")[1].messages
    assert [m["content"] for m in sent] == [
        "My train leaves at 9.",
        "Noted: your train leaves at 9.",
        "When does my train leave?",
    ]


def test_unknown_tools_are_refused_with_the_choices(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("hi", "--tools", "calculator,weather")
    assert code == 2
    assert "unknown tools 'weather'; choose from kb, calculator, time" in capsys.readouterr().err
    code, _ = run("hi", "--tools", "calculator", "--approve", "current_time")
    assert code == 2
    assert "--approve names 'current_time'" in capsys.readouterr().err
    assert server.requests == []


def test_the_kb_tool_searches_the_ingested_documents(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees for two minutes.\n")
    assert main(["ingest", str(docs), "--data-dir", str(tmp_path), "--no-progress"]) == 0
    search = ToolCall("knowledge_base_search", {"query": "green tea temperature"}, id="call_kb")
    server.script(Reply(tool_calls=[search]), "Steep it at 80 degrees [1].")
    code, text = run("How hot for green tea?", "--tools", "kb", "--data-dir", str(tmp_path))
    assert (code, text) == (0, "Steep it at 80 degrees [1].\n")
    result = server.requests_to("/v1/chat/completions")[1].messages[-1]["content"]
    assert result.startswith("[1] Green tea is steeped at 80 degrees")
    assert "tea.md" in result


def test_agent_sessions_are_kept_apart_from_chat_sessions(
    server: OpenAIServer, tmp_path: Path
) -> None:
    server.script("Noted.")
    assert run("hello", "--tools", "time", "--session", "s1", "--data-dir", str(tmp_path))[0] == 0
    assert (tmp_path / "agent_sessions.sqlite").exists()
    assert not (tmp_path / "checkpoints.sqlite").exists()

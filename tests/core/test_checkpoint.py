import operator
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
from langgraph.types import Command, interrupt
from typing_extensions import TypedDict

from weft import END, START, Graph, Interrupted, NodeError, lambda_, thread
from weft.core._checkpoint import open_sqlite_checkpointer
from weft.core.errors import ConfigurationError

HERE = Path(__file__).parent


class Chat(TypedDict):
    history: Annotated[list[str], operator.add]


def chat_graph(checkpointer: str) -> object:
    def reply(q: str, state: Chat) -> str:
        return f"{q} after {len(state.get('history', []))}"

    g = Graph[str, str]("chat", state=Chat)
    g.add_node("reply", reply, post=lambda out, state: {"history": [out]})
    return g.add_edge(START, "reply").add_edge("reply", END).compile(checkpointer=checkpointer)


def test_memory_persists_per_thread_across_calls() -> None:
    graph = chat_graph("memory")
    assert graph.invoke("hi", thread("a")) == "hi after 0"  # type: ignore[attr-defined]
    assert graph.invoke("again", thread("a")) == "again after 1"  # type: ignore[attr-defined]
    assert graph.invoke("other", thread("b")) == "other after 0"  # type: ignore[attr-defined]
    assert graph.get_state(thread("a")) == {"history": ["hi after 0", "again after 1"]}  # type: ignore[attr-defined]


def test_sqlite_memory_survives_a_new_process(tmp_path: Path) -> None:
    db = tmp_path / "ckpt.sqlite"
    script = (
        "import sys; sys.path.insert(0, sys.argv[2]);"
        "from test_checkpoint import chat_graph; from weft import thread;"
        "print(chat_graph(sys.argv[1]).invoke(sys.argv[3], thread('s')))"
    )
    outs = []
    for q in ("one", "two", "three"):
        run = subprocess.run(
            [sys.executable, "-c", script, str(db), str(HERE), q],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outs.append(run.stdout.strip())
    assert outs == ["one after 0", "two after 1", "three after 2"]


def test_run_killed_mid_way_resumes_from_the_last_completed_step(tmp_path: Path) -> None:
    db, log = tmp_path / "ckpt.sqlite", tmp_path / "log.txt"
    cmd = [sys.executable, str(HERE / "_crash_graph.py"), str(db), str(log)]
    crashed = subprocess.run(
        [*cmd, "start"], env={"CRASH": "1", "PATH": ""}, capture_output=True, timeout=60
    )
    assert crashed.returncode == 17
    assert log.read_text().split() == ["a", "b"]
    resumed = subprocess.run([*cmd, "resume"], capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "abc"
    # a and b did not run again: the resumed run started at c
    assert log.read_text().split() == ["a", "b", "c"]


def test_failed_step_commits_no_partial_state() -> None:
    calls = {"n": 0}

    def flaky(x: str) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transient")
        return x + "!"

    g = Graph[str, str]("flaky", state=Chat)
    g.add_node(
        "first",
        lambda_(str.upper, input_type=str, output_type=str),
        post=lambda out, state: {"history": ["first"]},
    )
    g.add_node("flaky", flaky, post=lambda out, state: {"history": ["flaky"]})
    g.add_edge(START, "first").add_edge("first", "flaky").add_edge("flaky", END)
    graph = g.compile(checkpointer="memory")
    with pytest.raises(NodeError):
        graph.invoke("x", thread("f"))
    assert graph.get_state(thread("f")) == {"history": ["first"]}
    assert graph.resume(thread("f")) == "X!"
    assert graph.get_state(thread("f")) == {"history": ["first", "flaky"]}


def test_interrupt_before_a_node_pauses_and_resumes() -> None:
    seen: list[str] = []

    def record(x: str) -> str:
        seen.append(x)
        return x.upper()

    g = Graph[str, str]("hitl").add_node("draft", record).add_node("send", record)
    g.add_edge(START, "draft").add_edge("draft", "send").add_edge("send", END)
    graph = g.compile(checkpointer="memory", interrupt_before=["send"])
    paused = graph.invoke("hi", thread("h"))
    assert paused == Interrupted(next=("send",))
    assert seen == ["hi"]
    assert graph.invoke(None, thread("h")) == "HI"  # type: ignore[arg-type]
    assert seen == ["hi", "HI"]


def test_dynamic_interrupt_in_a_node_resumes_with_a_value() -> None:
    def approve(x: str) -> str:
        answer = interrupt({"question": f"send {x}?"})
        return f"{x}:{answer}"

    g = Graph[str, str]("ask").add_node("approve", approve)
    graph = g.add_edge(START, "approve").add_edge("approve", END).compile(checkpointer="memory")
    paused = graph.invoke("mail", thread("d"))
    assert isinstance(paused, Interrupted) and paused.next == ("approve",)
    assert paused.interrupts[0].value == {"question": "send mail?"}
    assert graph.invoke(Command(resume="yes"), thread("d")) == "mail:yes"  # type: ignore[arg-type]


async def test_sqlite_checkpointer_serves_async_runs(tmp_path: Path) -> None:
    graph = chat_graph(str(tmp_path / "ckpt.sqlite"))
    assert await graph.ainvoke("hi", thread("a")) == "hi after 0"  # type: ignore[attr-defined]
    events = [e async for e in graph.aevents("again", thread("a"))]  # type: ignore[attr-defined]
    assert events[-1].output == "again after 1"


@pytest.mark.parametrize(
    "content",
    [b"\x8f\x02garbage" * 1000, b"conversations: none\n"],
    ids=["random bytes", "a text file"],
)
def test_a_file_that_is_not_sqlite_is_refused_when_the_graph_compiles(
    tmp_path: Path, content: bytes
) -> None:
    db = tmp_path / "ckpt.sqlite"
    db.write_bytes(content)
    with pytest.raises(ConfigurationError) as caught:
        chat_graph(str(db))
    message = str(caught.value)
    assert f"the checkpoint file '{db}' is not a usable SQLite database" in message
    assert "file is not a database" in message and "move it away" in message
    assert db.read_bytes() == content  # left for its owner to inspect or move


def test_checkpoints_under_a_file_are_refused_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError) as caught:
        open_sqlite_checkpointer(blocker / "checkpoints.sqlite")
    assert f"'{blocker}' is a file, not a folder" in str(caught.value)
    assert blocker.read_text() == "not a folder"
    with pytest.raises(ConfigurationError, match="it is a folder; pass the path of a file"):
        open_sqlite_checkpointer(tmp_path)


def test_a_new_or_empty_checkpoint_file_opens(tmp_path: Path) -> None:
    (tmp_path / "empty.sqlite").touch()
    for db in (tmp_path / "new" / "ckpt.sqlite", tmp_path / "empty.sqlite"):
        saver = open_sqlite_checkpointer(db)
        assert saver.get_tuple(thread("none")) is None
        saver.conn.close()

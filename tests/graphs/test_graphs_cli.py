import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.graphs._bakery import NEAR_MISS, write_bakery
from weft.cli import main
from weft.components.bm25 import BM25Retriever
from weft.components.models import NO_ANSWER
from weft.graphs.knowledge import DEMO_KB_DIR


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli")
    assert main(["ingest", str(DEMO_KB_DIR), "--data-dir", str(path), "--no-progress"]) == 0
    return path


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_ingest_prints_a_summary_and_reingesting_adds_nothing(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nweft composes graphs.\n")
    (docs / "bad.pdf").write_bytes(b"not a pdf")
    code, text = _run("ingest", str(docs), "--data-dir", str(tmp_path / "kb"), "--no-progress")
    assert code == 0
    assert "1 file, 1 chunk (1 added, 0 unchanged), 1 skipped" in text
    assert "skipped" in text and "bad.pdf" in text and "damaged or not a PDF" in text
    _, again = _run("ingest", str(docs), "--data-dir", str(tmp_path / "kb"), "--no-progress")
    assert "(0 added, 1 unchanged)" in again
    code, reset = _run(
        "ingest", str(docs), "--data-dir", str(tmp_path / "kb"), "--reset", "--no-progress"
    )
    assert code == 0 and "(1 added, 0 unchanged)" in reset


def test_bad_settings_exit_2_naming_the_variable_before_anything_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nweft composes graphs.\n")
    kb = str(tmp_path / "kb")
    assert _run("ingest", str(docs), "--data-dir", kb, "--no-progress")[0] == 0
    monkeypatch.setenv("WEFT_CHUNK_OVERLAP", "500")
    code, _ = _run("ingest", str(docs), "--data-dir", kb, "--reset", "--no-progress")
    err = capsys.readouterr().err
    assert code == 2 and "WEFT_CHUNK_OVERLAP" in err and "Traceback" not in err
    monkeypatch.setenv("WEFT_CHUNK_OVERLAP", "40")
    monkeypatch.setenv("WEFT_TOP_K", "abc")
    assert _run("serve", "--data-dir", kb)[0] == 2
    assert "WEFT_TOP_K='abc'" in capsys.readouterr().err
    monkeypatch.delenv("WEFT_TOP_K")
    _, again = _run("ingest", str(docs), "--data-dir", kb, "--no-progress")
    assert "(0 added, 1 unchanged)" in again  # the failed --reset deleted nothing


def test_ingest_reset_empties_the_knowledge_base_only_once_the_documents_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from weft.core.settings import Settings
    from weft.graphs.knowledge import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nweft composes graphs.\n")
    kb = KnowledgeBase(Settings(data_dir=tmp_path / "kb"))
    kb.ingest([docs], progress=False)

    def unreadable(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the files are read

    monkeypatch.setattr("weft.graphs.knowledge.load_documents", unreadable)
    with pytest.raises(KeyboardInterrupt):
        kb.ingest([docs], progress=False, reset=True)
    assert not kb.is_empty()


def test_ingest_of_a_missing_path_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = _run("ingest", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "kb"))
    err = capsys.readouterr().err
    assert code == 2 and text == ""
    assert err.startswith("weft ingest: error: no such file or folder") and "Traceback" not in err
    assert not (tmp_path / "kb").exists()


def test_chat_streams_an_answer_then_its_sources(data_dir: Path) -> None:
    code, text = _run("chat", "Does weft need an API key?", "--data-dir", str(data_dir))
    assert code == 0
    answer, sources = text.split("\nSources:\n")
    assert "weft needs no API key" in answer and "[1]" in answer
    assert sources.startswith("  [1] ") and ".md)" in sources


def test_chat_json_prints_one_object_with_answer_sources_and_usage(data_dir: Path) -> None:
    code, text = _run("chat", "What is BM25?", "--json", "--data-dir", str(data_dir))
    payload = json.loads(text)
    assert code == 0 and set(payload) == {"answer", "sources", "usage", "fallback"}
    assert payload["fallback"] is False
    assert "BM25" in payload["answer"]
    assert set(payload["sources"][0]) == {"index", "id", "title", "source", "snippet", "score"}
    assert set(payload["usage"]) == {"input_tokens", "output_tokens", "total_tokens", "estimated"}


def test_chat_says_when_the_knowledge_base_has_no_answer(data_dir: Path) -> None:
    _, text = _run("chat", "Who painted the Mona Lisa?", "--json", "--data-dir", str(data_dir))
    assert json.loads(text)["answer"] == NO_ANSWER


def test_chat_on_an_empty_data_dir_says_how_to_ingest_and_ingests_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = _run("chat", "What is weft?", "--json", "--data-dir", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and text == ""
    assert "knowledge base in" in err and "is empty" in err and "weft ingest PATH" in err
    assert not (tmp_path / "bm25").exists()  # the user's knowledge base holds nothing of weft's

    # A data dir that does not exist (a typo) is named, and not created.
    missing = tmp_path / "no-such-kb"
    code, _ = _run("chat", "What is weft?", "--data-dir", str(missing))
    err = capsys.readouterr().err
    assert code == 2 and f"there is no knowledge base in {missing} (no such folder)" in err
    assert not missing.exists()


def test_chat_strict_refuses_what_the_documents_do_not_say(tmp_path: Path) -> None:
    docs, data = tmp_path / "docs", str(tmp_path / "data")
    docs.mkdir()
    write_bakery(docs)
    assert main(["ingest", str(docs), "--data-dir", data, "--no-progress"]) == 0
    _, plain = _run("chat", NEAR_MISS, "--json", "--data-dir", data)
    assert "bags of six" in json.loads(plain)["answer"]
    _, strict = _run("chat", NEAR_MISS, "--json", "--strict", "--data-dir", data)
    assert json.loads(strict)["answer"] == NO_ANSWER


def test_chat_joins_an_unquoted_question(data_dir: Path) -> None:
    code, text = _run(
        "chat", "Does", "weft", "need", "an", "API", "key?", "--json", "--data-dir", str(data_dir)
    )
    quoted = _run("chat", "Does weft need an API key?", "--json", "--data-dir", str(data_dir))
    assert code == 0 and json.loads(text)["answer"] == json.loads(quoted[1])["answer"]
    assert json.loads(text)["answer"] != NO_ANSWER


def test_chat_rejects_an_empty_question(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run("chat", "   ", "--data-dir", str(data_dir))
    assert code == 2 and text == ""
    assert "the question is empty" in capsys.readouterr().err


def test_interactive_chat_remembers_the_conversation(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        sys, "stdin", io.StringIO("What does make test run?\n\nAnd what does it install?\nexit\n")
    )
    code, text = _run("chat", "--json", "--data-dir", str(data_dir))
    first, second = (json.loads(line) for line in text.splitlines())
    assert code == 0 and "make test" in first["answer"]
    assert "make test installs weft" in second["answer"]


def test_session_memory_survives_a_new_process(data_dir: Path) -> None:
    env = {**os.environ, "WEFT_DATA_DIR": str(data_dir)}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)

    def ask(question: str) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "weft.cli", "chat", question, "--json", "--session", "p1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    _run("chat", "What does make test run?", "--session", "p1", "--data-dir", str(data_dir))
    assert "make test installs weft" in str(ask("And what does it install?")["answer"])


def test_graph_show_prints_mermaid_and_ascii(data_dir: Path) -> None:
    code, text = _run("graph", "show", "hybrid", "--data-dir", str(data_dir))
    mermaid, ascii_art = text.split("as ASCII:")
    assert code == 0
    assert "graph TD" in mermaid and "vector --> fuse" in mermaid
    assert (
        "| vector - lambda |  | bm25 - lambda |" in ascii_art
        and "    fuse --> __end__" in ascii_art
    )
    code, text = _run("graph", "show", "rag", "--data-dir", str(data_dir))
    assert code == 0 and "retrieve -.-> refuse" in text


def test_graph_show_labels_carry_the_node_name_and_kind_only(data_dir: Path) -> None:
    code, text = _run("graph", "show", "rag", "--data-dir", str(data_dir))
    assert code == 0
    assert "condense(condense - lambda)" in text and "| generate - chat_model |" in text
    assert "weft_component" not in text and "ExtractiveChatModel" not in text


def test_graph_list_names_every_ready_graph(data_dir: Path) -> None:
    code, text = _run("graph", "list", "--data-dir", str(data_dir))
    names = [line.split()[0] for line in text.splitlines()]
    assert code == 0 and names == ["rag", "hybrid", "demo", "resume", "health"]
    assert "ChatInput -> ChatOutput" in text


def test_ingest_of_no_document_exits_2_and_a_reset_keeps_the_knowledge_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs, empty = tmp_path / "docs", tmp_path / "empty"
    docs.mkdir()
    empty.mkdir()
    (docs / "a.md").write_text("# A\n\nweft composes graphs.\n")
    (empty / "notes.xyz").write_text("not a document type")
    kb = str(tmp_path / "kb")
    assert _run("ingest", str(docs), "--data-dir", kb, "--no-progress")[0] == 0
    capsys.readouterr()
    code, text = _run("ingest", str(empty), "--data-dir", kb, "--no-progress")
    err = capsys.readouterr().err
    assert code == 2 and "1 skipped" in text and "notes.xyz" in text
    assert err.startswith("weft ingest: error: found no document to ingest in ")
    assert "every file was skipped (the reasons are above)" in err
    code, text = _run("ingest", str(empty), "--data-dir", kb, "--no-progress", "--reset")
    err = capsys.readouterr().err
    assert code == 2 and text == "" and "so the knowledge base was not reset" in err
    assert "Traceback" not in err
    _, again = _run("ingest", str(docs), "--data-dir", kb, "--no-progress")
    assert "(0 added, 1 unchanged)" in again  # the --reset of nothing deleted nothing


def _small_kb(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nweft composes graphs of typed components.\n")
    kb = tmp_path / "kb"
    assert _run("ingest", str(docs), "--data-dir", str(kb), "--no-progress")[0] == 0
    return docs, kb


def test_chat_with_a_damaged_checkpoint_file_exits_2_naming_it_and_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, kb = _small_kb(tmp_path)
    db = kb / "checkpoints.sqlite"
    db.write_bytes(b"\x00\xffnot sqlite" * 500)
    code, text = _run("chat", "What does weft compose?", "--data-dir", str(kb))
    err = capsys.readouterr().err
    assert code == 2 and text == ""
    assert err.startswith(f"weft chat: error: the checkpoint file '{db}' is not a usable SQLite")
    assert "move it away" in err and err.count("\n") == 1 and "Traceback" not in err
    assert db.read_bytes() == b"\x00\xffnot sqlite" * 500


def test_a_damaged_bm25_index_exits_2_naming_it_until_ingest_reset_rebuilds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs, kb = _small_kb(tmp_path)
    bm25 = kb / "bm25"
    arrays = bm25 / (bm25 / "CURRENT").read_text() / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:100])
    for argv in (["chat", "What does weft compose?"], ["ingest", str(docs), "--no-progress"]):
        code, _ = _run(*argv, "--data-dir", str(kb))
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and err.count("\n") == 1
        assert f"the BM25 index at '{bm25}' is damaged" in err and "arrays.npz" in err
        assert "weft ingest --reset PATH..." in err
        assert arrays.stat().st_size == 100  # nothing rewritten behind the user's back
    reset = _run("ingest", str(docs), "--reset", "--data-dir", str(kb), "--no-progress")
    assert reset[0] == 0
    assert BM25Retriever.load(bm25).invoke("compose")[0].page_content.startswith("weft composes")


def test_graph_show_leaves_the_data_dir_alone(tmp_path: Path) -> None:
    for name in ("rag", "hybrid", "demo"):
        code, text = _run("graph", "show", name, "--data-dir", str(tmp_path / "kb"))
        assert code == 0 and f"Graph '{name}' as ASCII:" in text
    assert not (tmp_path / "kb").exists()


def test_graph_show_of_an_unknown_graph_exits_2(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _run("graph", "show", "nope", "--data-dir", str(data_dir))
    assert code == 2
    assert "unknown graph 'nope'; choose one of rag, hybrid, demo" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["ingest"], ["chat"], ["graph", "show"], ["graph", "list"]])
def test_every_command_has_help_with_data_dir(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0 and "--data-dir" in capsys.readouterr().out


def test_chat_on_an_empty_knowledge_base_with_a_damaged_checkpoint_file_ingests_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "checkpoints.sqlite").write_bytes(b"not sqlite" * 500)
    code, _ = _run("chat", "What does weft compose?", "--data-dir", str(kb))
    assert code == 2 and "is not a usable SQLite" in capsys.readouterr().err
    assert not (kb / "bm25").exists()  # the handbook was not ingested first


@pytest.mark.parametrize("session", ["", "   ", "s" * 201])
def test_chat_refuses_an_empty_or_overlong_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], session: str
) -> None:
    code, _ = _run("chat", "hi", "--session", session, "--data-dir", str(tmp_path / "kb"))
    assert code == 2 and "is empty or too long" in capsys.readouterr().err
    assert not (tmp_path / "kb").exists()


def test_graph_help_names_every_ready_graph(capsys: pytest.CaptureFixture[str]) -> None:
    from weft.graphs.registry import GRAPH_NAMES

    for argv in (["graph", "--help"], ["graph", "show", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert [name for name in GRAPH_NAMES if name not in text] == []


def test_ingest_reads_text_in_the_encoding_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = tmp_path / "legacy.md"
    legacy.write_bytes("Das Café öffnet um neun.".encode("cp1252"))
    kb = str(tmp_path / "kb")
    code, text = _run("ingest", str(legacy), "--data-dir", kb, "--no-progress")
    assert code == 2 and "weft ingest --encoding cp1252" in text
    capsys.readouterr()
    code, text = _run(
        "ingest", str(legacy), "--data-dir", kb, "--no-progress", "--encoding", "cp1252"
    )
    assert code == 0 and "1 file, 1 chunk (1 added" in text
    code, _ = _run("ingest", str(legacy), "--data-dir", kb, "--encoding", "klingon")
    assert code == 2 and "unknown encoding 'klingon'" in capsys.readouterr().err


def test_a_damaged_pdf_is_reported_once_in_weft_s_words(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(b"\x06\x01\x02 not a pdf at all")
    # A process of its own: no test harness catches pypdf's log lines there.
    done = subprocess.run(
        [sys.executable, "-m", "weft.cli", "ingest", str(damaged), "--no-progress"],
        env={**os.environ, "WEFT_DATA_DIR": str(tmp_path / "kb")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "damaged or not a PDF" in done.stdout
    # pypdf's own log lines ("invalid pdf header", "EOF marker not found") stay out of it.
    assert done.stderr.splitlines() == [
        f"weft ingest: error: found no document to ingest in {damaged}: every file was "
        "skipped (the reasons are above); fix or remove those files"
    ]

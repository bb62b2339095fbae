"""``weft serve`` refusing to start: each cause ends in one line on stderr and exit code 2."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from langchain_core.documents import Document

from weft.cli import main
from weft.components.bm25 import BM25Retriever

pytestmark = pytest.mark.server


def _serve(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    out = io.StringIO()
    code = main(["serve", *argv], out=out)
    return code, out.getvalue(), capsys.readouterr().err


def _one_line(err: str) -> str:
    assert err.startswith("weft serve: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture(autouse=True)
def _never_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        raise AssertionError("weft serve started serving instead of stopping")

    monkeypatch.setattr(uvicorn.Server, "run", run)  # a failing test ends, it does not hang


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield int(holder.getsockname()[1])


def test_serve_on_a_port_in_use_exits_2_naming_it_before_touching_the_data_dir(
    tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    code, out, err = _serve(capsys, "--port", str(taken_port), "--data-dir", str(data))
    assert code == 2 and out == ""
    assert f"cannot listen on 127.0.0.1:{taken_port}: the port is in use" in _one_line(err)
    assert "--port or WEFT_PORT" in err
    assert not data.exists()


def test_serve_on_an_address_of_another_machine_exits_2_asking_for_a_local_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 192.0.2.0/24 is reserved for documentation: no machine has it.
    code, _, err = _serve(capsys, "--host", "192.0.2.1", "--port", "0", "--data-dir", str(tmp_path))
    assert code == 2
    assert "cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address" in _one_line(err)
    assert "--host or WEFT_HOST, e.g. 127.0.0.1" in err


def test_serve_on_a_name_that_does_not_resolve_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unknown(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # Patched rather than asked of DNS, which may be slow or absent where the tests run.
    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    code, _, err = _serve(
        capsys, "--host", "kb.example", "--port", "0", "--data-dir", str(tmp_path)
    )
    assert code == 2
    assert "cannot listen on kb.example:0: 'kb.example' does not resolve" in _one_line(err)
    assert "pass a local address with --host or WEFT_HOST" in err


def test_serve_with_a_damaged_checkpoint_file_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "checkpoints.sqlite"
    db.write_bytes(b"not a database\n" * 100)
    code, out, err = _serve(capsys, "--port", "0", "--data-dir", str(tmp_path))
    assert code == 2 and "is serving" not in out
    assert f"the checkpoint file '{db}' is not a usable SQLite database" in _one_line(err)
    assert db.read_bytes() == b"not a database\n" * 100


def test_serve_with_a_damaged_bm25_index_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bm25 = tmp_path / "bm25"
    BM25Retriever([Document(page_content="weft serves chat", id="a")]).save(bm25)
    vocab = bm25 / (bm25 / "CURRENT").read_text() / "vocab.json"
    vocab.write_text('["weft", "ser')
    code, out, err = _serve(capsys, "--port", "0", "--data-dir", str(tmp_path))
    assert code == 2 and "is serving" not in out
    assert f"the BM25 index at '{bm25}' is damaged" in _one_line(err)
    assert "vocab.json" in err and vocab.read_text() == '["weft", "ser'

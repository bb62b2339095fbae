from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from langchain_core.documents import Document
from pypdf import PdfReader, PdfWriter

from weft.components.documents import (
    LoadResult,
    SkippedFile,
    TokenSplitter,
    chunk_id,
    load_documents,
    load_file,
)
from weft.components.tokens import count_tokens
from weft.core.errors import DocumentLoadError


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page (no reportlab needed)."""
    objects: list[bytes] = []
    n = len(pages)
    font_id = 3 + 2 * n
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info_ref = b""
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode())
        info_ref = f" /Info {len(objects)} 0 R".encode()
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R" % (len(objects) + 1)
        + info_ref
        + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    )
    return out.getvalue()


def encrypt_pdf(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    # RC4 needs no crypto backend, so the test runs on a bare install.
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- loaders --------------------------------------------------------------------------------


def test_txt_loader_sets_source_and_title(tmp_path: Path) -> None:
    path = tmp_path / "release-notes.txt"
    path.write_text("Version 2 adds streaming.\n", encoding="utf-8")
    [doc] = load_file(path)
    assert doc.page_content == "Version 2 adds streaming.\n"
    assert doc.metadata == {"source": path.resolve().as_posix(), "title": "release-notes"}


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfcaf\xc3\xa9")
    assert load_file(path)[0].page_content == "café"


def test_utf16_with_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "wide.txt"
    path.write_bytes("naïve text".encode("utf-16"))
    assert load_file(path)[0].page_content == "naïve text"


def test_markdown_title_comes_from_first_heading(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "```\n# not a heading, code\n```\nIntro line.\n\n## Getting started ##\n\nText.\n",
        encoding="utf-8",
    )
    [doc] = load_file(path)
    assert doc.metadata["title"] == "Getting started"
    assert "Intro line." in doc.page_content


def test_markdown_title_from_front_matter_and_setext(tmp_path: Path) -> None:
    front = tmp_path / "front.md"
    front.write_text('---\ntitle: "Deploying weft"\n---\n# Other\n', encoding="utf-8")
    setext = tmp_path / "setext.markdown"
    setext.write_text("Install Guide\n=============\n\nbody\n", encoding="utf-8")
    plain = tmp_path / "no-heading.md"
    plain.write_text("just text\n", encoding="utf-8")
    assert load_file(front)[0].metadata["title"] == "Deploying weft"
    assert load_file(setext)[0].metadata["title"] == "Install Guide"
    assert load_file(plain)[0].metadata["title"] == "no-heading"


def test_html_loader_extracts_visible_text_and_title(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Weft &amp; You</title><style>p{color:red}</style></head>"
        "<body><nav>Home</nav><h1>Welcome</h1><p>First&nbsp;para with <b>bold</b>.</p>"
        "<script>var hidden = 1;</script><ul><li>one</li><li>two</li></ul></body></html>",
        encoding="utf-8",
    )
    [doc] = load_file(path)
    assert doc.metadata["title"] == "Weft & You"
    # Blocks become paragraphs; inline tags, script, style and the head's text do not appear.
    assert doc.page_content == "Home\n\nWelcome\n\nFirst para with bold.\n\none\n\ntwo"


def test_html_title_falls_back_to_first_heading_then_file_name(tmp_path: Path) -> None:
    heading = tmp_path / "h.htm"
    heading.write_text("<body><h2>Pricing <em>plans</em></h2><p>x</p></body>", encoding="utf-8")
    bare = tmp_path / "bare.html"
    bare.write_text("<p>only a paragraph</p>", encoding="utf-8")
    assert load_file(heading)[0].metadata["title"] == "Pricing plans"
    assert load_file(bare)[0].metadata["title"] == "bare"


def test_html_honours_meta_charset(tmp_path: Path) -> None:
    path = tmp_path / "legacy.html"
    path.write_bytes(
        b'<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head>'
        b"<body><p>cr\xe8me br\xfbl\xe9e</p></body></html>"
    )
    [doc] = load_file(path)
    assert doc.metadata["title"] == "Café"
    assert doc.page_content.strip().endswith("crème brûlée")


def test_html_with_omitted_head_end_tag_keeps_body(tmp_path: Path) -> None:
    path = tmp_path / "sloppy.html"
    path.write_text("<head><title>T</title><body><p>visible</p>", encoding="utf-8")
    assert "visible" in load_file(path)[0].page_content


def test_pdf_loader_gives_one_document_per_page(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    path.write_bytes(make_pdf(["Page one text", "Page two text", "Page three"], "User Manual"))
    docs = load_file(path)
    assert [d.metadata["page"] for d in docs] == [1, 2, 3]
    assert [d.page_content.strip() for d in docs] == [
        "Page one text",
        "Page two text",
        "Page three",
    ]
    assert {d.metadata["title"] for d in docs} == {"User Manual"}
    assert {d.metadata["total_pages"] for d in docs} == {3}
    assert {d.metadata["source"] for d in docs} == {path.resolve().as_posix()}


def test_pdf_without_title_uses_file_name_and_skips_blank_pages(tmp_path: Path) -> None:
    path = tmp_path / "scan-mixed.pdf"
    path.write_bytes(make_pdf(["has text", " "]))
    docs = load_file(path)
    assert [(d.metadata["page"], d.metadata["title"]) for d in docs] == [(1, "scan-mixed")]


def test_pdf_with_owner_password_only_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "no-copy.pdf"
    path.write_bytes(encrypt_pdf(make_pdf(["readable"]), user_password=""))
    assert load_file(path)[0].page_content.strip() == "readable"


# --- bad files ------------------------------------------------------------------------------


def test_password_protected_pdf_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "secret.pdf"
    path.write_bytes(encrypt_pdf(make_pdf(["classified"]), user_password="hunter2"))
    with pytest.raises(DocumentLoadError, match="password-protected") as info:
        load_file(path)
    assert info.value.path == path.resolve().as_posix()
    assert "secret.pdf" in str(info.value)


def test_corrupt_pdf_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R\ngarbage" * 3)
    with pytest.raises(DocumentLoadError, match="damaged or not a PDF") as info:
        load_file(path)
    assert "broken.pdf" in str(info.value)


def test_pdf_with_no_text_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "scanned.pdf"
    path.write_bytes(make_pdf([" ", " "]))
    with pytest.raises(DocumentLoadError, match="OCR"):
        load_file(path)


def test_latin1_text_is_rejected_with_offset_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "legacy.txt"
    path.write_bytes("Grüße aus Köln".encode("latin-1"))
    with pytest.raises(DocumentLoadError) as info:
        load_file(path)
    message = str(info.value)
    assert "legacy.txt" in message
    assert "UTF-8" in message and "0xfc at offset 2" in message
    assert "weft ingest --encoding cp1252" in message and "encoding='cp1252'" in message


def test_latin1_text_loads_when_the_caller_opts_in(tmp_path: Path) -> None:
    path = tmp_path / "legacy.txt"
    path.write_bytes("Grüße aus Köln".encode("latin-1"))
    assert load_file(path, encoding="latin-1")[0].page_content == "Grüße aus Köln"


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.html", "empty.pdf"])
def test_empty_file_is_a_clear_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(DocumentLoadError, match="empty"):
        load_file(path)


def test_whitespace_only_and_binary_text_are_errors(tmp_path: Path) -> None:
    blank = tmp_path / "blank.md"
    blank.write_text("  \n\n\t", encoding="utf-8")
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x00\x01\x02PNG")
    noise = tmp_path / "noise.md"
    noise.write_bytes(bytes(range(256)) * 4)  # not UTF-8 either: no encoding to suggest
    with pytest.raises(DocumentLoadError, match="empty"):
        load_file(blank)
    with pytest.raises(DocumentLoadError, match="binary"):
        load_file(binary)
    with pytest.raises(DocumentLoadError, match="looks binary, not text"):
        load_file(noise)


def test_unsupported_extension_lists_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DocumentLoadError, match=r"unsupported file type '\.xlsx'.*\.md"):
        load_file(path)


# --- load_documents -------------------------------------------------------------------------


def test_load_documents_walks_folders_and_skips_bad_files(tmp_path: Path) -> None:
    (tmp_path / "docs" / "nested").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("# A\nalpha", encoding="utf-8")
    (tmp_path / "docs" / "nested" / "b.txt").write_text("bravo", encoding="utf-8")
    (tmp_path / "docs" / "nested" / "c.pdf").write_bytes(make_pdf(["charlie", "delta"]))
    (tmp_path / "docs" / "bad.txt").write_bytes(b"\xff\xfa not utf-8 \xe9")
    (tmp_path / "docs" / "empty.md").write_bytes(b"")
    (tmp_path / "docs" / "data.csv").write_text("x,y", encoding="utf-8")
    (tmp_path / "docs" / ".hidden.md").write_text("secret", encoding="utf-8")
    (tmp_path / "docs" / ".git").mkdir()
    (tmp_path / "docs" / ".git" / "HEAD.txt").write_text("ref", encoding="utf-8")
    extra = tmp_path / "extra.html"
    extra.write_text("<title>E</title><p>echo</p>", encoding="utf-8")

    result = load_documents([tmp_path / "docs", extra, tmp_path / "missing.md"])

    assert isinstance(result, LoadResult)
    docs, skipped = result
    assert [d.page_content.strip().splitlines()[-1] for d in docs] == [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
    ]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {"bad.txt", "empty.md", "data.csv", "missing.md"}
    assert "UTF-8" in reasons["bad.txt"]
    assert "empty" in reasons["empty.md"]
    assert "unsupported" in reasons["data.csv"]
    assert "no such file" in reasons["missing.md"]
    assert all(isinstance(s, SkippedFile) for s in skipped)


def test_load_documents_accepts_a_single_path_and_dedupes(tmp_path: Path) -> None:
    path = tmp_path / "one.txt"
    path.write_text("only once", encoding="utf-8")
    docs, skipped = load_documents(path)
    assert len(docs) == 1 and skipped == []
    docs, _ = load_documents([path, tmp_path, str(path)])
    assert len(docs) == 1


def test_load_documents_reads_a_folder_once_through_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "x.txt").write_text("one file", encoding="utf-8")
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)
    (root / "sub" / "again").symlink_to(root, target_is_directory=True)
    docs, skipped = load_documents(root)
    assert [d.page_content for d in docs] == ["one file"] and skipped == []


# --- splitting ------------------------------------------------------------------------------

PARAGRAPH = (
    "Weft compiles typed components into LangGraph graphs. Each edge is checked before the "
    "graph runs, so a retriever cannot feed a chat model by accident. Streaming, batching and "
    "callbacks come for free once the graph compiles. "
)


def _long_doc(source: str = "/docs/guide.md", paragraphs: int = 12) -> Document:
    body = "\n\n".join(f"Section {i}. {PARAGRAPH * 2}" for i in range(paragraphs))
    return Document(body, metadata={"source": source, "title": "Guide"})


def test_chunks_never_exceed_chunk_size_in_tokens() -> None:
    splitter = TokenSplitter(chunk_size=64, chunk_overlap=8)
    chunks = splitter.split_documents([_long_doc()])
    sizes = [count_tokens(c.page_content) for c in chunks]
    assert len(chunks) > 10
    assert max(sizes) <= 64
    assert sum(sizes) / len(sizes) > 32  # packs chunks, not one sentence each
    assert [c.metadata["tokens"] for c in chunks] == sizes


def test_chunks_are_filled_close_to_chunk_size() -> None:
    splitter = TokenSplitter(chunk_size=64, chunk_overlap=0)
    chunks = splitter.split_text(" ".join(f"word{i}" for i in range(2000)))
    sizes = [count_tokens(c) for c in chunks]
    # Counting "word " pieces naively (the space as its own token) would give ~43 per chunk.
    assert min(sizes[:-1]) >= 60


def test_text_without_any_separator_is_still_cut_to_size() -> None:
    splitter = TokenSplitter(chunk_size=20, chunk_overlap=4)
    chunks = splitter.split_text("x" * 2000 + "日本語のテキスト" * 50)
    assert len(chunks) > 5
    assert max(count_tokens(c) for c in chunks) <= 20


def test_neighbouring_chunks_overlap() -> None:
    splitter = TokenSplitter(chunk_size=48, chunk_overlap=16)
    doc = Document(" ".join(f"word{i}" for i in range(400)), metadata={"source": "w.txt"})
    chunks = splitter.split_documents([doc])
    assert len(chunks) > 3
    for prev, nxt in itertools.pairwise(chunks):
        prev_end = prev.metadata["start_index"] + len(prev.page_content)
        assert nxt.metadata["start_index"] < prev_end  # starts inside the previous chunk
        shared = doc.page_content[nxt.metadata["start_index"] : prev_end]
        assert prev.page_content.endswith(shared) and nxt.page_content.startswith(shared)
        assert 0 < count_tokens(shared) <= 16 + 1


def test_no_overlap_means_disjoint_chunks() -> None:
    splitter = TokenSplitter(chunk_size=48, chunk_overlap=0)
    doc = Document(" ".join(f"word{i}" for i in range(300)), metadata={"source": "w.txt"})
    chunks = splitter.split_documents([doc])
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.metadata["start_index"] >= prev.metadata["start_index"] + len(prev.page_content)


def test_chunk_metadata_is_inherited_and_extended() -> None:
    doc = Document("alpha beta gamma", metadata={"source": "/x.pdf", "title": "X", "page": 4})
    [chunk] = TokenSplitter(chunk_size=32, chunk_overlap=0).split_documents([doc])
    assert chunk.metadata["source"] == "/x.pdf"
    assert chunk.metadata["title"] == "X"
    assert chunk.metadata["page"] == 4
    assert chunk.metadata["chunk_index"] == 0
    assert chunk.metadata["start_index"] == 0
    assert chunk.id == chunk.metadata["chunk_id"] == chunk_id("/x.pdf", "alpha beta gamma", 4)
    assert all(v is not None for v in chunk.metadata.values())  # Chroma rejects None values


def test_chunk_ids_are_stable_across_runs_and_splitters() -> None:
    first = TokenSplitter(chunk_size=64, chunk_overlap=8).split_documents([_long_doc()])
    second = TokenSplitter(chunk_size=64, chunk_overlap=8).split_documents([_long_doc()])
    assert [c.id for c in first] == [c.id for c in second]
    assert all(c.id and c.id.startswith("sha256-") for c in first)


def test_chunk_ids_depend_on_source_and_text() -> None:
    splitter = TokenSplitter(chunk_size=64, chunk_overlap=8)
    a = splitter.split_documents([_long_doc("/a.md")])
    b = splitter.split_documents([_long_doc("/b.md")])
    assert not {c.id for c in a} & {c.id for c in b}
    edited = _long_doc("/a.md")
    edited.page_content = edited.page_content.replace("Section 11.", "Chapter 11.")
    changed = splitter.split_documents([edited])
    same = {c.id for c in a} & {c.id for c in changed}
    assert 0 < len(same) < len(a)  # only chunks touching the edit get new ids


def test_identical_chunks_in_one_source_get_distinct_ids() -> None:
    doc = Document("Confidential.\n\nConfidential.", metadata={"source": "/memo.txt"})
    chunks = TokenSplitter(chunk_size=4, chunk_overlap=0).split_documents([doc])
    assert [c.page_content for c in chunks] == ["Confidential.", "Confidential."]
    assert len({c.id for c in chunks}) == 2


def test_splitter_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        TokenSplitter(chunk_size=0)
    with pytest.raises(ValueError):
        TokenSplitter(chunk_size=10, chunk_overlap=10)


def test_loaded_files_split_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text("# Guide\n\n" + PARAGRAPH * 20, encoding="utf-8")
    (tmp_path / "manual.pdf").write_bytes(make_pdf(["Page one about weft", "Page two"]))
    docs, skipped = load_documents(tmp_path)
    chunks = TokenSplitter(chunk_size=100, chunk_overlap=10).split_documents(docs)
    again = TokenSplitter(chunk_size=100, chunk_overlap=10).split_documents(
        load_documents(tmp_path).documents
    )
    assert skipped == []
    assert [c.id for c in chunks] == [c.id for c in again]
    assert {c.metadata.get("page") for c in chunks if c.metadata["source"].endswith(".pdf")} == {
        1,
        2,
    }
    assert {c.metadata["title"] for c in chunks} == {"Guide", "manual"}

"""Reading resumes in every format, and refusing the files that are not resumes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pypdf import PdfWriter

from tests.graphs.resume._files import pdf_bytes, write_pdf, write_resume
from tests.graphs.resume.conftest import MARIA
from weft.core.errors import DocumentLoadError
from weft.graphs.resume.loading import (
    decode_base64,
    read_resume_bytes,
    read_resume_file,
    read_resume_text,
)


@pytest.mark.parametrize("suffix", [".pdf", ".docx", ".txt", ".md"])
def test_every_format_gives_the_text(tmp_path: Path, suffix: str) -> None:
    path = write_resume(tmp_path / f"maria{suffix}", MARIA)
    text = read_resume_file(path)
    assert "maria.schneider@example.de" in text
    assert "Nordlicht Logistics GmbH" in text


def test_a_pdf_without_a_text_layer_is_refused(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    path = tmp_path / "scan.pdf"
    with path.open("wb") as f:
        writer.write(f)
    with pytest.raises(DocumentLoadError, match=r"scan\.pdf.*no text layer.*OCR"):
        read_resume_file(path)


def test_an_encrypted_pdf_is_refused(tmp_path: Path) -> None:
    source = write_pdf(tmp_path / "plain.pdf", MARIA)
    writer = PdfWriter(clone_from=str(source))
    writer.encrypt("secret")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as f:
        writer.write(f)
    with pytest.raises(DocumentLoadError, match=r"locked\.pdf.*encrypted.*without a password"):
        read_resume_file(path)


def test_an_encrypted_docx_is_refused() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512
    with pytest.raises(DocumentLoadError, match=r"cv\.docx.*encrypted or an old Word"):
        read_resume_bytes(ole, "cv.docx")


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.write_bytes(b"  \n")
    with pytest.raises(DocumentLoadError, match=r"empty\.md.*empty"):
        read_resume_file(path)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("photo.png", r"'\.png' is not a resume format"),
        ("resume.pdf", r"named \.pdf but is not a PDF"),
        ("resume.txt", r"not valid UTF-8"),
    ],
)
def test_a_binary_that_is_not_a_resume_is_refused(name: str, reason: str) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"
    with pytest.raises(DocumentLoadError, match=reason):
        read_resume_bytes(png, name)


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "big.pdf", MARIA)
    with pytest.raises(DocumentLoadError, match=r"big\.pdf.*over the 100-byte limit"):
        read_resume_file(path, max_bytes=100)


def test_a_missing_file_is_named() -> None:
    with pytest.raises(DocumentLoadError, match=r"nope\.pdf.*no such file"):
        read_resume_file("nope.pdf")


def test_base64_must_be_valid() -> None:
    assert decode_base64(base64.b64encode(pdf_bytes("x")).decode(), "a.pdf").startswith(b"%PDF")
    with pytest.raises(DocumentLoadError, match=r"a\.pdf.*not valid base64"):
        decode_base64("%%%", "a.pdf")


def test_text_is_text_whatever_its_label_and_is_held_to_the_limit() -> None:
    assert read_resume_text("Ada Lovelace", "cv.pdf") == "Ada Lovelace"
    with pytest.raises(DocumentLoadError, match=r"cv\.md.*over the 10-byte limit"):
        read_resume_text("Ada Lovelace, analyst", "cv.md", max_bytes=10)
    with pytest.raises(DocumentLoadError, match=r"<text>.*empty"):
        read_resume_text("  ", "<text>")

"""Read a resume's text from a PDF, DOCX, TXT or MD file, its bytes, or its text.

Every refusal is a :class:`~weft.core.errors.DocumentLoadError` naming the file and the reason,
with the fix: a file over the size limit (:data:`MAX_RESUME_BYTES` by default), an empty file,
an encrypted PDF or DOCX, a PDF with no text layer (a scan), a file that is not a resume format
(an image, an archive, any other binary), and text that is not UTF-8. Nothing is written.

Example:
    >>> read_resume_bytes(b"Ada Lovelace\\nada@example.org", "ada.txt")
    'Ada Lovelace\\nada@example.org'
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from pathlib import Path

from weft.core.errors import DocumentLoadError

__all__ = [
    "MAX_RESUME_BYTES",
    "RESUME_EXTENSIONS",
    "decode_base64",
    "read_resume_bytes",
    "read_resume_file",
    "read_resume_text",
]

MAX_RESUME_BYTES = 5 * 1024 * 1024
"""The largest resume file read (5 MiB); a larger one is refused."""

RESUME_EXTENSIONS = (".pdf", ".docx", ".txt", ".md")
"""The file types a resume may come in."""

_FORMATS = "a PDF with a text layer, a DOCX, or a UTF-8 TXT or MD file"


def _kind(data: bytes, filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if data.startswith(b"%PDF"):
        return ".pdf"
    if data.startswith(b"PK\x03\x04"):
        return ".docx"
    if data.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: a legacy .doc or an encrypted .docx
        return ".ole"
    if suffix in (".pdf", ".docx"):
        raise DocumentLoadError(
            filename,
            f"it is named {suffix} but is not a {suffix[1:].upper()}"
            " file; export it again from the program that made it",
        )
    if suffix in ("", ".txt", ".md", ".markdown", ".text"):
        return ".txt"
    raise DocumentLoadError(filename, f"'{suffix}' is not a resume format; pass {_FORMATS}")


def _pdf_text(data: bytes, filename: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentLoadError(
                filename, "the PDF is encrypted; save a copy without a password and pass that"
            )
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except DocumentLoadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise DocumentLoadError(filename, f"the PDF is damaged ({exc}); export it again") from exc
    if not text.strip():
        raise DocumentLoadError(
            filename,
            "the PDF has no text layer (a scanned image?); run OCR on it or pass the text",
        )
    return text


def _docx_text(data: bytes, filename: str) -> str:
    import docx

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "word/document.xml" not in archive.namelist():
                raise DocumentLoadError(
                    filename, f"the ZIP archive is not a Word document; pass {_FORMATS}"
                )
        document = docx.Document(io.BytesIO(data))
    except DocumentLoadError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentLoadError(filename, f"the DOCX is damaged ({exc}); save it again") from exc
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append("  ".join(cell.text for cell in row.cells))
    return "\n".join(lines)


def _plain_text(data: bytes, filename: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentLoadError(
            filename,
            f"not valid UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}), so "
            f"not a resume file this reads; pass {_FORMATS}",
        ) from exc
    if "\x00" in text:
        raise DocumentLoadError(filename, f"the file is binary, not text; pass {_FORMATS}")
    return text


def _too_big(filename: str, size: int, max_bytes: int) -> DocumentLoadError:
    return DocumentLoadError(
        filename,
        f"the file is {size} bytes, over the {max_bytes}-byte limit; pass a smaller file "
        "(a resume is rarely over a few hundred KB)",
    )


def read_resume_bytes(data: bytes, filename: str, *, max_bytes: int = MAX_RESUME_BYTES) -> str:
    """The text of a resume file's bytes; ``filename`` names it in errors and gives its type."""
    if len(data) > max_bytes:
        raise _too_big(filename, len(data), max_bytes)
    if not data.strip():
        raise DocumentLoadError(filename, "the file is empty; pass the resume itself")
    kind = _kind(data, filename)
    if kind == ".ole":
        raise DocumentLoadError(
            filename,
            "the file is encrypted or an old Word .doc; save it as an unprotected .docx or PDF",
        )
    reader = {".pdf": _pdf_text, ".docx": _docx_text}.get(kind, _plain_text)
    text = reader(data, filename)
    if not text.strip():
        raise DocumentLoadError(filename, "the file holds no text; pass the resume itself")
    return text


def read_resume_text(text: str, name: str, *, max_bytes: int = MAX_RESUME_BYTES) -> str:
    """A resume given as text: refused when it is over the size limit or empty."""
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise _too_big(name, size, max_bytes)
    if not text.strip():
        raise DocumentLoadError(name, "the text is empty; pass the resume itself")
    return text


def read_resume_file(path: str | Path, *, max_bytes: int = MAX_RESUME_BYTES) -> str:
    """The text of a resume file on disk (see :func:`read_resume_bytes`)."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > max_bytes:  # refused before it is read into memory
            raise _too_big(str(file), size, max_bytes)
        data = file.read_bytes()
    except FileNotFoundError as exc:
        raise DocumentLoadError(str(file), "no such file; check the path") from exc
    except IsADirectoryError as exc:
        raise DocumentLoadError(str(file), "it is a folder; pass resume files") from exc
    except OSError as exc:
        raise DocumentLoadError(str(file), exc.strerror or str(exc)) from exc
    return read_resume_bytes(data, str(file), max_bytes=max_bytes)


def decode_base64(content: str, filename: str) -> bytes:
    """The bytes of a base64 upload, or an error naming the file."""
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DocumentLoadError(
            filename, f"content_base64 is not valid base64 ({exc}); encode the file's bytes"
        ) from exc

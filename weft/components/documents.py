"""Load files into Documents and split them into token-sized chunks with stable ids.

Loaders: ``.txt``, ``.md``/``.markdown``, ``.html``/``.htm`` and ``.pdf`` (one Document per page).
Every Document carries ``source`` (the file's absolute POSIX path), ``title`` and, for PDFs,
``page`` (1-based, as a reader would cite it) in its metadata.

Text decoding policy: text files must be UTF-8 (a UTF-8 BOM is dropped, and UTF-16 with a BOM is
accepted). Anything else, such as Latin-1 bytes, is a :class:`DocumentLoadError` naming the byte
offset, not a silent guess, because a wrong guess stores mojibake in the index for good. Pass
``encoding="cp1252"`` (or any codec) to opt in to a legacy encoding. HTML honours its
``<meta charset>``.

Example:
    >>> from weft.components.documents import TokenSplitter, load_documents
    >>> docs, skipped = load_documents(["docs/"])  # doctest: +SKIP
    >>> splitter = TokenSplitter(chunk_size=256, chunk_overlap=32)
    >>> chunks = splitter.split_documents(docs)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from weft.components.tokens import get_encoding
from weft.core.errors import DocumentLoadError

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "LoadResult",
    "SkippedFile",
    "TokenSplitter",
    "chunk_id",
    "load_documents",
    "load_file",
]

#: File extensions the loaders understand (lower case, with the dot).
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"}
)


class SkippedFile(NamedTuple):
    """A file that :func:`load_documents` skipped, and why."""

    path: str
    reason: str


class LoadResult(NamedTuple):
    """What :func:`load_documents` returns; unpacks as ``documents, skipped``."""

    documents: list[Document]
    skipped: list[SkippedFile]


# --- text -----------------------------------------------------------------------------------


def _decode(path: Path, data: bytes, encoding: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if _looks_binary(data):
            raise DocumentLoadError(
                str(path), "holds control bytes, so it looks binary, not text"
            ) from exc
        raise DocumentLoadError(
            str(path),
            f"not valid {exc.encoding.upper()} (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); re-save it as UTF-8, or load it in its real encoding "
            f"(weft ingest --encoding cp1252, or encoding='cp1252')",
        ) from exc
    except LookupError as exc:
        raise DocumentLoadError(str(path), f"unknown encoding '{encoding}'") from exc
    if "\x00" in text:
        raise DocumentLoadError(str(path), "contains NUL bytes, so it looks binary, not text")
    return text


_CONTROL = frozenset(range(32)) - {9, 10, 12, 13}


def _looks_binary(data: bytes) -> bool:
    """Whether more than 1% of the first 4 KB are control bytes no text file holds."""
    head = data[:4096]
    return sum(byte in _CONTROL for byte in head) > len(head) / 100


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentLoadError(str(path), exc.strerror or str(exc)) from exc
    if not data.strip():
        raise DocumentLoadError(str(path), "the file is empty")
    return data


def _doc(text: str, path: Path, title: str, **extra: Any) -> Document:
    return Document(
        page_content=text, metadata={"source": path.as_posix(), "title": title, **extra}
    )


_ATX_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?\n)---\s*\n", re.DOTALL)


def _markdown_title(text: str) -> str | None:
    if match := _FRONT_MATTER.match(text):
        for line in match.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "title" and value.strip():
                return value.strip().strip("\"'")
        text = text[match.end() :]
    previous = ""
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        elif not in_fence:
            if heading := _ATX_HEADING.match(line):
                return heading.group(1)
            if previous.strip() and _SETEXT_UNDERLINE.match(line):
                return previous.strip()
        previous = line
    return None


def _load_text(path: Path, encoding: str, *, markdown: bool) -> list[Document]:
    text = _decode(path, _read_bytes(path), encoding)
    if not text.strip():
        raise DocumentLoadError(str(path), "the file has no text")
    title = (_markdown_title(text) if markdown else None) or path.stem
    return [_doc(text, path, title)]


# --- html -----------------------------------------------------------------------------------

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "head"})
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
        "footer", "nav", "aside", "main", "blockquote", "pre", "hr", "dd", "dt", "dl",
        "figure", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "title",
    }
)  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


class _TextExtractor(HTMLParser):
    """Visible text with block structure kept as newlines; the title and first heading."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: str | None = None
        self.heading: str | None = None
        self._skip_depth = 0
        self._in_title = False
        self._title_parts: list[str] = []
        self._heading_tag: str | None = None
        self._heading_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "body":
            self._skip_depth = 0  # HTML5 lets </head> be omitted
        elif tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag in _HEADINGS and self.heading is None and self._heading_tag is None:
            self._heading_tag = tag
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            self.title = self.title or " ".join("".join(self._title_parts).split()) or None
        elif tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == self._heading_tag:
            self.heading = " ".join("".join(self._heading_parts).split()) or None
            self._heading_tag = None
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)
        elif not self._skip_depth:
            self.parts.append(data)
            if self._heading_tag:
                self._heading_parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _load_html(path: Path, encoding: str) -> list[Document]:
    data = _read_bytes(path)
    if declared := _META_CHARSET.search(data[:4096]):
        encoding = declared.group(1).decode("ascii")
    parser = _TextExtractor()
    parser.feed(_decode(path, data, encoding))
    parser.close()
    text = parser.text()
    if not text:
        raise DocumentLoadError(str(path), "the HTML has no visible text")
    title = html.unescape(parser.title or parser.heading or path.stem)
    return [_doc(text, path, title)]


# --- pdf ------------------------------------------------------------------------------------


def _load_pdf(path: Path) -> list[Document]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    # pypdf logs what it repairs ("EOF marker not found"); a damaged file's reason is in the
    # skip list, so with no logging set up these lines must not reach stderr on their own.
    pypdf_log = logging.getLogger("pypdf")
    if not pypdf_log.handlers:
        pypdf_log.addHandler(logging.NullHandler())

    _read_bytes(path)  # empty-file check with the same message as the other loaders
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            # Many PDFs are encrypted only with an owner password ("no copying") and open with
            # an empty user password; only ask for help when that fails.
            try:
                opened = reader.decrypt("")
            except Exception as exc:  # pypdf raises DependencyError for AES without a backend
                raise DocumentLoadError(
                    str(path),
                    f"the PDF is encrypted and cannot be decrypted here ({exc}); save an "
                    f"unencrypted copy (e.g. qpdf --decrypt in.pdf out.pdf)",
                ) from exc
            if not opened:
                raise DocumentLoadError(
                    str(path),
                    "the PDF is password-protected; save an unencrypted copy "
                    "(e.g. qpdf --password=... --decrypt in.pdf out.pdf)",
                )
        meta_title = reader.metadata.title if reader.metadata else None
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentLoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        # pypdf surfaces damaged files as any of these, depending on where parsing broke.
        raise DocumentLoadError(
            str(path), f"the PDF is damaged or not a PDF ({type(exc).__name__}: {exc})"
        ) from exc
    title = (meta_title or "").strip() or path.stem
    docs = [
        _doc(text, path, title, page=number, total_pages=len(pages))
        for number, text in enumerate(pages, start=1)
        if text.strip()
    ]
    if not docs:
        raise DocumentLoadError(
            str(path),
            f"none of its {len(pages)} pages has extractable text (a scan? run OCR on it first)",
        )
    return docs


# --- public loading API ---------------------------------------------------------------------


def load_file(path: str | Path, *, encoding: str = "utf-8") -> list[Document]:
    """Load one file into Documents (one per PDF page, one for any other file).

    Args:
        path: a ``.txt``, ``.md``, ``.html`` or ``.pdf`` file.
        encoding: codec for text files; see the module docstring for the policy.

    Raises:
        DocumentLoadError: the file is missing, empty, undecodable, encrypted, damaged or of an
            unsupported type. The message names the file and what to do.

    Example:
        >>> load_file("README.md")[0].metadata["title"]  # doctest: +SKIP
        'weft'
    """
    resolved = Path(path).expanduser().resolve()
    suffix = resolved.suffix.lower()
    if not resolved.is_file():
        reason = "it is a directory" if resolved.is_dir() else "no such file"
        raise DocumentLoadError(resolved.as_posix(), reason)
    if suffix in (".txt", ".text"):
        return _load_text(resolved, encoding, markdown=False)
    if suffix in (".md", ".markdown"):
        return _load_text(resolved, encoding, markdown=True)
    if suffix in (".html", ".htm"):
        return _load_html(resolved, encoding)
    if suffix == ".pdf":
        return _load_pdf(resolved)
    raise DocumentLoadError(
        resolved.as_posix(),
        f"unsupported file type '{suffix or '(none)'}'; supported: "
        f"{', '.join(sorted(SUPPORTED_EXTENSIONS))}",
    )


def _walk(path: Path, seen: set[Path] | None = None) -> Iterator[Path]:
    if not path.is_dir():
        yield path
        return
    # A folder reached twice (a symlink back up the tree) is read once, or never ends.
    seen = set() if seen is None else seen
    real = path.resolve()
    if real in seen:
        return
    seen.add(real)
    # Sorted so ingest order, and with it chunk order, is the same on every machine; hidden
    # entries (.git, .DS_Store) are never documents.
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            yield from _walk(child, seen)
        else:
            yield child


def load_documents(
    paths: str | Path | Iterable[str | Path], *, encoding: str = "utf-8"
) -> LoadResult:
    """Load files and folders (recursively); bad files are skipped, not fatal.

    Args:
        paths: files and/or folders. Hidden files and folders inside a folder are ignored.
        encoding: codec for text files; see the module docstring for the policy.

    Returns:
        ``(documents, skipped)``; ``skipped`` lists ``(path, reason)`` for each file that could
        not be loaded, including files of unsupported types inside folders.

    Example:
        >>> docs, skipped = load_documents(["handbook/", "faq.md"])  # doctest: +SKIP
        >>> for path, reason in skipped:  # doctest: +SKIP
        ...     print(f"skipped {path}: {reason}")
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    documents: list[Document] = []
    skipped: list[SkippedFile] = []
    seen: set[Path] = set()
    for root in paths:
        for file in _walk(Path(root).expanduser().resolve()):
            if file in seen:
                continue
            seen.add(file)
            try:
                documents.extend(load_file(file, encoding=encoding))
            except DocumentLoadError as exc:
                skipped.append(SkippedFile(exc.path, exc.reason))
    return LoadResult(documents, skipped)


# --- splitting ------------------------------------------------------------------------------


def chunk_id(source: str, text: str, page: int | None = None, occurrence: int = 0) -> str:
    """A stable id for a chunk: a SHA-256 of its source, page and text.

    ``occurrence`` tells apart identical chunks of the same source and page (boilerplate), so
    every id in one split is unique; it is 0 for the first, so most ids depend on content only.

    Example:
        >>> chunk_id("/docs/a.md", "hello") == chunk_id("/docs/a.md", "hello")
        True
    """
    key = f"{source}\x00{'' if page is None else page}\x00{occurrence}\x00{text}"
    return f"sha256-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


class TokenSplitter:
    """Split Documents into chunks of at most ``chunk_size`` tokens, with overlap.

    Stands on langchain-text-splitters' ``RecursiveCharacterTextSplitter`` (paragraphs, then
    lines, then sentences, then words) measured in tiktoken tokens. Each chunk gets a content
    hash id in ``Document.id`` and ``metadata["chunk_id"]`` so re-ingesting the same files
    upserts instead of duplicating, plus ``chunk_index``, ``start_index`` (character offset in
    its parent) and ``tokens``.

    Example:
        >>> from langchain_core.documents import Document
        >>> splitter = TokenSplitter(chunk_size=8, chunk_overlap=2)
        >>> chunks = splitter.split_documents(
        ...     [Document("one two three four five six seven eight nine ten eleven twelve",
        ...               metadata={"source": "n.txt"})]
        ... )
        >>> [c.metadata["tokens"] <= 8 for c in chunks]
        [True, True]
    """

    def __init__(
        self,
        chunk_size: int = 512,
        chunk_overlap: int = 64,
        *,
        encoding: str = "cl100k_base",
        separators: Sequence[str] | None = None,
    ) -> None:
        """Create a splitter.

        Args:
            chunk_size: maximum tokens per chunk.
            chunk_overlap: tokens shared by neighbouring chunks, so a sentence cut at a
                boundary is still whole in one of them.
            encoding: tiktoken encoding that measures tokens (match your embedding model).
            separators: split points tried in order; the default prefers paragraph, line and
                sentence boundaries over words.
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(
                f"chunk_overlap must be >= 0 and < chunk_size ({chunk_size}), got {chunk_overlap}"
            )
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._encoding = get_encoding(encoding)
        self._splitter = RecursiveCharacterTextSplitter(
            separators=list(separators or ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]),
            keep_separator="end",
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            length_function=self._piece_tokens,
            add_start_index=True,
        )

    def count(self, text: str) -> int:
        """Tokens in ``text`` under this splitter's encoding."""
        return len(self._encoding.encode(text, disallowed_special=()))

    def _piece_tokens(self, piece: str) -> int:
        # The recursive splitter sums the lengths of pieces such as "word ". Alone, that trailing
        # space is a token of its own, but joined it merges into the next word (" next"), so
        # counting it would fill chunks only about two-thirds full.
        return self.count(piece.rstrip(" "))

    def _hard_split(self, text: str) -> list[str]:
        # The recursive splitter sums token counts of pieces, which can undercount a joined
        # chunk by a token or two; cut any such chunk on token boundaries so the limit holds.
        ids = self._encoding.encode(text, disallowed_special=())
        step = self.chunk_size - self.chunk_overlap
        return [
            self._encoding.decode(ids[i : i + self.chunk_size]).strip()
            for i in range(0, max(len(ids) - self.chunk_overlap, 1), step)
        ]

    def split_text(self, text: str) -> list[str]:
        """Split plain text into chunks of at most ``chunk_size`` tokens."""
        chunks: list[str] = []
        for chunk in self._splitter.split_text(text):
            chunks.extend(
                self._hard_split(chunk) if self.count(chunk) > self.chunk_size else [chunk]
            )
        return [c for c in chunks if c]

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        """Split Documents; each chunk keeps its parent's metadata and gets a stable id."""
        out: list[Document] = []
        occurrences: dict[tuple[str, Any, str], int] = {}
        for doc in documents:
            source = str(doc.metadata.get("source", ""))
            page = doc.metadata.get("page")
            search_from = 0
            for index, text in enumerate(self.split_text(doc.page_content)):
                start = doc.page_content.find(text, search_from)
                if start >= 0:
                    search_from = start + 1
                key = (source, page, text)
                occurrence = occurrences.get(key, 0)
                occurrences[key] = occurrence + 1
                cid = chunk_id(source, text, page if isinstance(page, int) else None, occurrence)
                metadata = {
                    **doc.metadata,
                    "chunk_id": cid,
                    "chunk_index": index,
                    "start_index": start,
                    "tokens": self.count(text),
                }
                out.append(Document(page_content=text, metadata=metadata, id=cid))
        return out

"""How a saved BM25 index lies on disk, and reading one back with every file checked.

A saved index is a folder: one ``v-<hex>`` folder per version (``manifest.json``,
``documents.jsonl``, ``vocab.json``, ``arrays.npz``) and a ``CURRENT`` file naming the live one.
:meth:`~weft.components.bm25.BM25Retriever.save` fills a new version and swaps ``CURRENT``;
:func:`read_saved` reads the version ``CURRENT`` names.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
from langchain_core.documents import Document
from numpy.typing import NDArray

from weft.core.errors import ConfigurationError

__all__ = [
    "CURRENT",
    "FORMAT",
    "FORMAT_VERSION",
    "DamagedIndex",
    "Saved",
    "fsync_dir",
    "read_saved",
    "reason",
    "write_synced",
]

FORMAT = "weft-bm25"
FORMAT_VERSION = 1
CURRENT = "CURRENT"


class DamagedIndex(Exception):
    """A saved index's file is missing or does not hold what :meth:`BM25Retriever.save` wrote;
    the message names the file and the problem, on one line."""


@dataclass(frozen=True)
class Saved:
    """What one version folder holds, read and checked."""

    version: str
    params: dict[str, Any]
    documents: list[Document]
    vocab: list[str]
    tokens: NDArray[Any]
    offsets: NDArray[Any]
    csc: tuple[NDArray[Any], NDArray[Any], NDArray[Any]] | None


# What reading a cut or overwritten file raises: JSON, UTF-8 and pydantic errors are ValueErrors;
# a cut .npz raises BadZipFile or EOFError, a missing member KeyError, a non-archive TypeError.
_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)


def reason(exc: BaseException) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
    if isinstance(exc, KeyError):
        return f"no {exc}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _unreadable(root: Path | zipfile.Path, file: str, exc: OSError) -> ConfigurationError:
    return ConfigurationError(
        f"cannot read '{file}' of the BM25 index at '{root}' ({exc.strerror or exc}); let this "
        "user read the folder and its files"
    )


def read_saved(root: Path | zipfile.Path) -> Saved:
    """Read and check the version ``CURRENT`` names; raises :class:`DamagedIndex`. ``root`` is
    a folder, or the inside of a zip that holds the same files (``BM25Retriever.to_bytes``)."""
    try:
        name = (root / CURRENT).read_text(encoding="utf-8").strip()
    except PermissionError as exc:
        raise _unreadable(root, CURRENT, exc) from exc
    except (OSError, ValueError) as exc:
        raise DamagedIndex(f"{CURRENT} cannot be read ({reason(exc)})") from exc
    if not name.startswith("v-") or Path(name).name != name:
        raise DamagedIndex(f"{CURRENT} holds {name[:80]!r}, not the name of a version folder")
    version = root / name
    if not version.is_dir():
        raise DamagedIndex(f"{CURRENT} names the version folder '{name}', which is missing")

    def damaged(file: str, exc: BaseException, what: str = "cannot be read") -> Exception:
        if isinstance(exc, PermissionError):  # the file may well be fine: never advise deleting
            return _unreadable(root, f"{name}/{file}", exc)
        if isinstance(exc, FileNotFoundError):
            return DamagedIndex(f"'{name}/{file}' is missing")
        return DamagedIndex(f"'{name}/{file}' {what} ({reason(exc)})")

    def read_json(file: str) -> Any:
        try:
            return json.loads((version / file).read_bytes())
        except _READ_ERRORS as exc:
            raise damaged(file, exc) from exc

    manifest = read_json("manifest.json")
    if not isinstance(manifest, dict):
        raise DamagedIndex(f"'{name}/manifest.json' is not a JSON object")
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise ConfigurationError(
            f"'{root}' holds a {manifest.get('format')} v{manifest.get('version')} index; "
            f"this weft reads {FORMAT} v{FORMAT_VERSION}; rebuild the index"
        )
    params, count = manifest.get("params"), manifest.get("count")
    if not isinstance(params, dict) or not isinstance(count, int) or count < 0:
        raise DamagedIndex(f"'{name}/manifest.json' lacks its 'params' or 'count'")

    documents: list[Document] = []
    if count:
        file = "documents.jsonl"
        try:
            lines = (version / file).read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError) as exc:
            raise damaged(file, exc) from exc
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            try:
                row = json.loads(line)
                documents.append(
                    Document(
                        id=row["id"], page_content=row["page_content"], metadata=row["metadata"]
                    )
                )
            except _READ_ERRORS as exc:
                raise damaged(file, exc, f"line {number} is damaged") from exc
        if len(documents) != count:
            raise DamagedIndex(
                f"'{name}/{file}' holds {len(documents)} documents, its manifest says {count}"
            )

    vocab = read_json("vocab.json")
    if not isinstance(vocab, list) or not all(isinstance(token, str) for token in vocab):
        raise DamagedIndex(f"'{name}/vocab.json' is not a list of tokens")

    file = "arrays.npz"
    try:
        # Opened here, not by np.load, so a file it rejects is closed at once; np.load takes a
        # non-archive for a pickle or a bare array.
        with (version / file).open("rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                raise DamagedIndex(f"'{name}/{file}' is not an .npz archive")
            fh.seek(0)
            with np.load(fh) as arrays:
                tokens, offsets = arrays["tokens"], arrays["offsets"]
                csc = (
                    (arrays["data"], arrays["indices"], arrays["indptr"])
                    if "data" in arrays.files
                    else None
                )
    except _READ_ERRORS as exc:
        raise damaged(file, exc) from exc
    problem = _arrays_problem(tokens, offsets, csc, count, len(vocab))
    if problem:
        raise DamagedIndex(f"'{name}/{file}' does not match the index: {problem}")
    return Saved(name, params, documents, vocab, tokens, offsets, csc)


def _arrays_problem(
    tokens: NDArray[Any],
    offsets: NDArray[Any],
    csc: tuple[NDArray[Any], NDArray[Any], NDArray[Any]] | None,
    n_docs: int,
    n_vocab: int,
) -> str | None:
    """What in the saved arrays disagrees with the documents and vocabulary, or None.

    Queries and rebuilds index with these arrays, so a mismatch would fail later, or silently
    score the wrong documents.
    """
    arrays = (tokens, offsets) if csc is None else (tokens, offsets, csc[1], csc[2])
    if any(a.ndim != 1 or not np.issubdtype(a.dtype, np.integer) for a in arrays):
        return "an array of ids or offsets is not a flat integer array"
    if offsets.size != n_docs + 1:
        return f"{offsets.size} token offsets for {n_docs} documents"
    if offsets[0] != 0 or offsets[-1] != tokens.size or np.any(np.diff(offsets) < 0):
        return "the token offsets do not span the token ids"
    if tokens.size and (tokens.min() < 0 or tokens.max() >= n_vocab):
        return f"token ids outside the vocabulary of {n_vocab}"
    if csc is not None:
        data, indices, indptr = csc
        if indptr.size != n_vocab + 1 or not data.size == indices.size == indptr[-1]:
            return f"the score matrix does not fit a vocabulary of {n_vocab}"
        if indices.size and (indices.min() < 0 or indices.max() >= n_docs):
            return f"the score matrix names documents beyond the {n_docs} saved"
    return None


def write_synced(path: Path, payload: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    # Makes the rename durable on POSIX; directories cannot be opened this way on Windows.
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pointer(root: Path) -> bytes | None:
    """What ``CURRENT`` holds now, or None when it cannot be read (a load that failed compares
    this before and after, to tell a version swapped away under it from a damaged index)."""
    try:
        return (root / CURRENT).read_bytes()
    except OSError:
        return None

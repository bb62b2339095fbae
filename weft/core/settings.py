"""Settings from ``WEFT_*`` environment variables and an optional ``.env``-style settings file.

Where a setting comes from, first match wins: a CLI flag (``--data-dir``, ``--port``...), the
environment (``WEFT_TOP_K=8``), the settings file, the default. The settings file is the one
``--settings FILE`` (on every CLI command) or ``WEFT_SETTINGS_FILE`` names: ``WEFT_NAME=value``
lines, ``#`` comments, optional ``export``. Its other variables are ignored, so a project's
``.env`` can serve as one; a ``WEFT_`` name that is no setting is an error, not a silent no-op.

Every CLI command takes ``--data-dir``, which overrides ``WEFT_DATA_DIR``: the folder where the
Chroma database, the BM25 index, checkpoints and traces live, so separate knowledge bases never
mix.

Example:
    >>> Settings(data_dir="/tmp/kb").chroma_dir.name
    'chroma'
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path, PurePath
from typing import Annotated, Any
from urllib.parse import urlsplit

import pydantic
from dotenv import dotenv_values
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from weft.core.errors import ConfigurationError

__all__ = [
    "SETTINGS_FILE_VARIABLE",
    "Settings",
    "SettingsFileError",
    "check_settings_file",
    "get_settings",
    "invalid_settings",
    "settings_file",
    "using_settings_file",
]

SETTINGS_FILE_VARIABLE = "WEFT_SETTINGS_FILE"


class SettingsFileError(ConfigurationError):
    """The settings file is missing, unreadable or sets an unknown ``WEFT_`` name."""


_FILE: ContextVar[Path | None] = ContextVar("weft_settings_file", default=None)


class Settings(BaseSettings):
    """weft's settings; each field reads ``WEFT_<NAME>`` (``WEFT_DATA_DIR``, ``WEFT_PORT``...).

    Lists (``api_keys``, ``cors_origins``) are comma-separated in the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix="WEFT_", env_file=None, extra="ignore", validate_default=True
    )

    data_dir: Path = Field(default=Path(".weft"), description="where stores and checkpoints live")
    model: str = Field(default="gpt-4o-mini", description="chat model name on the OpenAI path")
    embedding_model: str = Field(default="text-embedding-3-small")
    collection: str = Field(default="weft", description="Chroma collection name")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    top_k: int = Field(default=4, ge=1, le=50, description="documents retrieved per question")
    score_threshold: float = Field(
        default=0.0, ge=0.0, description="fused scores below this count as nothing relevant"
    )
    context_tokens: int = Field(default=1500, ge=100, description="token budget for sources")
    strict_answers: bool = Field(
        default=False,
        description="offline answers quote only sentences that match every word of the "
        "question, read in context by all-MiniLM-L6-v2: more refusals, fewer paraphrases answered",
    )
    chunk_tokens: int = Field(default=300, ge=32)
    chunk_overlap: int = Field(default=40, ge=0)
    # NoDecode: the environment gives "a,b", not JSON; _split_commas parses it.
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Bearer keys; empty = no auth"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    rate_limit_per_minute: int = Field(default=120, ge=0, description="per client; 0 = off")
    max_concurrent_runs: int = Field(default=64, ge=1)
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    # -- shared engines, for several replicas (docs/deploy.md); unset: embedded in data_dir -----
    database_url: str | None = Field(
        default=None,
        description="postgresql://... for checkpoints, session owners, run locks and the saga log",
    )
    database_pool_size: int = Field(
        default=20, ge=2, description="connections one process keeps to WEFT_DATABASE_URL"
    )
    chroma_url: str | None = Field(
        default=None, description="http://host:port of a Chroma server (else CHROMA_HOST)"
    )
    redis_url: str | None = Field(
        default=None, description="redis://... for the rate limiter's buckets"
    )
    # -- the remote chat model weft serve runs (OPENAI_API_KEY / OPENAI_BASE_URL) --------------
    model_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds for one model call until its first token, retries included; "
        "then the longest wait between tokens",
    )
    model_attempt_timeout: float = Field(
        default=10.0, gt=0, description="seconds one HTTP request to the provider may wait"
    )
    model_retries: int = Field(
        default=2, ge=0, description="retries of a failed model call, before its first token"
    )
    model_retry_wait: float = Field(
        default=0.5, ge=0, description="backoff before the first retry; doubles, with jitter"
    )
    model_breaker_failures: int = Field(
        default=5, ge=0, description="failed calls in a row that open the breaker; 0 = off"
    )
    model_breaker_reset: float = Field(
        default=30.0, ge=0, description="seconds an open breaker fails fast before a probe"
    )
    model_fallback: bool = Field(
        default=True, description="answer with the offline extractive model when the call fails"
    )
    # -- what `weft serve` admits, before any work (docs/server.md, "Limits and guarantees") --
    server_max_header_bytes: int = Field(
        default=16_384, ge=1024, description="the request line and headers, together"
    )
    server_max_headers: int = Field(default=100, ge=1, description="headers in one request")
    server_header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="to send the request line and headers"
    )
    server_body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="to send the whole request body"
    )
    server_keep_alive_seconds: float = Field(
        default=5.0, gt=0, description="an idle connection between requests"
    )
    server_max_connections_per_client: int = Field(
        default=100, ge=0, description="open connections from one address; 0 = no cap"
    )
    server_max_question_chars: int = Field(
        default=8000, ge=1, description="a question's length (chat, completions, graph input)"
    )

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("database_url", "chroma_url", "redis_url")
    @classmethod
    def _engine_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None  # an empty variable: the embedded default
        schemes = {
            "database_url": ("postgresql", "postgres"),
            "chroma_url": ("http", "https"),
            "redis_url": ("redis", "rediss", "unix"),
        }[str(info.field_name)]
        parsed = urlsplit(value.strip())
        if parsed.scheme not in schemes or not (parsed.hostname or parsed.path):
            raise ValueError(
                f"is not a {schemes[0]}:// URL; give one like "
                f"{schemes[0]}://host:port (see docs/deploy.md), or leave it unset"
            )
        return value.strip()

    @field_validator("data_dir", "host", "collection", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            # An empty data dir would quietly mean the current folder, an empty host every
            # interface: say so instead.
            raise ValueError("is empty; leave the setting out for its default, or give a value")
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        value = value.expanduser()  # "~/kb" from a variable or a file, as a shell would
        existing = next((p for p in (value, *value.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():  # it, or a folder it would be in
            raise ValueError(
                f"'{existing}' is a file, not a folder; pass a folder with --data-dir or "
                "WEFT_DATA_DIR (it is created if missing)"
            )
        return value

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be less than chunk_tokens "
                f"({self.chunk_tokens}); lower WEFT_CHUNK_OVERLAP or raise WEFT_CHUNK_TOKENS"
            )
        return self

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def bm25_dir(self) -> Path:
        return self.data_dir / "bm25"

    @property
    def checkpoint_path(self) -> Path:
        return self.data_dir / "checkpoints.sqlite"

    @property
    def traces_path(self) -> Path:
        return self.data_dir / "traces.jsonl"


def settings_file() -> Path | None:
    """The settings file in use: the one :func:`using_settings_file` set, else
    ``$WEFT_SETTINGS_FILE``, else None."""
    chosen = _FILE.get()
    if chosen is None and os.environ.get(SETTINGS_FILE_VARIABLE):
        chosen = Path(os.environ[SETTINGS_FILE_VARIABLE])
    return chosen.expanduser() if chosen is not None else None


@contextmanager
def using_settings_file(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Read settings from ``path`` inside the block (what ``--settings FILE`` does); None
    leaves the choice to ``$WEFT_SETTINGS_FILE``."""
    token = _FILE.set(Path(path) if path is not None else None)
    try:
        yield
    finally:
        _FILE.reset(token)


def check_settings_file(path: Path) -> None:
    """Raise :class:`SettingsFileError` when ``path`` cannot be read as a settings file or
    names a ``WEFT_`` variable that is no setting."""
    where = f"settings file '{path}'"
    if not path.is_file():
        if path.is_dir():
            problem = "is a folder"
        elif path.exists():  # a pipe or device: it could be read only once
            problem = "is not a regular file"
        else:
            problem = "does not exist"
        raise SettingsFileError(
            f"{where} {problem}; pass a file of WEFT_NAME=value lines to --settings "
            f"(or {SETTINGS_FILE_VARIABLE})"
        )
    try:
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsFileError(
            f"cannot read {where}: {exc}; it must be a UTF-8 text file of WEFT_NAME=value lines"
        ) from exc
    known = {f"WEFT_{name.upper()}" for name in Settings.model_fields}
    unknown = [k for k in values if k.upper().startswith("WEFT_") and k.upper() not in known]
    if unknown:
        raise SettingsFileError(
            f"{where} sets {', '.join(unknown)}, which is no weft setting; known settings: "
            f"{', '.join(sorted(known))}"
        )


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment and the settings file (see :func:`settings_file`), with
    ``overrides`` (e.g. ``data_dir`` from ``--data-dir``) taking precedence; ``None``
    overrides are ignored.

    Raises:
        SettingsFileError: the settings file is missing, unreadable or names an unknown
            ``WEFT_`` setting.
        pydantic.ValidationError: a setting's value is invalid (see :func:`invalid_settings`).
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    path = settings_file()
    if path is None:
        return Settings(**given)
    check_settings_file(path)
    return Settings(_env_file=path, _env_file_encoding="utf-8", **given)


def invalid_settings(error: pydantic.ValidationError, flags: Collection[str] = ()) -> str:
    """What is wrong with the settings, by the variable that sets each one, or by its CLI flag
    for the fields in ``flags`` (those given on the command line, e.g. ``{"data_dir"}``).

    Example:
        >>> try:
        ...     Settings(port=99999)
        ... except pydantic.ValidationError as e:
        ...     print(invalid_settings(e))
        invalid settings: WEFT_PORT=99999: Input should be less than or equal to 65535
    """
    problems = []
    for e in error.errors():
        field = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        given = str(e["input"]) if isinstance(e["input"], PurePath) else e["input"]
        if not field:
            problems.append(msg)
            continue
        name = f"--{field.replace('_', '-')}" if field in flags else f"WEFT_{field.upper()}"
        problems.append(f"{name}={given!r}: {msg}")
    return "invalid settings: " + "; ".join(problems)

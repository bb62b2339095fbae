"""Settings from ``WEFT_*`` environment variables (or a ``.env``-style settings file).

Every CLI command takes ``--data-dir``, which overrides ``WEFT_DATA_DIR``: the folder where the
Chroma database, the BM25 index, checkpoints and traces live, so separate knowledge bases never
mix.

Example:
    >>> Settings(data_dir="/tmp/kb").chroma_dir.name
    'chroma'
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pydantic
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings", "invalid_settings"]


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

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()  # "~/kb" from a variable or a file, as a shell would

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


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with ``overrides`` (e.g. ``data_dir`` from ``--data-dir``)
    taking precedence; ``None`` overrides are ignored."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def invalid_settings(error: pydantic.ValidationError) -> str:
    """What is wrong with the settings, by the variable that sets each one.

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
        problems.append(f"WEFT_{field.upper()}={e['input']!r}: {msg}" if field else msg)
    return "invalid settings: " + "; ".join(problems)

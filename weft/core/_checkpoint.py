"""A SQLite checkpointer that also runs async graphs, with an explicit deserialization allowlist.

LangGraph's ``SqliteSaver`` refuses async calls (it points to ``AsyncSqliteSaver``, which needs
aiosqlite); the server streams with ``astream``. Its operations are short, locked SQLite calls,
so the async methods here run the sync ones in a worker thread.

The allowlist names the weft records the RAG graph keeps in its checkpoints, so loading a
session neither warns nor, once LangGraph blocks unlisted types, fails.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from weft.core.errors import ConfigurationError

__all__ = ["ThreadedAsync", "ThreadedSqliteSaver", "allowlist", "open_sqlite_checkpointer"]


class ThreadedAsync:
    """Async checkpointer methods that run the sync ones in a worker thread: for savers whose
    operations are short blocking calls (SQLite, a PostgreSQL connection pool)."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)  # type: ignore[attr-defined]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))  # type: ignore[attr-defined]
        )
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        put = self.put  # type: ignore[attr-defined]
        result: RunnableConfig = await asyncio.to_thread(
            put, config, checkpoint, metadata, new_versions
        )
        return result

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Any,
        task_id: str,
        task_path: str = "",
    ) -> None:
        put_writes = self.put_writes  # type: ignore[attr-defined]
        await asyncio.to_thread(put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)  # type: ignore[attr-defined]


class ThreadedSqliteSaver(ThreadedAsync, SqliteSaver):
    """``SqliteSaver`` whose async methods run its sync ones in a worker thread."""


def allowlist(allowed: Iterable[type]) -> JsonPlusSerializer:
    """A serializer that loads the ``allowed`` classes (besides LangGraph's safe types)."""
    return JsonPlusSerializer(
        allowed_msgpack_modules=[(cls.__module__, cls.__qualname__) for cls in allowed]
    )


def open_sqlite_checkpointer(path: str | Path, allowed: Iterable[type] = ()) -> ThreadedSqliteSaver:
    """A checkpointer on the SQLite file ``path`` (created with its folder if missing) that
    deserializes the ``allowed`` classes (besides LangGraph's safe types) without warnings.

    Raises:
        ConfigurationError: the file or its folder cannot be created or opened, or the file is
            not a SQLite database; the message names the file. Nothing is deleted.
    """
    file = Path(path)
    conn = _connect(file)
    saver = ThreadedSqliteSaver(conn, serde=allowlist(allowed))
    # The connection lives as long as the checkpointer and is closed with it: a connection left
    # to the garbage collector unclosed is a ResourceWarning from Python 3.13 on.
    weakref.finalize(saver, conn.close)
    return saver


def _connect(file: Path) -> sqlite3.Connection:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        existing = next((p for p in (file.parent, *file.parent.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            problem = (
                f"'{existing}' is a file, not a folder; move that file away or keep checkpoints "
                "in a folder (for weft's commands, a --data-dir or WEFT_DATA_DIR that is one)"
            )
        else:
            problem = f"cannot create its folder ({exc.strerror}); pick a folder you can write to"
        raise ConfigurationError(f"cannot keep checkpoints in '{file}': {problem}") from exc
    if file.is_dir():
        raise ConfigurationError(
            f"cannot keep checkpoints in '{file}': it is a folder; pass the path of a file in it "
            "(e.g. checkpoints.sqlite)"
        )
    try:
        conn = sqlite3.connect(str(file), check_same_thread=False)
    except sqlite3.Error as exc:
        raise ConfigurationError(
            f"cannot open the checkpoint file '{file}' ({exc}); check that it and its folder "
            "can be read and written"
        ) from exc
    try:
        # SQLite reads the file on first use only: read its schema now, so a damaged file
        # stops here with its name, not in the middle of a run.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:  # locked, unreadable: the file may well be fine
        conn.close()
        raise ConfigurationError(
            f"cannot read the checkpoint file '{file}' ({exc}); check that no other program "
            "holds it and that it can be read and written"
        ) from exc
    except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
        conn.close()
        raise ConfigurationError(
            f"the checkpoint file '{file}' is not a usable SQLite database ({exc}); move it "
            "away (or delete it) to start conversations afresh; the ones it held cannot be resumed"
        ) from exc
    return conn

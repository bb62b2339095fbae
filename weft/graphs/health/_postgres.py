"""The consultation's services and checkpoints in PostgreSQL, when ``WEFT_DATABASE_URL`` is set.

Replicas then share what a saga did: a saga a killed replica left running is finished or
compensated by another one against the same rows (the tables of the schema ``weft_health``).
The graph's checkpoints follow the same setting
(:func:`~weft.graphs.health.graph.health_checkpointer`), so a run resumed on another replica
finds its checkpoint. Unset, the data dir keeps ``health.sqlite`` and
``health_checkpoints.sqlite`` as before.

Example:
    >>> services = open_health_services(get_settings())  # doctest: +SKIP
    >>> type(services).__name__  # doctest: +SKIP
    'PostgresHealthServices'
"""

from __future__ import annotations

from typing import Any

from weft.core._database import Database
from weft.core.settings import Settings
from weft.graphs._saga_postgres import file_or_database, marked
from weft.graphs.health.services import LocalHealthServices

__all__ = ["PostgresHealthServices", "configured_parts", "open_health_services"]

SERVICES_FILE = "health.sqlite"


class PostgresHealthServices(LocalHealthServices):
    """The local services' tables in ``database``, in its schema ``weft_health`` (``weft db
    migrate`` makes them)."""

    ORDER = "seq"
    PREFIX = "weft_health."

    def __init__(self, database: Database) -> None:  # the SQLite file is not opened
        self.database = database
        database.ensure_tables()

    def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        with self.database.connection() as conn:
            conn.execute(marked(sql), params)

    def _select(self, sql: str) -> list[tuple[Any, ...]]:
        with self.database.connection() as conn:
            return [tuple(row.values()) for row in conn.execute(sql).fetchall()]

    def close(self) -> None:
        """Nothing to close: the connections belong to the process's pool."""


def open_health_services(settings: Settings) -> LocalHealthServices:
    """The services ``settings`` name: PostgreSQL at ``database_url`` when set, else
    ``health.sqlite`` in the data dir."""
    return file_or_database(settings, LocalHealthServices, SERVICES_FILE, PostgresHealthServices)


def configured_parts(settings: Settings) -> dict[str, Any]:
    """What ``settings`` configure of a consultation, as keyword arguments of
    :func:`~weft.graphs.health.graph.build_health_graph` and ``HealthConsultation``: the
    model, the services and the saga log."""
    from weft.graphs._model import configured_model
    from weft.graphs._saga_postgres import open_saga_log

    return {
        "model": configured_model(settings),
        "services": open_health_services(settings),
        "saga_log": open_saga_log(settings),
    }

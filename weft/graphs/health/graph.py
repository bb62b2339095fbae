"""The ``health`` graph: triage first; an emergency stops there, anything else is consulted.

::

    START -> triage -+-> emergency -> END        (emergency: the instruction, nothing else)
                     +-> consult   -> END        (the consultation saga, five steps)

The ``triage`` node finishes first, so the level and what to do now (in the user's language)
are the first output a stream carries. The ``consult`` node runs the saga of
:mod:`weft.graphs.health.consult` whose id is the run's thread id when the graph has a
checkpointer: a run interrupted inside ``consult`` and run again on its thread resumes the
same saga from the saga log instead of starting a second one.

Example:
    >>> graph = build_health_graph(data_dir=tmp)  # doctest: +SKIP
    >>> graph.invoke({"text": "Sneezing and a runny nose"}).triage.triage  # doctest: +SKIP
    'self_care'
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field

from weft.core.compiled import CompiledGraph
from weft.core.graph import END, START, Graph
from weft.core.settings import Settings
from weft.graphs._model import configured_model
from weft.graphs.health.consult import (
    SAGA_NAME,
    StepPolicy,
    consultation_context,
    consultation_saga,
)
from weft.graphs.health.services import HealthServices, LocalHealthServices
from weft.graphs.health.specialists import Analysis, Specialist, run_specialists
from weft.graphs.health.triage import HealthInput, Triage, Triager
from weft.graphs.saga import SAGA_LOG_FILE, Probe, Saga, SagaError, SagaLog, SagaRecord, arecover

__all__ = [
    "Consultation",
    "HealthConsultation",
    "Triaged",
    "build_health_graph",
    "health_checkpointer",
    "health_model",
]


class Triaged(BaseModel):
    """The input and its triage, as the triage node hands them on."""

    input: HealthInput
    triage: Triage


class Consultation(BaseModel):
    """The graph's output; its JSON is what ``weft health consult --json`` prints."""

    triage: Triage
    analyses: dict[str, Analysis] = Field(default_factory=dict)
    missing: dict[str, str] = Field(
        default_factory=dict, description="analyses that failed or timed out, and why"
    )
    sources: list[dict[str, Any]] = Field(default_factory=list)
    report: str | None = None
    saga: dict[str, Any] | None = Field(
        default=None, description='{"id", "status", "steps": [...], "error"}; null for emergencies'
    )
    disclaimer: str


def _saga_view(record: SagaRecord) -> dict[str, Any]:
    view = record.to_dict()
    return {k: view[k] for k in ("id", "status", "steps", "error")}


class HealthConsultation:
    """The graph's parts: the triager, the saga with its log and services, the specialists.

    Args:
        data_dir: Where ``sagas.sqlite`` and ``health.sqlite`` are kept.
        model: A chat model for triage and the specialists; None works offline.
        specialists: Replace some or all of ``symptoms``, ``risk_factors``, ``care``.
        services: Replace the local SQLite services.
        saga_log: Where the sagas are logged; ``sagas.sqlite`` in ``data_dir`` by default
            (:func:`~weft.graphs._saga_postgres.open_saga_log` gives the configured one).
        policy: Timeouts, retries and backoff of the saga's steps.
        probe: Called before and after every step and compensation (see
            :class:`~weft.graphs.saga.Saga`); tests and demonstrations stop the process there.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        model: BaseChatModel | None = None,
        specialists: Mapping[str, Specialist] | None = None,
        services: HealthServices | None = None,
        saga_log: SagaLog | None = None,
        policy: StepPolicy | None = None,
        probe: Probe | None = None,
    ) -> None:
        from weft.graphs.health.specialists import default_specialists

        root = Path(data_dir)
        self.policy = policy or StepPolicy()
        self.triager = Triager(model=model)
        self.log = saga_log or SagaLog(root / SAGA_LOG_FILE)
        self.services = services or LocalHealthServices(root / "health.sqlite")
        chosen = {**default_specialists(model), **(specialists or {})}
        self.saga: Saga = consultation_saga(
            self.log,
            self.services,
            run_specialists(chosen, timeout=self.policy.specialists_timeout),
            policy=self.policy,
            probe=probe,
        )

    async def triage(self, data: HealthInput) -> Triaged:
        return Triaged(input=data, triage=await self.triager.aassess(data))

    @staticmethod
    def route(triaged: Triaged) -> str:
        return "emergency" if triaged.triage.triage == "emergency" else "consult"

    async def emergency(self, triaged: Triaged) -> Consultation:
        return Consultation(triage=triaged.triage, disclaimer=triaged.triage.disclaimer)

    async def consult(self, triaged: Triaged, config: RunnableConfig) -> Consultation:
        thread = (config.get("configurable") or {}).get("thread_id")
        saga_id = str(thread) if thread else uuid.uuid4().hex[:16]
        try:
            record = await self.saga.aresume(saga_id)
        except SagaError:  # no saga of this thread yet: start it
            context = consultation_context(triaged.input, triaged.triage)
            record = await self.saga.arun(context, saga_id=saga_id)
        found = record.context.get("specialists") or {}
        done = record.status == "completed"
        return Consultation(
            triage=triaged.triage,
            analyses={k: Analysis(**v) for k, v in (found.get("analyses") or {}).items()},
            missing=found.get("missing") or {},
            sources=found.get("sources") or [],
            report=(record.context.get("report") or {}).get("text") if done else None,
            saga=_saga_view(record),
            disclaimer=triaged.triage.disclaimer,
        )

    def recover(self) -> list[SagaRecord]:
        """Finish the sagas that a process which is gone left unfinished (in a worker thread,
        so that it works from sync and async callers alike)."""
        if not self.log.list(("running", "compensating")):
            return []
        found: list[SagaRecord] = []
        failed: list[BaseException] = []

        def run() -> None:
            try:
                found.extend(asyncio.run(arecover(self.log, self.sagas())))
            except BaseException as exc:  # raised again in the caller's thread
                failed.append(exc)

        worker = threading.Thread(target=run, name="weft-saga-recover")
        worker.start()
        worker.join()
        if failed:
            raise failed[0]
        return found

    def sagas(self) -> dict[str, Saga]:
        """The saga definitions by name, for :func:`~weft.graphs.saga.arecover`."""
        return {SAGA_NAME: self.saga}


health_model = configured_model
"""The chat model triage and the specialists use: a remote one when ``OPENAI_API_KEY`` or
``OPENAI_BASE_URL`` is set, else None (offline); see :func:`weft.graphs._model.configured_model`."""


def health_checkpointer(data_dir: str | Path, settings: Settings | None = None) -> Any:
    """The graph's LangGraph checkpointer: LangGraph's PostgreSQL tables when ``settings``
    name a ``database_url``, else ``health_checkpoints.sqlite`` in ``data_dir``."""
    from weft.core._checkpoint import open_sqlite_checkpointer
    from weft.core._database import database_of

    allowed = (HealthInput, Triage, Triaged, Consultation, Analysis)
    database = database_of(settings) if settings is not None else None
    if database is not None:
        return database.checkpointer(allowed)
    return open_sqlite_checkpointer(Path(data_dir) / "health_checkpoints.sqlite", allowed)


def build_health_graph(
    data_dir: str | Path | None = None,
    *,
    model: BaseChatModel | None = None,
    specialists: Mapping[str, Specialist] | None = None,
    services: HealthServices | None = None,
    saga_log: SagaLog | None = None,
    policy: StepPolicy | None = None,
    checkpointer: Any = None,
    recover: bool = True,
    probe: Probe | None = None,
) -> CompiledGraph[HealthInput, Consultation]:
    """Build the health graph (see the module docs); ``data_dir`` defaults to the settings'.

    With ``recover`` (the default), sagas a crashed process left unfinished in this data dir
    are finished or compensated first, so a restart recovers them.
    """
    if data_dir is None:
        from weft.core.settings import get_settings

        data_dir = get_settings().data_dir
    parts = HealthConsultation(
        data_dir,
        model=model,
        specialists=specialists,
        services=services,
        saga_log=saga_log,
        policy=policy,
        probe=probe,
    )
    if recover:
        parts.recover()
    g = Graph[HealthInput, Consultation]("health")
    g.add_node("triage", parts.triage, input_type=HealthInput, output_type=Triaged)
    g.add_node("emergency", parts.emergency, input_type=Triaged, output_type=Consultation)
    g.add_node("consult", parts.consult, input_type=Triaged, output_type=Consultation)
    g.add_edge(START, "triage")
    g.add_branch("triage", parts.route, {"emergency": "emergency", "consult": "consult"})
    g.add_edge("emergency", END).add_edge("consult", END)
    return g.compile(checkpointer=checkpointer)

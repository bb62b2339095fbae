"""Runs the consultation saga in a child process and SIGKILLs it at one point (see
test_saga_crash.py). Imported by the forkserver once, so each child starts at once."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from weft.core.settings import Settings
from weft.graphs._saga_postgres import open_saga_log
from weft.graphs.health._postgres import open_health_services
from weft.graphs.health.consult import SAGA_NAME, StepPolicy, consultation_saga
from weft.graphs.saga import Saga, StepContext

SAGA_ID = "crash1"
CONTEXT: dict[str, Any] = {
    "input": {"text": "cough for two days", "age": 30, "sex": None},
    "triage": {"triage": "self_care", "instruction": "Rest.", "disclaimer": "Not a diagnosis."},
}
POLICY = StepPolicy(timeout=5.0, retries=1, backoff=0.001, max_backoff=0.001)


async def specialists(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"analyses": {"symptoms": {"text": "a cold is likely"}}, "missing": {}, "sources": []}


def _kill(*_: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def build(data_dir: Path, point: str = "", fail: str = "", database_url: str = "") -> Saga:
    """The saga, killing the process at ``point`` and failing step ``fail`` for good; its log
    and services are in the PostgreSQL database at ``database_url`` when given, else in
    ``data_dir``."""
    settings = Settings(data_dir=data_dir, database_url=database_url or None)
    log = open_saga_log(settings)
    services = open_health_services(settings)
    saga = consultation_saga(
        log,
        services,
        specialists,
        policy=POLICY,
        probe=lambda at: _kill() if at == point else None,
    )
    steps = []
    for step in saga.steps:
        action, undo = step.action, step.compensation
        if point == f"inside:{step.name}":
            action = _then_kill(action)
        if point == f"inside_undo:{step.name}" and undo is not None:
            undo = _then_kill(undo)
        if fail == step.name:
            action = _broken
        steps.append(replace(step, action=action, compensation=undo))
    return Saga(SAGA_NAME, steps, log, probe=saga._probe)


def _then_kill(fn: Any) -> Any:
    async def wrapped(ctx: StepContext) -> Any:
        result = await fn(ctx)  # the effect is committed; the log has not heard of it yet
        _kill()
        return result

    return wrapped


async def _broken(ctx: StepContext) -> Any:
    raise ConnectionError("the health record service is down")


def run(data_dir: str, point: str, fail: str, database_url: str = "") -> None:
    build(Path(data_dir), point, fail, database_url).run(CONTEXT, saga_id=SAGA_ID)

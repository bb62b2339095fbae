"""The consultation saga: record -> specialists -> report -> notification -> health record.

:func:`consultation_saga` builds the five steps over a :class:`HealthServices` and a specialists
function; each step's compensation undoes it (cancel the record, withdraw the report, send a
retraction, revert the health record; the specialists have nothing to undo).

The saga's context holds the description with personal data masked (:func:`mask_pii`), never
the raw text, so the saga log keeps no email, phone or ID number.

Example:
    >>> services = LocalHealthServices(tmp / "health.sqlite")  # doctest: +SKIP
    >>> log = SagaLog(tmp / "sagas.sqlite")  # doctest: +SKIP
    >>> saga = consultation_saga(log, services, run_specialists())  # doctest: +SKIP
    >>> saga.run(consultation_context(data, triage)).status  # doctest: +SKIP
    'completed'
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from weft.core.masking import mask_pii
from weft.graphs.health.services import HealthServices
from weft.graphs.saga import Probe, Saga, SagaLog, Step, StepContext

__all__ = [
    "SAGA_NAME",
    "STEP_NAMES",
    "StepPolicy",
    "consultation_context",
    "consultation_saga",
    "render_report",
]

SAGA_NAME = "health_consultation"
STEP_NAMES = ("create_record", "specialists", "report", "notify", "update_health_record")

Specialists = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
"""Takes the saga context; returns ``{"analyses": {name: analysis}, "missing": {name: why}}``."""


@dataclass(frozen=True)
class StepPolicy:
    """Timeout (seconds), retries and backoff of each step."""

    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.05
    max_backoff: float = 1.0
    specialists_timeout: float = 30.0


def consultation_context(data: Any, triage: Any) -> dict[str, Any]:
    """The saga's starting context from a :class:`HealthInput` and its :class:`Triage`."""
    return {
        "input": {
            "text": mask_pii(data.text),
            "age": data.age,
            "sex": data.sex,
            "conditions": [mask_pii(c) for c in data.conditions],
            "medications": [mask_pii(m) for m in data.medications],
        },
        "triage": triage.model_dump(),
    }


def _cid(ctx: StepContext) -> str:
    return f"c-{ctx.saga_id}"


def render_report(data: Mapping[str, Any]) -> str:
    """The consultation report, from the saga context after the specialists ran."""
    triage = data["triage"]
    zh = triage.get("language") == "zh"
    found = data.get("specialists") or {}
    titles = {"symptoms": "Possible conditions", "risk_factors": "Risk factors", "care": "Care"}
    lines = [f"Triage: {triage['triage']}. {triage['instruction']}", ""]
    for name, title in titles.items():
        analysis = (found.get("analyses") or {}).get(name)
        if analysis is not None:
            lines += [f"## {title}", str(analysis["text"]), ""]
        else:
            why = (found.get("missing") or {}).get(name, "not run")
            lines += [f"## {title}", f"(missing: this analysis is not available: {why})", ""]
    sources = found.get("sources") or []
    if sources:
        lines.append("Sources:")
        lines += [f"[{s['index']}] {s['title']}" for s in sources]
        lines.append("")
    lines.append(triage["disclaimer"] if not zh else f"{triage['disclaimer']}")
    return "\n".join(lines)


def consultation_saga(
    log: SagaLog,
    services: HealthServices,
    specialists: Specialists,
    *,
    policy: StepPolicy | None = None,
    probe: Probe | None = None,
) -> Saga:
    """The five-step consultation saga over these services."""
    p = policy or StepPolicy()

    async def create(ctx: StepContext) -> dict[str, Any]:
        record = {"summary": ctx.data["input"]["text"], "triage": ctx.data["triage"]["triage"]}
        return {"consultation_id": services.create_record(ctx.key, _cid(ctx), record)}

    async def cancel(ctx: StepContext) -> None:
        services.cancel_record(ctx.key, _cid(ctx))

    async def analyse(ctx: StepContext) -> Mapping[str, Any]:
        return await specialists(ctx.data)

    async def report(ctx: StepContext) -> dict[str, Any]:
        text = render_report(ctx.data)
        return {"report_id": services.save_report(ctx.key, _cid(ctx), text), "text": text}

    async def withdraw(ctx: StepContext) -> None:
        services.withdraw_report(ctx.key, _cid(ctx))

    async def notify(ctx: StepContext) -> dict[str, Any]:
        level = ctx.data["triage"]["triage"]
        message = f"Your consultation {_cid(ctx)} ({level}) has a report ready."
        return {"outbox_id": services.notify(ctx.key, _cid(ctx), message)}

    async def retract(ctx: StepContext) -> None:
        services.retract_notification(ctx.key, _cid(ctx))

    async def update(ctx: StepContext) -> dict[str, Any]:
        entry = f"consultation {_cid(ctx)}: {ctx.data['triage']['triage']}"
        person = str(ctx.data.get("person") or "anonymous")
        return {"entry_id": services.update_health_record(ctx.key, person, _cid(ctx), entry)}

    async def revert(ctx: StepContext) -> None:
        services.revert_health_record(ctx.key, _cid(ctx))

    def step(name: str, action: Any, undo: Any, timeout: float = p.timeout) -> Step:
        return Step(name, action, undo, timeout, p.retries, p.backoff, p.max_backoff)

    steps = [
        step("create_record", create, cancel),
        # Each specialist has its own timeout inside; the step allows for them and the retrieval.
        step("specialists", analyse, None, p.specialists_timeout + p.timeout),
        step("report", report, withdraw),
        step("notify", notify, retract),
        step("update_health_record", update, revert),
    ]
    return Saga(SAGA_NAME, steps, log, probe=probe)

"""Health consultation: triage latency, consultations/s offline, and the saga's bookkeeping.

- Triage: :class:`~weft.graphs.health.triage.Triager` on the 72 vignettes of the
  ``health-triage`` suite, each once per round; p50 and p95 per call.
- Consultations/s: :func:`~weft.graphs.health.graph.build_health_graph` offline (local SQLite
  services in a temporary data dir), one non-emergency consultation after another: triage,
  then the five-step saga with the three specialists.
- Saga overhead: the same five no-op async steps run as plain awaited calls and as a
  :class:`~weft.graphs.saga.Saga` (the log written before and after each step in SQLite);
  and a saga whose last step fails, so four compensations are logged too. The overhead per step
  is (saga - plain) / steps. Goal: under 2 ms per step.

Run: ``python -m bench.health [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from weft.evals.suite import find_suite
from weft.graphs.health.graph import build_health_graph
from weft.graphs.health.triage import HealthInput, Triager
from weft.graphs.saga import Saga, SagaLog, Step, StepContext

GOAL_MS = 2.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def triage_latency(rounds: int) -> tuple[float, float, int]:
    cases = find_suite("health-triage").load_dataset().cases
    inputs = [HealthInput(**c.inputs) for c in cases]
    triager = Triager()
    for data in inputs:  # warm the rules and regex caches
        triager.assess(data)
    times = []
    for _ in range(rounds):
        for data in inputs:
            start = time.perf_counter()
            triager.assess(data)
            times.append((time.perf_counter() - start) * 1000)
    return _pct(times, 0.5), _pct(times, 0.95), len(times)


def consultations_per_second(n: int) -> float:
    texts = ["Sore throat and a mild cough for two days", "Burning when I pee since Monday"]
    with tempfile.TemporaryDirectory() as tmp:
        graph = build_health_graph(tmp)
        graph.invoke({"text": texts[0]})  # warm
        start = time.perf_counter()
        for i in range(n):
            graph.invoke({"text": texts[i % 2]})
        return n / (time.perf_counter() - start)


async def _noop(ctx: StepContext) -> dict[str, Any]:
    return {"ok": True}


async def _fail(ctx: StepContext) -> None:
    raise RuntimeError("down")


async def _saga_overhead(n: int, folder: Path) -> dict[str, float]:
    names = [f"s{i}" for i in range(5)]
    plain_steps = [_noop] * 5
    ctx = StepContext("x", "s", "x/s", {}, 1)
    log = SagaLog(folder / "sagas.sqlite")
    ok = Saga("ok", [Step(s, _noop, _noop) for s in names], log)
    failing = Saga(
        "fails",
        [*(Step(s, _noop, _noop) for s in names[:4]), Step("s4", _fail, _noop, retries=0)],
        log,
    )
    start = time.perf_counter()
    for _ in range(n):
        for step in plain_steps:
            await step(ctx)
    plain = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(n):
        await ok.arun({})
    saga = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(n):
        await failing.arun({})
    compensated = (time.perf_counter() - start) / n
    return {
        "plain_ms": plain * 1000,
        "saga_ms": saga * 1000,
        "per_step_ms": (saga - plain) / 5 * 1000,
        # 5 steps forward (the last fails) and 4 compensations: 9 logged moves
        "compensated_ms": compensated * 1000,
        "per_move_ms": (compensated - plain) / 9 * 1000,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.health")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    rounds, consults, sagas = (2, 10, 50) if args.quick else (10, 60, 500)
    p50, p95, calls = triage_latency(rounds)
    rate = consultations_per_second(consults)
    with tempfile.TemporaryDirectory() as tmp:
        s = asyncio.run(_saga_overhead(sagas, Path(tmp)))
    met = "**met**" if max(s["per_step_ms"], s["per_move_ms"]) < GOAL_MS else "not met"
    print("| measure | value |")
    print("|---|---|")
    print(f"| triage p50 ({calls} calls) | {p50:.2f} ms |")
    print(f"| triage p95 | {p95:.2f} ms |")
    print(f"| consultations/s offline ({consults}, sequential) | {rate:.1f} |")
    print()
    print("| saga, 5 no-op steps | per saga | overhead per step | goal | met |")
    print("|---|---|---|---|---|")
    print(f"| plain awaited calls | {s['plain_ms']:.3f} ms | - | - | - |")
    print(
        f"| saga, completed | {s['saga_ms']:.3f} ms | {s['per_step_ms']:.3f} ms "
        f"| < {GOAL_MS:g} ms | {met} |"
    )
    print(
        f"| saga, step 5 fails, 4 compensations | {s['compensated_ms']:.3f} ms "
        f"| {s['per_move_ms']:.3f} ms per step or compensation | < {GOAL_MS:g} ms | {met} |"
    )
    print(f"\n(saga runs: {sagas} of each kind; per saga = total time / runs)")


if __name__ == "__main__":
    main()

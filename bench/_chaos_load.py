"""The chaos benchmark's load parts: large questions, provider faults, concurrent ingests.

- :func:`large_questions`: distinct questions of 50-900 KB against ``weft serve``, with the
  server's resident memory before, at its peak and after.
- :class:`FaultPlan` and :func:`fault_row`: a share of the chat completions that weft's local
  OpenAI-compatible test server answers with one kind of fault, every kind one that happens
  before the first content token; what the users of ``weft serve`` saw meanwhile.
- :func:`concurrent_ingests`: several ``weft ingest`` processes on different folders of made-up
  city bylaws into one data directory, and the chunks each store holds afterwards.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._chaos_server import ROOT, ChatResult, Children, Serve, chat, pct
from weft.testing import Fault, RecordedRequest, Reply

__all__ = [
    "FAULT_KINDS",
    "FaultPlan",
    "FaultRow",
    "IngestRound",
    "LargeRun",
    "concurrent_ingests",
    "fault_row",
    "large_questions",
    "write_bylaws",
]

_WORDS = (  # noqa: SIM905
    "ordinance council parcel setback hedge curfew permit variance easement kiosk ward "
    "drainage frontage lantern orchard pier ferry toll granary quarry meadow bridge cistern "
    "tannery mill market stall awning cart hawker bell tower wharf lane alley gutter bonfire "
    "kennel goat beehive chimney fountain plaza arcade tram ticket warden clerk magistrate "
    "fine appeal notice"
).split()


# -- large distinct questions --------------------------------------------------------------------


@dataclass
class LargeRun:
    """What ``sent`` large questions did to the server's memory, and how they were answered."""

    planned: int
    sent: int = 0
    kb_sent: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    rss_before: float = 0.0
    rss_peak: float = 0.0
    rss_after: float = 0.0
    seconds: float = 0.0


def _large_question(rng: random.Random, size: int, index: int) -> str:
    words = rng.choices(_WORDS, k=size // 7)
    return f"Question {index}, {rng.random()}: " + " ".join(words)[:size] + "?"


def _status(result: ChatResult) -> str:
    if result.status is None:
        return result.error.split(":", 1)[0] or "no answer"
    if result.status == 200:
        return "200 answered" if result.ok else "200 then " + result.error.split(":", 1)[0]
    return str(result.status)


async def large_questions(
    server: Serve, count: int, budget_s: float, *, concurrency: int = 2, seed: int = 21
) -> LargeRun:
    """Ask ``count`` distinct questions of 50-900 KB (``concurrency`` at a time) until
    ``budget_s`` has passed; the server's RSS is read before, after each and at the end."""
    rng = random.Random(seed)
    run = LargeRun(planned=count)
    for i in range(3):  # warm-up: the first runs build caches every later run shares
        await chat(server.url, f"How tall may a garden hedge be? ({i})", timeout=60)
    run.rss_before = run.rss_peak = server.rss_mb()
    started = time.monotonic()
    sizes = iter(rng.randrange(50_000, 900_000) for _ in range(count))

    async def asker() -> None:
        for size in sizes:
            if time.monotonic() - started > budget_s:
                return
            index = run.sent
            run.sent += 1
            run.kb_sent += size / 1000
            result = await chat(server.url, _large_question(rng, size, index), timeout=120)
            run.statuses[_status(result)] += 1
            run.rss_peak = max(run.rss_peak, server.rss_mb())

    await asyncio.gather(*(asker() for _ in range(concurrency)))
    run.seconds = time.monotonic() - started
    await asyncio.sleep(2.0)  # what is freed after the last answer has been sent
    run.rss_after = server.rss_mb()
    return run


# -- provider faults -----------------------------------------------------------------------------

FAULT_KINDS = ("500", "503", "429", "dropped before content", "malformed stream", "slow first byte")
"""Every kind of provider fault that happens before the first content token."""

ANSWER = "Hedges on a corner lot may be at most one metre tall [1]."


class FaultPlan:
    """The local OpenAI-compatible server's answer to each chat completion: with probability
    ``rate`` a fault of ``kind``, else :data:`ANSWER`; seeded, so every run injects alike."""

    def __init__(self, slow_s: float, seed: int = 21) -> None:
        self.kind = FAULT_KINDS[0]
        self.rate = 0.0
        self.slow_s = slow_s
        self.rng = random.Random(seed)
        self.calls = 0
        self.injected = 0

    def __call__(self, request: RecordedRequest) -> Reply | Fault:
        self.calls += 1
        if self.rng.random() >= self.rate:
            return Reply(ANSWER)
        self.injected += 1
        if self.kind in ("500", "503"):
            return Fault.server_error(int(self.kind))
        if self.kind == "429":
            return Fault.rate_limit(retry_after=0.5)
        if self.kind == "dropped before content":
            return Fault.drop(after_chunks=1)  # after the role-only first chunk
        if self.kind == "malformed stream":
            return Fault.malformed(after_chunks=1)
        return Reply(ANSWER, delay=self.slow_s)


@dataclass
class FaultRow:
    """User requests to ``weft serve`` while its provider failed as ``kind`` at ``rate``."""

    kind: str
    rate: float
    results: list[ChatResult] = field(default_factory=list)
    provider_calls: int = 0
    injected: int = 0
    breaker: str = ""

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)

    @property
    def fallbacks(self) -> int:
        return sum(r.marked_fallback or _marked_fallback(r.done) for r in self.results if r.ok)

    @property
    def p95_s(self) -> float:
        return pct([r.seconds for r in self.results], 0.95)


def _marked_fallback(value: Any) -> bool:
    """True when a ``done`` event's data has a truthy field whose name says "fallback"."""
    if isinstance(value, dict):
        return any(
            ("fallback" in str(k).lower() and bool(v)) or _marked_fallback(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_marked_fallback(v) for v in value)
    return False


_BREAKER = re.compile(r"breaker|circuit|fallback", re.IGNORECASE)


def _breaker_lines(metrics: str) -> dict[str, str]:
    out = {}
    for line in metrics.splitlines():
        if line and not line.startswith("#") and _BREAKER.search(line):
            name, _, value = line.rpartition(" ")
            out[name] = value
    return out


def _breaker_change(before: dict[str, str], after: dict[str, str]) -> str:
    if not after:
        return "not in /metrics"
    changed = [f"{k} {before.get(k, '0')}->{v}" for k, v in after.items() if before.get(k) != v]
    return "; ".join(changed[:3]) + (" ..." if len(changed) > 3 else "") or "no change"


async def fault_row(
    server: Serve, plan: FaultPlan, kind: str, rate: float, requests: int, concurrency: int = 4
) -> FaultRow:
    """``requests`` chats, ``concurrency`` at a time, while ``plan`` injects ``kind`` at
    ``rate``."""
    plan.kind, plan.rate = kind, rate
    calls, injected = plan.calls, plan.injected
    before = _breaker_lines(server.metrics())
    row = FaultRow(kind, rate)
    pending = iter(range(requests))

    async def user() -> None:
        for i in pending:
            question = f"How tall may a hedge on a corner lot be? ({kind}, {rate}, {i})"
            row.results.append(await chat(server.url, question, timeout=120))

    await asyncio.gather(*(user() for _ in range(concurrency)))
    row.provider_calls, row.injected = plan.calls - calls, plan.injected - injected
    row.breaker = _breaker_change(before, _breaker_lines(server.metrics()))
    return row


# -- concurrent ingests --------------------------------------------------------------------------

_TOWNS = ("Marrowick", "Elsby Ford", "Quillhaven", "Tarnmouth", "Brackenridge", "Oldmere")
_RULES = (
    "No hedge on a corner lot may stand taller than {n} centimetres within {m} metres of the "
    "crossing, so that carts and riders can see one another.",
    "Market stalls on the {street} may open at {n} o'clock and must be cleared by {m} o'clock; "
    "an awning may reach no further than {n} hand-widths over the lane.",
    "A bonfire needs a permit from the ward clerk, costs {n} crowns, and may burn no closer "
    "than {m} paces to a thatched roof or a granary.",
    "Goats kept within the walls are limited to {n} per household; a kennel or beehive needs "
    "{m} metres of clear ground on every side.",
    "The ferry toll is {n} pennies for a person on foot and {m} for a loaded cart; the warden "
    "may waive it on feast days.",
    "Bells may not be rung between {n} at night and {m} in the morning, except to warn of fire "
    "or flood.",
)


def write_bylaws(folder: Path, town: str, files: int, rng: random.Random) -> None:
    """``files`` made-up bylaws of ``town`` as Markdown, each about 3 KB and distinct."""
    folder.mkdir(parents=True, exist_ok=True)
    streets = ("High Street", "Mill Lane", "Wharf Row", "Tannery Walk", "Bridge Street")
    for number in range(1, files + 1):
        sections = [f"# {town} Bylaw {number}: {rng.choice(_WORDS).title()} and Order\n"]
        for section in range(1, 9):
            rule = rng.choice(_RULES).format(
                n=rng.randrange(2, 90), m=rng.randrange(2, 90), street=rng.choice(streets)
            )
            words = " ".join(rng.choices(_WORDS, k=40))
            sections.append(
                f"## Section {section}\n\nIn {town}, under bylaw {number}.{section}: {rule} "
                f"The council notes: {words}.\n"
            )
        (folder / f"bylaw-{number:03d}.md").write_text("\n".join(sections), encoding="utf-8")


@dataclass
class IngestRound:
    """Ingests run at once into one data directory, and what its stores held afterwards."""

    starts: list[float] = field(default_factory=list)  # seconds after the first was started
    codes: list[int] = field(default_factory=list)
    expected: int = 0  # chunks the ingests that succeeded said they hold
    chroma: int = -1
    bm25: int = -1
    problem: str = ""

    @property
    def lost(self) -> int:
        return max(0, self.expected - min(self.chroma, self.bm25))


def _chunks(summary: str) -> int | None:
    found = re.search(r"Ingested into .*?: \d+ files?, (\d+) chunks", summary)
    return int(found.group(1)) if found else None


def count_chunks(data_dir: Path) -> tuple[int, int]:
    """The chunks in Chroma and in BM25, as a knowledge base opened on ``data_dir`` sees them."""
    from weft.core.settings import Settings
    from weft.graphs.knowledge import KnowledgeBase

    kb = KnowledgeBase(Settings(data_dir=data_dir))
    return kb.count(), kb.bm25.count()


def concurrent_ingests(
    children: Children, data_dir: Path, folders: list[Path], rng: random.Random, timeout_s: float
) -> IngestRound:
    """``weft ingest`` on each of ``folders`` into ``data_dir``, each started 0-1.5 s after the
    one before, all running at once; then the chunks each store holds."""
    result = IngestRound()
    procs = []
    first = time.monotonic()
    for i, folder in enumerate(folders):
        if i:
            time.sleep(rng.uniform(0.0, 1.5))
        result.starts.append(time.monotonic() - first)
        command = [sys.executable, "-m", "weft.cli", "ingest", "--no-progress"]
        procs.append(
            children.add(
                subprocess.Popen(
                    [*command, "--data-dir", str(data_dir), str(folder)],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        )
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=max(1.0, timeout_s - (time.monotonic() - first)))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        result.codes.append(proc.returncode)
        chunks = _chunks(out)
        if proc.returncode == 0 and chunks is not None:
            result.expected += chunks
        elif not result.problem:
            result.problem = (out.strip().splitlines() or ["(no output)"])[-1][:200]
    try:
        result.chroma, result.bm25 = count_chunks(data_dir)
    except Exception as exc:  # a store that cannot be opened holds nothing a user can reach
        result.chroma = result.bm25 = 0
        result.problem = result.problem or f"{type(exc).__name__}: {str(exc)[:200]}"
    return result

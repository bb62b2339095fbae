"""Chaos: a real ``weft serve`` under malformed requests, slow clients, memory pressure, provider
faults and concurrent ingests; one table per part, each row with its goal and whether it was met.

Run with ``python -m bench.chaos [--quick] [--part NAME ...] [--server-env NAME=VALUE ...]``.
Every server is ``weft serve`` in a subprocess on 127.0.0.1 and a free port, over a temporary
data directory, with ``WEFT_RATE_LIMIT_PER_MINUTE=0`` (every request comes from one machine);
the whole run is bounded in requests and in time (a watchdog stops it, and every process it
started, past ``--limit``).

- ``fuzz``: malformed requests over raw sockets (broken request lines, bad headers, huge and
  too many headers, bad JSON, wrong types, bad Content-Length, TLS and other protocols on the
  plain port, seeded byte mutations of valid requests), counted by status class. Goal: 0 5xx,
  and none of the header blocks of 1 MB and more or of 20,000 headers served (2xx).
- ``attack``: a normal client (two chats back to back) on an idle server, then beside 70
  slowloris connections (headers trickled, one line a second), 70 stalled bodies
  (``Content-Length: 100``, then 10 bytes) and 70 of each, from 127.0.0.2, each reopened when
  the server closes it, then on the idle server again. Goal: >= 99% success and p95 within 2x
  of idle (the better of the two idle windows).
- ``memory``: distinct questions of 50-900 KB (1,000; ``--quick``: 20) to a freshly started
  server, with its RSS (``VmRSS``) before, at the peak and after. A 422 for an over-long
  question counts as handled; it stops sending after 45 s (``--quick``) or 600 s. Goal:
  RSS growth <= 50 MB.
- ``faults``: weft's local OpenAI-compatible test server (:mod:`weft.testing`) as the provider,
  failing 20% and then 100% of chat completions with each fault that comes before the first
  content token (500, 503, 429, a stream dropped after its role-only chunk, a malformed stream,
  a first byte later than the model's timeout). Breaker metrics and fallback-marked answers are
  reported when the server exposes them. Goal: 0 failed user requests at 20%; at 100%, every
  answer a marked fallback.
- ``ingest``: two (``--quick``) or four rounds of three ``weft ingest`` processes on different
  folders of made-up city bylaws into one new data directory, each started 0-1.5 s after the
  one before; then the chunks in Chroma and in BM25 against what the ingests reported. Goal:
  0 chunks lost.

The settings in :data:`SERVER_ENV` (and any ``--server-env``) are passed as environment
variables whether or not the server being measured has them: an unknown ``WEFT_`` variable in
the environment is ignored, and a server that refuses one is started again without those
settings, which the table then says.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from bench._chaos_attacks import (
    HEADER_FLOODS,
    AttackRow,
    attacker_address_works,
    fuzz,
    fuzz_cases,
    under_attack,
)
from bench._chaos_load import (
    FAULT_KINDS,
    FaultPlan,
    FaultRow,
    IngestRound,
    LargeRun,
    concurrent_ingests,
    fault_row,
    large_questions,
    write_bylaws,
)
from bench._chaos_server import ChatResult, Children, Serve

__all__ = ["main"]

PARTS = ("fuzz", "attack", "memory", "faults", "ingest")
BASE_ENV = {"WEFT_RATE_LIMIT_PER_MINUTE": "0"}
SLOW_FIRST_BYTE_S = 8.0
SERVER_ENV = {"WEFT_MODEL_TIMEOUT": "4"}
"""The remote model's total deadline in seconds: shorter than :data:`SLOW_FIRST_BYTE_S`, so a
slow first byte is a fault for the server to handle, not to wait out."""


def _yes(met: bool) -> str:
    return "**met**" if met else "**not met**"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.0f} ms"


def start(children: Children, data_dir: Path, env: dict[str, str]) -> tuple[Serve, str]:
    """A server with ``env``; if it refuses the settings of :data:`SERVER_ENV`, one without
    them. Returns it and a note of what was left out."""
    try:
        return Serve(children, data_dir, {**BASE_ENV, **env}), ""
    except RuntimeError as exc:
        guessed = {k: v for k, v in env.items() if k in SERVER_ENV}
        if not guessed:
            raise
        print(f"  the server refused {', '.join(guessed)}; starting it without them:\n{exc}")
        rest = {k: v for k, v in env.items() if k not in SERVER_ENV}
        note = f" ({', '.join(guessed)} refused by this server, left out)"
        return Serve(children, data_dir, {**BASE_ENV, **rest}), note


# -- the parts -----------------------------------------------------------------------------------


def part_fuzz(server: Serve, quick: bool) -> str:
    counts = fuzz(server.host, server.port, fuzz_cases(quick), timeout=3.0)
    classes = ["2xx", "3xx", "4xx", "5xx", "closed", "timeout"]
    rows, total = [], {c: 0 for c in [*classes, "sent", "leaks"]}
    for group, count in counts.items():
        cells = [count.by_class.get(c, 0) for c in classes]
        if group == HEADER_FLOODS:  # each one should be refused, not served
            goal, met = "0 5xx, 0 2xx", cells[3] == 0 and cells[0] == 0
        else:
            goal, met = "0 5xx", cells[3] == 0
        rows.append([group, count.sent, *cells, count.leaks, goal, _yes(met)])
        for c, n in zip(classes, cells, strict=True):
            total[c] += n
        total["sent"] += count.sent
        total["leaks"] += count.leaks
    cells = [total[c] for c in classes]
    rows.append(["**all**", total["sent"], *cells, total["leaks"], "0 5xx", _yes(cells[3] == 0)])
    header = ["group", "sent", "2xx", "3xx", "4xx", "5xx", "closed, no answer", "no answer in 3 s"]
    return _table([*header, "traceback or path shown", "goal", "met"], rows)


def _failures(results: list[ChatResult]) -> str:
    """The three most common failures of ``results``, one paragraph each."""
    failures = [r.error for r in results if not r.ok]
    common = sorted(set(failures), key=failures.count, reverse=True)[:3]
    return "".join(f"\n\nmost common failure x{failures.count(e)}: {e}" for e in common)


def part_attack(server: Serve, quick: bool) -> str:
    seconds = 8.0 if quick else 30.0
    rows: list[tuple[str, AttackRow]] = []
    for name, attack, connections in (
        ("none (idle, before)", "none", 0),
        ("slowloris", "slowloris", 70),
        ("stalled body", "stalled body", 70),
        ("both", "both", 70),
        ("none (idle, after)", "none", 0),
    ):
        each = " of each kind" if attack == "both" else ""
        print(f"  {name}: {connections} attack connections{each}, {seconds:.0f} s", flush=True)
        rows.append((name, asyncio.run(under_attack(server.url, attack, connections, seconds))))
    # The idle baseline: the better of the two idle windows (the machine's noise only adds).
    idle = min(
        (row.p95_ms for _, row in rows if row.attack == "none" and row.success >= 0.99),
        default=float("nan"),
    )
    out = []
    for name, row in rows:
        n = row.connections * (2 if row.attack == "both" else 1)
        ratio = row.p95_ms / idle if idle == idle and idle > 0 else float("nan")
        if row.attack == "none":
            goal, met = ">= 99% (baseline)", row.success >= 0.99
        else:
            goal = ">= 99%, p95 <= 2x idle"
            met = row.success >= 0.99 and ratio <= 2.0  # False when nan: nothing was answered
        answers = ", ".join(f"{k} x{v}" for k, v in sorted(row.statuses.items())) or "-"
        out.append(
            [
                name,
                n,
                len(row.results),
                f"{row.success:.1%}",
                _ms(row.p95_ms),
                "-" if ratio != ratio else f"{ratio:.2f}x",
                row.opened,
                row.closed_by_server,
                answers,
                goal,
                _yes(met),
            ]
        )
    header = ["attack", "attack sockets", "normal requests", "success", "p95 answered"]
    header += ["p95 / idle", "attack connections opened", "closed by server", "what they got"]
    results = [r for _, row in rows for r in row.results]
    return _table([*header, "goal", "met"], out) + _failures(results)


def part_memory(server: Serve, quick: bool) -> str:
    count, budget = (20, 45.0) if quick else (1000, 600.0)
    run: LargeRun = asyncio.run(large_questions(server, count, budget))
    growth = run.rss_after - run.rss_before
    statuses = ", ".join(f"{k} x{v}" for k, v in sorted(run.statuses.items()))
    row = [
        f"{run.sent} of {run.planned}",
        f"{run.kb_sent / 1000:.1f} MB",
        f"{run.seconds:.0f} s",
        statuses,
        f"{run.rss_before:.0f} MB",
        f"{run.rss_peak:.0f} MB",
        f"{run.rss_after:.0f} MB",
        f"{growth:+.0f} MB",
        "growth <= 50 MB",
        _yes(growth <= 50),
    ]
    header = ["questions sent", "question text", "took", "answers", "RSS before", "RSS peak"]
    return _table([*header, "RSS after", "growth", "goal", "met"], [row])


def part_faults(children: Children, data_dir: Path, quick: bool, env: dict[str, str]) -> str:
    from weft.testing import OpenAIServer

    plan = FaultPlan(SLOW_FIRST_BYTE_S)
    few, all_fail = (20, 4) if quick else (100, 20)
    rows: list[FaultRow] = []
    with OpenAIServer(default=plan) as provider:
        provider_env = {"OPENAI_BASE_URL": provider.base_url, "OPENAI_API_KEY": "chaos", **env}
        server, note = start(children, data_dir, provider_env)
        try:
            for rate, n in ((0.2, few), (1.0, all_fail)):
                for kind in FAULT_KINDS:
                    print(f"  {rate:.0%} {kind}: {n} chats", flush=True)
                    rows.append(asyncio.run(fault_row(server, plan, kind, rate, n)))
        finally:
            server.stop()
    out = []
    for row in rows:
        if row.rate < 1:
            goal, met = "0 failed", row.failed == 0
        else:
            goal = "0 failed, each a marked fallback"
            met = row.failed == 0 and row.fallbacks == len(row.results)
        out.append(
            [
                row.kind,
                f"{row.rate:.0%}",
                len(row.results),
                row.failed,
                row.fallbacks,
                row.provider_calls,
                row.injected,
                f"{row.p95_s:.1f} s",
                row.breaker,
                goal,
                _yes(met),
            ]
        )
    header = ["provider fault", "rate", "user requests", "failed", "fallback-marked"]
    header += ["provider calls", "faults injected", "p95", "breaker metrics", "goal", "met"]
    notes = _failures([r for row in rows for r in row.results])
    settings = ", ".join(f"{k}={v}" for k, v in env.items()) or "none"
    return (
        _table(header, out)
        + f"\n\nslow first byte: {SLOW_FIRST_BYTE_S:.0f} s; settings passed: {settings}{note}"
        + notes
    )


def part_ingest(children: Children, work: Path, quick: bool, seed: int) -> str:
    rng = random.Random(seed)
    ingests, files, rounds = (3, 24, 2) if quick else (3, 40, 4)
    folders = []
    for i in range(ingests):
        folders.append(work / "docs" / f"town-{i}")
        write_bylaws(folders[-1], ["Marrowick", "Quillhaven", "Tarnmouth"][i], files, rng)
    results: list[IngestRound] = []
    for n in range(rounds):
        print(f"  round {n + 1}: {ingests} ingests at once", flush=True)
        data_dir = work / f"ingest-{n}"
        results.append(concurrent_ingests(children, data_dir, folders, rng, timeout_s=300))
    out = []
    for n, r in enumerate(results, 1):
        out.append(
            [
                n,
                len(r.codes),
                ", ".join(f"{s:.1f}" for s in r.starts),
                ", ".join(map(str, r.codes)),
                r.expected,
                r.chroma,
                r.bm25,
                r.lost,
                r.problem or "-",
                "0 lost",
                _yes(r.lost == 0),
            ]
        )
    header = ["round", "ingests", "started at (s)", "exit codes", "chunks reported"]
    header += ["in Chroma", "in BM25", "lost", "failure shown", "goal", "met"]
    return _table(header, out)


# -- running them --------------------------------------------------------------------------------


@contextmanager
def _serving(children: Children, data_dir: Path, env: dict[str, str]) -> Iterator[Serve]:
    server, note = start(children, data_dir, env)
    print(f"server: {server.url}{note}", flush=True)
    try:
        yield server
    finally:
        server.stop()


def _run_part(name: str, body: Callable[[], str]) -> bool:
    """Print ``body()``'s table under ``name``; False when the part could not run."""
    print(f"\n### {name}\n", flush=True)
    started = time.monotonic()
    try:
        print("\n" + body(), flush=True)
    except Exception as exc:  # one broken part must not hide the others' tables
        print(f"\n{name} could not run: {type(exc).__name__}: {exc}", flush=True)
        return False
    finally:
        print(f"\n({name}: {time.monotonic() - started:.0f} s)", flush=True)
    return True


def _server_env(values: list[str]) -> dict[str, str]:
    env = dict(SERVER_ENV)
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--server-env takes NAME=VALUE, not {item!r}")
        env[name] = value
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter windows")
    parser.add_argument("--part", action="append", choices=PARTS, help="run only these parts")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every server started (repeatable); adds to or overrides "
        + ", ".join(f"{k}={v}" for k, v in SERVER_ENV.items()),
    )
    parser.add_argument("--limit", type=float, help="seconds before the watchdog stops it all")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args(argv)
    parts = args.part or list(PARTS)
    env = _server_env(args.server_env)
    children = Children(args.limit or (900 if args.quick else 3600))
    if not attacker_address_works():
        print("note: 127.0.0.2 cannot be bound here; attack connections come from 127.0.0.1")
    try:
        with tempfile.TemporaryDirectory(prefix="weft-chaos-") as tmp:
            ran = _run_all(children, Path(tmp), parts, env, args.quick, args.seed)
    except KeyboardInterrupt:
        raise SystemExit("chaos: stopped before every part had run") from None
    finally:
        children.kill_all()
    if not all(ran):
        raise SystemExit("chaos: a part could not run (see above)")


def _run_all(
    children: Children, work: Path, parts: list[str], env: dict[str, str], quick: bool, seed: int
) -> list[bool]:
    ran = []
    offline = work / "offline"
    if "fuzz" in parts or "attack" in parts:
        try:
            with _serving(children, offline, env) as server:
                if "fuzz" in parts:
                    ran.append(_run_part("malformed requests", partial(part_fuzz, server, quick)))
                if "attack" in parts:
                    body = partial(part_attack, server, quick)
                    ran.append(_run_part("slowloris and stalled bodies", body))
        except RuntimeError as exc:  # the server did not start
            print(exc, flush=True)
            ran.append(False)
    if "memory" in parts:

        def memory() -> str:
            with _serving(children, offline, env) as server:  # a fresh process
                return part_memory(server, quick)

        ran.append(_run_part("large distinct questions", memory))
    if "faults" in parts:
        body = partial(part_faults, children, work / "remote", quick, env)
        ran.append(_run_part("provider faults", body))
    if "ingest" in parts:
        ran.append(
            _run_part("concurrent ingests", partial(part_ingest, children, work, quick, seed))
        )
    return ran


if __name__ == "__main__":
    main()

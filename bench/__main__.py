"""Run every benchmark and print its tables: ``python -m bench [--quick]`` (``make bench``).

Each benchmark measures weft against the peer named in its table in the same run (chaos, a real
server under attack and failure, against its goals); the results are recorded, with the machine
they ran on, in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time

BENCHMARKS = (
    "overhead",
    "retrieval",
    "embedders",
    "graphs",
    "sse_load",
    "chaos",
    "agent",
    "resume",
    "health",
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "only", nargs="*", metavar="NAME", help=f"run only these, of {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    print(f"machine: {platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}")
    for name in args.only or BENCHMARKS:
        print(f"\n## {name}\n", flush=True)
        started = time.perf_counter()
        argv = ["--quick"] if args.quick and name != "embedders" else []
        # Each benchmark runs in its own process so one's caches and threads do not skew another.
        code = subprocess.call([sys.executable, "-m", f"bench.{name}", *argv])
        if code:
            raise SystemExit(f"bench.{name} failed with exit code {code}")
        print(f"\n({name}: {time.perf_counter() - started:.0f} s)", flush=True)


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    main()

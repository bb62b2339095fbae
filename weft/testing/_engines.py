"""Real engines on loopback, each in a temporary folder, for tests and benchmarks of several
``weft serve`` replicas (docs/deploy.md): PostgreSQL from the system's packages (``initdb`` and
``pg_ctl``, as ``nobody`` when run as root), ``chroma run``, ``redis-server``, ``nginx`` and
``weft serve`` itself.

Each starts with ``start()`` and stops with ``stop()``; :class:`Postgres` also stops and starts
again on the same port, and a :class:`Replica` can be killed (SIGKILL) and started again. A
program that is not installed raises ``RuntimeError`` saying what to install.

Example:
    >>> pg = Postgres().create()  # doctest: +SKIP
    >>> pg.url  # doctest: +SKIP
    'postgresql://weft@127.0.0.1:41234/weft'
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "Background",
    "ChromaServer",
    "Nginx",
    "Postgres",
    "Redis",
    "Replica",
    "free_port",
    "terminate",
    "wait_for",
]

INSTALL = "run 'make engines' (Debian: apt-get install postgresql redis-server nginx)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    ready: Callable[[], bool], what: str, timeout: float = 60.0, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.1)
    detail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s\n{detail}")


def program(name: str, *patterns: str) -> str:
    for pattern in (*patterns, name):
        found = sorted(glob.glob(pattern)) if "/" in pattern else [shutil.which(pattern) or ""]
        if found and found[-1]:
            return found[-1]
    raise RuntimeError(f"{name} is not installed; {INSTALL}")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Postgres:
    """A PostgreSQL cluster in a temporary folder; ``url`` names its ``weft`` database."""

    def __init__(self) -> None:
        self.bin = Path(program("initdb", "/usr/lib/postgresql/*/bin/initdb")).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="weft-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.user: str | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.user = "nobody"
            os.chown(self.dir, pwd.getpwnam(self.user).pw_uid, -1)
        self.url = f"postgresql://weft@127.0.0.1:{self.port}/weft"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["su", "-s", "/bin/sh", self.user, "-c", " ".join(f"'{a}'" for a in cmd)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def create(self) -> Postgres:
        self._run("initdb", "-D", str(self.data), "-U", "weft", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "weft", "weft")
        return self

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def terminate(proc: subprocess.Popen[Any]) -> None:
    """Stop ``proc`` if it still runs: SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Background:
    """A program run in the background, its output in ``log``; stopped with SIGTERM."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.cmd = cmd
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies on the spot, as in a crash."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)


class ChromaServer(Background):
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        chroma = str(Path(sys.executable).parent / "chroma")
        cmd = [chroma, "run", "--path", str(folder / "db"), "--host", "127.0.0.1"]
        super().__init__([*cmd, "--port", str(self.port)], folder / "chroma.log")

    def start(self) -> None:
        super().start()
        heartbeat = f"{self.url}/api/v2/heartbeat"
        wait_for(lambda: httpx.get(heartbeat, timeout=1).is_success, "chroma run", log=self.log)


class Redis(Background):
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        cmd = [program("redis-server", "/usr/bin/redis-server"), "--port", str(self.port)]
        cmd += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)]
        super().__init__(cmd, folder / "redis.log")

    def start(self) -> None:
        super().start()
        wait_for(lambda: listening(self.port), "redis-server", log=self.log)


NGINX_SITE = """
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{upstream}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://weft;
{proxy}
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


class Nginx(Background):
    """nginx on a free port with an ``upstream weft {...}`` block and the ``proxy_*`` lines of
    its one location; ``X-Upstream`` says which replica answered."""

    def __init__(self, folder: Path, upstream: str, proxy: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = folder
        conf = NGINX_SITE.format(
            dir=folder, port=self.port, upstream=_indent(upstream, 4), proxy=_indent(proxy, 12)
        )
        (folder / "nginx.conf").write_text(conf)
        cmd = [program("nginx", "/usr/sbin/nginx"), "-c", str(folder / "nginx.conf")]
        super().__init__([*cmd, "-p", str(folder), "-g", "daemon off;"], folder / "nginx.log")

    @classmethod
    def from_guide(cls, folder: Path, backends: list[str], guide: Path) -> Nginx:
        """nginx over ``backends`` (host:port) with the ``# upstream`` and ``# proxy`` nginx
        blocks of the markdown ``guide`` (docs/deploy.md), whose servers are ``weft-1:8000``,
        ``weft-2:8000``...: what is served is what the guide shows."""
        text = guide.read_text()
        blocks = {}
        for block in text.split("```nginx\n")[1:]:
            first, _, body = block.split("```", 1)[0].partition("\n")
            blocks[first.removeprefix("# ")] = body
        missing = {"upstream", "proxy"} - blocks.keys()
        if missing:
            raise ValueError(f"{guide} has no nginx block starting '# {sorted(missing)[0]}'")
        upstream = blocks["upstream"]
        for i, backend in enumerate(backends, 1):
            upstream = upstream.replace(f"weft-{i}:8000", backend)
        return cls(folder, upstream, blocks["proxy"])

    def start(self) -> None:
        if os.geteuid() == 0:  # its workers run as nobody, and write their buffers here
            os.chmod(self.dir, 0o777)
        super().start()
        wait_for(lambda: listening(self.port), "nginx", log=self.dir / "error.log")


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.splitlines())


class Replica(Background):
    """``weft serve`` on a fixed port, with ``env`` (the engines' URLs) over this process's."""

    def __init__(self, data_dir: Path, env: dict[str, str], name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"
        self.data_dir = data_dir
        cmd = [sys.executable, "-m", "weft.cli", "serve", "--port", str(self.port)]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        log = data_dir.parent / f"{name}.log"
        super().__init__([*cmd, "--data-dir", str(data_dir)], log, full_env)

    def start(self) -> None:
        super().start()

        def ready() -> bool:
            if not self.alive():
                raise AssertionError(self.log.read_text(errors="replace"))
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200

        wait_for(ready, "weft serve", timeout=90, log=self.log)

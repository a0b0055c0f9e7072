"""Servers under test, each a child process on a free 127.0.0.1 port: docpipe, nginx, moto and the
baseline apps of ``bench.baselines``; ``docpipe worker`` processes; and the memory readings of
``/proc/<pid>/status``."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import ADMIN_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 120.0
"""Generous: several workers each import docpipe, slowly on a busy machine."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _inherited_environment() -> dict[str, str]:
    """The bench's environment without ``DOCPIPE_*``: docpipe refuses unknown ones, and a stray one
    would change what is measured."""
    return {name: value for name, value in os.environ.items() if not name.startswith("DOCPIPE_")}


class ChildServer:
    """One server process; output goes to a log file (never a pipe that nobody reads). It is up once
    ``health_path`` answers 200, or, for a process that serves no HTTP, once ``ready_line`` is logged."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        health_path: str = "/health/live",
        ready_line: str | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self._argv = argv
        self._env = {**_inherited_environment(), **(env or {})}
        self._log_path = log_path
        self._health_path = health_path
        self._ready_line = ready_line
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process.pid

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._argv, env=self._env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {STARTUP_TIMEOUT_S:g} s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        if self._ready_line is not None:
            return self._ready_line in self.log_tail()
        try:
            return httpx.get(self.base_url + self._health_path, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def running(*servers: ChildServer) -> Iterator[None]:
    """Start ``servers`` in order; stop every one that started, in reverse order, whatever happens."""
    started: list[ChildServer] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        yield
    finally:
        for server in reversed(started):
            server.stop()


def docpipe(data_dir: Path, log_dir: Path, env: Mapping[str, str] | None = None) -> ChildServer:
    """``python -m docpipe.entrypoints.cli serve``, configured through ``DOCPIPE_*`` like a user's."""
    port = free_port()
    settings = {
        "DOCPIPE_BLOB_STORE": "filesystem",
        "DOCPIPE_REPOSITORY": "sqlite",
        "DOCPIPE_DATA_DIR": str(data_dir),
        "DOCPIPE_HOST": "127.0.0.1",
        "DOCPIPE_PORT": str(port),
        "DOCPIPE_ADMIN_KEY": ADMIN_KEY,
        **(env or {}),
    }
    return ChildServer(
        "docpipe",
        [sys.executable, "-m", "docpipe.entrypoints.cli", "serve"],
        port,
        log_dir / f"docpipe-{port}.log",
        env=settings,
    )


def docpipe_worker(data_dir: Path, log_dir: Path, env: Mapping[str, str]) -> ChildServer:
    """``python -m docpipe.entrypoints.cli worker`` on the stores of a ``docpipe`` with the same ``env``."""
    settings = {
        "DOCPIPE_BLOB_STORE": "filesystem",
        "DOCPIPE_REPOSITORY": "sqlite",
        "DOCPIPE_DATA_DIR": str(data_dir),
        **env,
    }
    return ChildServer(
        "docpipe worker",
        [sys.executable, "-m", "docpipe.entrypoints.cli", "worker"],
        0,
        log_dir / f"docpipe-worker-{uuid.uuid4().hex[:8]}.log",
        env=settings,
        ready_line="waiting for documents to process",
    )


def baseline(app: str, log_dir: Path, *arguments: str) -> ChildServer:
    """One of the bare Litestar apps of ``bench.baselines``, under uvicorn configured as docpipe's."""
    port = free_port()
    return ChildServer(
        f"bare {app} app",
        [sys.executable, "-m", "bench.baselines", app, "--port", str(port), *arguments],
        port,
        log_dir / f"baseline-{app}-{port}.log",
    )


def nginx(root: Path, work_dir: Path) -> ChildServer:
    """nginx serving the files of ``root`` with sendfile, one worker, everything it writes in ``work_dir``."""
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    # Run as root, nginx would switch its worker to "nobody", which cannot read a private temp folder.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    config = f"""
{user}
worker_processes 1;
daemon off;
pid {work_dir}/nginx.pid;
error_log {work_dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    access_log {work_dir}/access.log;
    client_body_temp_path {work_dir}/client_body;
    proxy_temp_path {work_dir}/proxy;
    fastcgi_temp_path {work_dir}/fastcgi;
    uwsgi_temp_path {work_dir}/uwsgi;
    scgi_temp_path {work_dir}/scgi;
    sendfile on;
    keepalive_timeout 65;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /health/live {{ return 200 "ok\\n"; }}
    }}
}}
"""
    config_path = work_dir / "nginx.conf"
    config_path.write_text(config)
    return ChildServer(
        "nginx",
        ["nginx", "-p", str(work_dir), "-c", str(config_path), "-e", str(work_dir / "error.log")],
        port,
        work_dir / "stdout.log",
    )


def moto(log_dir: Path) -> ChildServer:
    """moto server (S3 emulated in Python), as the test suite starts it."""
    port = free_port()
    return ChildServer(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        port,
        log_dir / f"moto-{port}.log",
        env={"MOTO_CALL_RESET_API": "false"},
        health_path="/moto-api/",
    )


# ---- memory -----------------------------------------------------------------------------------


def memory_kib(pid: int) -> tuple[int, int]:
    """Current and peak resident set size of ``pid`` (VmRSS and VmHWM), in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def reset_peak(pid: int) -> bool:
    """Set VmHWM back to VmRSS (``echo 5 > /proc/<pid>/clear_refs``); False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants (nginx's worker), in seconds."""
    total_ticks = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        # Fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
        fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        total_ticks += int(fields[11]) + int(fields[12])
        pending += _children(current)
    return total_ticks / os.sysconf("SC_CLK_TCK")


class PeakGrowth:
    """Peak RSS growth of a process over a block: VmHWM at the end minus VmRSS at the start.

    The peak is reset at the start where the kernel allows it, so that each transfer is measured on
    its own; otherwise the peak is the process's since start-up (``reset`` tells which).
    """

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.reset = False
        self._start_kib = 0
        self.growth_kib = 0

    def __enter__(self) -> PeakGrowth:
        self.reset = reset_peak(self._pid)
        self._start_kib, _ = memory_kib(self._pid)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _, peak_kib = memory_kib(self._pid)
        self.growth_kib = peak_kib - self._start_kib

    @property
    def growth_mib(self) -> float:
        return self.growth_kib / 1024

"""docpipe served by a real uvicorn in a child process, configured through DOCPIPE_* like a user's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.moto_server import free_port, stop_process

PORT_ATTEMPTS = 3


class LiveServer:
    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self._env = {**os.environ, **env, "DOCPIPE_HOST": "127.0.0.1"}
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._take_a_port()

    def _take_a_port(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._env["DOCPIPE_PORT"] = str(self.port)

    def start(self, timeout: float = 60) -> None:
        """Start docpipe and wait until it answers. ``free_port`` only finds a port free a moment ago:
        another test process may bind it first, and then docpipe is started again on another."""
        for _ in range(PORT_ATTEMPTS - 1):
            logged_before = self._log_path.stat().st_size if self._log_path.exists() else 0
            try:
                self._start(timeout)
                return
            except RuntimeError:
                with self._log_path.open("rb") as log:
                    log.seek(logged_before)
                    if b"address already in use" not in log.read():
                        raise
            self._take_a_port()
        self._start(timeout)

    def _start(self, timeout: float) -> None:
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "docpipe.entrypoints.cli", "serve"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docpipe exited at start-up:\n{self._log_path.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()  # not left running (and warned about) into later tests
        raise RuntimeError(f"docpipe did not answer within {timeout:g} s:\n{self._log_path.read_text()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_process(self.process, sig, timeout=30)
            self.process = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def log_records(self, since: int = 0) -> list[dict[str, Any]]:
        """The server's log lines from character ``since`` on, each parsed as the JSON object docpipe
        writes when its output is not a terminal (``DOCPIPE_LOG_FORMAT``)."""
        return [json.loads(line) for line in self.log()[since:].splitlines() if line.strip()]

    def requests_logged(self, since: int = 0) -> list[dict[str, Any]]:
        """The access log's records (one per request) from character ``since`` on."""
        return [record for record in self.log_records(since) if record["logger"] == "docpipe.access"]

    def requests_logged_once(
        self, enough: Callable[[list[dict[str, Any]]], bool], since: int = 0, timeout: float = 10
    ) -> list[dict[str, Any]]:
        """``requests_logged(since)`` once ``enough`` of them are there, or as they are after ``timeout``
        seconds (for the caller's assertion to show): a request's line is written after its answer has
        gone, at the end of the server's turn of its event loop, so a client can see the answer first."""
        deadline = time.monotonic() + timeout
        while not enough(records := self.requests_logged(since)) and time.monotonic() < deadline:
            time.sleep(0.01)
        return records


def rss_and_peak_kib(pid: int) -> tuple[int, int]:
    """Current and peak resident set size of ``pid`` (VmRSS and VmHWM), in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


@contextmanager
def live_server(env: Mapping[str, str], log_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(env, log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()

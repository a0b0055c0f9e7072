"""A real moto server in a child process, so S3 and DynamoDB are exercised over HTTP, not patched.

It is started through ``tests.atomic_moto``, which keeps DynamoDB transactions atomic as AWS does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPOSITORY = Path(__file__).parents[1]


def stop_process(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Send ``sig`` and wait for the exit; kill the process if it outlives ``timeout`` seconds."""
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServer:
    """Start, stop and restart moto server on one fixed loopback port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.atomic_moto", "127.0.0.1", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MOTO_CALL_RESET_API": "false"},
            cwd=REPOSITORY,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not answer within 30 seconds")

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, signal.SIGTERM, timeout=10)
            self._process = None


@contextmanager
def running_moto_server() -> Iterator[MotoServer]:
    server = MotoServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()

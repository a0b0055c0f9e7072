"""``docpipe serve`` as an operator sees it in a terminal: failures and Ctrl+C say one line, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.faults.support import filesystem_env, wait_for
from tests.moto_server import free_port


def _serve(env: dict[str, str]) -> subprocess.Popen[str]:
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("DOCPIPE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "docpipe.entrypoints.cli", "serve"],
        env=inherited | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_start_up_with_unreachable_stores_says_one_line(tmp_path: Path) -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    process = _serve(
        {
            "DOCPIPE_BLOB_STORE": "s3",
            "DOCPIPE_REPOSITORY": "dynamodb",
            "DOCPIPE_DATA_DIR": str(tmp_path),
            "AWS_ENDPOINT_URL": nothing_listens,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert [line for line in stderr.splitlines() if "CRITICAL" in line] == [
        line for line in stderr.splitlines() if "cannot start" in line
    ]
    assert stderr.count("cannot start") == 1, stderr


def test_ctrl_c_stops_the_server_without_a_traceback(tmp_path: Path) -> None:
    port = free_port()
    process = _serve({**filesystem_env(tmp_path), "DOCPIPE_PORT": str(port)})
    try:

        def serving() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(serving, 30, "docpipe answers")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "Traceback" not in stderr, stderr
    assert "KeyboardInterrupt" not in stderr, stderr
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "stopped: interrupted" in stderr.splitlines()[-1], stderr

"""SIGTERM while an upload streams in: uvicorn's graceful shutdown, then a restart on the same data.

On SIGTERM docpipe stops accepting connections, lets requests in flight finish for up to
``DOCPIPE_SHUTDOWN_TIMEOUT`` seconds (30 by default; 10 here), then cancels them. Either way, after
a restart the upload is complete (it was answered 201 and downloads intact) or invisible, and a
cancelled upload leaves no bytes behind, since cancellation deletes the blob like any other failure.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.credentials import ADMIN_HEADERS
from tests.faults.support import (
    MIB,
    GatedBody,
    blob_files,
    download_digest,
    filesystem_env,
    list_all,
    wait_for,
)
from tests.live_server import LiveServer

GRACEFUL_TIMEOUT_SECONDS = 10
"""``DOCPIPE_SHUTDOWN_TIMEOUT`` of the server under test: long enough for the upload's last 48 MiB."""
EXIT_BOUND_SECONDS = GRACEFUL_TIMEOUT_SECONDS + 15
"""Under the default's 30 s, so that a server ignoring the setting fails the stalled-upload test."""
UPLOAD_SIZE = 64 * MIB


@dataclass
class Upload:
    body: GatedBody
    response: httpx.Response | None = None
    error: Exception | None = None
    thread: threading.Thread = field(init=False)

    def start(self, base_url: str) -> None:
        self.thread = threading.Thread(target=self._run, args=(base_url,))
        self.thread.start()

    def _run(self, base_url: str) -> None:
        try:
            with httpx.Client(
                base_url=base_url, headers=ADMIN_HEADERS, timeout=EXIT_BOUND_SECONDS + 30
            ) as client:
                self.response = client.post(
                    "/documents",
                    params={"filename": "in-flight.bin"},
                    content=self.body,
                    headers={"content-type": "application/octet-stream"},
                )
        except httpx.TransportError as error:
            self.error = error


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    env = filesystem_env(tmp_path / "data") | {"DOCPIPE_SHUTDOWN_TIMEOUT": str(GRACEFUL_TIMEOUT_SECONDS)}
    server = LiveServer(env, tmp_path / "docpipe.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _accepts_connections(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/health/live", timeout=2)
    except httpx.TransportError:
        return False
    return True


def _start_upload_and_sigterm(server: LiveServer, gate: threading.Event) -> Upload:
    upload = Upload(GatedBody(7, UPLOAD_SIZE, 16 * MIB, gate))
    upload.start(server.base_url)
    assert upload.body.reached.wait(timeout=60), "the upload never got going"
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: not _accepts_connections(server.base_url), 15, "new connections refused after SIGTERM")
    assert server.process.poll() is None, "exited at once instead of waiting for the upload in flight"
    return upload


def _wait_for_exit(server: LiveServer) -> int:
    assert server.process is not None
    code = server.process.wait(timeout=EXIT_BOUND_SECONDS)
    server.process = None
    return code


def test_sigterm_lets_the_upload_in_flight_finish(server: LiveServer, tmp_path: Path) -> None:
    gate = threading.Event()
    upload = _start_upload_and_sigterm(server, gate)
    gate.set()  # the client carries on after the SIGTERM
    upload.thread.join(timeout=EXIT_BOUND_SECONDS)
    code = _wait_for_exit(server)

    assert upload.error is None, upload.error
    assert upload.response is not None
    assert upload.response.status_code == 201, upload.response.text
    document = upload.response.json()
    assert document["sha256"] == upload.body.sha256
    assert code in (0, -signal.SIGTERM), f"exit code {code}:\n{server.log()}"
    assert "Traceback" not in server.log()

    server.start()
    with httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=60) as client:
        assert [listed["id"] for listed in list_all(client)] == [document["id"]]
        assert download_digest(client, document["id"]) == (200, UPLOAD_SIZE, upload.body.sha256)


@pytest.mark.slow
def test_sigterm_with_a_stalled_upload_exits_after_the_graceful_timeout(
    server: LiveServer, tmp_path: Path
) -> None:
    gate = threading.Event()
    upload = _start_upload_and_sigterm(server, gate)
    try:
        code = _wait_for_exit(server)  # the client sends nothing more: uvicorn gives up on it
    finally:
        gate.set()
        upload.thread.join(timeout=60)

    answer = upload.error if upload.response is None else upload.response.status_code
    print(f"exit code {code}; the stalled client got {answer!r}")
    assert code in (0, -signal.SIGTERM), f"exit code {code}:\n{server.log()}"
    # uvicorn answers a request it cancels with its own plain-text 500 when it can still respond.
    assert upload.response is None or not upload.response.is_success, "acknowledged a cut upload"
    blobs, partials = blob_files(tmp_path / "data")
    assert not partials, f"the cancelled upload left {[path.name for path in partials]}"
    assert not blobs, f"the cancelled upload left blobs {blobs}"

    server.start()
    with httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=60) as client:
        assert list_all(client) == []

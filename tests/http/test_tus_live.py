"""tus against a real server (filesystem + SQLite): tuspy uploads in small chunks, interrupted and
resumed by a fresh client; two PATCHes race; a server killed with SIGKILL mid-PATCH resumes correctly."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tusclient.client import TusClient

from tests.faults.raw_http import read_response
from tests.live_server import LiveServer, live_server

ADMIN_KEY = "tus-live-admin-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
TUS = {**AUTH, "Tus-Resumable": "1.0.0"}
CHUNK = 256 * 1024
DATA = os.urandom(6 * 1024 * 1024 + 12345)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    env = {
        "DOCPIPE_BLOB_STORE": "filesystem",
        "DOCPIPE_REPOSITORY": "sqlite",
        "DOCPIPE_DATA_DIR": str(tmp_path / "data"),
        "DOCPIPE_ADMIN_KEY": ADMIN_KEY,
    }
    with live_server(env, tmp_path / "server.log") as running:
        yield running


def tus_client(server: LiveServer) -> TusClient:
    return TusClient(f"{server.base_url}/uploads", headers=AUTH)


def stored_sha256(server: LiveServer, upload_url: str) -> str:
    """The sha-256 of the document an upload became, from its bytes as served."""
    head = httpx.head(upload_url, headers=TUS)
    assert head.status_code == 200, head.text
    location = head.headers["location"]
    content = httpx.get(f"{server.base_url}{location}/content", headers=AUTH)
    assert (
        hashlib.sha256(content.content).hexdigest()
        == httpx.get(f"{server.base_url}{location}", headers=AUTH).json()["sha256"]
    )
    return hashlib.sha256(content.content).hexdigest()


def test_tuspy_uploads_in_small_chunks_is_interrupted_and_resumes(server: LiveServer, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(DATA)
    with source.open("rb") as stream:  # tuspy leaves files it opened itself open
        first = tus_client(server).uploader(
            file_stream=stream, chunk_size=CHUNK, metadata={"filename": "big.bin"}, upload_checksum=True
        )
        first.upload(stop_at=len(DATA) // 2)
    assert first.url is not None
    head = httpx.head(first.url, headers=TUS)
    assert int(head.headers["upload-offset"]) >= len(DATA) // 2
    assert "location" not in head.headers
    with source.open("rb") as stream:
        resumed = tus_client(server).uploader(
            file_stream=stream, chunk_size=CHUNK, url=first.url, upload_checksum=True
        )
        resumed.upload()
    assert stored_sha256(server, first.url) == hashlib.sha256(DATA).hexdigest()


def start_patch(server: LiveServer, upload_url: str, offset: int, length: int, sent: bytes) -> socket.socket:
    """A PATCH whose body is ``length`` bytes long, of which only ``sent`` has been sent so far."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    path = upload_url.removeprefix(server.base_url)
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {length}\r\nUpload-Offset: {offset}\r\nTus-Resumable: 1.0.0\r\n"
        f"Authorization: Bearer {ADMIN_KEY}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def create(server: LiveServer, length: int) -> str:
    response = httpx.post(
        f"{server.base_url}/uploads",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": "filename YS5iaW4="},
    )
    assert response.status_code == 201, response.text
    return f"{server.base_url}{response.headers['location']}"


def wait_for_offset(upload_url: str, offset: int) -> None:
    deadline = time.monotonic() + 60
    while int(httpx.head(upload_url, headers=TUS).headers["upload-offset"]) != offset:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_two_racing_patches_one_wins_one_409_and_bytes_never_interleave(server: LiveServer) -> None:
    data = os.urandom(2 * CHUNK)
    url = create(server, len(data))
    slow = start_patch(server, url, 0, CHUNK, data[: CHUNK // 2])
    time.sleep(0.5)  # the slow PATCH has its lease once its first bytes arrived
    rival = httpx.patch(
        url,
        content=b"x" * CHUNK,
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert rival.status_code == 409, rival.text
    slow.sendall(data[CHUNK // 2 : CHUNK])
    answer = read_response(slow)
    slow.close()
    assert (answer.status, answer.headers["upload-offset"]) == (204, str(CHUNK))
    last = httpx.patch(
        url,
        content=data[CHUNK:],
        headers={**TUS, "Upload-Offset": str(CHUNK), "Content-Type": "application/offset+octet-stream"},
    )
    assert last.status_code == 204, last.text
    assert stored_sha256(server, url) == hashlib.sha256(data).hexdigest()


def test_sigkill_mid_patch_keeps_the_durable_offset_and_the_upload_completes(
    server: LiveServer, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(DATA)
    url = create(server, len(DATA))
    first = httpx.patch(
        url,
        content=DATA[:CHUNK],
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert first.status_code == 204
    cut = start_patch(server, url, CHUNK, 4 * CHUNK, DATA[CHUNK : 3 * CHUNK])
    time.sleep(1)  # the bytes sent are being written when the server dies
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=30)
    server.process = None
    cut.close()
    server.start()
    wait_for_offset(url, CHUNK)
    deadline = time.monotonic() + 60
    while True:  # the killed PATCH's lease lapses within seconds
        try:
            with source.open("rb") as stream:
                tus_client(server).uploader(file_stream=stream, chunk_size=CHUNK, url=url).upload()
            break
        except Exception:
            assert time.monotonic() < deadline
            time.sleep(1)
    assert stored_sha256(server, url) == hashlib.sha256(DATA).hexdigest()

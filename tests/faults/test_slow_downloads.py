"""Download clients that stop reading must not starve a real docpipe server's S3 connections.

Each slow client asks for a document several MiB long, reads the first 100 bytes (the headers, sent
once S3 answered the GetObject) and then reads nothing more. There are twice as many of them as the
S3 client has pooled connections: everyone else must still be served while they hang on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import cast

import httpx
import msgspec
import pytest

from docpipe.adapters import s3
from docpipe.container import Container
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.service import DocumentService
from tests.adapters_under_test import settings_for
from tests.credentials import ADMIN_HEADERS, RAW_ADMIN_HEADERS
from tests.faults.support import MIB, aws_env, download_digest, pattern_chunks, pattern_sha256
from tests.http.helpers import serve
from tests.live_server import LiveServer, live_server
from tests.moto_server import MotoServer

POOL_CONNECTIONS = 4
SLOW_CLIENTS = 2 * POOL_CONNECTIONS
DOCUMENT_SIZE = 16 * MIB
CLIENT_TIMEOUT = httpx.Timeout(60.0)
"""Generous: nothing here may hang, but the machine is shared and moto is slow."""


@contextlib.contextmanager
def stalled_download(server: LiveServer, document_id: str) -> Iterator[socket.socket]:
    """A download whose client reads its first 100 bytes, then leaves the rest unread."""
    sock = socket.socket()
    # A small receive window, so the server's writes block soon instead of filling kernel buffers.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(CLIENT_TIMEOUT.read)
    with sock:
        sock.connect(("127.0.0.1", server.port))
        head = f"GET /documents/{document_id}/content HTTP/1.1\r\nHost: docpipe\r\n{RAW_ADMIN_HEADERS}\r\n"
        sock.sendall(head.encode())
        received = b""
        while len(received) < 100:
            chunk = sock.recv(100 - len(received))
            assert chunk, f"the server closed a slow download after {received!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200"), received
        yield sock


def test_clients_that_stop_reading_leave_s3_usable(moto_server: MotoServer, tmp_path: Path) -> None:
    env = {
        **aws_env(moto_server.endpoint_url, moto_server.endpoint_url, tmp_path / "data"),
        "DOCPIPE_S3_MAX_CONNECTIONS": str(POOL_CONNECTIONS),
    }
    with (
        live_server(env, tmp_path / "docpipe.log") as server,
        httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=CLIENT_TIMEOUT) as client,
        contextlib.ExitStack() as stalled,
    ):
        uploaded = client.post(
            "/documents",
            params={"filename": "big.bin"},
            content=pattern_chunks(1, DOCUMENT_SIZE),
            headers={"content-type": "application/octet-stream"},
        )
        assert uploaded.status_code == 201, uploaded.text
        big = uploaded.json()["id"]

        for _ in range(SLOW_CLIENTS):
            stalled.enter_context(stalled_download(server, big))

        body = b"written while downloads stall\n"
        written = client.post(
            "/documents",
            params={"filename": "small.txt"},
            content=body,
            headers={"content-type": "text/plain"},
        )
        assert written.status_code == 201, written.text
        assert written.json()["sha256"] == hashlib.sha256(body).hexdigest()
        assert download_digest(client, big) == (200, DOCUMENT_SIZE, pattern_sha256(1, DOCUMENT_SIZE))
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text


HOLD_SECONDS = 90.0
"""How long the test holds the one S3 connection: generous, as the refused read may first wait
``s3.CONNECTION_WAIT`` in each of botocore's attempts on a shared machine. Without the bound on
that wait, the read would be served only once the connection comes back, and with 200."""
CONNECTION_WAIT_SECONDS = 1.0
"""The bound on the wait for a pooled connection here: that there is one is what the test checks, not
its value (5 s), which each of botocore's attempts would otherwise wait out. For the same reason the
read gets one attempt (``AWS_MAX_ATTEMPTS``), not 3 with back-offs between them."""


async def test_a_read_finding_every_s3_connection_held_gets_503_and_readiness_still_answers(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download that keeps its S3 connection must not make the next one wait until it ends, nor the
    readiness check, which has connections of its own."""
    monkeypatch.setattr(s3, "CONNECTION_WAIT", CONNECTION_WAIT_SECONDS)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    settings = settings_for(
        blob_store="s3",
        repository="dynamodb",
        data_dir=tmp_path / "data",
        aws_endpoint_url=moto_server.endpoint_url,
    )
    settings = msgspec.structs.replace(settings, s3=msgspec.structs.replace(settings.s3, max_connections=1))
    container = Container(settings=settings)
    container.s3_release_after.override(HOLD_SECONDS)
    async with serve(settings, container) as client:
        # Larger than socket buffers take in: the held download's S3 response stays unread.
        held_body = b"".join(pattern_chunks(2, DOCUMENT_SIZE))
        uploaded = await client.post("/documents", params={"filename": "held.bin"}, content=held_body)
        assert uploaded.status_code == 201, uploaded.text
        document_id = uploaded.json()["id"]

        async def hold_the_connection() -> asyncio.Task[None]:
            """Open a download and read none of it for ``HOLD_SECONDS``, in the app's own event loop
            (where its S3 client is)."""
            service: DocumentService = await container.service()  # type: ignore[misc]
            chunks = await service.open_content(await service.get(DEFAULT_OWNER, document_id))

            async def release_later() -> None:
                try:
                    await asyncio.sleep(HOLD_SECONDS)
                finally:
                    await cast("AsyncGenerator[bytes, None]", chunks).aclose()

            return asyncio.create_task(release_later())

        async def release_now(holder: asyncio.Task[None]) -> None:
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)

        portal = client.blocking_portal
        holder = portal.call(hold_the_connection)
        try:
            refused = await client.get(f"/documents/{document_id}/content")
            assert refused.status_code == 503, refused.headers
            assert refused.headers["content-type"] == "application/problem+json"
            ready = await client.get("/health/ready")
            assert ready.status_code == 200, ready.text
        finally:
            portal.call(release_now, holder)

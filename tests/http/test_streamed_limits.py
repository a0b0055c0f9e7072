"""Limits a test client cannot exercise: chunked bodies with no Content-Length, on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.credentials import ADMIN_ENV, ADMIN_HEADERS
from tests.live_server import live_server

LIMIT = 1024 * 1024


def test_a_multipart_body_over_the_limit_after_its_file_part_is_refused(tmp_path: Path) -> None:
    boundary = "junkboundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\ntiny'
    tail = f"\r\n--{boundary}--\r\n"

    def body() -> Iterator[bytes]:  # a generator: sent chunked, so only the stream can tell the size
        yield (head + tail).encode()
        for _ in range(3 * LIMIT // 65536):
            yield b"x" * 65536

    env = {"DOCPIPE_DATA_DIR": str(tmp_path), "DOCPIPE_MAX_UPLOAD_BYTES": str(LIMIT), **ADMIN_ENV}
    with (
        live_server(env, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS) as client,
    ):
        response = client.post(
            "/documents",
            content=body(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert client.get("/documents").json()["documents"] == []

"""A 256 MiB document goes up and down through a real server whose memory stays flat."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.credentials import ADMIN_ENV, ADMIN_HEADERS
from tests.live_server import live_server, rss_and_peak_kib

MIB = 1024 * 1024
DOCUMENT_MIB = 256
GROWTH_LIMIT_MIB = 64

pytestmark = pytest.mark.slow


def _generated_chunks(total_mib: int, digest: hashlib._Hash) -> Iterator[bytes]:
    block = bytes(range(256)) * (MIB // 256)
    for index in range(total_mib):
        chunk = index.to_bytes(4, "big") + block[4:]
        digest.update(chunk)
        yield chunk


def _multipart_body(total_mib: int, digest: hashlib._Hash, boundary: str) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from _generated_chunks(total_mib, digest)
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("shape", ["raw", "multipart"])
def test_large_upload_and_download_keep_server_memory_flat(tmp_path: Path, shape: str) -> None:
    env = {
        "DOCPIPE_BLOB_STORE": "filesystem",
        "DOCPIPE_REPOSITORY": "sqlite",
        "DOCPIPE_DATA_DIR": str(tmp_path),
        **ADMIN_ENV,
    }
    with (
        live_server(env, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.base_url, headers=ADMIN_HEADERS, timeout=120) as client,
    ):
        client.get("/documents")  # warm up imports and connections before the baseline
        baseline_kib, _ = rss_and_peak_kib(server.pid)
        sent = hashlib.sha256()
        if shape == "raw":
            response = client.post(
                "/documents", params={"filename": "big.bin"}, content=_generated_chunks(DOCUMENT_MIB, sent)
            )
        else:
            boundary = "docpipe-test-boundary"
            response = client.post(
                "/documents",
                content=_multipart_body(DOCUMENT_MIB, sent, boundary),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            )
        assert response.status_code == 201, response.text
        document = response.json()
        assert document["size"] == DOCUMENT_MIB * MIB
        assert document["sha256"] == sent.hexdigest()

        received = hashlib.sha256()
        size = 0
        with client.stream("GET", f"/documents/{document['id']}/content") as download:
            assert download.status_code == 200
            for chunk in download.iter_bytes(MIB):
                received.update(chunk)
                size += len(chunk)
        assert size == DOCUMENT_MIB * MIB
        assert received.hexdigest() == sent.hexdigest()

        _, peak_kib = rss_and_peak_kib(server.pid)
        growth_mib = (peak_kib - baseline_kib) / 1024
        print(f"{shape}: server peak RSS grew by {growth_mib:.1f} MiB")
        assert growth_mib < GROWTH_LIMIT_MIB, f"server peak RSS grew by {growth_mib:.1f} MiB"

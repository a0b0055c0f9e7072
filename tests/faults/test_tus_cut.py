"""A tus PATCH whose connection is cut part way keeps the bytes that arrived, as tus requires: HEAD then
says how far they got, and the upload resumes from there to the exact document.

A ``FaultProxy`` in front of a real docpipe resets the connection once 16 MiB of the body went through.
The server stores what it read before the reset (socket buffers in between are lost, a few MiB): on S3
that is usually a whole 8 MiB part and a tail (``test_s3_resumable`` covers every such case exactly).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.credentials import ADMIN_HEADERS
from tests.faults.proxy import Direction, FaultProxy
from tests.faults.support import MIB, proxied_live_server

PAIRS = [("filesystem", "sqlite"), ("s3", "dynamodb")]
DATA = os.urandom(20 * MIB + 321)
CUT_AFTER = 16 * MIB
TUS = {**ADMIN_HEADERS, "Tus-Resumable": "1.0.0"}
BYTES = {**TUS, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture(params=PAIRS, ids=["+".join(pair) for pair in PAIRS])
def proxied_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FaultProxy, str]]:
    with proxied_live_server(request, tmp_path) as proxied:
        yield proxied


def recorded_offset(client: httpx.Client, location: str) -> int:
    """The offset once the cut PATCH let go of the upload (it records what it stored as it ends)."""
    deadline = time.monotonic() + 60
    while (offset := int(client.head(location, headers=TUS).headers["upload-offset"])) == 0:
        assert time.monotonic() < deadline, "the cut PATCH recorded nothing"
        time.sleep(0.1)
    return offset


def test_a_patch_cut_mid_body_keeps_what_arrived_and_the_upload_resumes(
    proxied_server: tuple[FaultProxy, str],
) -> None:
    proxy, direct_url = proxied_server
    with httpx.Client(base_url=direct_url, timeout=60) as direct:
        created = direct.post(
            "/uploads",
            headers={**TUS, "Upload-Length": str(len(DATA)), "Upload-Metadata": "filename Y3V0LmJpbg=="},
        )
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        proxy.cut_after(Direction.UPSTREAM, CUT_AFTER)
        with pytest.raises(httpx.TransportError):
            httpx.patch(
                f"{proxy.url}{location}", content=DATA, headers={**BYTES, "Upload-Offset": "0"}, timeout=60
            )
        offset = recorded_offset(direct, location)
        assert 0 < offset <= CUT_AFTER
        resumed = direct.patch(
            location, content=DATA[offset:], headers={**BYTES, "Upload-Offset": str(offset)}
        )
        assert resumed.status_code == 204, resumed.text
        document = direct.get(resumed.headers["location"], headers=ADMIN_HEADERS).json()
        assert document["sha256"] == hashlib.sha256(DATA).hexdigest()
        content = direct.get(f"{resumed.headers['location']}/content", headers=ADMIN_HEADERS).content
        assert content == DATA

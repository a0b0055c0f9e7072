"""A server killed mid-PATCH on S3 and DynamoDB, in process: what the kill leaves is made directly, and
another server (a container of its own, which never saw the upload's bytes) resumes it.

A PATCH killed with SIGKILL leaves its lease held in DynamoDB and bytes past the recorded offset in S3
(a tail, here), and never records them. tests/http/test_tus_live.py kills a real server on the
filesystem and SQLite; a second live server here would cost a start-up, a restart and a lease's lapse
(about 15 s), where this state costs nothing to make.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from docpipe.config import Settings
from docpipe.container import Container, close
from docpipe.domain.identity import DEFAULT_OWNER
from docpipe.domain.model import utc_now
from docpipe.domain.uploads.session import LEASE, new_lease
from tests.http.conftest import MAX_UPLOAD_BYTES
from tests.http.helpers import Client, serve
from tests.http.test_tus import TUS, create, send

MIB = 1024 * 1024
DATA = os.urandom(MAX_UPLOAD_BYTES)
RECORDED = 3 * MIB


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def kill_mid_patch(settings: Settings, upload_id: str) -> None:
    """What a server killed 11 s into a PATCH from ``RECORDED`` leaves: its lease (lapsed by now) and
    3 MiB of other bytes stored past the offset, never recorded."""
    dead = Container(settings=settings)
    try:
        sessions, blobs = await dead.upload_sessions(), await dead.resumable_blobs()
        session = await sessions.get(DEFAULT_OWNER, upload_id)
        died = utc_now() - LEASE - timedelta(seconds=1)
        await sessions.take_lease(DEFAULT_OWNER, upload_id, RECORDED, new_lease(died), died)
        assert await blobs.append(session.blob_key, RECORDED, stream(b"y" * 3 * MIB)) == 6 * MIB
    finally:
        await close(dead)


@pytest.mark.parametrize("settings", [("s3", "dynamodb")], indirect=True, ids=["s3+dynamodb"])
async def test_a_patch_killed_mid_body_resumes_from_the_recorded_offset_on_another_server(
    client: Client, settings: Settings
) -> None:
    location = await create(client, len(DATA), filename="killed.bin")
    assert (await send(client, location, 0, DATA[:RECORDED])).status_code == 204
    await kill_mid_patch(settings, location.rsplit("/", 1)[1])
    async with serve(settings) as other:
        head = await other.head(location, headers=TUS)
        assert (head.status_code, head.headers["upload-offset"]) == (200, str(RECORDED))
        resumed = await send(other, location, RECORDED, DATA[RECORDED:])
        assert resumed.status_code == 204, resumed.text
        document = (await other.get(resumed.headers["location"])).json()
        assert document["sha256"] == hashlib.sha256(DATA).hexdigest()
        assert (await other.get(f"{resumed.headers['location']}/content")).content == DATA

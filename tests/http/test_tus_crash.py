"""A server killed mid-PATCH on S3 and DynamoDB, in process: what the kill leaves is made directly, and
another process (a container of its own, which never saw the upload's bytes) resumes it.

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
from tests.http.helpers import Client
from tests.http.test_tus import TUS, create, send

MIB = 1024 * 1024
DATA = os.urandom(3 * MIB)
RECORDED = MIB


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@pytest.mark.parametrize("settings", [("s3", "dynamodb")], indirect=True, ids=["s3+dynamodb"])
async def test_a_patch_killed_mid_body_resumes_from_the_recorded_offset_in_another_process(
    client: Client, settings: Settings
) -> None:
    location = await create(client, len(DATA), filename="killed.bin")
    assert (await send(client, location, 0, DATA[:RECORDED])).status_code == 204
    upload_id = location.rsplit("/", 1)[1]
    other = Container(settings=settings)
    try:
        sessions, blobs = await other.upload_sessions(), await other.resumable_blobs()
        # Killed 11 s into a PATCH from RECORDED: its lease (lapsed by now) and a MiB of other bytes
        # stored past the offset, never recorded.
        died = utc_now() - LEASE - timedelta(seconds=1)
        await sessions.take_lease(DEFAULT_OWNER, upload_id, RECORDED, new_lease(died), died)
        blob_key = (await sessions.get(DEFAULT_OWNER, upload_id)).blob_key
        assert await blobs.append(blob_key, RECORDED, stream(b"y" * MIB)) == 2 * MIB
        head = await client.head(location, headers=TUS)
        assert (head.status_code, head.headers["upload-offset"]) == (200, str(RECORDED))
        uploads = await other.resumable()  # type: ignore[misc]  # async dependencies
        done = await uploads.write(DEFAULT_OWNER, upload_id, RECORDED, stream(DATA[RECORDED:]))
    finally:
        await close(other)
    document = (await client.get(f"/documents/{done.document_id}")).json()
    assert document["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert (await client.get(f"/documents/{done.document_id}/content")).content == DATA

"""What S3's resumable bytes must do beyond the ResumableBlobs contract, where parts are real: S3's
5 MiB minimum holds on moto, so these upload a few parts of that size."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta

from docpipe.adapters.memory import MemoryRepository, MemoryUploadRepository
from docpipe.domain.fsck import FindingKind, Fsck
from docpipe.domain.model import new_blob_key, utc_now
from tests.contract.test_resumable_blobs_contract import read_all, stream
from tests.contract.test_s3_specifics import MIB, store_and_client
from tests.moto_server import MotoServer

PART = 5 * MIB
DATA = os.urandom(2 * PART + 3 * MIB + 17)


def pieces(start: int, end: int, size: int = MIB) -> AsyncIterator[bytes]:
    """``DATA[start:end]`` in chunks of ``size``."""
    return stream(*(DATA[offset : min(offset + size, end)] for offset in range(start, end, size)))


async def test_patches_across_part_boundaries_with_failures_and_crashes_give_the_exact_bytes(
    moto_server: MotoServer,
) -> None:
    async with store_and_client(moto_server.endpoint_url, prefix="tenant/") as (store, client, bucket):
        resumable = store.resumable(part_size=PART)
        key = new_blob_key("alice")
        await resumable.begin(key)
        # Within part 1: its bytes stay in the tail.
        assert await resumable.append(key, 0, pieces(0, 3 * MIB)) == 3 * MIB
        # Across part 1 into part 2, then refused (a checksum mismatch): back to 3 MiB.
        await resumable.append(key, 3 * MIB, stream(b"x" * (4 * MIB)))
        await resumable.truncate(key, 3 * MIB)
        # A writer that crashed past the offset, over two part boundaries, leaves parts and tails behind.
        await resumable.append(key, 3 * MIB, stream(b"y" * (8 * MIB)))
        assert await resumable.append(key, 3 * MIB, pieces(3 * MIB, 7 * MIB, 3 * MIB)) == 7 * MIB
        entries = [entry async for entry in store.inventory()]
        assert [(entry.key, entry.complete) for entry in entries] == [(key, False)]
        # Ending exactly on a part boundary, then a short last PATCH.
        assert await resumable.append(key, 7 * MIB, pieces(7 * MIB, 2 * PART)) == 2 * PART
        assert await resumable.append(key, 2 * PART, pieces(2 * PART, len(DATA))) == len(DATA)
        digest = hashlib.sha256()
        async for chunk in resumable.read(key, len(DATA)):
            digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(DATA).hexdigest()
        await resumable.finish(key)
        assert await read_all(await store.open(key)) == DATA
        listed = await client.list_objects_v2(Bucket=bucket)
        assert [item["Key"] for item in listed["Contents"]] == [f"tenant/{key}"]
        assert (await client.list_multipart_uploads(Bucket=bucket)).get("Uploads", []) == []


async def test_an_upload_that_ends_on_a_part_boundary_finishes_without_its_earlier_tail(
    moto_server: MotoServer,
) -> None:
    async with store_and_client(moto_server.endpoint_url) as (store, _, _):
        resumable = store.resumable(part_size=PART)
        key = new_blob_key("alice")
        await resumable.begin(key)
        await resumable.append(key, 0, pieces(0, MIB))
        await resumable.append(key, MIB, pieces(MIB, PART))
        await resumable.finish(key)
        assert await read_all(await store.open(key)) == DATA[:PART]


async def test_fsck_reclaims_a_stale_upload_with_its_tail_and_a_tail_whose_upload_is_gone(
    moto_server: MotoServer,
) -> None:
    async with store_and_client(moto_server.endpoint_url) as (store, client, bucket):
        resumable = store.resumable(part_size=PART)
        stale, finished = new_blob_key("alice"), new_blob_key("alice")
        await resumable.begin(stale)
        await resumable.append(stale, 0, stream(b"12345"))
        await client.put_object(Bucket=bucket, Key=f"{finished}.part.1", Body=b"left")  # a finish cut short
        entries = sorted([(entry.key, entry.size, entry.complete) async for entry in store.inventory()])
        assert entries == sorted([(stale, 5, False), (finished, 4, False)])
        later = utc_now() + timedelta(hours=1)
        report = await Fsck(
            store, MemoryRepository(), uploads=MemoryUploadRepository(), clock=lambda: later
        ).run(fix=True)
        assert report.counts()[FindingKind.STALE_PARTIAL] == 2
        assert [entry async for entry in store.inventory()] == []

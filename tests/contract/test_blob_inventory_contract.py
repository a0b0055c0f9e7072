"""What every BlobStore adapter must list and reclaim for fsck, plus each adapter's own leftovers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from docpipe.adapters.filesystem import PARTIAL_SUFFIX, FilesystemBlobStore
from docpipe.adapters.s3 import PART_SIZE, S3BlobStore
from docpipe.domain.errors import BlobNotFound
from docpipe.domain.model import BlobEntry, new_document_id
from docpipe.domain.ports import BlobStore
from tests.contract.test_blob_store_contract import chunks_of, new_key, read_all
from tests.contract.test_s3_specifics import store_and_client
from tests.moto_server import MotoServer

MIB = 1024 * 1024
AN_HOUR_AGO = time.time() - 3600


async def listed(store: BlobStore) -> list[BlobEntry]:
    return [entry async for entry in store.inventory()]


def assert_recent_utc(moment: datetime) -> None:
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


async def test_an_empty_store_lists_nothing(blob_store: BlobStore) -> None:
    assert await listed(blob_store) == []


async def test_inventory_lists_each_blob_once_as_complete_with_its_size(blob_store: BlobStore) -> None:
    sizes = {new_key(): size for size in (1, 1000, 3 * MIB)}
    for key, size in sizes.items():
        await blob_store.put(key, chunks_of(os.urandom(size)))
    entries = await listed(blob_store)
    assert sorted((entry.key, entry.size, entry.complete) for entry in entries) == sorted(
        (key, size, True) for key, size in sizes.items()
    )
    for entry in entries:
        assert_recent_utc(entry.modified)


async def test_reclaiming_a_blob_removes_it_and_may_be_repeated(blob_store: BlobStore) -> None:
    kept, reclaimed = new_key(), new_key()
    await blob_store.put(kept, chunks_of(b"kept"))
    await blob_store.put(reclaimed, chunks_of(b"reclaimed"))
    (entry,) = [entry for entry in await listed(blob_store) if entry.key == reclaimed]
    await blob_store.reclaim(entry)
    await blob_store.reclaim(entry)
    with pytest.raises(BlobNotFound):
        await blob_store.open(reclaimed)
    assert [entry.key for entry in await listed(blob_store)] == [kept]


async def test_keys_of_both_forms_are_listed_and_reclaimed_as_they_are(blob_store: BlobStore) -> None:
    """Bare ids (documents stored before keys carried their owner) beside two owners' keys."""
    legacy, mine, theirs = new_document_id(), new_key(), new_key("tenant-b")
    keys = [legacy, mine, theirs, f"tenant-b/{legacy}"]
    for key in keys:
        await blob_store.put(key, chunks_of(key.encode()))
    entries = {entry.key: entry for entry in await listed(blob_store)}
    assert {key: (entry.size, entry.complete) for key, entry in entries.items()} == {
        key: (len(key), True) for key in keys
    }
    await blob_store.reclaim(entries[legacy])
    await blob_store.reclaim(entries[mine])
    assert sorted(entry.key for entry in await listed(blob_store)) == sorted(keys[2:])
    assert await read_all(blob_store, f"tenant-b/{legacy}") == f"tenant-b/{legacy}".encode()
    with pytest.raises(BlobNotFound):
        await blob_store.open(legacy)


async def stalled_put(store: BlobStore, key: str) -> asyncio.Task[int]:
    """A put that has sent more than one S3 part (so S3 has a multipart upload under way), then waits."""
    sent = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield os.urandom(PART_SIZE + 1)
        sent.set()
        await asyncio.Event().wait()
        yield b"never"

    put = asyncio.create_task(store.put(key, stalling()))
    await sent.wait()
    return put


async def the_incomplete_entry(store: BlobStore) -> BlobEntry:
    """The one entry, once its first bytes have arrived: moto dates every multipart upload in 2010,
    so only its parts tell when it was last written to."""
    async with asyncio.timeout(10):
        while True:
            (entry,) = await listed(store)
            if entry.size:
                return entry
            await asyncio.sleep(0.05)


async def test_an_upload_in_progress_is_incomplete_and_a_cancelled_one_gone(blob_store: BlobStore) -> None:
    key = new_key()
    put = await stalled_put(blob_store, key)
    entry = await the_incomplete_entry(blob_store)
    assert (entry.key, entry.complete) == (key, False)
    assert entry.size in (PART_SIZE, PART_SIZE + 1)  # S3 counts the parts it has
    assert_recent_utc(entry.modified)
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert await listed(blob_store) == []


async def leave_unfinished_upload(store: BlobStore, key: str) -> int:
    """Leave what a crash part-way through an upload leaves, an hour old where the store allows it,
    and return its size; skip the test for a store that a crash wipes out."""
    data = b"half an upload"
    if isinstance(store, FilesystemBlobStore):
        final = store.path_of(key)
        partial = final.with_name(f".{final.name}.0123abcd{PARTIAL_SUFFIX}")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.utime(partial, (AN_HOUR_AGO, AN_HOUR_AGO))
    elif isinstance(store, S3BlobStore):
        # The fixture hands over the store only; its own client and bucket are where leftovers live.
        client, bucket, object_key = store._client, store._bucket, store._prefix + key
        upload = await client.create_multipart_upload(Bucket=bucket, Key=object_key)
        await client.upload_part(
            Bucket=bucket, Key=object_key, UploadId=upload["UploadId"], PartNumber=1, Body=data
        )
    else:
        pytest.skip(f"{type(store).__name__} keeps nothing through a crash")
    return len(data)


@pytest.mark.parametrize("form", ["owner's key", "bare id"])
async def test_a_crashed_upload_is_listed_as_incomplete_and_reclaimable(
    blob_store: BlobStore, form: str
) -> None:
    key = new_key() if form == "owner's key" else new_document_id()
    size = await leave_unfinished_upload(blob_store, key)
    (entry,) = await listed(blob_store)
    assert (entry.key, entry.size, entry.complete) == (key, size, False)
    if isinstance(blob_store, FilesystemBlobStore):
        assert entry.modified == datetime.fromtimestamp(AN_HOUR_AGO, UTC)
    await blob_store.reclaim(entry)
    await blob_store.reclaim(entry)
    assert await listed(blob_store) == []
    with pytest.raises(BlobNotFound):
        await blob_store.open(key)


async def test_reclaiming_an_upload_in_progress_leaves_nothing(blob_store: BlobStore) -> None:
    put = await stalled_put(blob_store, new_key())
    await blob_store.reclaim(await the_incomplete_entry(blob_store))
    assert await listed(blob_store) == []
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert await listed(blob_store) == []


KEY_FORMS = {"owner's key": new_key, "bare id": new_document_id}


@pytest.mark.parametrize("form", KEY_FORMS)
async def test_the_filesystem_lists_only_files_of_its_own_layout(tmp_path: Path, form: str) -> None:
    store = FilesystemBlobStore(tmp_path)
    key = KEY_FORMS[form]()
    await store.put(key, chunks_of(b"mine"))
    shard = store.path_of(key).parent
    (tmp_path / "notes.txt").write_text("not in a fan-out folder")
    (shard / "misplaced.txt").write_text("a name that does not end in its folder's name (ids are hex)")
    (shard / ".hidden").write_text("a dotfile that is not a partial upload")
    (shard / f"sub{key[-2:]}").mkdir()
    (shard / f"sub{key[-2:]}" / f"x{key[-2:]}").write_text("a file one folder too deep")
    (tmp_path / "not an owner!" / key[-2:]).mkdir(parents=True)
    (tmp_path / "not an owner!" / key[-2:] / f"x{key[-2:]}").write_text("under a folder no owner has")
    assert [(entry.key, entry.complete) for entry in await listed(store)] == [(key, True)]


async def test_an_owner_named_like_a_fan_out_folder_shares_it_with_bare_ids(tmp_path: Path) -> None:
    """The folder ``ab`` holds the blobs of bare ids ending in ``ab`` and owner ``ab``'s fan-out folders."""
    store = FilesystemBlobStore(tmp_path)
    legacy = new_document_id()
    owner = legacy[-2:]
    keys = [legacy, f"{owner}/{legacy}", new_key(owner)]
    for key in keys:
        await store.put(key, chunks_of(key.encode()))
    entries = await listed(store)
    assert sorted(entry.key for entry in entries) == sorted(keys)
    for entry in entries:
        assert await read_all(store, entry.key) == entry.key.encode()
    (legacy_entry,) = [entry for entry in entries if entry.key == legacy]
    await store.reclaim(legacy_entry)
    assert sorted(entry.key for entry in await listed(store)) == sorted(keys[1:])


@pytest.mark.parametrize("form", KEY_FORMS)
async def test_the_filesystem_refuses_to_reclaim_a_foreign_handle(tmp_path: Path, form: str) -> None:
    store = FilesystemBlobStore(tmp_path)
    key = KEY_FORMS[form]()
    await store.put(key, chunks_of(b"mine"))
    (entry,) = await listed(store)
    for handle in ("..", f"../{key}", "misplaced", f".{key}.x{PARTIAL_SUFFIX}/x"):
        with pytest.raises(ValueError, match="not a file of blob"):
            await store.reclaim(
                BlobEntry(key=key, size=0, modified=entry.modified, complete=True, handle=handle)
            )
    with pytest.raises(ValueError, match="not a file of blob"):
        await store.reclaim(BlobEntry(key=key, size=0, modified=entry.modified, complete=False, handle=key))
    assert await listed(store) == [entry]


async def test_s3_lists_only_under_its_prefix_page_after_page(moto_server: MotoServer) -> None:
    """Over several ListObjectsV2 pages (made 7 objects long: S3's own are 1,000), with keys of both
    forms (a bare id, an owner's), plus one outside the prefix listed first."""
    async with store_and_client(moto_server.endpoint_url, prefix="tenant-a/", listing_page_size=7) as (
        store,
        client,
        bucket,
    ):
        keys = [new_document_id() for _ in range(30)] + [new_key() for _ in range(5)]
        await client.put_object(Bucket=bucket, Key=f"outside/{new_document_id()}", Body=b"other")
        await asyncio.gather(
            *(client.put_object(Bucket=bucket, Key=f"tenant-a/{key}", Body=b"x") for key in keys)
        )
        await client.put_object(Bucket=bucket, Key=f"tenant-b/{new_document_id()}", Body=b"other")
        first_page = await client.list_objects_v2(Bucket=bucket, Prefix="tenant-a/")
        assert first_page["IsTruncated"]
        entries = await listed(store)
        assert sorted(entry.key for entry in entries) == sorted(keys)
        assert {(entry.size, entry.complete) for entry in entries} == {(1, True)}

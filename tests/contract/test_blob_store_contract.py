"""What every BlobStore adapter must do, whatever the technology behind it."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from docpipe.domain.errors import BlobNotFound
from docpipe.domain.model import ByteRange, new_blob_key, new_document_id
from docpipe.domain.ports import BlobStore

MIB = 1024 * 1024
OWNER = "tenant-a"


def new_key(owner: str = OWNER) -> str:
    """A key as docpipe mints it: ``<owner>/<uuid7>``."""
    return new_blob_key(owner)


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def read_all(store: BlobStore, key: str, byte_range: ByteRange | None = None) -> bytes:
    return b"".join([chunk async for chunk in await store.open(key, byte_range)])


async def test_put_then_open_returns_the_same_bytes(blob_store: BlobStore) -> None:
    key = new_key()
    data = os.urandom(3 * MIB + 17)
    assert await blob_store.put(key, chunks_of(data)) == len(data)
    assert await read_all(blob_store, key) == data


async def test_a_large_blob_round_trips_in_bounded_chunks(blob_store: BlobStore) -> None:
    """Bigger than one S3 multipart part, so multipart uploads are exercised too."""
    key = new_key()
    data = os.urandom(20 * MIB + 5)
    assert await blob_store.put(key, chunks_of(data, MIB)) == len(data)
    digest = hashlib.sha256()
    async for chunk in await blob_store.open(key):
        assert 0 < len(chunk) <= 8 * MIB
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


async def test_an_empty_blob_round_trips(blob_store: BlobStore) -> None:
    key = new_key()
    assert await blob_store.put(key, chunks_of(b"")) == 0
    assert await read_all(blob_store, key) == b""


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 0), (0, 9), (5, 99), (99, 99), (1000, 1999), (MIB - 1, MIB + 1)],
)
async def test_open_with_a_range_returns_exactly_that_range(
    blob_store: BlobStore, start: int, end: int
) -> None:
    key = new_key()
    data = os.urandom(MIB + 100)
    await blob_store.put(key, chunks_of(data))
    assert await read_all(blob_store, key, ByteRange(start, end)) == data[start : end + 1]


async def test_opening_a_missing_key_raises_blob_not_found(blob_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await blob_store.open(new_key())


async def test_exists_says_whether_open_would_find_the_blob(blob_store: BlobStore) -> None:
    key = new_key()
    assert not await blob_store.exists(key)
    await blob_store.put(key, chunks_of(b"bytes"))
    assert await blob_store.exists(key)
    await blob_store.delete(key)
    assert not await blob_store.exists(key)


async def test_delete_removes_the_blob_and_is_idempotent(blob_store: BlobStore) -> None:
    key = new_key()
    await blob_store.put(key, chunks_of(b"bytes"))
    await blob_store.delete(key)
    with pytest.raises(BlobNotFound):
        await blob_store.open(key)
    await blob_store.delete(key)


async def test_put_overwrites_nothing_else(blob_store: BlobStore) -> None:
    first, second = new_key(), new_key()
    await blob_store.put(first, chunks_of(b"first"))
    await blob_store.put(second, chunks_of(b"second"))
    assert await read_all(blob_store, first) == b"first"
    assert await read_all(blob_store, second) == b"second"


class _Boom(Exception):
    pass


async def _failing_after(data: bytes) -> AsyncIterator[bytes]:
    async for chunk in chunks_of(data, MIB):
        yield chunk
    raise _Boom


@pytest.mark.parametrize("size", [10, 12 * MIB])
async def test_a_failed_put_leaves_nothing_readable(blob_store: BlobStore, size: int) -> None:
    key = new_key()
    with pytest.raises(_Boom):
        await blob_store.put(key, _failing_after(os.urandom(size)))
    with pytest.raises(BlobNotFound):
        await blob_store.open(key)


async def test_a_cancelled_put_leaves_nothing_readable(blob_store: BlobStore) -> None:
    key = new_key()
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            started.set()
            yield b"x" * MIB
            await asyncio.sleep(0)

    task = asyncio.create_task(blob_store.put(key, endless()))
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(BlobNotFound):
        await blob_store.open(key)


async def test_keys_of_either_form_and_any_owner_are_blobs_of_their_own(blob_store: BlobStore) -> None:
    """A bare id (the key of a document stored before keys carried their owner) and the same id under
    two owners are three blobs."""
    legacy = new_document_id()
    keys = [legacy, f"{OWNER}/{legacy}", f"tenant-b/{legacy}"]
    for key in keys:
        await blob_store.put(key, chunks_of(key.encode()))
    for key in keys:
        assert await blob_store.exists(key)
        assert await read_all(blob_store, key) == key.encode()
    await blob_store.delete(f"{OWNER}/{legacy}")
    assert [await blob_store.exists(key) for key in keys] == [True, False, True]
    assert await read_all(blob_store, legacy) == legacy.encode()


async def test_check_passes_on_a_healthy_store(blob_store: BlobStore) -> None:
    await blob_store.check()

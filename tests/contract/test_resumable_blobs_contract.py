"""What every ResumableBlobs adapter must do: bytes appended at offsets, durable, truncated back on
demand, invisible until finished, then readable as the blob."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from docpipe.domain.errors import BlobNotFound
from docpipe.domain.model import new_blob_key
from docpipe.domain.ports import BlobStore, ResumableBlobs

Stores = tuple[ResumableBlobs, BlobStore]


async def stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_appended_bytes_become_the_blob_when_finished(resumable_store: Stores) -> None:
    resumable, blobs = resumable_store
    key = new_blob_key("alice")
    await resumable.begin(key)
    assert await resumable.append(key, 0, stream(b"hello ", b"wor")) == 9
    assert await resumable.append(key, 9, stream(b"ld")) == 11
    assert not await blobs.exists(key)
    assert await read_all(resumable.read(key, 11)) == b"hello world"
    assert await read_all(resumable.read(key, 5)) == b"hello"
    await resumable.finish(key)
    assert await read_all(await blobs.open(key)) == b"hello world"
    await resumable.finish(key)  # again: a completion taken up after a crash
    assert await read_all(resumable.read(key, 11)) == b"hello world"


async def test_an_append_drops_what_lay_past_its_offset(resumable_store: Stores) -> None:
    """A writer killed mid-PATCH leaves bytes past the recorded offset; the next write starts there."""
    resumable, _ = resumable_store
    key = new_blob_key("alice")
    await resumable.begin(key)
    await resumable.append(key, 0, stream(b"abc", b"-crashed-garbage"))
    assert await resumable.append(key, 3, stream(b"def")) == 6
    assert await read_all(resumable.read(key, 100)) == b"abcdef"


async def test_truncate_goes_back_to_an_offset(resumable_store: Stores) -> None:
    resumable, _ = resumable_store
    key = new_blob_key("alice")
    await resumable.begin(key)
    await resumable.append(key, 0, stream(b"good", b"bad"))
    await resumable.truncate(key, 4)
    assert await read_all(resumable.read(key, 100)) == b"good"


async def test_a_failing_body_raises_from_append(resumable_store: Stores) -> None:
    resumable, _ = resumable_store
    key = new_blob_key("alice")
    await resumable.begin(key)

    async def broken() -> AsyncIterator[bytes]:
        yield b"part"
        raise ConnectionError("client gone")

    with pytest.raises(ConnectionError):
        await resumable.append(key, 0, broken())
    await resumable.truncate(key, 0)
    assert await resumable.append(key, 0, stream(b"whole")) == 5


async def test_aborted_bytes_are_gone_and_aborting_twice_is_no_error(resumable_store: Stores) -> None:
    resumable, blobs = resumable_store
    key = new_blob_key("alice")
    await resumable.begin(key)
    await resumable.append(key, 0, stream(b"data"))
    await resumable.abort(key)
    await resumable.abort(key)
    with pytest.raises(BlobNotFound):
        await resumable.append(key, 4, stream(b"more"))
    with pytest.raises(BlobNotFound):
        await resumable.finish(key)
    assert not await blobs.exists(key)


async def test_the_inventory_lists_unfinished_bytes_as_an_incomplete_entry_of_their_key(
    resumable_store: Stores,
) -> None:
    resumable, blobs = resumable_store
    key = new_blob_key("alice")
    await resumable.begin(key)
    await resumable.append(key, 0, stream(b"12345"))
    entries = [entry async for entry in blobs.inventory()]
    assert [(entry.key, entry.size, entry.complete) for entry in entries] == [(key, 5, False)]
    await blobs.reclaim(entries[0])
    assert [entry async for entry in blobs.inventory()] == []

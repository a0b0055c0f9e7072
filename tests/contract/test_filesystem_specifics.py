"""What the file system blob store must do beyond the BlobStore contract."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from docpipe.adapters.filesystem import FilesystemBlobStore, open_blob_store
from docpipe.domain.errors import StoreMissing
from docpipe.domain.model import new_blob_key, new_document_id
from tests.faults.support import wait_for

opened_blob_store = contextlib.asynccontextmanager(open_blob_store)


async def test_without_create_missing_a_missing_blob_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    with pytest.raises(StoreMissing, match="blob folder"):
        async with opened_blob_store(tmp_path, create_missing=False):
            pass
    assert not (tmp_path / "blobs").exists()
    async with opened_blob_store(tmp_path):
        pass
    async with opened_blob_store(tmp_path, create_missing=False) as store:
        await store.check()


def test_a_key_names_a_file_under_its_owners_folder_or_a_bare_ids_fan_out_folder(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    key = new_blob_key("tenant-a")
    name = key.removeprefix("tenant-a/")
    assert store.path_of(key) == tmp_path / "tenant-a" / name[-2:] / name
    legacy = new_document_id()
    assert store.path_of(legacy) == tmp_path / legacy[-2:] / legacy


@pytest.mark.parametrize(
    "key",
    [
        "",
        "./x",
        "../x",
        "/x",
        "a/b/x",
        "tenant-a/",
        "tenant-a/.x",
        "tenant-a/..",
        "..",
        "a\\x",
        "not an owner/x",
    ],
)
def test_a_key_that_would_leave_its_place_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="not a blob key"):
        FilesystemBlobStore(tmp_path).path_of(key)


async def test_a_put_cancelled_while_its_file_is_being_created_leaves_no_file_behind(tmp_path: Path) -> None:
    """The partial file is created in a worker thread; a put cancelled meanwhile never gets the file, so
    whatever the thread made must still be closed and removed, not left open for the garbage collector."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"never written"

    store = FilesystemBlobStore(tmp_path)
    for _ in range(20):
        put = asyncio.create_task(store.put(new_blob_key("tenant-a"), chunks()))
        await asyncio.sleep(0)  # the put now waits for the thread creating its partial file
        put.cancel()
        with pytest.raises(asyncio.CancelledError):
            await put
    await asyncio.to_thread(
        wait_for, lambda: not list(tmp_path.rglob("*.partial")), 10, "the cancelled puts' files removed"
    )

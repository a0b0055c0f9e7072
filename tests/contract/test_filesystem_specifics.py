"""What the file system blob store must do beyond the BlobStore contract."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from docpipe.adapters.filesystem import open_blob_store
from docpipe.domain.errors import StoreMissing

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

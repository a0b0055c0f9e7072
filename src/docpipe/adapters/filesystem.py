"""Blobs as files under ``<data_dir>/blobs``, written to a temporary file and renamed into place."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from docpipe.domain.errors import BlobNotFound, StoreUnavailable
from docpipe.domain.model import ByteRange

READ_SIZE = 1024 * 1024
PARTIAL_SUFFIX = ".partial"


class _PartialFile:
    """A temporary file beside its final path; every method runs in a worker thread.

    The lock keeps ``discard`` from closing the file while a write started before a cancellation
    is still running in its thread.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = final.with_name(f".{final.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
        self._lock = threading.Lock()
        final.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self.path, "xb")  # noqa: SIM115 - closed by commit or discard

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self._file.write(chunk)

    def commit(self) -> None:
        """Flush to disk, then rename into place: readers see the whole blob or nothing."""
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.path, self.final)
            _fsync_directory(self.final.parent)

    def discard(self) -> None:
        with self._lock:
            self._file.close()
            self.path.unlink(missing_ok=True)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, key: str) -> Path:
        """Keys are document ids (checked by the caller's id scheme); two levels of fan-out keep
        directories small."""
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key[-2:] / key

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        partial = await asyncio.to_thread(_PartialFile, self.path_of(key))
        size = 0
        try:
            async for chunk in chunks:
                await asyncio.to_thread(partial.write, chunk)
                size += len(chunk)
            await asyncio.to_thread(partial.commit)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(partial.discard))
            raise
        return size

    async def open(self, key: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        try:
            file = await asyncio.to_thread(open, self.path_of(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        return _read(file, byte_range)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_of(key).unlink, missing_ok=True)

    async def check(self) -> None:
        if not await asyncio.to_thread(os.access, self.root, os.W_OK | os.X_OK):
            raise StoreUnavailable(f"blob folder {self.root} is missing or not writable")


async def _read(file: BinaryIO, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
    try:
        remaining = -1
        if byte_range is not None:
            await asyncio.to_thread(file.seek, byte_range.start)
            remaining = byte_range.length
        while remaining != 0:
            size = READ_SIZE if remaining < 0 else min(READ_SIZE, remaining)
            chunk = await asyncio.to_thread(file.read, size)
            if not chunk:
                return
            remaining -= len(chunk) if remaining > 0 else 0
            yield chunk
    finally:
        await asyncio.shield(asyncio.to_thread(file.close))


async def open_blob_store(data_dir: Path) -> AsyncIterator[FilesystemBlobStore]:
    """The store under ``<data_dir>/blobs``, created when missing."""
    root = data_dir / "blobs"
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    yield FilesystemBlobStore(root)

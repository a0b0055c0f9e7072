"""Blobs as files under ``<data_dir>/blobs``, written to a temporary file and renamed into place."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from docpipe.adapters.disk import has_no_room
from docpipe.domain.errors import BlobNotFound, StorageFull, StoreMissing, StoreRole, StoreUnavailable
from docpipe.domain.model import BlobEntry, ByteRange
from docpipe.domain.streams import CHUNK_SIZE

PARTIAL_SUFFIX = ".partial"
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})
_ROLE = StoreRole.BLOB_STORE


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
        """Best effort: the upload's own error matters more, and fsck reclaims what is left."""
        with self._lock:
            with contextlib.suppress(OSError):
                self._file.close()
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class FilesystemBlobStore:
    """The blob store for one machine: each blob is a file under ``root``.

    A put writes a temporary ``.partial`` file beside the final path and renames it into place, so a
    reader never sees half a blob and a crash leaves only partials, which fsck reclaims."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, key: str) -> Path:
        """Keys are minted by docpipe (``new_blob_key``), never taken from clients; a fan-out folder
        per last two characters keeps directories small."""
        if not key or "/" in key or "\\" in key or key.startswith("."):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key[-2:] / key

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        with self._failures():
            partial = await asyncio.to_thread(_PartialFile, self.path_of(key))
        size = 0
        try:
            async for chunk in chunks:
                with self._failures():
                    await asyncio.to_thread(partial.write, chunk)
                size += len(chunk)
            with self._failures():
                await asyncio.to_thread(partial.commit)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(partial.discard))
            raise
        return size

    async def open(self, key: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        try:
            with self._failures():
                blob, first = await asyncio.to_thread(_open_and_read, self.path_of(key), byte_range)
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        return _read(blob, first)

    async def exists(self, key: str) -> bool:
        """One stat; a file that cannot be examined fails as it does for ``open``."""
        try:
            with self._failures():
                await asyncio.to_thread(os.stat, self.path_of(key))
        except FileNotFoundError:
            return False
        return True

    async def delete(self, key: str) -> None:
        with self._failures():
            await asyncio.to_thread(self.path_of(key).unlink, missing_ok=True)

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        """The file system's failures as domain errors, in this one place: no space or quota left is
        ``StorageFull``; any other failure (permissions, read-only, I/O error) ``StoreUnavailable``.
        A missing file is left for the caller to judge."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as error:
            if error.errno in _NO_ROOM:
                raise StorageFull(_ROLE, f"blob folder {self.root}: {error.strerror}") from None
            raise StoreUnavailable(
                _ROLE, f"blob folder {self.root} cannot be used: {error.strerror}"
            ) from None

    async def check(self) -> None:
        with self._failures():
            writable = await asyncio.to_thread(os.access, self.root, os.W_OK | os.X_OK)
            full = writable and await asyncio.to_thread(has_no_room, self.root)
        if not writable:
            raise StoreUnavailable(_ROLE, f"blob folder {self.root} is missing or not writable")
        if full:
            raise StorageFull(_ROLE, f"the file system of blob folder {self.root} has no room left")

    async def inventory(self) -> AsyncIterator[BlobEntry]:
        """Blobs and ``.partial`` files, one fan-out folder at a time; the handle is the file name."""
        for folder in await asyncio.to_thread(_folders, self.root):
            for entry in await asyncio.to_thread(_entries, folder):
                yield entry

    async def reclaim(self, entry: BlobEntry) -> None:
        final = self.path_of(entry.key)
        if _parse(final.parent.name, entry.handle) != (entry.key, entry.complete):
            raise ValueError(f"not a file of blob {entry.key!r}: {entry.handle!r}")
        await asyncio.to_thread(final.with_name(entry.handle).unlink, missing_ok=True)


def _parse(folder: str, name: str) -> tuple[str, bool] | None:
    """The key of the file ``name`` in fan-out folder ``folder``, and whether it is a complete blob;
    ``None`` when docpipe would not have written that file there."""
    if not name.startswith("."):
        key, complete = name, True
    elif name.endswith(PARTIAL_SUFFIX):
        key, complete = name[1 : -len(PARTIAL_SUFFIX)].rpartition(".")[0], False
    else:
        return None
    return (key, complete) if key and key[-2:] == folder else None


def _folders(root: Path) -> list[Path]:
    with os.scandir(root) as found:
        return [Path(item.path) for item in found if item.is_dir(follow_symlinks=False)]


def _entries(folder: Path) -> list[BlobEntry]:
    entries: list[BlobEntry] = []
    with os.scandir(folder) as found:
        for item in found:
            parsed = _parse(folder.name, item.name)
            if parsed is None or not item.is_file(follow_symlinks=False):
                continue
            try:
                stat = item.stat(follow_symlinks=False)
            except FileNotFoundError:  # committed (renamed) or deleted since the folder was read
                continue
            key, complete = parsed
            modified = datetime.fromtimestamp(stat.st_mtime, UTC)
            entries.append(
                BlobEntry(key=key, size=stat.st_size, modified=modified, complete=complete, handle=item.name)
            )
    return entries


class _BlobReader:
    """A blob file read from start to end (or a range); every method runs in a worker thread.

    It knows how many bytes are left and closes the file with its last read, so that a blob of one
    chunk is opened, read and closed in a single trip to a thread: small documents are most requests.
    """

    def __init__(self, path: Path, byte_range: ByteRange | None) -> None:
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by the last read or close
        try:
            if byte_range is None:
                self._remaining = os.fstat(self._file.fileno()).st_size
            else:
                self._file.seek(byte_range.start)
                self._remaining = byte_range.length
        except BaseException:
            self._file.close()
            raise

    @property
    def done(self) -> bool:
        return self._file.closed

    def read(self) -> bytes:
        chunk = self._file.read(min(CHUNK_SIZE, self._remaining)) if self._remaining > 0 else b""
        self._remaining = self._remaining - len(chunk) if chunk else 0
        if self._remaining == 0:
            self._file.close()
        return chunk

    def close(self) -> None:
        self._file.close()


def _open_and_read(path: Path, byte_range: ByteRange | None) -> tuple[_BlobReader, bytes]:
    reader = _BlobReader(path, byte_range)
    return reader, reader.read()


async def _read(reader: _BlobReader, first: bytes) -> AsyncIterator[bytes]:
    try:
        chunk = first
        while chunk:
            yield chunk
            if reader.done:
                return
            chunk = await asyncio.to_thread(reader.read)
    finally:
        if not reader.done:
            await asyncio.shield(asyncio.to_thread(reader.close))


def blob_folder(data_dir: Path) -> Path:
    return data_dir / "blobs"


async def open_blob_store(
    data_dir: Path, *, create_missing: bool = True
) -> AsyncIterator[FilesystemBlobStore]:
    """The store under ``<data_dir>/blobs``, created when missing unless ``create_missing`` is false."""
    root = blob_folder(data_dir)
    if create_missing:
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    elif not await asyncio.to_thread(root.is_dir):
        raise StoreMissing(_ROLE, f"blob folder {root}")
    yield FilesystemBlobStore(root)

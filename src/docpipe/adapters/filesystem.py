"""Blobs as files under ``<data_dir>/blobs``, written to a temporary file and renamed into place.

A key ``<owner>/<name>`` is the file ``<owner>/<fan-out>/<name>``, where the fan-out folder is the
name's last two characters; a key without an owner (a document's from before keys carried their
owner) is ``<fan-out>/<name>``. A top-level folder is thus a fan-out folder, whose files are blobs
without an owner, or an owner's folder, whose folders are its fan-out folders; an owner whose name
looks like a fan-out folder's has one folder that is both, which the inventory tells apart by what
each entry is (a file or a folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import secrets
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from docpipe.adapters.disk import has_no_room
from docpipe.adapters.durable_files import fsync_folder
from docpipe.adapters.thread_files import open_in_thread
from docpipe.domain.errors import (
    BlobNotFound,
    InvalidInput,
    StorageFull,
    StoreMissing,
    StoreRole,
    StoreUnavailable,
)
from docpipe.domain.identity import clean_owner
from docpipe.domain.model import BlobEntry, ByteRange
from docpipe.domain.streams import CHUNK_SIZE

PARTIAL_SUFFIX = ".partial"
UPLOAD_MARK = ".upload"
"""Between a blob's name and ``PARTIAL_SUFFIX`` in the file holding a resumable upload's bytes: one
file per key (where a put's temporary file has a random part), so that any process can find it."""
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
            fsync_folder(self.final.parent)

    def discard(self) -> None:
        """Best effort: the upload's own error matters more, and fsck reclaims what is left."""
        with self._lock:
            with contextlib.suppress(OSError):
                self._file.close()
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


class _Appender:
    """A resumable upload's file opened to write from ``offset`` on; every method runs in a worker thread.

    ``flush_behind`` runs beside ``write`` (not under its lock): it sends to disk what the writes so far
    left in the page cache while more bytes arrive, so that the ``sync`` that makes an append durable
    waits for the last of them only, not for all of them after the body ended. The two may overlap;
    the caller waits for the flush before it counts the append durable or closes the file, and
    raises its error: a failed flush may not be reported again by ``sync``.
    """

    def __init__(self, path: Path, offset: int) -> None:
        self._file: BinaryIO = open(path, "r+b")  # noqa: SIM115 - closed by close
        self._fd = self._file.fileno()
        self._lock = threading.Lock()
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size < offset:
                raise RuntimeError(f"{path} holds {size} bytes, fewer than the recorded offset {offset}")
            self._file.truncate(offset)
            self._file.seek(offset)
        except BaseException:
            self._file.close()
            raise

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self._file.write(chunk)

    def flush_behind(self) -> None:
        os.fsync(self._fd)

    def sync(self) -> int:
        with self._lock:
            self._file.flush()
            os.fsync(self._fd)
            return self._file.tell()

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._file.close()


async def _close_after(flushing: asyncio.Future[None] | None, file: _Appender) -> None:
    """Close once the flush behind the writes is over; its error, if the append ended before
    hearing it, goes with the append's own."""
    if flushing is not None:
        await asyncio.wait([flushing])
        flushing.exception()
    await asyncio.to_thread(file.close)


def _create_empty(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb"):
        pass
    fsync_folder(path.parent)


def _truncate(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.truncate(offset)
        os.fsync(file.fileno())


def _rename_durably(source: Path, target: Path) -> None:
    os.replace(source, target)
    fsync_folder(target.parent)


class FilesystemBlobStore:
    """The blob store for one machine: each blob is a file under ``root``.

    A put writes a temporary ``.partial`` file beside the final path and renames it into place, so a
    reader never sees half a blob and a crash leaves only partials, which fsck reclaims."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_text = os.fspath(root)

    def path_of(self, key: str) -> Path:
        """Keys are minted by docpipe (``new_blob_key``), never taken from clients, and checked all the
        same: the owner is one ``clean_owner`` accepts (never ``.`` or ``..``), the name no path. A
        fan-out folder per last two characters of the name keeps directories small."""
        return Path(self._location(key))

    def _location(self, key: str) -> str:
        """``path_of`` as text, which ``exists`` stats on every HEAD: joining strings takes a fraction
        of building a ``Path``, which costs more than the stat itself."""
        owner, slash, name = key.rpartition("/")
        if not _is_name(name) or (slash and not _is_owner(owner)):
            raise ValueError(f"not a blob key: {key!r}")
        if slash:
            return os.path.join(self._root_text, owner, name[-2:], name)
        return os.path.join(self._root_text, name[-2:], name)

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        with self._failures():
            path = self.path_of(key)
            partial = await open_in_thread(lambda: _PartialFile(path), _PartialFile.discard)
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
                path = self.path_of(key)
                blob, first = await open_in_thread(lambda: _open_and_read(path, byte_range), _close_reader)
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        return _read(blob, first)

    async def exists(self, key: str) -> bool:
        """One stat, on the event loop's thread (every HEAD of content asks): of a file on a local disk
        it takes microseconds, less than handing it to a thread and back, which would also make every
        other call releasing the GIL meanwhile wait for it. A file that cannot be examined fails as it
        does for ``open``."""
        try:
            with self._failures():
                os.stat(self._location(key))
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
        """Blobs and ``.partial`` files, one folder at a time; the handle is the file name.

        Each top-level folder's files are blobs without an owner; the folders of a top-level folder
        named like an owner are that owner's fan-out folders."""
        for folder in await asyncio.to_thread(_folders, self.root):
            entries, subfolders = await asyncio.to_thread(_scan, folder, None)
            for entry in entries:
                yield entry
            if not _is_owner(folder.name):
                continue
            for fan_out in subfolders:
                entries, _ = await asyncio.to_thread(_scan, fan_out, folder.name)
                for entry in entries:
                    yield entry

    def _unfinished(self, key: str) -> Path:
        final = self.path_of(key)
        return final.with_name(f".{final.name}{UPLOAD_MARK}{PARTIAL_SUFFIX}")

    async def begin(self, key: str) -> None:
        with self._failures():
            await asyncio.to_thread(_create_empty, self._unfinished(key))

    async def append(self, key: str, offset: int, chunks: AsyncIterable[bytes]) -> int:
        """Truncate to ``offset`` (what a crashed writer left past it goes), write, fsync; the bytes
        written are flushed behind the writes, one flush at a time (see ``_Appender``)."""
        try:
            with self._failures():
                path = self._unfinished(key)
                file = await open_in_thread(lambda: _Appender(path, offset), _Appender.close)
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        flushing: asyncio.Future[None] | None = None
        try:
            async for chunk in chunks:
                with self._failures():
                    await asyncio.to_thread(file.write, chunk)
                    if flushing is None or flushing.done():
                        if flushing is not None:
                            flushing.result()
                        flushing = asyncio.ensure_future(asyncio.to_thread(file.flush_behind))
            with self._failures():
                end = await asyncio.to_thread(file.sync)
                if flushing is not None:
                    await asyncio.shield(flushing)
                return end
        finally:
            await asyncio.shield(_close_after(flushing, file))

    async def truncate(self, key: str, offset: int) -> None:
        with self._failures():
            await asyncio.to_thread(_truncate, self._unfinished(key), offset)

    async def read(self, key: str, end: int) -> AsyncIterator[bytes]:
        """From the unfinished file, or from the blob once finished (a completion taken up again)."""
        path = self._unfinished(key)
        try:
            with self._failures():
                reader, first = await open_in_thread(
                    lambda: _open_and_read(path, ByteRange(0, end - 1)), _close_reader
                )
        except FileNotFoundError:
            chunks = await self.open(key, ByteRange(0, end - 1))
        else:
            chunks = _read(reader, first)
        async for chunk in chunks:
            yield chunk

    async def finish(self, key: str) -> None:
        final = self.path_of(key)
        try:
            with self._failures():
                await asyncio.to_thread(_rename_durably, self._unfinished(key), final)
        except FileNotFoundError:
            if not await self.exists(key):
                raise BlobNotFound(key) from None

    async def abort(self, key: str) -> None:
        with self._failures():
            await asyncio.to_thread(self._unfinished(key).unlink, missing_ok=True)

    async def reclaim(self, entry: BlobEntry) -> None:
        final = self.path_of(entry.key)
        if _parse(final.parent.name, entry.handle) != (final.name, entry.complete):
            raise ValueError(f"not a file of blob {entry.key!r}: {entry.handle!r}")
        await asyncio.to_thread(final.with_name(entry.handle).unlink, missing_ok=True)


def _is_name(value: str) -> bool:
    """Whether ``value`` can be the last part of a key: a file name, not hidden, not a path."""
    return bool(value) and "/" not in value and "\\" not in value and not value.startswith(".")


@functools.lru_cache(maxsize=1024)  # owners are few, and checked on every blob a request touches
def _is_owner(value: str) -> bool:
    try:
        clean_owner(value)
    except InvalidInput:
        return False
    return True


def _parse(folder: str, name: str) -> tuple[str, bool] | None:
    """The key's name part of the file ``name`` in fan-out folder ``folder``, and whether it is a
    complete blob; ``None`` when docpipe would not have written that file there."""
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


def _scan(folder: Path, owner: str | None) -> tuple[list[BlobEntry], list[Path]]:
    """The blob entries of ``folder`` as a fan-out folder of ``owner``'s (or of keys without an owner),
    and the folders in it."""
    entries: list[BlobEntry] = []
    subfolders: list[Path] = []
    with os.scandir(folder) as found:
        for item in found:
            if item.is_dir(follow_symlinks=False):
                subfolders.append(Path(item.path))
                continue
            parsed = _parse(folder.name, item.name)
            if parsed is None or not item.is_file(follow_symlinks=False):
                continue
            try:
                stat = item.stat(follow_symlinks=False)
            except FileNotFoundError:  # committed (renamed) or deleted since the folder was read
                continue
            name, complete = parsed
            entries.append(
                BlobEntry(
                    key=name if owner is None else f"{owner}/{name}",
                    size=stat.st_size,
                    modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                    complete=complete,
                    handle=item.name,
                )
            )
    return entries, subfolders


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


def _close_reader(opened: tuple[_BlobReader, bytes]) -> None:
    opened[0].close()


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

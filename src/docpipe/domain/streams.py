"""Stream plumbing for uploads: even-sized chunks, a byte limit, and the running size and sha-256."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator

from docpipe.domain.errors import UploadTooLarge

CHUNK_SIZE = 1024 * 1024
"""How many bytes docpipe moves at once through a stream: the regrouped pieces of an upload, and
each read from a blob store. Large enough that per-chunk costs vanish, small enough to hold a few."""
HEAD_SIZE = 64 * 1024
"""How much of a document's start content-type detection looks at: more than any file signature at a
fixed offset needs (tar's lies at 257)."""


async def rechunk(chunks: AsyncIterable[bytes], size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """Regroup a stream into chunks of at least ``size`` bytes (the last may be shorter).

    Request bodies arrive in pieces of a few KiB; stores write far faster in ~1 MiB blocks. Pieces
    are joined once (one copy) as soon as they add up to ``size``, so a chunk is at most ``size``
    plus one piece, and that is all that is held at once.
    """
    pending: list[bytes] = []
    pending_size = 0
    async for chunk in chunks:
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= size:
            yield b"".join(pending)
            pending.clear()
            pending_size = 0
    if pending_size:
        yield b"".join(pending)


class MeteredStream:
    """Passes a stream through while counting its bytes and hashing them; stops at ``limit``.

    Raises ``UploadTooLarge`` as soon as the limit is crossed, before the offending chunk is handed on.
    Keeps the first ``HEAD_SIZE`` bytes in ``head`` for content-type detection.
    """

    def __init__(self, chunks: AsyncIterable[bytes], limit: int) -> None:
        self._chunks = chunks
        self._limit = limit
        self._sha256 = hashlib.sha256()
        self.size = 0
        self.head = b""

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Each chunk is hashed in a worker thread (hashlib releases the GIL on large inputs) while it
        is handed on and the next one is received; hashes are applied in order, one at a time."""
        hashing: asyncio.Future[None] | None = None
        async for chunk in self._chunks:
            self.size += len(chunk)
            if self.size > self._limit:
                raise UploadTooLarge(self._limit)
            if hashing is not None:
                await hashing
            hashing = asyncio.ensure_future(asyncio.to_thread(self._sha256.update, chunk))
            if len(self.head) < HEAD_SIZE:
                self.head += chunk[: HEAD_SIZE - len(self.head)]
            yield chunk
        if hashing is not None:
            await hashing


class _Failed:
    def __init__(self, error: Exception) -> None:
        self.error = error


_END = object()


async def read_ahead(chunks: AsyncIterable[bytes], depth: int = 2) -> AsyncGenerator[bytes, None]:
    """Pull up to ``depth`` chunks ahead in a task of its own.

    Receiving (and hashing) the next chunk then overlaps with storing this one, instead of the two
    taking turns; at most ``depth`` more chunks are held. An error of the source is raised here, and
    closing this iterator early stops the source.
    """
    queue: asyncio.Queue[bytes | _Failed | object] = asyncio.Queue(depth)

    async def pump() -> None:
        try:
            async for chunk in chunks:
                await queue.put(chunk)
        except Exception as error:
            await queue.put(_Failed(error))
        else:
            await queue.put(_END)

    task = asyncio.create_task(pump())
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, bytes)
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

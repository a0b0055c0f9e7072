"""Stream plumbing for uploads: even-sized chunks, a byte limit, and the running size and sha-256."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator

from docpipe.domain.errors import UploadTooLarge

CHUNK_SIZE = 1024 * 1024
HEAD_SIZE = 64 * 1024


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
        async for chunk in self._chunks:
            self.size += len(chunk)
            if self.size > self._limit:
                raise UploadTooLarge(self._limit)
            self._sha256.update(chunk)
            if len(self.head) < HEAD_SIZE:
                self.head += chunk[: HEAD_SIZE - len(self.head)]
            yield chunk

"""In-memory fakes of both ports for fast unit tests; they pass the same contract suites as the real ones."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from docpipe.domain.errors import BlobNotFound, ConcurrentUpdate, DocumentNotFound, DuplicateDocument
from docpipe.domain.listing import matches
from docpipe.domain.model import ByteRange, Document, ListQuery, Page

_CHUNK = 1024 * 1024


class MemoryBlobStore:
    """Holds every blob whole in memory: for tests and throwaway runs only."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        parts = [chunk async for chunk in chunks]
        self._blobs[key] = b"".join(parts)
        return len(self._blobs[key])

    async def open(self, key: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        try:
            blob = self._blobs[key]
        except KeyError:
            raise BlobNotFound(key) from None
        start, stop = (0, len(blob)) if byte_range is None else (byte_range.start, byte_range.end + 1)
        return _slices(blob, start, stop)

    async def delete(self, key: str) -> None:
        self._blobs.pop(key, None)

    async def check(self) -> None:
        return None

    def keys(self) -> set[str]:
        return set(self._blobs)


async def _slices(blob: bytes, start: int, stop: int) -> AsyncIterator[bytes]:
    view = memoryview(blob)
    for offset in range(start, stop, _CHUNK):
        yield bytes(view[offset : min(offset + _CHUNK, stop)])


class MemoryRepository:
    def __init__(self) -> None:
        self._documents: dict[str, Document] = {}

    async def add(self, document: Document) -> None:
        if document.id in self._documents:
            raise DuplicateDocument(document.id)
        self._documents[document.id] = document

    async def get(self, document_id: str) -> Document:
        try:
            return self._documents[document_id]
        except KeyError:
            raise DocumentNotFound(document_id) from None

    async def list(self, query: ListQuery) -> Page:
        ordered = sorted(self._documents.values(), key=lambda document: document.id, reverse=True)
        found = [document for document in ordered if matches(document, query)]
        return Page(found[: query.limit], has_more=len(found) > query.limit)

    async def replace(self, document: Document, expected_version: int) -> None:
        current = await self.get(document.id)
        if current.version != expected_version:
            raise ConcurrentUpdate(document.id)
        self._documents[document.id] = document

    async def delete(self, document_id: str) -> None:
        if self._documents.pop(document_id, None) is None:
            raise DocumentNotFound(document_id)

    async def check(self) -> None:
        return None


async def open_blob_store() -> AsyncIterator[MemoryBlobStore]:
    yield MemoryBlobStore()


async def open_repository() -> AsyncIterator[MemoryRepository]:
    yield MemoryRepository()

"""The two ports docpipe's use cases depend on. Adapters implement them; nothing else crosses them."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

from docpipe.domain.model import BlobEntry, ByteRange, Document, ListQuery, Page


class BlobStore(Protocol):
    """Bytes under opaque keys that docpipe derives from document ids, never from client input."""

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the stream under ``key`` and return the number of bytes stored.

        The blob becomes readable only once complete: a failure or cancellation part-way leaves
        nothing readable under ``key`` (temporary data may remain for fsck to reclaim).
        """
        ...

    async def open(self, key: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        """Return an iterator over the blob's bytes, or over ``byte_range`` of them.

        Raises ``BlobNotFound`` before any byte is produced when ``key`` holds nothing.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error."""
        ...

    async def check(self) -> None:
        """Raise ``StoreUnavailable`` when the store cannot serve requests."""
        ...

    def inventory(self) -> AsyncIterator[BlobEntry]:
        """Every blob the store holds for docpipe, and every leftover of an unfinished upload.

        In no particular order, holding about one page of the listing in memory at a time. What the
        adapter can tell is not its own (a file outside its folder layout) is left out; keys docpipe
        never issued may still appear where the store cannot tell (other objects in a shared bucket).
        """
        ...

    async def reclaim(self, entry: BlobEntry) -> None:
        """Remove what ``entry`` (from ``inventory``) stands for; removing it twice is not an error."""
        ...


class DocumentRepository(Protocol):
    """Document metadata, listed newest first (ids sort by creation time)."""

    async def add(self, document: Document) -> None:
        """Insert a new document; raises ``DuplicateDocument`` when its id exists."""
        ...

    async def get(self, document_id: str) -> Document:
        """Raises ``DocumentNotFound``."""
        ...

    async def list(self, query: ListQuery) -> Page:
        """At most ``query.limit`` documents with ids below ``query.after_id``, newest first,
        matching every filter that is set, and where the next page resumes (see ``Page``): every
        match between ``resume_after`` and ``after_id`` is on this page."""
        ...

    async def replace(self, document: Document, expected_version: int) -> None:
        """Write ``document`` over the stored one only if that one still has ``expected_version``.

        Raises ``DocumentNotFound`` when it is gone and ``ConcurrentUpdate`` when its version moved.
        """
        ...

    async def delete(self, document_id: str) -> None:
        """Raises ``DocumentNotFound``."""
        ...

    async def check(self) -> None:
        """Raise ``StoreUnavailable`` when the repository cannot serve requests."""
        ...

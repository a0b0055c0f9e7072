"""The ports docpipe's use cases depend on. Adapters implement them; nothing else crosses them."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import datetime
from typing import Protocol, runtime_checkable

from docpipe.domain.idempotency import CompletedUpload, IdempotencyClaim
from docpipe.domain.identity import Principal
from docpipe.domain.keys import ApiKey
from docpipe.domain.model import BlobEntry, ByteRange, Document, ListQuery, Page


class BlobStore(Protocol):
    """Bytes under opaque keys that docpipe mints (``new_blob_key``), never from client input."""

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

    async def exists(self, key: str) -> bool:
        """Whether ``open(key)`` would find a blob, asked as cheaply as the store allows (a stat, a
        HEAD request) without reading any byte. Raises ``StoreUnavailable`` as ``open`` would."""
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


@runtime_checkable  # Litestar checks the type of what a dependency provides
class PresignedDownloads(Protocol):
    """A blob store that lets clients fetch bytes from it directly, with URLs it signs (S3)."""

    async def presigned_get(
        self, key: str, *, content_type: str, content_disposition: str, expires_in: int
    ) -> str:
        """A URL that serves the blob under ``key`` for ``expires_in`` seconds to anyone who has it, with
        these ``Content-Type`` and ``Content-Disposition`` headers."""
        ...


class DocumentRepository(Protocol):
    """Document metadata of every owner, listed newest first (ids sort by the time their upload committed).

    Every read and write names the owner it acts for: another owner's document is answered exactly like a
    missing one (``DocumentNotFound``), and listings hold only the owner's documents. A stored document
    keeps its ``blob_key``; one stored before documents had blob keys reads back with its id as its blob
    key (its bytes are under its id). Documents stored before owners existed belong to ``DEFAULT_OWNER``.
    """

    async def add(self, document: Document, claim: IdempotencyClaim | None = None) -> None:
        """Insert a new document of ``document.owner``; raises ``DuplicateDocument`` when its id exists.

        With ``claim`` (of the same owner), the same commit completes its key's record
        (``CompletedUpload`` of this document, kept until ``claim.expires_at``), on condition that the
        record is still ``claim``'s and not completed: otherwise nothing is written and
        ``IdempotencyKeyInUse`` is raised (the lease ran out and another request took the key over).
        """
        ...

    async def get(self, owner: str, document_id: str) -> Document:
        """Raises ``DocumentNotFound``, also when the document is another owner's."""
        ...

    async def list(self, owner: str, query: ListQuery) -> Page:
        """At most ``query.limit`` of ``owner``'s documents with ids below ``query.after_id``, newest
        first, matching every filter that is set, and where the next page resumes (see ``Page``): every
        match between ``resume_after`` and ``after_id`` is on this page."""
        ...

    async def update(self, owner: str, document_id: str, change: Callable[[Document], Document]) -> Document:
        """Store ``change(current)`` over ``owner``'s current document and return it, atomically: no
        other write lands between the read ``change`` is given and the write of what it returns, so
        concurrent updates all apply, one after the other.

        ``change`` must return the same id and owner with the version one higher, and be a pure
        function: an adapter that cannot hold the document while ``change`` runs calls it again on the
        fresh document when another write got in first (retrying with jittered exponential backoff). An
        exception from ``change`` aborts the update with nothing written. Raises ``DocumentNotFound``
        (also for another owner's document), and ``ConcurrentUpdate`` when other writers kept getting in
        first for longer than the adapter's time budget.
        """
        ...

    async def delete(self, owner: str, document_id: str) -> None:
        """Raises ``DocumentNotFound``, also when the document is another owner's (which stays)."""
        ...

    async def claim(self, claim: IdempotencyClaim, now: datetime) -> CompletedUpload | None:
        """Hold ``claim.owner``'s ``claim.key`` for the upload ``claim.token`` stands for, until
        ``claim.lease_until``. Another owner's record of the same key is another record.

        Returns ``None`` once the key is held: it had no record, or its record expired (at
        ``expires_at``), or it was a claim whose lease ran out, or one with the same token (a
        renewal). Returns the record's ``CompletedUpload`` when an upload with the key completed;
        raises ``IdempotencyKeyInUse`` when another token holds it under a running lease. Expired
        records are purged, in bounded batches, or left to the store's own expiry.
        """
        ...

    async def release(self, claim: IdempotencyClaim) -> None:
        """Free ``claim.owner``'s ``claim.key`` if ``claim.token`` holds it and it is not completed;
        else do nothing."""
        ...

    def owners(self) -> AsyncIterator[str]:
        """Every owner that has stored documents, each once, in any order (fsck checks every owner's),
        holding about one page of the answer in memory at a time."""
        ...

    async def check(self) -> None:
        """Raise ``StoreUnavailable`` when the repository cannot serve requests."""
        ...


class KeyRepository(Protocol):
    """API keys, found by the hash of their secret. Every adapter keeps them beside the documents' metadata
    (the same SQLite file, the same DynamoDB table), so replicas sharing a repository share their keys.

    A revoked key is gone from every method at once, on every replica: nothing caches keys here.
    """

    async def add(self, key: ApiKey) -> None:
        """Store a new key; raises ``DuplicateKey`` rather than replace a key with its id or secret hash."""
        ...

    async def find(self, secret_hash: str) -> ApiKey | None:
        """The key whose secret hashes to ``secret_hash``, revoked keys excluded. An expired key is
        returned, with its ``expires_at``: the caller refuses it."""
        ...

    async def list(self) -> list[ApiKey]:
        """Every key that is not revoked, oldest first (key ids sort by creation time)."""
        ...

    async def revoke(self, key_id: str) -> None:
        """Refuse the key from now on; raises ``KeyNotFound`` when no key has ``key_id``."""
        ...

    async def touch(self, key_id: str, when: datetime) -> None:
        """Record that the key was used at ``when``; a key revoked meanwhile stays revoked, and an
        unknown id is left alone. Every call writes: the caller decides how often to call."""
        ...

    async def check(self) -> None:
        """Raise ``StoreUnavailable`` when the repository cannot serve requests."""
        ...


class TokenVerifier(Protocol):
    """Bearer tokens issued by someone else (an OIDC identity provider)."""

    async def verify(self, token: str) -> Principal:
        """The principal ``token`` stands for; raises ``Unauthenticated`` when it does not verify."""
        ...

"""The ports docpipe's use cases depend on. Adapters implement them; nothing else crosses them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from docpipe.domain.events import Event
from docpipe.domain.idempotency import CompletedUpload, IdempotencyClaim
from docpipe.domain.identity import Principal
from docpipe.domain.jobs import Job, JobReceipt
from docpipe.domain.keys import ApiKey
from docpipe.domain.model import BlobEntry, ByteRange, Document, ListQuery, Page, Processing
from docpipe.domain.search import SearchPage, SearchQuery
from docpipe.domain.uploads.session import Lease, UploadSession

if TYPE_CHECKING:
    from docpipe.domain.webhooks import Delivery


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
    key (its bytes are under its id). Documents stored before owners existed belong to ``DEFAULT_OWNER``,
    and documents stored before processing existed are ``pending``.

    Every change writes its event (``domain.events``) in the same commit, to the outbox of the same store
    (see ``Outbox``): ``add`` a ``document.created``, ``update`` a ``document.updated``, ``delete`` a
    ``document.deleted``, ``record_processing`` a ``document.processed``. A write that fails, or is
    refused, writes no event.
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

    async def record_processing(
        self, owner: str, document_id: str, sha256: str, processing: Processing
    ) -> Document:
        """Set the document's ``processing``, moving its version on by one, atomically as ``update``
        does, and return it; on condition that its bytes still have ``sha256``. The result of bytes the
        document no longer has is dropped: nothing is written, and the document is returned as it is.
        Raises ``DocumentNotFound`` (also for another owner's document) and ``ConcurrentUpdate`` as
        ``update`` does."""
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


class Outbox(Protocol):
    """The events a ``DocumentRepository`` wrote in the commits of the changes they describe, kept in
    the same store until a relay acknowledges them: they survive restarts and are delivered at least once.

    An outbox stands for one relay: it is made by its repository (``outbox()``), one per relay. The
    events are handed out under a lease, so that relays sharing a store (replicas) do not deliver the
    same events side by side: while an outbox's lease runs (renewed by each ``pending`` and ``renew``),
    no other outbox is handed the events it was handed, nor any other event of their documents. A lease
    that lapses (its relay died, or neither asked for events nor renewed for longer than the lease)
    passes to the next outbox that asks; ``release`` gives it up at once.
    """

    async def pending(self, limit: int) -> list[Event]:
        """At most ``limit`` events not yet acknowledged, of the documents this outbox holds the lease
        of (taking the lease of those no running lease holds): oldest first, and each document's in
        commit order. Empty when another outbox holds every lease."""
        ...

    async def acknowledge(self, events: Sequence[Event]) -> None:
        """Remove ``events`` (handed out by ``pending``): they were delivered. Removing one twice, or one
        another relay removed, is not an error."""
        ...

    async def renew(self) -> bool:
        """Keep the leases of the events ``pending`` handed out while they are being delivered (writing
        only once half of a lease has run, as ``pending`` does). False when a lease was lost: another
        outbox took it over after it lapsed, or it was released; that outbox may have been handed the
        same events."""
        ...

    async def release(self) -> None:
        """Give up this outbox's leases, so that another relay takes its events over at once."""
        ...

    def next_commit(self) -> asyncio.Event:
        """Set as soon as this process commits a change after the call (see ``domain.outbox.Commits``):
        the relay waits on it between polls, to deliver this process's events without delay."""
        ...


class WebhookQueue(Protocol):
    """The webhooks not yet delivered, kept in the documents' store (see ``domain.webhooks``): they survive
    restarts and several replicas share them.

    ``add`` is called by the relay's webhook consumer, in commit order per document; the rest by one
    dispatcher, under a lease as ``Outbox`` hands out events: while this queue's lease runs (renewed by
    each ``pending`` and ``renew``), no other queue is handed the deliveries it was handed, nor any other
    of their documents'. A document's first delivery may be postponed (its receiver failed): until then,
    none of the document's deliveries is handed out, while other documents' are.
    """

    async def add(self, event: Event) -> None:
        """Queue the webhook of ``event``, after every one of its document queued before. Adding an event
        still queued again changes nothing."""
        ...

    async def pending(self, limit: int, now: float) -> list[Delivery]:
        """At most ``limit`` deliveries due at ``now`` (epoch seconds), of the documents this queue holds
        the lease of: oldest first, each document's in commit order, and a document's only when its first
        is due (not postponed past ``now``)."""
        ...

    async def remove(self, event: Event) -> None:
        """Forget ``event``'s delivery: delivered, or given up. Removing it twice is not an error."""
        ...

    async def postpone(self, event: Event, attempts: int, until: float) -> None:
        """Record that ``event``'s delivery failed ``attempts`` times and is next due at ``until``."""
        ...

    async def renew(self) -> bool:
        """Keep the leases of the deliveries ``pending`` handed out while they are being posted, as
        ``Outbox.renew`` does; False when a lease was lost (another queue may have been handed them)."""
        ...

    async def release(self) -> None:
        """Give up this queue's leases, so that another dispatcher takes its deliveries over at once."""
        ...

    def next_addition(self) -> asyncio.Event:
        """Set as soon as this process adds a delivery after the call: the dispatcher waits on it."""
        ...


class WebhookSender(Protocol):
    """Posts an event's webhook to the receiver once, signed."""

    async def send(self, event: Event) -> None:
        """Return once the receiver took the webhook (a 2xx answer); raise ``WebhookNotDelivered`` when it
        answered anything else, did not answer in time, or could not be reached."""
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


class UploadRepository(Protocol):
    """Resumable upload sessions of every owner. Every read and write names the owner it acts for:
    another owner's upload is answered exactly like a missing one (``UploadNotFound``).

    Writes that move an upload on are compare-and-set on the stored session, so that processes sharing
    the repository (replicas) agree on who writes an upload's bytes and how far they got.
    """

    async def create(self, session: UploadSession) -> None:
        """Store a new session (ids are fresh and random: an existing id is a bug, and raises)."""
        ...

    async def get(self, owner: str, upload_id: str) -> UploadSession:
        """Raises ``UploadNotFound``, also for another owner's upload; an expired one is returned."""
        ...

    async def take_lease(
        self, owner: str, upload_id: str, offset: int, lease: Lease, now: datetime
    ) -> UploadSession:
        """Hold the upload for ``lease`` and return it, on condition that it is at ``offset``, not
        complete, not expired at ``now``, and that no other token holds a lease running at ``now`` (the
        same token renews). Raises ``UploadNotFound``, ``UploadExpired``, ``UploadBusy`` (another lease
        runs) or ``OffsetMismatch`` (checked in that order); nothing is written then."""
        ...

    async def advance(
        self,
        owner: str,
        upload_id: str,
        token: str,
        offset: int,
        lease_until: datetime | None,
        expires_at: datetime,
    ) -> None:
        """Record ``offset`` and ``expires_at`` for the holder of the lease ``token``, renewing its
        lease to ``lease_until`` or releasing it when ``None``. Raises ``UploadBusy`` when ``token`` no
        longer holds the upload (its lease ran out and another took it)."""
        ...

    async def complete(
        self, owner: str, upload_id: str, token: str, document_id: str, expires_at: datetime
    ) -> None:
        """Record that the upload committed as ``document_id`` and release the lease ``token``; the session
        is kept until ``expires_at`` to answer HEADs. Raises ``UploadBusy`` as ``advance`` does."""
        ...

    async def delete(self, owner: str, upload_id: str, now: datetime) -> UploadSession:
        """Remove the session unless a lease runs at ``now`` (``UploadBusy``), and return what it was.
        Raises ``UploadNotFound``."""
        ...

    async def expired(self, now: datetime, limit: int) -> list[UploadSession]:
        """At most ``limit`` sessions of any owner that expired at ``now``, their leases run out,
        oldest expiry first."""
        ...

    async def holding(self, blob_key: str) -> UploadSession | None:
        """The session whose bytes are staged under ``blob_key``, if any (fsck asks)."""
        ...


class ResumableBlobs(Protocol):
    """Bytes of unfinished uploads that arrive over many requests, each appended where the last ended.

    The bytes of ``key`` are invisible to ``BlobStore.open`` until ``finish``; fsck sees them in the blob
    store's inventory as an incomplete entry of ``key``. Callers hold the upload's lease: an adapter
    never sees two writers of one key at once.
    """

    async def begin(self, key: str) -> None:
        """Make room for the bytes of ``key``: empty, nothing readable yet."""
        ...

    async def append(self, key: str, offset: int, chunks: AsyncIterable[bytes]) -> int:
        """Write ``chunks`` from ``offset`` on, dropping whatever a crashed writer left past ``offset``,
        and return the new end once every byte is durable (fsynced, or acknowledged by the store). An
        error of ``chunks`` is raised with the bytes after ``offset`` in an unknown state: ``truncate``."""
        ...

    async def truncate(self, key: str, offset: int) -> None:
        """Drop the bytes past ``offset`` (a chunk that failed its checksum, or broke off)."""
        ...

    def read(self, key: str, end: int) -> AsyncIterator[bytes]:
        """The stored bytes ``0..end`` of the unfinished ``key``, to re-derive their sha-256 in a process
        that did not receive them all. Asked only once every byte arrived, right before ``finish``: an
        adapter that cannot read unfinished bytes (S3's parts) finishes them first."""
        ...

    async def finish(self, key: str) -> None:
        """Make the bytes readable as the blob ``key`` (``BlobStore.open``), atomically; finishing a key
        already finished is not an error."""
        ...

    async def abort(self, key: str) -> None:
        """Remove the unfinished bytes of ``key``; removing them twice is not an error."""
        ...


class SearchIndex(Protocol):
    """What docpipe searches: each document's filename, tags, metadata values and extracted text, per
    owner. Matching and ranking are ``domain.search``'s; every adapter finds and ranks alike.

    Every search names the owner it acts for and finds nothing of any other owner's, whatever the words.
    The index is derived data: it may lag the repository, so callers look hits up there (owner-scoped)
    and drop the ones they no longer find.
    """

    async def put(self, document: Document, text: AsyncIterable[str] | None) -> None:
        """Index ``document``'s filename, tags, metadata values and content type, replacing what was
        indexed for it, unless the index holds a higher ``version`` of it already.

        With ``text``, its first ``MAX_INDEXED_CHARS`` characters replace the text indexed for the
        document, read chunk by chunk (never held whole); searches see the old text until the new one
        is complete. ``None`` keeps the text indexed before, if any: a document's content never changes,
        so a rename need not read its text again. A ``remove`` while ``text`` is read wins: the document
        is not indexed again.
        """
        ...

    async def remove(self, owner: str, document_id: str) -> None:
        """Forget the document, its text included; forgetting one not indexed is not an error."""
        ...

    async def search(self, owner: str, query: SearchQuery) -> SearchPage:
        """One page of ``owner``'s documents matching every word of ``query`` and its filters (``tag``
        among the document's tags, ``content_type`` equal), best first, after ``query.after``: every
        match ranked between that position and the page's last hit is on the page, so paging meets
        each document once while the others change."""
        ...

    async def check(self) -> None:
        """Raise ``StoreUnavailable`` (or ``StorageFull``) when the index cannot serve requests. Cheap
        enough for every readiness probe: it does not read the index through."""
        ...

    async def verify(self) -> list[str]:
        """Read the whole index through and describe each damage found (fsck), empty when none."""
        ...

    async def rebuild(self) -> None:
        """Rebuild the index's structures from what it stores, and drop what unfinished writes left."""
        ...


class WorkQueue(Protocol):
    """Jobs handed from the servers' relays to ``docpipe worker`` processes, at least once.

    A received job is hidden from other receivers for a while (its visibility), and comes back to
    whoever receives next once that ends without ``delete``: a worker that dies loses no job. A job
    received too often without being deleted goes to a dead-letter queue instead of coming back."""

    async def send(self, job: Job) -> None:
        """Queue ``job``; returns once the queue holds it durably."""
        ...

    async def receive(self, limit: int, wait_seconds: float) -> list[JobReceipt]:
        """At most ``limit`` jobs, hidden from other receivers for the queue's visibility timeout;
        waits up to ``wait_seconds`` for one to arrive (empty when none did)."""
        ...

    async def hold(self, delivery: JobReceipt, seconds: float) -> None:
        """Hide the job from every receiver for ``seconds`` from now (0: hand it out again at once)."""
        ...

    async def delete(self, delivery: JobReceipt) -> None:
        """Remove the job for good: it was done."""
        ...
